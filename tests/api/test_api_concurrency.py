"""Many clients at once: 50 boto3 clients reading and writing while two jobs run, with no
errors, no lost writes, and the jobs completing whole."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from documents import job_request, model_request
from models import SLOW_HANDLER, echoed

CLIENTS = 50
ROUNDS = 8
FILES = {f"f{i}.csv": "".join(f"{i}-{n}\n" for n in range(15)) for i in range(2)}


def test_fifty_clients_while_two_jobs_run(
    api_server: Any, tmp_path: Path, model_archive: Callable[[str], str]
) -> None:
    for name, text in FILES.items():
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_text(text)
    clients = [api_server.client() for _ in range(CLIENTS)]
    setup = api_server.client()
    setup.create_model(**model_request("m1", model_archive(SLOW_HANDLER)))
    for job in ("job-a", "job-b"):
        setup.create_transform_job(
            **job_request(
                job,
                input_uri=str(tmp_path / "in") + "/",
                output_path=str(tmp_path / job),
                BatchStrategy="SingleRecord",
            )
        )
    start = threading.Barrier(CLIENTS)

    def work(index: int) -> list[str]:
        client, statuses = clients[index], []
        start.wait()
        client.create_model(**model_request(f"w{index}"))
        for round_ in range(ROUNDS):
            job = ("job-a", "job-b")[round_ % 2]
            statuses.append(
                client.describe_transform_job(TransformJobName=job)["TransformJobStatus"]
            )
            client.list_transform_jobs(MaxResults=5)
            client.describe_model(ModelName=f"w{index}")
            client.list_models(NameContains="w", MaxResults=3)
        return statuses

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(work, range(CLIENTS)))  # re-raises the first error, if any

    assert "InProgress" in {status for statuses in results for status in statuses}, "ran alongside"
    waiter = setup.get_waiter("transform_job_completed_or_stopped")
    for job in ("job-a", "job-b"):
        waiter.wait(TransformJobName=job, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        described = setup.describe_transform_job(TransformJobName=job)
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        for name, text in FILES.items():
            assert (tmp_path / job / f"{name}.out").read_bytes() == echoed(text)
    pages = setup.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 20})
    names = {m["ModelName"] for page in pages for m in page["Models"]}
    assert names == {"m1"} | {f"w{i}" for i in range(CLIENTS)}, "no write was lost"
