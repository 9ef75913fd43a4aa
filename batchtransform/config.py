"""Where state lives and how resources are named, from the environment.

``BATCHTRANSFORM_HOME`` (default ``~/.batchtransform``) holds the SQLite database and one
folder per job (logs, unpacked models). ``BATCHTRANSFORM_DATABASE_URL`` may point the store
at another SQLAlchemy URL. ARNs use the standard AWS region variables and an account id
that is all zeros unless ``BATCHTRANSFORM_ACCOUNT_ID`` says otherwise.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"


def home() -> Path:
    """The state folder, created on first use."""
    path = Path(os.environ.get("BATCHTRANSFORM_HOME", "~/.batchtransform")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def seconds(name: str, default: float, *, zero_allowed: bool) -> float:
    """A duration setting from the environment, ``default`` when unset. Raises ValueError,
    naming the setting, for anything but a number of seconds (negative, or zero where
    ``zero_allowed`` is false); callers raise it as their own error."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (number >= 0 if zero_allowed else number > 0):
        raise ValueError(f"{name}={value!r} is not a number of seconds")
    return number


def database_url() -> str:
    """The store's SQLAlchemy URL: SQLite under the home folder unless configured."""
    return os.environ.get("BATCHTRANSFORM_DATABASE_URL") or f"sqlite:///{home() / 'state.db'}"


def host_name() -> str:
    """This machine's name, recorded with a job's controller process id: the id means
    something only here, so only servers on this host judge whether it is alive."""
    return socket.gethostname()


def job_dir(job_name: str, create: bool = True) -> Path:
    """A job's own folder: logs, the controller's output, per-instance model folders."""
    path = home() / "jobs" / job_name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def account_id() -> str:
    return os.environ.get("BATCHTRANSFORM_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)


def arn(resource: str, name: str) -> str:
    """An ARN as SageMaker forms it; the resource name is lower-cased as the service does."""
    return f"arn:aws:sagemaker:{region()}:{account_id()}:{resource}/{name.lower()}"
