"""Stand-ins for libraries that SageMaker's framework images ship, for user code to import.

Handler scripts written for those images import the images' own libraries. Where a library
cannot be installed from the registry into our environment, a module of the same name is
provided here, following the original's public functions and behaviour (each module's
docstring names the original and says what differs):

* ``containers/``: ``sagemaker_containers`` (``sagemaker_containers.beta.framework``: its
  ``content_types``, ``encoders``, ``env``, ``errors``, ``modules``, ``transformer`` and
  ``worker``), after sagemaker-containers 2.8.6, whose release pins Flask 1.1.1;
* ``xgboost/``: ``sagemaker_xgboost_container`` (``encoder``, ``constants``,
  ``data_utils``' content-type helpers), which is not published to the registry;
* ``pytorch/``: ``sagemaker_pytorch_serving_container.default_pytorch_inference_handler``,
  whose published package also installs its own copy of ``sagemaker_inference``.

``sagemaker_inference`` itself installs cleanly and comes from the registry with each
framework's extra.

Each folder is put on ``sys.path`` only while a runtime of a matching image runs in the
process (``activate`` / ``deactivate``), and at the end of it, so an installed original always
wins and no other runtime, nor the service, ever sees these names.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CONTAINERS", "PYTORCH", "XGBOOST", "activate", "deactivate", "folder"]

CONTAINERS = "containers"
XGBOOST = "xgboost"
PYTORCH = "pytorch"

_ROOT = Path(__file__).resolve().parent
_lock = threading.Lock()
_users: Counter[str] = Counter()


def folder(name: str) -> Path:
    """The folder that holds the stand-in packages of ``name`` (one of the constants)."""
    path = _ROOT / name
    if not path.is_dir():
        raise ValueError(f"no compatibility folder {name!r} in {_ROOT}")
    return path


def activate(names: Iterable[str]) -> None:
    """Append the folders of ``names`` to ``sys.path`` (after site-packages), counting users,
    so that two runtimes of one process (an inference pipeline) can share them."""
    with _lock:
        for name in names:
            path = str(folder(name))
            if _users[path] == 0 and path not in sys.path:
                sys.path.append(path)
            _users[path] += 1


def deactivate(names: Iterable[str]) -> None:
    """Undo ``activate``: the last user removes the folder from ``sys.path`` and forgets the
    modules imported from it, so a later runtime of another image cannot import them."""
    with _lock:
        for name in names:
            path = str(folder(name))
            if _users[path] == 0:
                continue
            _users[path] -= 1
            if _users[path] == 0:
                del _users[path]
                while path in sys.path:
                    sys.path.remove(path)
                _forget_modules_under(path)


def _forget_modules_under(path: str) -> None:
    prefix = str(Path(path)) + "/"
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith(prefix):
            sys.modules.pop(name, None)
