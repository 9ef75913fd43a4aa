"""GPUs: what a job's instances ask for, what the machine has, and how they are shared out."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from batchtransform import gpus
from batchtransform.admission import place
from batchtransform.errors import ValidationError
from batchtransform.gpus import GpuDemand, gpu_demand, machine_gpus
from batchtransform.runtimes.docker import docker_command, gpu_options


@pytest.mark.parametrize(
    ("instance_type", "environment", "per_instance"),
    [
        ("ml.g5.xlarge", {}, 1),
        ("ml.g4dn.12xlarge", {}, 4),
        ("ml.p4d.24xlarge", {}, 8),
        ("ml.m5.large", {}, 0),
        ("ml.g5.xlarge", {"BATCHTRANSFORM_GPUS_PER_INSTANCE": "0.5"}, 0.5),
        ("ml.m5.large", {"BATCHTRANSFORM_GPUS_PER_INSTANCE": "2"}, 2),
        ("local", {"BATCHTRANSFORM_GPUS_PER_INSTANCE": "1"}, 1),
    ],
)
def test_demand(instance_type: str, environment: dict[str, str], per_instance: float) -> None:
    demand = gpu_demand(instance_type, environment)
    assert demand is not None and demand.per_instance == per_instance


def test_local_and_unknown_types_leave_gpus_alone() -> None:
    assert gpu_demand("local", {}) is None
    assert gpu_demand("ml.nonesuch.xlarge", {}) is None


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two", "nan", "inf"])
def test_a_bad_share_is_named(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gpu_demand("ml.g5.xlarge", {"BATCHTRANSFORM_GPUS_PER_INSTANCE": value})
    assert f"BATCHTRANSFORM_GPUS_PER_INSTANCE={value!r}" in str(caught.value)
    assert caught.value.field == "Environment.BATCHTRANSFORM_GPUS_PER_INSTANCE"


@pytest.mark.parametrize(
    ("per_instance", "instances", "held", "expected"),
    [
        (1, 2, ["0", "1"], ["0", "1"]),
        (2, 2, ["3", "4", "5", "6"], ["3,4", "5,6"]),
        (0.5, 3, ["0", "1"], ["0", "0", "1"]),
        (0.25, 4, ["7"], ["7", "7", "7", "7"]),
        (0.4, 3, ["0", "1"], ["0", "0", "1"]),  # two a GPU: three would be 1.2 of one
        (0, 2, [], ["", ""]),
    ],
)
def test_each_instance_gets_its_share(
    per_instance: float, instances: int, held: list[str], expected: list[str]
) -> None:
    demand = GpuDemand(per_instance, "test")
    assert demand.gpus_for(instances) == len(held)
    environments = demand.environments(instances, held)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in environments] == expected


def test_gpus_named_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", " 0, 1,GPU-5e1c ")
    assert machine_gpus() == ("0", "1", "GPU-5e1c")
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", "")
    assert machine_gpus() == ()
    monkeypatch.setenv("BATCHTRANSFORM_GPUS", "0,0")
    with pytest.raises(ValidationError, match="names a GPU twice"):
        machine_gpus()


def fake_nvidia_smi(folder: Path, output: str, status: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    program = folder / "nvidia-smi"
    program.write_text(f"#!{sys.executable}\nimport sys\nprint({output!r})\nsys.exit({status})\n")
    program.chmod(0o755)


@pytest.mark.parametrize(
    ("output", "status", "expected"),
    [
        (
            "GPU 0: NVIDIA A10G (UUID: GPU-aaa)\nGPU 1: NVIDIA A10G (UUID: GPU-bbb)\n"
            "  MIG 1g.5gb Device 0: (UUID: MIG-ccc)",
            0,
            ("0", "1"),
        ),
        ("NVIDIA-SMI has failed because it couldn't communicate with the driver", 9, ()),
    ],
)
def test_gpus_found_by_nvidia_smi(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    status: int,
    expected: tuple[str, ...],
) -> None:
    fake_nvidia_smi(tmp_path / "bin", output, status)
    monkeypatch.delenv("BATCHTRANSFORM_GPUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    gpus._listed_by_nvidia_smi.cache_clear()
    try:
        assert machine_gpus() == expected
    finally:
        gpus._listed_by_nvidia_smi.cache_clear()


def test_no_nvidia_smi_means_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHTRANSFORM_GPUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus._listed_by_nvidia_smi.cache_clear()
    try:
        assert machine_gpus() == ()
    finally:
        gpus._listed_by_nvidia_smi.cache_clear()


# (instances asked, cap, demand, machine GPUs) -> (instances, GPUs held, a note that says)
PLACEMENTS = [
    (2, 4, None, (), 2, 0, None),
    (5, 2, None, (), 2, 0, "InstanceCount 5 is more than this machine runs at once (BATCHTRANSFORM_MAX_INSTANCES=2)"),
    (2, 4, GpuDemand(1, "ml.g5.xlarge (1 GPU an instance)"), ("0", "1", "2"), 2, 2, None),
    (4, 8, GpuDemand(1, "ml.g5.xlarge (1 GPU an instance)"), ("0", "1", "2"), 3, 3, "need 4 GPUs, and this machine has 3 GPUs (0, 1, 2): the job runs with 3 instances"),
    (4, 8, GpuDemand(0.5, "BATCHTRANSFORM_GPUS_PER_INSTANCE=0.5"), ("0", "1"), 4, 2, None),
    (2, 4, GpuDemand(1, "ml.g5.xlarge (1 GPU an instance)"), (), 2, 0, "asks for GPUs, and this machine has no GPU: the instances run on CPU"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("wanted", "cap", "demand", "machine", "instances", "held", "note"), PLACEMENTS
)
def test_placement(
    wanted: int,
    cap: int,
    demand: GpuDemand | None,
    machine: tuple[str, ...],
    instances: int,
    held: int,
    note: str | None,
) -> None:
    placement = place(wanted, cap, demand, machine)
    assert (placement.instances, placement.gpus) == (instances, held)
    if note is None:
        assert placement.notes == ()
    else:
        assert any(note in line for line in placement.notes), placement.notes


def test_an_instance_bigger_than_the_machine_fails_naming_what_is_missing() -> None:
    with pytest.raises(ValidationError) as caught:
        place(1, 4, GpuDemand(8, "ml.p4d.24xlarge (8 GPUs an instance)"), ("0", "1"))
    assert str(caught.value) == (
        "ml.p4d.24xlarge (8 GPUs an instance) needs 8 GPUs for one instance, and this machine "
        "has 2 GPUs (0, 1): missing 6"
    )


@pytest.mark.parametrize(
    ("engine", "visible", "options"),
    [
        ("/usr/bin/docker", "0", ["--gpus", '"device=0"']),
        ("/usr/bin/docker", "2,3", ["--gpus", '"device=2,3"']),
        ("/usr/local/bin/podman", "2,3", ["--device", "nvidia.com/gpu=2", "--device", "nvidia.com/gpu=3"]),
        ("/usr/bin/docker", "", []),
    ],
)  # fmt: skip
def test_container_gpu_options(engine: str, visible: str, options: list[str]) -> None:
    assert gpu_options(engine, visible) == options
    command = docker_command(
        engine,
        "team/model:1",
        name="c",
        host_port=1,
        model_dir=Path("/m"),
        environment={},
        gpus=visible,
    )
    assert command[-2:] == ["team/model:1", "serve"]
    assert (command[-4:-2] == options[-2:]) if options else "--gpus" not in command
