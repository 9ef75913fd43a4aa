"""Two Ray nodes on this machine (two ``ray start`` in one private network), one instance
on each: items run on both nodes, and when one node is lost mid-job (every process of it
killed, as a machine that goes away) its item runs again on the other, outputs exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jobkit import (
    assert_no_process_left,
    controller_log,
    make_model,
    outputs,
    start_job,
    stream_texts,
    wait_until,
)
from lifecycle import wait_for_end
from models import echoed
from raycluster import RayCluster, running_cluster

from batchtransform import Session
from batchtransform.logs import DATA_LOG_SUFFIX, MODEL_LOG_SUFFIX

# Echoes one record a call, slowly, and notes which Ray node served the call.
NODE_NOTING_ECHO = """
import time
from pathlib import Path

import ray

def model_fn(model_dir):
    print("model loaded on node", ray.get_runtime_context().get_node_id(), flush=True)
    return "ok"

def transform_fn(model, body, content_type, accept):
    (Path({seen!r}) / ray.get_runtime_context().get_node_id()).touch()
    time.sleep(0.2)
    return "".join(f"out:{{line}}\\n" for line in body.split("\\n"))
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """Each node holds one ml.m5.large (2 vCPUs, 8 GiB) and no more."""
    node = {"cpus": 2, "memory_gib": 9}
    with running_cluster(tmp_path_factory.mktemp("ray-two-nodes"), node, **node) as cluster:
        yield cluster


@pytest.mark.slow
def test_items_run_on_both_nodes_and_a_lost_nodes_item_is_redone_on_the_other(
    two_nodes: RayCluster,
    tmp_path: Path,
    batchtransform_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_EXECUTOR", "ray")
    session = Session()
    seen = tmp_path / "seen"
    seen.mkdir()
    make_model(session, tmp_path, NODE_NOTING_ECHO.format(seen=str(seen)))
    files = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(10)) for i in range(6)}
    start_job(
        session, tmp_path, files, BatchStrategy="SingleRecord",
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},
    )  # fmt: skip
    wait_until(lambda: len(list(seen.iterdir())) == 2, what="calls served on both nodes")
    two_nodes.nodes[1].kill()

    description = wait_for_end(session, "job-1")
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out") == {f"{k}.out": echoed(v) for k, v in files.items()}
    assert description["Progress"]["ObjectsCompleted"] == len(files)
    log = controller_log()
    assert len({line.split()[-1] for line in log.splitlines() if "runs on Ray node" in line}) >= 2
    assert "the instance's Ray actor died" in log
    model_logs = stream_texts(MODEL_LOG_SUFFIX)
    assert sum("model loaded on node" in text for text in model_logs) >= 2
    assert all(text for text in stream_texts(DATA_LOG_SUFFIX))
    assert_no_process_left(batchtransform_home, two_nodes.sessions)
