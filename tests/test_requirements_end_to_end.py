"""Real jobs whose code folder has a requirements.txt: installed once, shared, or refused.

The requirements name a wheel built by the test, found with ``--no-index --find-links``
in the code folder itself, so pip never reaches an index.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from documents import job_request
from models import tar_model, write_model
from test_end_to_end import outputs, wait_for, write_inputs
from wheels import demo_wheel

from batchtransform import Session
from batchtransform.logs import logs_dir

# Uses the package that requirements.txt installs; each line comes back greeted.
GREETER = """
import btreqdemo

def model_fn(model_dir):
    return btreqdemo

def transform_fn(model, body, content_type, accept):
    return "".join(model.greet(line) + "\\n" for line in body.splitlines())
"""
INPUTS = {"a.csv": "1,2\n3,4\n", "sub/b.csv": "5,6\n"}
EXPECTED = {"a.csv.out": b"0.1.0:1,2\n0.1.0:3,4\n", "sub/b.csv.out": b"0.1.0:5,6\n"}


@pytest.fixture
def session() -> Session:
    return Session()


def greeter_model(tmp_path: Path, requirement: str = "btreqdemo==0.1.0") -> Path:
    """A model.tar.gz with code/inference.py, code/requirements.txt and code/wheels/."""
    source = write_model(tmp_path / "src", GREETER)
    demo_wheel(source / "code" / "wheels")
    (source / "code" / "requirements.txt").write_text(
        f"# as the framework images install it\n--no-index\n--find-links wheels\n{requirement}\n"
    )
    return tar_model(source, tmp_path / "model.tar.gz")


def run(session: Session, tmp_path: Path, name: str, instances: int = 2) -> dict[str, object]:
    write_inputs(tmp_path / "in", dict(INPUTS))
    request = job_request(
        name=name,
        input_uri=str(tmp_path / "in") + "/",
        output_path=str(tmp_path / f"out-{name}"),
        TransformResources={"InstanceCount": instances},
    )
    session.create_transform_job(**request)
    return wait_for(session, name)


def data_logs(job: str) -> str:
    return "".join(p.read_text() for p in sorted(logs_dir(job).glob("*.data-log")))


def test_two_instances_and_two_jobs_share_one_install(
    session: Session, tmp_path: Path, batchtransform_home: Path
) -> None:
    archive = greeter_model(tmp_path)
    session.create_model(
        ModelName="m1",
        PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
    )
    first = run(session, tmp_path, "job-1")
    second = run(session, tmp_path, "job-2")

    for name, description in (("job-1", first), ("job-2", second)):
        assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
        assert outputs(tmp_path / f"out-{name}") == EXPECTED
    lines = data_logs("job-1") + data_logs("job-2")
    installed = lines.count("code/requirements.txt: model environment")
    assert installed == 4, "each of the 4 instances says where its environment came from"
    assert lines.count(" installed: btreqdemo 0.1.0") == 1
    assert lines.count(" reused from the cache: btreqdemo 0.1.0") == 3
    cache = batchtransform_home / "requirements"
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
    model_log = "".join(p.read_text() for p in logs_dir("job-1").glob("*.log"))
    assert "Successfully installed btreqdemo-0.1.0" in model_log


def test_a_requirement_that_does_not_exist_fails_the_job_naming_it(
    session: Session, tmp_path: Path
) -> None:
    archive = greeter_model(tmp_path, requirement="btreq-no-such-package==1.0")
    session.create_model(
        ModelName="m1",
        PrimaryContainer={"Image": "batchtransform/python", "ModelDataUrl": archive.as_uri()},
    )
    description = run(session, tmp_path, "job-1", instances=1)

    assert description["TransformJobStatus"] == "Failed"
    reason = str(description["FailureReason"])
    assert "code/requirements.txt: pip could not install btreq-no-such-package==1.0" in reason
    assert "No matching distribution found for btreq-no-such-package==1.0" in reason
    assert "Could not find a version that satisfies" in "".join(
        p.read_text() for p in logs_dir("job-1").glob("*.log")
    )
    assert not (tmp_path / "out-job-1").exists()


def test_a_framework_image_installs_the_requirements_of_a_fetched_sourcedir(
    session: Session, tmp_path: Path
) -> None:
    """The SageMaker SDK's layout: code in sourcedir.tar.gz, named by SUBMIT_DIRECTORY."""
    code = write_model(tmp_path / "src", GREETER) / "code"
    demo_wheel(code / "wheels")
    (code / "requirements.txt").write_text("--no-index\n--find-links wheels\nbtreqdemo==0.1.0\n")
    sourcedir = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(sourcedir, "w:gz") as tar:
        for path in sorted(code.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(code)), recursive=False)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.bin").write_bytes(b"unused")
    environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": sourcedir.as_uri(),
    }
    session.create_model(
        ModelName="m1",
        PrimaryContainer={
            "Image": "sklearn",
            "ModelDataUrl": tar_model(tmp_path / "weights", tmp_path / "model.tar.gz").as_uri(),
            "Environment": environment,
        },
    )
    description = run(session, tmp_path, "job-1", instances=1)

    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert outputs(tmp_path / "out-job-1") == EXPECTED
    assert "code/requirements.txt: model environment" in data_logs("job-1")
