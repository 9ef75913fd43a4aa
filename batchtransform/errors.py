"""The one exception tree of batchtransform.

Every error the package raises on purpose is one of these, so callers can catch the family
they care about and read the context they need from attributes rather than from text::

    BatchTransformError
    ├── ValidationError        a request breaks a rule (field path + rule)   [ValueError]
    │   └── InvalidLogParameterError   ... of a CloudWatch Logs request
    ├── NotFoundError          a named model or job does not exist           [LookupError]
    │   └── LogResourceNotFoundError   a log group or stream does not exist
    ├── ConflictError          a name already exists, or a state forbids it
    ├── NotBuiltError          a documented feature not built yet  [NotImplementedError]
    ├── DataError              the user's data is wrong (file + record/offset)
    ├── ModelError             the model failed a request (status + body)
    ├── RuntimeStartError      a model runtime could not start (model, handler, server)
    ├── InstanceLostError      an instance cannot go on; its item runs elsewhere
    ├── ExecutorError          the chosen executor cannot run the job (engine, resources)
    ├── StorageError           reading or writing the object store failed
    ├── DatabaseSchemaError    the database's schema is newer than this code
    └── UnexpectedStatusException  a waited-for job ended Failed (SageMaker SDK's name)

Each class names the API error code (``code``) and HTTP status (``status``) that the HTTP
API sends for it, following what SageMaker sends in practice (ValidationException for both
bad input and unknown names).
"""

from __future__ import annotations

__all__ = [
    "BatchTransformError",
    "ConflictError",
    "DataError",
    "DatabaseSchemaError",
    "ExecutorError",
    "InstanceLostError",
    "InvalidLogParameterError",
    "LogResourceNotFoundError",
    "ModelError",
    "NotBuiltError",
    "NotFoundError",
    "RuntimeStartError",
    "StorageError",
    "UnexpectedStatusException",
    "ValidationError",
    "one_line",
]


class BatchTransformError(Exception):
    """Base of every error batchtransform raises on purpose."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(BatchTransformError, ValueError):
    """A request breaks a rule; ``field`` is its path (``TransformResources.InstanceCount``)."""

    code = "ValidationException"
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(BatchTransformError, LookupError):
    """A model or transform job of that name does not exist.

    SageMaker answers these with ValidationException, and botocore's waiters rely on it.
    """

    code = "ValidationException"
    status = 400


class InvalidLogParameterError(ValidationError):
    """A CloudWatch Logs request with a bad parameter (that API's own code for it)."""

    code = "InvalidParameterException"


class LogResourceNotFoundError(NotFoundError):
    """A CloudWatch Logs group or stream that does not exist (that API's own code for it)."""

    code = "ResourceNotFoundException"


class ConflictError(BatchTransformError):
    """A resource of that name exists already, or its state forbids the operation."""

    status = 400

    def __init__(self, message: str, code: str = "ValidationException") -> None:
        super().__init__(message)
        self.code = code


class NotBuiltError(BatchTransformError, NotImplementedError):
    """A documented feature that this version does not implement yet; the message says which."""

    code = "ValidationException"
    status = 400


class DataError(BatchTransformError):
    """The input data is wrong: an oversized record, bad compression, bad framing.

    ``key`` is the input object, ``record`` the 1-based record number, ``offset`` the byte
    offset in the (decompressed) object, when known. The pipeline fills in ``key`` when the
    lower layer that raised it did not know the file.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        record: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.record = record
        self.offset = offset

    def __str__(self) -> str:
        where = []
        if self.key is not None:
            where.append(self.key)
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ModelError(BatchTransformError):
    """The model failed a request: a handler raised, or a server answered non-2xx or not at all.

    ``status`` is the model's HTTP status (500 for a handler exception, None when no answer
    came) and ``body`` the start of what the model said.
    """

    code = "ModelError"

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.model_status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """Timeouts, lost connections and 5xx may pass on a retry; a 4xx will not."""
        return self.model_status is None or self.model_status >= 500


class RuntimeStartError(BatchTransformError):
    """A model runtime could not start: the model did not unpack, the handler did not load,
    or a server never became healthy."""


class InstanceLostError(BatchTransformError):
    """An instance cannot go on: its model runtime died and could not be restarted.

    Raised by a worker, never a file's failure: the executor ends the instance, replaces it
    and runs its item elsewhere. ``attempts`` caps the item's tries in all (None: the
    executor's own limit).
    """

    def __init__(self, message: str, attempts: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts


class ExecutorError(BatchTransformError):
    """The chosen executor cannot run the job at all: its engine is not installed (the
    message names the extra), or no machine or node has what one instance asks for (the
    message names what is missing). Raised before any instance starts; the job fails."""


class StorageError(BatchTransformError):
    """Reading, listing or writing the object store failed (missing bucket, no access, a
    full disk, a store that stopped answering).

    ``transient`` marks an outage (lost connections, timeouts, 5xx) that outlasted the
    retries: the work it interrupted may succeed when run again, unlike a refusal.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class DatabaseSchemaError(BatchTransformError):
    """The database was migrated by a newer batchtransform than this one: its schema
    ``revision`` is not among this code's migrations, whose newest is ``expected``.

    Raised when the store opens, before anything is read or written.
    """

    def __init__(self, message: str, *, revision: str, expected: str) -> None:
        super().__init__(message)
        self.revision = revision
        self.expected = expected


class UnexpectedStatusException(BatchTransformError):
    """A job that a caller waited for ended in a status it did not allow (as the SageMaker
    SDK raises it): ``actual_status`` and ``allowed_statuses`` say which."""

    def __init__(self, message: str, allowed_statuses: list[str], actual_status: str) -> None:
        super().__init__(message)
        self.allowed_statuses = allowed_statuses
        self.actual_status = actual_status


FAILURE_REASON_LIMIT = 1024
"""DescribeTransformJob's FailureReason is at most this many characters."""

_TRACEBACK_HEAD = "Traceback (most recent call last):"


def one_line(text: str, limit: int = FAILURE_REASON_LIMIT) -> str:
    """``text`` as one line of at most ``limit`` characters, for a FailureReason or a log line.

    A Python traceback is reduced to what precedes it, or, when that only introduces it
    (``...:``), to that and the traceback's last line, the exception itself: the frames
    belong in the instance log. Other line breaks and whitespace runs become one space.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head_at = next((n for n, line in enumerate(lines) if line.endswith(_TRACEBACK_HEAD)), None)
    if head_at is not None:
        before = " ".join([*lines[:head_at], lines[head_at][: -len(_TRACEBACK_HEAD)]]).strip()
        lines = [before] if before and not before.endswith(":") else [before, lines[-1]]
    line = " ".join(" ".join(lines).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
