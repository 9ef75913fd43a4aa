"""The clients a SageMaker user runs, for tests that use them as users do.

The SageMaker Python SDK v2 and the AWS CLI v1 pin older libraries than the project's own
(the AWS CLI pins botocore exactly), so ``make test`` installs them into a virtualenv of
their own, ``.venv-clients``, and tests run them there as programs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CLIENTS_VENV = Path(__file__).resolve().parent.parent / ".venv-clients"


def client_program(name: str) -> str:
    """The path of ``python`` or ``aws`` in the clients' virtualenv; fails the test with
    what to run when it is not installed."""
    program = CLIENTS_VENV / "bin" / name
    if not program.exists():
        pytest.fail(
            f"{program} not found: the SageMaker SDK v2 and AWS CLI tests need `make clients` "
            "(which `make test` runs)",
            pytrace=False,
        )
    return str(program)
