"""The instance type table: the shipped figures, the user's file laid over it, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchtransform.errors import ValidationError
from batchtransform.instance_types import InstanceResources, instance_table, resources_for


@pytest.mark.parametrize(
    ("instance_type", "vcpus", "memory_mib", "gpus"),
    [
        ("ml.m5.large", 2, 8192, 0),
        ("ml.c5.xlarge", 4, 8192, 0),
        ("ml.c4.xlarge", 4, 7680, 0),
        ("ml.r5.large", 2, 16384, 0),
        ("ml.m6i.32xlarge", 128, 524288, 0),
        ("ml.g4dn.xlarge", 4, 16384, 1),
        ("ml.g4dn.12xlarge", 48, 196608, 4),
        ("ml.g5.48xlarge", 192, 786432, 8),
        ("ml.g6.xlarge", 4, 16384, 1),
        ("ml.p3.2xlarge", 8, 62464, 1),
        ("ml.p4d.24xlarge", 96, 1179648, 8),
        ("ml.p5.48xlarge", 192, 2097152, 8),
    ],
)
def test_shipped_table(instance_type: str, vcpus: int, memory_mib: int, gpus: int) -> None:
    resources = resources_for(instance_type)
    assert resources is not None
    assert (resources.vcpus, resources.memory_mib, resources.gpus) == (vcpus, memory_mib, gpus)


def test_local_and_unknown_types_have_no_size() -> None:
    assert resources_for("local") is None
    assert resources_for("ml.nonesuch.large") is None


def test_every_gpu_family_carries_gpus() -> None:
    table = instance_table()
    for family in ("g4dn", "g5", "g6", "p3", "p4d", "p5"):
        sizes = [r for name, r in table.items() if name.startswith(f"ml.{family}.")]
        assert sizes, family
        assert all(r.gpus >= 1 and r.accelerator for r in sizes), family


def test_user_file_adds_and_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "types.json"
    path.write_text(
        json.dumps(
            {
                "types": {
                    "ml.g5.xlarge": {"vcpus": 4, "memory_gib": 16, "gpus": 0.5},
                    "ml.custom.gpu": {"vcpus": 1.5, "memory_mib": 3000, "gpus": 2},
                }
            }
        )
    )
    monkeypatch.setenv("BATCHTRANSFORM_INSTANCE_TYPES", str(path))
    assert resources_for("ml.g5.xlarge") == InstanceResources(4, 16384, 0.5)
    assert resources_for("ml.custom.gpu") == InstanceResources(1.5, 3000, 2)
    assert resources_for("ml.m5.large") == InstanceResources(2, 8192, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"types": {"ml.x.large": {"vcpus": 2,}}}', "is not JSON: Expecting property name"),
        ("[1, 2]", 'must be an object with a "types" object'),
        ('{"types": {"ml.x.large": 3}}', "type 'ml.x.large': must be an object, not int"),
        ('{"types": {"ml.x.large": {"memory_gib": 4}}}', "vcpus must be a number, not None"),
        ('{"types": {"ml.x.large": {"vcpus": 2, "memory_gib": 0}}}', "memory_gib must be above 0"),
        (
            '{"types": {"ml.x.large": {"vcpus": 2, "memory_gib": 1, "gpus": -1}}}',
            "gpus must be 0 or more",
        ),
        ('{"types": {"local": {"vcpus": 2, "memory_gib": 1}}}', "'local' has no fixed size"),
    ],
)
def test_bad_user_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = tmp_path / "types.json"
    path.write_text(text)
    monkeypatch.setenv("BATCHTRANSFORM_INSTANCE_TYPES", str(path))
    with pytest.raises(ValidationError) as caught:
        resources_for("ml.m5.large")
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert caught.value.field == "BATCHTRANSFORM_INSTANCE_TYPES"


def test_missing_user_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_INSTANCE_TYPES", str(tmp_path / "absent.json"))
    with pytest.raises(ValidationError, match=r"absent\.json, which cannot be read"):
        resources_for("ml.m5.large")
