"""A model's ``requirements.txt``, installed into an environment of the model's own.

SageMaker's framework images run ``pip install -r requirements.txt`` in the user's code
folder before the handler loads. We do the same for the in-process runtimes, but never into
the service's own site-packages, and once per machine rather than once per instance:

* **Where.** A virtual environment under ``$BATCHTRANSFORM_HOME/requirements/<key>``,
  made with the instance's interpreter and without pip. A ``.pth`` file in it lists the
  service's site-packages, so the pip that runs in it (the service's pip, found through
  that file) sees what the service already has: it installs only what is missing or pinned
  to another version, and never uninstalls anything outside the environment. The instance
  then puts that environment's site-packages first on ``sys.path``, after the code folder.
* **Which versions win.** The model's: a package installed there is what every later
  import in the instance gets, as in the images, where requirements.txt replaces the
  image's versions. Two cases cannot work in a running process and fail the job at start,
  naming the package and both versions: a package this instance has already imported (a
  framework image loads numpy before the handler), and a version that breaks the
  service's own requirements (pip reports it as a conflict with ``batchtransform``).
* **Cache key.** SHA-256 of the file, of the files it includes with ``-r``/``-c``, of the
  interpreter (version, platform, executable) and of the service's installed packages.
  The contents of local packages or folders it points to are not part of it: change the
  file (a version, a comment) to install afresh.
* **Concurrency.** One install per key at a time, under a file lock; the install goes to
  a temporary folder renamed into place when complete, so a half-done install is never
  used, and one left by a killed process is removed by the next holder of the lock.

pip runs with the instance's environment (``PIP_*`` settings in the model's Environment
apply), in the code folder, so the file's own options (``--index-url``, ``--find-links``,
``-r``, ...) and relative paths work as they do in the images. Its full output goes to the
instance log; the data-log says what was installed or reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import uuid
import venv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from batchtransform import config
from batchtransform.errors import RuntimeStartError

__all__ = ["REQUIREMENTS_FILE", "ModelEnvironment", "activate", "deactivate", "prepare"]

REQUIREMENTS_FILE = "requirements.txt"
_CACHE_VERSION = b"batchtransform-requirements-1"
_SERVICE_PTH = "_batchtransform_service.pth"
_INCLUDE = re.compile(r"^\s*(-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+)(\S+)")
_SERVICE_CONFLICT = re.compile(
    r"^batchtransform \S+ requires (?P<needs>.+), but you have (?P<has>.+) which is incompatible"
)
# pip's own wordings of a failed requirement, the requirement in group 1.
_FAILED_REQUIREMENT = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"Failed building wheel for (\S+)"),
    re.compile(r"Could not build wheels for ([^\s,]+)"),
    re.compile(r"Failed to build '([^']+)'"),
    re.compile(r"Cannot install (.+?) because"),
    re.compile(r"Invalid requirement: '([^']+)'"),
)
_SUMMARY = "\N{MULTIPLICATION SIGN}"  # pip marks the summary of a failed step with it
# Otherwise the requirement pip was working on when it failed.
_WORKING_ON = re.compile(r"^(?:Collecting|Processing|Obtaining) (\S+)", re.MULTILINE)
_PIP_SETTINGS_THAT_MOVE_THE_INSTALL = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER")

Notice = Callable[[str], None]


@dataclass(frozen=True)
class ModelEnvironment:
    """An installed requirements.txt: its site-packages and what it holds (``name version``)."""

    site_packages: Path
    packages: tuple[str, ...]


def prepare(requirements: Path, log: TextIO | None, notice: Notice) -> ModelEnvironment:
    """The environment for ``requirements``, installed now or reused from the cache.

    Raises RuntimeStartError with a one-line reason when pip fails or the result cannot be
    used in this instance; pip's full output is in ``log``.
    """
    service_sites = _service_site_packages()
    key = _cache_key(requirements, service_sites)
    root = config.home() / "requirements"
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    with _locked(root / f"{key}.lock"):
        if final.is_dir():
            environment = _describe(final)
            action = "reused from the cache"
        else:
            environment = _install(requirements, service_sites, final, log)
            action = "installed"
    notice(
        f"{_shown(requirements)}: model environment {final} {action}: "
        f"{_listed(environment.packages)}"
    )
    _check_not_loaded(requirements, environment)
    return environment


def activate(environment: ModelEnvironment) -> list[str]:
    """Put the environment first on ``sys.path`` (its ``.pth`` files processed, as a site
    folder's are); returns the entries added, for ``deactivate``."""
    before = list(sys.path)
    site.addsitedir(str(environment.site_packages))
    added = [entry for entry in sys.path if entry not in before]
    for entry in reversed(added):
        sys.path.remove(entry)
        sys.path.insert(0, entry)
    return added


def deactivate(entries: list[str]) -> None:
    """Take the entries ``activate`` added off ``sys.path``. Modules already imported from
    them stay loaded: compiled extensions cannot be unloaded from a process."""
    for entry in entries:
        if entry in sys.path:
            sys.path.remove(entry)


# --- the cache key ------------------------------------------------------------------------


def _cache_key(requirements: Path, service_sites: list[str]) -> str:
    digest = hashlib.sha256(_CACHE_VERSION)
    for part in (sys.version, sysconfig.get_platform(), sys.executable, sys.prefix):
        digest.update(part.encode() + b"\0")
    for name in sorted(_installed(service_sites)):
        digest.update(name.encode() + b"\0")
    for path in _requirement_files(requirements, set()):  # by content, not by where it is
        digest.update(_read(path) + b"\0")
    return digest.hexdigest()[:32]


def _requirement_files(path: Path, seen: set[Path]) -> Iterator[Path]:
    """``path`` and the local files it includes with ``-r``/``-c``, depth first."""
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    yield path
    for line in _read(path).decode("utf-8", errors="replace").splitlines():
        match = _INCLUDE.match(line)
        if match and "://" not in match.group(2):
            included = path.parent / match.group(2)
            if included.is_file():
                yield from _requirement_files(included, seen)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RuntimeStartError(f"cannot read {path}: {exc}") from exc


def _service_site_packages() -> list[str]:
    """The site folders whose packages the instance imports from, in order."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    return [folder for folder in folders if os.path.isdir(folder)]


def _installed(folders: list[str]) -> set[str]:
    """``name version`` of every distribution in ``folders``."""
    found = set()
    for dist in importlib.metadata.distributions(path=folders):
        name = dist.metadata["Name"]
        if name:
            found.add(f"{name} {dist.version}")
    return found


# --- installing ---------------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, released when the process dies, however it dies."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(
    requirements: Path, service_sites: list[str], final: Path, log: TextIO | None
) -> ModelEnvironment:
    """Install into a temporary folder, check the result, then rename it into place."""
    for stale in final.parent.glob(f"{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed install; we hold the lock
    building = final.parent / f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        venv.EnvBuilder(symlinks=os.name != "nt", with_pip=False).create(building)
        site_packages = _site_packages(building)
        (site_packages / _SERVICE_PTH).write_text("\n".join(service_sites) + "\n")
        output = _run_pip(requirements, building, log)
        _check_service_needs(requirements, output)
        os.rename(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return _describe(final)


def _site_packages(environment: Path) -> Path:
    base = {"base": str(environment), "platbase": str(environment)}
    scheme = "nt" if os.name == "nt" else "posix_prefix"
    return Path(sysconfig.get_path("purelib", scheme, vars=base))


def _python(environment: Path) -> Path:
    return environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run_pip(requirements: Path, environment: Path, log: TextIO | None) -> str:
    """pip in the environment's interpreter, in the code folder; its output, or the error."""
    command = [
        str(_python(environment)), "-m", "pip", "install", "--disable-pip-version-check",
        "--no-input", "--no-warn-script-location", "-r", requirements.name,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _PIP_SETTINGS_THAT_MOVE_THE_INSTALL}
    env["PYTHONNOUSERSITE"] = "1"
    _write(log, f"Installing {requirements}: {' '.join(command)}\n")
    try:
        done = subprocess.run(
            command, cwd=requirements.parent, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            check=False,
        )  # fmt: skip
    except OSError as exc:
        raise RuntimeStartError(f"{_shown(requirements)}: cannot run pip: {exc}") from exc
    _write(log, done.stdout)
    if done.returncode != 0:
        raise RuntimeStartError(_pip_failure(requirements, done.stdout))
    return done.stdout


def _pip_failure(requirements: Path, output: str) -> str:
    """One line: the requirement pip could not install, and the gist of its error."""
    name = _failed_requirement(output)
    which = f"could not install {name}" if name else "failed"
    gist = _gist(output)
    return f"{_shown(requirements)}: pip {which}: {gist} (pip's output is in the instance log)"


def _gist(output: str) -> str:
    """pip's last ``ERROR:`` line; else its first summary (a line marked with a
    multiplication sign) with the last line the failed step printed (a build backend's
    error); else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if any("No module named pip" in line for line in lines):
        return "pip is not installed for this interpreter (python -m ensurepip --upgrade)"
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1]
    summaries = [line.lstrip(_SUMMARY).strip() for line in lines if line.startswith(_SUMMARY)]
    if summaries:
        inner = _step_output(lines)
        summary = summaries[0].rstrip(".")
        return f"{summary}: {inner}" if inner else summary
    return lines[-1] if lines else "pip failed without output"


def _step_output(lines: list[str]) -> str | None:
    """The last line a failed build step printed, between pip's output markers."""
    start = next((i for i, line in enumerate(lines) if line.endswith("lines of output]")), None)
    if start is None:
        return None
    inner = []
    for line in lines[start + 1 :]:
        if line == "[end of output]":
            break
        inner.append(line)
    return inner[-1] if inner else None


def _failed_requirement(output: str) -> str | None:
    for pattern in _FAILED_REQUIREMENT:
        match = pattern.search(output)
        if match:
            return match.group(1).strip()
    working = _WORKING_ON.findall(output)
    return working[-1] if working else None


def _check_service_needs(requirements: Path, output: str) -> None:
    """Refuse versions that break the service's own requirements (numpy, fsspec, ...)."""
    for line in output.splitlines():
        match = _SERVICE_CONFLICT.match(line.strip())
        if match:
            raise RuntimeStartError(
                f"{_shown(requirements)} installs {match['has']}, but the service itself "
                f"needs {match['needs']} in the same process; pin a version that meets it"
            )


def _describe(environment: Path) -> ModelEnvironment:
    site_packages = _site_packages(environment)
    return ModelEnvironment(site_packages, tuple(sorted(_installed([str(site_packages)]))))


# --- using --------------------------------------------------------------------------------


def _check_not_loaded(requirements: Path, environment: ModelEnvironment) -> None:
    """Refuse a package this instance has already imported from elsewhere: the loaded one
    would stay in use, with the model's version's other modules mixed in."""
    site_packages = str(environment.site_packages)
    for dist in importlib.metadata.distributions(path=[site_packages]):
        for module in _top_level_modules(dist):
            loaded = sys.modules.get(module)
            location = getattr(loaded, "__file__", None) or ""
            if loaded is None or location.startswith(site_packages):
                continue
            version = getattr(loaded, "__version__", "another version")
            raise RuntimeStartError(
                f"{_shown(requirements)} installs {dist.metadata['Name']} {dist.version}, but "
                f"this instance has already imported {module} {version} from "
                f"{os.path.dirname(location)}, and a loaded module cannot be replaced; pin "
                f"{dist.metadata['Name']}=={version} or leave it out"
            )


def _top_level_modules(dist: importlib.metadata.Distribution) -> set[str]:
    """The importable top-level names a distribution installed (``numpy`` for numpy)."""
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".dist-info"):
            continue
        if len(file.parts) > 1 or first.endswith((".py", ".so", ".pyd")):
            names.add(first.split(".", 1)[0])
    return names


def _shown(requirements: Path) -> str:
    """The file as the user knows it: ``code/requirements.txt``."""
    return f"{requirements.parent.name}/{requirements.name}"


def _listed(packages: tuple[str, ...]) -> str:
    if not packages:
        return "no packages (the service's own meet every requirement)"
    return ", ".join(packages)


def _write(log: TextIO | None, text: str) -> None:
    if log is None or not text:
        return
    try:
        log.write(text if text.endswith("\n") else text + "\n")
        log.flush()
    except (OSError, ValueError):
        pass
