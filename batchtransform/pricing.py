"""What a job cost, and what an always-on endpoint with the same instances would cost.

A batch job pays for its instances only while they live; a real-time endpoint pays for
them around the clock. Putting the two side by side (per day, per month, and their ratio)
is the number that tells a user whether batch is the right shape for their workload.

Prices are on-demand USD per instance-hour, shipped as data (``prices.json`` beside this
module, with its region, date and source, and the types whose figures are unconfirmed),
so that a user with other figures (another region, a discount, a newer price) names a file
of their own in ``BATCHTRANSFORM_PRICES``: its entries add to the shipped table or replace
the entries of the same name. Both files share one format::

    {"source": "...", "date": "2026-12-02", "prices": {"ml.m5.large": 0.115, ...}}

(``source``, ``date`` and ``unconfirmed``, a list of type names, are optional.) The table
is read by the process answering the API, from its environment, not from a job's
``Environment``. A type missing from the table (``local``, or a size with no price) gives
instance-seconds only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtransform.data_tables import read_table, user_table
from batchtransform.errors import ValidationError
from batchtransform.store import JobRecord

__all__ = ["HOURS_PER_MONTH", "SETTING", "Price", "job_cost", "price_table"]

SETTING = "BATCHTRANSFORM_PRICES"
HOURS_PER_MONTH = 730  # the month AWS's pricing pages reckon with (8,760 hours / 12)
_SHIPPED = Path(__file__).with_name("prices.json")
_WHAT = "price table"
_EXAMPLE = '{"prices": {"ml.m5.large": 0.115}}'


@dataclass(frozen=True)
class Price:
    """One type's on-demand price, with where the figure comes from."""

    usd_per_hour: float
    source: str
    date: str
    confirmed: bool = True


def price_table() -> dict[str, Price]:
    """The shipped table with the user's file (if ``BATCHTRANSFORM_PRICES`` names one)
    laid over it. Read again only when the setting or the file's modification changes.

    Raises :class:`ValidationError` naming the file and the member when a table is bad.
    """
    table = _prices(_SHIPPED, read_table(_SHIPPED, _WHAT, SETTING))
    user_file = user_table(SETTING, _WHAT)
    if user_file is not None:
        table.update(_prices(*user_file))
    return table


def job_cost(record: JobRecord) -> dict[str, Any]:
    """Describe's ``Progress["Cost"]``: the job's instance-seconds and, where its type has
    a price, what they cost and what an endpoint with the same instances would cost.

    The endpoint figures use the InstanceCount the job asked for, as SageMaker would bill
    it, and the ratio appears once the job has run long enough to cost anything. A price
    file broken after the job was created gives ``PriceError`` (the file and member) in
    place of the prices: Describe, and the waiters and log followers built on it, go on.
    """
    resources = record.request.get("TransformResources", {})
    instance_type = str(resources.get("InstanceType", ""))
    count = int(resources.get("InstanceCount", 1))
    seconds = float(sum(record.progress.get("instance_seconds", {}).values()))
    cost: dict[str, Any] = {
        "InstanceType": instance_type,
        "InstanceCount": count,
        "InstanceSeconds": round(seconds, 3),
    }
    try:
        price = price_table().get(instance_type)
    except ValidationError as exc:  # named here, but a job's status must stay readable
        return {**cost, "PriceError": str(exc)}
    if price is not None:
        cost.update(_priced(price, seconds, count))
    return cost


def _priced(price: Price, seconds: float, count: int) -> dict[str, Any]:
    job_usd = seconds / 3600 * price.usd_per_hour
    per_day = count * price.usd_per_hour * 24
    priced: dict[str, Any] = {
        "PricePerHourUSD": price.usd_per_hour,
        "JobUSD": round(job_usd, 6),
        "EndpointPerDayUSD": round(per_day, 4),
        "EndpointPerMonthUSD": round(count * price.usd_per_hour * HOURS_PER_MONTH, 2),
    }
    if job_usd > 0:
        priced["EndpointDayToJobRatio"] = round(per_day / job_usd, 1)
    priced["PriceSource"] = price.source if price.confirmed else f"Unconfirmed: {price.source}"
    priced["PriceDate"] = price.date
    return priced


def _prices(path: Path, document: Any) -> dict[str, Price]:
    """The rows of one parsed price file, every member checked and named on error."""
    prices = document.get("prices") if isinstance(document, dict) else None
    if not isinstance(prices, dict):
        raise ValidationError(
            f'{_WHAT} {path} must be an object with a "prices" object ({_EXAMPLE})', SETTING
        )
    source = _text(path, document, "source", default=f"the file {path}")
    date = _text(path, document, "date", default="")
    unconfirmed = document.get("unconfirmed", [])
    if not isinstance(unconfirmed, list) or not all(isinstance(n, str) for n in unconfirmed):
        raise ValidationError(f"{_WHAT} {path}: unconfirmed must be a list of type names", SETTING)
    return {
        name: Price(_usd(path, name, value), source, date, name not in unconfirmed)
        for name, value in prices.items()
    }


def _text(path: Path, document: dict[str, Any], key: str, *, default: str) -> str:
    value = document.get(key, default)
    if not isinstance(value, str):
        raise ValidationError(f"{_WHAT} {path}: {key} must be a string, not {value!r}", SETTING)
    return value


def _usd(path: Path, name: str, value: Any) -> float:
    """A price as a finite number above zero: a zero or negative price is a typo, not a
    free instance."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValidationError(
            f"{_WHAT} {path}, prices.{name}: must be a positive number of USD per hour, "
            f"not {value!r}",
            SETTING,
        )
    return float(value)
