"""sagemaker-containers' ``env`` (``beta.framework.env``), its serving side.

``ServingEnv`` reads the container's variables as the original does (``SAGEMAKER_PROGRAM``,
``SAGEMAKER_SUBMIT_DIRECTORY``, ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, the model server's
settings) and the module-level folders are the original's, except ``model_dir``: it is the
instance's model folder (``SM_MODEL_DIR``, which the runtime sets) rather than a fixed
``/opt/ml/model``. ``num_gpus`` counts ``nvidia-smi --list-gpus`` lines as there.
Differences: the environment is read when the object is made, not when the module is
imported; the training side (``TrainingEnv``, hyperparameters, channels) is not provided.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess

from . import _content_types

__all__ = ["ServingEnv", "base_dir", "code_dir", "model_dir", "num_cpus", "num_gpus"]

BASE_PATH_ENV = "SAGEMAKER_BASE_DIR"
MODEL_DIR_ENV = "SM_MODEL_DIR"

base_dir: str = os.environ.get(BASE_PATH_ENV, "/opt/ml")
code_dir: str = os.path.join(base_dir, "code")
model_dir: str = os.environ.get(MODEL_DIR_ENV) or os.path.join(base_dir, "model")


def num_gpus() -> int:
    """GPUs that ``nvidia-smi --list-gpus`` lists; 0 without it."""
    try:
        output = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, check=True, timeout=10
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in output.split("\n") if line.startswith("GPU "))


def num_cpus() -> int:
    """CPUs of this machine."""
    return multiprocessing.cpu_count()


class ServingEnv:
    """A read-only snapshot of the serving container's settings."""

    def __init__(self) -> None:
        environ = os.environ
        self.current_host = environ.get("CURRENT_HOST")
        self.user_entry_point = environ.get("SAGEMAKER_PROGRAM")
        self.module_dir = environ.get("SAGEMAKER_SUBMIT_DIRECTORY", code_dir)
        self.log_level = int(environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL", logging.INFO))
        self.model_dir = environ.get(MODEL_DIR_ENV) or model_dir
        self.num_cpus = num_cpus()
        self.use_nginx = environ.get("SAGEMAKER_USE_NGINX", "true").lower() in _TRUE
        self.model_server_timeout = int(environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
        self.model_server_workers = int(
            environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", self.num_cpus)
        )
        self.framework_module = environ.get("SAGEMAKER_SERVING_MODULE")
        self.default_accept = environ.get(
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", _content_types.JSON
        )
        self.http_port = environ.get("SAGEMAKER_BIND_TO_PORT", "8080")
        self.safe_port_range = environ.get("SAGEMAKER_SAFE_PORT_RANGE")

    @property
    def module_name(self) -> str | None:
        """The user module's name: ``SAGEMAKER_PROGRAM`` without ``.py``."""
        program = self.user_entry_point
        if program and program.endswith(".py"):
            return program[:-3]
        return program

    @property
    def num_gpus(self) -> int:
        """GPUs of this machine, counted when asked."""
        return num_gpus()


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
