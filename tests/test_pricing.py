"""The price table (shipped, and a user's file laid over it) and a job's cost in Describe."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from documents import job_request, model_request
from models import ECHO_HANDLER, tar_model, write_model

from batchtransform import pricing
from batchtransform.errors import ValidationError
from batchtransform.service import Service
from batchtransform.store import JobRecord

SHIPPED = json.loads(Path(pricing.__file__).with_name("prices.json").read_text())


def job_record(instance_type: str, count: int, seconds: dict[str, float]) -> JobRecord:
    request = job_request(
        TransformResources={"InstanceType": instance_type, "InstanceCount": count}
    )
    return JobRecord(
        name="job-1",
        arn="arn",
        model_name="m1",
        status="Completed",
        creation_time=0.0,
        last_modified_time=0.0,
        request=request,
        progress={"instance_seconds": seconds},
    )


def user_prices(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Path:
    path.write_text(text)
    monkeypatch.setenv(pricing.SETTING, str(path))
    return path


def test_the_shipped_table_has_its_date_source_and_the_asked_families() -> None:
    table = pricing.price_table()
    assert SHIPPED["date"] and SHIPPED["source"]
    families = {name.split(".")[1] for name in table}
    assert {"m5", "m6i", "c5", "r5", "g4dn", "g5", "p3"} <= families
    instance_types = json.loads(Path(pricing.__file__).with_name("instance_types.json").read_text())
    assert set(table) <= set(instance_types["types"]), "a price for a type the service lacks"
    assert set(SHIPPED["unconfirmed"]) <= set(table)


def test_a_known_type_costs_its_seconds_and_compares_with_an_endpoint() -> None:
    price = SHIPPED["prices"]["ml.m5.large"]
    cost = pricing.job_cost(job_record("ml.m5.large", 2, {"ml.m5.large": 7200.0}))
    assert cost == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 2,
        "InstanceSeconds": 7200.0,
        "PricePerHourUSD": price,
        "JobUSD": pytest.approx(2 * price),
        "EndpointPerDayUSD": pytest.approx(2 * 24 * price),
        "EndpointPerMonthUSD": pytest.approx(2 * 730 * price, abs=0.005),
        "EndpointDayToJobRatio": pytest.approx(24.0),
        "PriceSource": SHIPPED["source"],
        "PriceDate": SHIPPED["date"],
    }


def test_an_unconfirmed_figure_says_so() -> None:
    name = SHIPPED["unconfirmed"][0]
    cost = pricing.job_cost(job_record(name, 1, {name: 60.0}))
    assert cost["PriceSource"] == f"Unconfirmed: {SHIPPED['source']}"


@pytest.mark.parametrize("instance_type", ["local", "ml.g5.48xlarge"])
def test_a_type_without_a_price_gives_instance_seconds_only(instance_type: str) -> None:
    cost = pricing.job_cost(job_record(instance_type, 3, {instance_type: 12.5}))
    assert cost == {"InstanceType": instance_type, "InstanceCount": 3, "InstanceSeconds": 12.5}


def test_no_seconds_yet_has_no_ratio() -> None:
    cost = pricing.job_cost(job_record("ml.m5.large", 1, {}))
    assert cost["InstanceSeconds"] == 0 and cost["JobUSD"] == 0
    assert "EndpointDayToJobRatio" not in cost and cost["EndpointPerDayUSD"] > 0


def test_a_user_file_replaces_and_adds_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = {"source": "our contract", "date": "2026-11", "prices": {"ml.m5.large": 0.05}}
    document["prices"]["ml.m5.huge"] = 9.5
    user_prices(monkeypatch, tmp_path / "prices.json", json.dumps(document))
    table = pricing.price_table()
    assert table["ml.m5.large"] == pricing.Price(0.05, "our contract", "2026-11")
    assert table["ml.m5.huge"].usd_per_hour == 9.5
    assert table["ml.c5.xlarge"].usd_per_hour == SHIPPED["prices"]["ml.c5.xlarge"]
    cost = pricing.job_cost(job_record("ml.m5.large", 1, {"ml.m5.large": 3600.0}))
    assert cost["JobUSD"] == 0.05 and cost["PriceSource"] == "our contract"


def test_a_user_file_without_source_names_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = user_prices(monkeypatch, tmp_path / "p.json", '{"prices": {"ml.m5.large": 1}}')
    assert pricing.price_table()["ml.m5.large"].source == f"the file {path}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prices": {"ml.m5.large": 0.1,}}', r"p\.json is not JSON: Expecting property name"),
        ('{"prices": {"ml.m5.large": -0.1}}', r"prices\.ml\.m5\.large: must be a positive number"),
        ('{"prices": {"ml.m5.large": 0}}', r"prices\.ml\.m5\.large: must be a positive number"),
        ('{"prices": {"ml.m5.large": "0.1"}}', r"of USD per hour, not '0\.1'"),
        ('{"prices": {"ml.m5.large": true}}', r"prices\.ml\.m5\.large: .* not True"),
        ("[1, 2]", r'p\.json must be an object with a "prices" object'),
        ('{"prices": [0.1]}', r'p\.json must be an object with a "prices" object'),
        ('{"source": 3, "prices": {}}', r"p\.json: source must be a string, not 3"),
        ('{"unconfirmed": "ml.m5.large", "prices": {}}', r"unconfirmed must be a list"),
    ],
    ids=["not-json", "negative", "zero", "string", "bool", "list", "prices-list", "source", "unc"],
)
def test_a_bad_user_file_is_named_with_its_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    user_prices(monkeypatch, tmp_path / "p.json", text)
    with pytest.raises(ValidationError, match=message) as caught:
        pricing.price_table()
    assert str(tmp_path / "p.json") in str(caught.value)
    assert caught.value.field == pricing.SETTING


def test_a_missing_user_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pricing.SETTING, str(tmp_path / "absent.json"))
    with pytest.raises(ValidationError, match=r"BATCHTRANSFORM_PRICES names .*absent\.json"):
        pricing.price_table()


def run_job(tmp_path: Path) -> None:
    """A one-record job on ml.m5.large, created and followed by the real command."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1\n")
    archive = tar_model(write_model(tmp_path / "src", ECHO_HANDLER), tmp_path / "model.tar.gz")
    command = str(Path(sys.executable).parent / "batchtransform")
    model = json.dumps(model_request("m1", archive.as_uri()))
    subprocess.run([command, "create-model", "--cli-input-json", model], check=True)
    job = json.dumps(job_request(input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "o")))
    subprocess.run(
        [command, "run", "--cli-input-json", job], check=True, capture_output=True, timeout=120
    )


def test_describe_carries_the_cost_of_a_real_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_job(tmp_path)
    service = Service()
    recorded = service.store.get_job("job-1")
    assert recorded is not None
    seconds = sum(recorded.progress.get("instance_seconds", {}).values())
    cost = describe_cost(service)
    assert cost["InstanceSeconds"] == pytest.approx(seconds, abs=0.001)
    assert cost["EndpointPerDayUSD"] == pytest.approx(24 * SHIPPED["prices"]["ml.m5.large"])

    # what the job's instances lived, as its controller records it
    progress = {**recorded.progress, "instance_seconds": {"ml.m5.large": 90.0}}
    service.store.update_job("job-1", progress=progress)
    cost = describe_cost(service)
    assert cost["InstanceSeconds"] == 90.0
    assert cost["JobUSD"] == pytest.approx(90 / 3600 * SHIPPED["prices"]["ml.m5.large"])

    # a price file broken since: Describe names it beside the seconds (and still answers),
    # CreateTransformJob refuses
    user_prices(monkeypatch, tmp_path / "p.json", '{"prices": {"ml.m5.large": -1}}')
    cost = describe_cost(service)
    assert cost["InstanceSeconds"] == 90.0
    assert "JobUSD" not in cost
    assert re.search(r"p\.json, prices\.ml\.m5\.large: must be a positive", cost["PriceError"])
    request = job_request("job-2", input_uri=str(tmp_path / "in"), output_path=str(tmp_path / "o"))
    with pytest.raises(ValidationError, match=r"p\.json, prices\.ml\.m5\.large"):
        service.call("CreateTransformJob", request)
    assert service.store.get_job("job-2") is None


def describe_cost(service: Service) -> dict[str, Any]:
    response = service.call("DescribeTransformJob", {"TransformJobName": "job-1"})
    cost: dict[str, Any] = response["Progress"]["Cost"]
    return cost
