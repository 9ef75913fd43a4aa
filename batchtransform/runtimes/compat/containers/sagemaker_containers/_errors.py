"""sagemaker-containers' errors (``beta.framework.errors``), those serving code raises.

Unlike the original, ``UnsupportedFormatError`` may carry an HTTP ``status_code`` (415 from
``encoders.decode``, 406 from ``encoders.encode``): the original's serving stack answered
those statuses when its default handlers raised it, and our runtime reads the status there.
"""

from __future__ import annotations

import textwrap
from typing import Any


class ClientError(Exception):
    """Separates the user's errors from the framework's; raised for bad CSV in ``encoders``."""


class ImportModuleError(ClientError):
    """The user module failed to import."""


class UnsupportedFormatError(Exception):
    """A content type (or Accept) the default encoders do not handle."""

    def __init__(self, content_type: str | None, status_code: int | None = None, **kwargs: Any):
        self.message = textwrap.dedent(
            f"""Content type {content_type} is not supported by this framework.

            Please implement input_fn to to deserialize the request data or an output_fn to
            serialize the response. For more information, see the SageMaker Python SDK README."""
        )
        if status_code is not None:
            self.status_code = status_code
        super().__init__(self.message, **kwargs)
