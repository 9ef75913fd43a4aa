"""requirements.txt environments: real pip, real wheels built here, never an index."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wheels import build_wheel, demo_wheel

from batchtransform.errors import RuntimeStartError
from batchtransform.runtimes import requirements
from batchtransform.runtimes.base import RuntimeContext
from batchtransform.runtimes.python import PythonRuntime
from batchtransform.runtimes.requirements import prepare


def code_folder(tmp_path: Path, lines: str, name: str = "code") -> Path:
    """A code folder whose requirements.txt finds packages only in its own ``wheels``."""
    folder = tmp_path / name
    (folder / "wheels").mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(f"--no-index\n--find-links wheels\n{lines}")
    return folder


class Notices(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def cache(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "requirements").iterdir() if p.is_dir())


@pytest.fixture
def restore_sys_path() -> Iterator[None]:
    before = list(sys.path)
    yield
    sys.path[:] = before


def test_installs_once_then_reuses_and_imports(
    tmp_path: Path, batchtransform_home: Path, restore_sys_path: None
) -> None:
    folder = code_folder(tmp_path, "btreqdemo==0.1.0\n")
    demo_wheel(folder / "wheels")
    log, notices = io.StringIO(), Notices()

    first = prepare(folder / "requirements.txt", log, notices)
    second = prepare(folder / "requirements.txt", log, notices)

    assert first == second
    assert first.packages == ("btreqdemo 0.1.0",)
    assert len(notices) == 2
    assert notices[0].startswith("code/requirements.txt: model environment ")
    assert notices[0].endswith(" installed: btreqdemo 0.1.0")
    assert "reused from the cache: btreqdemo 0.1.0" in notices[1]
    assert "Successfully installed btreqdemo-0.1.0" in log.getvalue()
    assert len(cache(batchtransform_home)) == 1
    added = requirements.activate(first)
    try:
        assert sys.path[0] == str(first.site_packages)
        import btreqdemo

        assert btreqdemo.greet("x") == "0.1.0:x"
    finally:
        requirements.deactivate(added)
        sys.modules.pop("btreqdemo", None)
    assert str(first.site_packages) not in sys.path


def test_a_requirement_the_service_already_meets_installs_nothing(
    tmp_path: Path, batchtransform_home: Path
) -> None:
    folder = code_folder(tmp_path, "numpy\n")
    notices = Notices()
    environment = prepare(folder / "requirements.txt", None, notices)
    assert environment.packages == ()
    assert "no packages (the service's own meet every requirement)" in notices[0]


def test_a_missing_requirement_fails_with_its_name_and_pips_gist(
    tmp_path: Path, batchtransform_home: Path
) -> None:
    folder = code_folder(tmp_path, "btreqdemo==0.1.0\nno-such-package-here==1.0\n")
    demo_wheel(folder / "wheels")
    log = io.StringIO()
    with pytest.raises(RuntimeStartError) as raised:
        prepare(folder / "requirements.txt", log, Notices())
    message = raised.value.message
    assert "\n" not in message
    assert message.startswith("code/requirements.txt: pip could not install no-such-package-here")
    assert "No matching distribution found for no-such-package-here==1.0" in message
    assert "Could not find a version that satisfies" in log.getvalue()
    assert list((batchtransform_home / "requirements").glob("*")) == list(
        (batchtransform_home / "requirements").glob("*.lock")
    ), "a failed install leaves no environment behind"


def test_an_install_killed_midway_is_removed_and_redone(
    tmp_path: Path, batchtransform_home: Path
) -> None:
    folder = code_folder(tmp_path, "btreqdemo==0.1.0\n")
    demo_wheel(folder / "wheels")
    environment = prepare(folder / "requirements.txt", None, Notices())
    final = environment.site_packages.parents[2]
    root = final.parent
    final.rename(root / f"{final.name}.tmp-12345-deadbeef")  # as a killed install leaves it

    notices = Notices()
    again = prepare(folder / "requirements.txt", None, notices)

    assert again == environment
    assert notices[0].endswith("installed: btreqdemo 0.1.0")
    assert sorted(p.name for p in root.iterdir()) == [final.name, f"{final.name}.lock"]


def test_the_key_covers_included_files(tmp_path: Path, batchtransform_home: Path) -> None:
    folder = code_folder(tmp_path, "-r base.txt\n")
    demo_wheel(folder / "wheels", "0.1.0")
    demo_wheel(folder / "wheels", "0.2.0")
    (folder / "base.txt").write_text("btreqdemo==0.1.0\n")
    first = prepare(folder / "requirements.txt", None, Notices())
    (folder / "base.txt").write_text("btreqdemo==0.2.0\n")
    second = prepare(folder / "requirements.txt", None, Notices())

    assert first.packages == ("btreqdemo 0.1.0",)
    assert second.packages == ("btreqdemo 0.2.0",)
    assert len(cache(batchtransform_home)) == 2


def test_a_version_that_breaks_the_service_is_refused(
    tmp_path: Path, batchtransform_home: Path
) -> None:
    folder = code_folder(tmp_path, "numpy==0.0.1\n")
    build_wheel(
        folder / "wheels", "numpy", "0.0.1", {"numpy/__init__.py": "__version__ = '0.0.1'\n"}
    )
    with pytest.raises(RuntimeStartError) as raised:
        prepare(folder / "requirements.txt", None, Notices())
    message = raised.value.message
    assert "installs numpy 0.0.1, but the service itself needs numpy>=" in message
    assert cache(batchtransform_home) == []


def test_a_package_already_imported_in_the_instance_is_refused(
    tmp_path: Path, batchtransform_home: Path, restore_sys_path: None
) -> None:
    loaded = tmp_path / "loaded"
    (loaded / "btreqloaded").mkdir(parents=True)
    (loaded / "btreqloaded" / "__init__.py").write_text("__version__ = '1.0'\n")
    folder = code_folder(tmp_path, "btreqloaded==2.0\n")
    build_wheel(
        folder / "wheels",
        "btreqloaded",
        "2.0",
        {"btreqloaded/__init__.py": "__version__ = '2.0'\n"},
    )
    sys.path.insert(0, str(loaded))
    import btreqloaded  # noqa: F401  (the instance imported it before the handler)

    try:
        with pytest.raises(RuntimeStartError) as raised:
            prepare(folder / "requirements.txt", None, Notices())
    finally:
        sys.modules.pop("btreqloaded", None)
    message = raised.value.message
    assert (
        "installs btreqloaded 2.0, but this instance has already imported btreqloaded 1.0"
        in message
    )
    assert "pin btreqloaded==1.0 or leave it out" in message


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "ERROR: Could not find a version that satisfies the requirement foo==9 (from versions: none)\n"
            "ERROR: No matching distribution found for foo==9\n",
            "pip could not install foo==9: No matching distribution found for foo==9",
        ),
        (
            "ERROR: Invalid requirement: 'foo bar': Expected end or semicolon\n",
            "pip could not install foo bar: Invalid requirement: 'foo bar': Expected end or semicolon",
        ),
        (
            "Processing ./broken\n  error: subprocess-exited-with-error\n  \n"
            "  \u00d7 Preparing metadata (pyproject.toml) did not run successfully.\n"
            "  \u2502 exit code: 1\n  \u2570\u2500> [1 lines of output]\n"
            "      cannot build this\n      [end of output]\n"
            "error: metadata-generation-failed\n\n"
            "\u00d7 Encountered error while generating package metadata.\n",
            "pip could not install ./broken: Preparing metadata (pyproject.toml) did not run successfully: cannot build this",
        ),
        (
            "Collecting btreqdemo\nERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n",
            "pip could not install btreqdemo: Could not install packages due to an OSError: [Errno 28] No space left on device",
        ),
        ("", "pip failed: pip failed without output"),
    ],
)
def test_pip_failures_read_as_one_line(output: str, expected: str) -> None:
    message = requirements._pip_failure(Path("/m/code/requirements.txt"), output)
    assert message == f"code/requirements.txt: {expected} (pip's output is in the instance log)"


def test_the_python_runtime_installs_before_import_and_cleans_up_at_stop(
    tmp_path: Path, batchtransform_home: Path, restore_sys_path: None
) -> None:
    model_dir = tmp_path / "model"
    folder = code_folder(model_dir, "btreqdemo==0.1.0\n")
    demo_wheel(folder / "wheels")
    (folder / "inference.py").write_text(
        "import btreqdemo\n\ndef model_fn(model_dir):\n    return btreqdemo\n\n"
        "def transform_fn(model, body, content_type, accept):\n    return model.greet(body)\n"
    )
    notices = Notices()
    runtime = PythonRuntime(
        RuntimeContext(image="batchtransform/python", model_dir=model_dir, notice=notices)
    )
    runtime.start()
    try:
        assert runtime.invoke(b"hi", "text/csv", "text/csv") == b"0.1.0:hi"
        environment_paths = [p for p in sys.path if str(batchtransform_home) in p]
        assert len(environment_paths) == 1
        assert sys.path.index(environment_paths[0]) == sys.path.index(str(folder)) + 1
    finally:
        runtime.stop()
        sys.modules.pop("btreqdemo", None)
    assert notices[0].endswith(" installed: btreqdemo 0.1.0")
    assert not [p for p in sys.path if str(batchtransform_home) in p]
