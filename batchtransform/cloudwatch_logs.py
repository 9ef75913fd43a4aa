"""CloudWatch Logs' read operations over the jobs' log files, with CloudWatch's shapes.

One log group, ``/aws/sagemaker/TransformJobs``, holds every job's streams, named as
SageMaker names them: ``<job>/instance-<n>-<epoch>`` (the model's output) and
``<job>/instance-<n>-<epoch>/data-log`` (``logs`` reads both). The operations are those
that log followers use: ``DescribeLogGroups``, ``DescribeLogStreams``, ``GetLogEvents``
and ``FilterLogEvents``, with their request and response members (camelCase, times in
epoch milliseconds), as the Logs API (``Logs_20140328``) defines them.

What a follower relies on, as CloudWatch does it:

* ``GetLogEvents`` tokens are ``f/<position>/s`` and ``b/<position>/s``: a position in
  the stream, so a token stays valid as the stream grows. Reading forward with nothing
  new gives back the forward token that was sent (that is how a follower knows it is at
  the end); reading back past the start gives back the backward token. Without a token,
  ``startFromHead`` reads from the start, else the latest events.
* ``startTime`` is inclusive and ``endTime`` exclusive; a page holds at most ``limit``
  events (10,000 by default) and 1 MiB counted as CloudWatch counts it (UTF-8 bytes plus
  26 per event).
* An unknown group or stream is ``ResourceNotFoundException`` ("The specified log group
  does not exist.", "The specified log stream does not exist."); a bad parameter is
  ``InvalidParameterException``.

``FilterLogEvents`` patterns are CloudWatch's term patterns: every term must occur
(case-sensitive), ``"a phrase"`` is one term, ``-term`` must not occur and ``?term``
makes the ``?`` terms alternatives. JSON (``{ $.x = 1 }``) and space-delimited (``[a, b]``)
patterns are refused as not supported. ``storedBytes`` is the stream's size on disk
(CloudWatch itself now reports 0).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from batchtransform import config, logs
from batchtransform.errors import InvalidLogParameterError, LogResourceNotFoundError
from batchtransform.logs import LogEvent, StreamFile

__all__ = ["LOGS_OPERATIONS", "LOG_GROUP", "LogsService"]

LOG_GROUP = "/aws/sagemaker/TransformJobs"
LOGS_OPERATIONS = ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents")
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENTS = 10_000
_TOKEN = re.compile(r"([fb])/(\d{1,56})(?:/s)?")
_NO_GROUP = "The specified log group does not exist."
_NO_STREAM = "The specified log stream does not exist."

# Whether a job's streams are final (the job has ended, or is unknown); given a job name.
JobEnded = Callable[[str], bool]


class LogsService:
    """The Logs operations over the files of ``logs``; ``job_ended`` tells finished jobs,
    whose last unnoted lines are final (see ``logs.read_events``)."""

    def __init__(self, job_ended: JobEnded) -> None:
        self.job_ended = job_ended

    def call(self, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a Logs ``operation`` (``GetLogEvents``, ...) on a request document."""
        if operation not in LOGS_OPERATIONS:
            raise InvalidLogParameterError(
                f"Unknown operation {operation!r}; supported: {', '.join(LOGS_OPERATIONS)}."
            )
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
        handler: Callable[[Mapping[str, Any]], dict[str, Any]] = getattr(self, snake)
        return handler(dict(request or {}))

    def describe_log_groups(self, request: Mapping[str, Any]) -> dict[str, Any]:
        prefix = _string(request, "logGroupNamePrefix") or ""
        pattern = _string(request, "logGroupNamePattern") or ""
        _integer(request, "limit", 1, 50)
        _page_offset(request)
        matches = LOG_GROUP.startswith(prefix) and pattern.lower() in LOG_GROUP.lower()
        return {"logGroups": [_group()] if matches else []}

    def describe_log_streams(self, request: Mapping[str, Any]) -> dict[str, Any]:
        _check_group(request)
        prefix = _string(request, "logStreamNamePrefix") or ""
        order = _string(request, "orderBy") or "LogStreamName"
        if order not in ("LogStreamName", "LastEventTime"):
            raise _invalid(
                f"Value '{order}' at 'orderBy' failed to satisfy constraint: Member must "
                "satisfy enum value set: [LogStreamName, LastEventTime]"
            )
        if order == "LastEventTime" and prefix:
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        limit = _integer(request, "limit", 1, 50) or 50
        offset = _page_offset(request)
        streams = _streams(prefix)
        if order == "LastEventTime":  # only this order needs every stream's events
            described = [self._describe(s) for s in streams]
            described.sort(key=lambda d: (d.get("lastEventTimestamp", 0), d["logStreamName"]))
            if _boolean(request, "descending"):
                described.reverse()
            return _paged("logStreams", described, offset, limit)
        if _boolean(request, "descending"):
            streams.reverse()
        page = _paged("logStreams", streams, offset, limit)
        page["logStreams"] = [self._describe(s) for s in page["logStreams"]]
        return page

    def get_log_events(self, request: Mapping[str, Any]) -> dict[str, Any]:
        _check_group(request)
        stream = _stream(_required(request, "logStreamName"))
        limit = _integer(request, "limit", 1, MAX_EVENTS) or MAX_EVENTS
        start, end = _time_range(request)
        token = _string(request, "nextToken")
        forward, position = _parse_token(token) if token else (None, None)
        if forward is None:
            forward = _boolean(request, "startFromHead")
        events = self._events(stream)
        if position is None:
            position = 0 if forward else len(events)
        indexes = [
            i
            for i in (range(position, len(events)) if forward else range(position))
            if start <= events[i].timestamp < end
        ]
        chosen = _fit(indexes, events, limit, from_end=not forward)
        first, after = (chosen[0], chosen[-1] + 1) if chosen else (position, position)
        return {
            "events": [_event(events[i]) for i in chosen],
            "nextForwardToken": f"f/{after:056d}/s",
            "nextBackwardToken": f"b/{first:056d}/s",
        }

    def filter_log_events(self, request: Mapping[str, Any]) -> dict[str, Any]:
        _check_group(request)
        streams = self._filtered_streams(request)
        start, end = _time_range(request)
        matches = _pattern(_string(request, "filterPattern") or "")
        limit = _integer(request, "limit", 1, MAX_EVENTS) or MAX_EVENTS
        offset = _page_offset(request)
        found = [
            _filtered_event(stream, index, event)
            for stream in streams
            for index, event in enumerate(self._events(stream))
            if start <= event.timestamp < end and matches(event.message)
        ]
        found.sort(key=lambda e: (e["timestamp"], e["logStreamName"], e["eventId"]))
        page = _paged("events", found, offset, limit)
        page["searchedLogStreams"] = [
            {"logStreamName": s.name, "searchedCompletely": True} for s in streams
        ]
        return page

    def _filtered_streams(self, request: Mapping[str, Any]) -> list[StreamFile]:
        names = request.get("logStreamNames")
        prefix = _string(request, "logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise _invalid("You cannot specify both logStreamNames and logStreamNamePrefix.")
        if names is None:
            return _streams(prefix or "")
        if not isinstance(names, list) or not 1 <= len(names) <= 100:
            raise _invalid("logStreamNames must be a list of 1 to 100 stream names.")
        return [_stream(_checked_string(name, "logStreamNames")) for name in names]

    def _describe(self, stream: StreamFile) -> dict[str, Any]:
        described: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stream.creation_time,
            "arn": f"{_group_arn()}:log-stream:{stream.name}",
            "storedBytes": stream.path.stat().st_size,
        }
        events = self._events(stream)
        if events:
            described["firstEventTimestamp"] = events[0].timestamp
            described["lastEventTimestamp"] = events[-1].timestamp
            described["lastIngestionTime"] = events[-1].timestamp
        return described

    def _events(self, stream: StreamFile) -> list[LogEvent]:
        job_name = stream.name.split("/", 1)[0]
        return logs.read_events(stream.path, final=self.job_ended(job_name))


# Streams and the group


def _streams(prefix: str) -> list[StreamFile]:
    """Every stream whose name starts with ``prefix``, by name."""
    job_prefix = prefix.split("/", 1)[0]
    if "/" in prefix:
        jobs: Iterable[str] = [job_prefix]
    else:
        jobs_dir = config.home() / "jobs"
        names = (p.name for p in jobs_dir.iterdir()) if jobs_dir.is_dir() else iter(())
        jobs = sorted(name for name in names if name.startswith(job_prefix))
    found = (s for job in jobs for s in logs.job_streams(job) if s.name.startswith(prefix))
    return sorted(found, key=lambda s: s.name)


def _stream(name: str) -> StreamFile:
    for stream in logs.job_streams(name.split("/", 1)[0]) if "/" in name else []:
        if stream.name == name:
            return stream
    raise LogResourceNotFoundError(_NO_STREAM)


def _check_group(request: Mapping[str, Any]) -> None:
    """The request names our group, by ``logGroupName`` or ``logGroupIdentifier``."""
    name = _string(request, "logGroupName")
    identifier = _string(request, "logGroupIdentifier")
    if name is None and identifier is None:
        raise _invalid("Either logGroupName or logGroupIdentifier must be specified.")
    if name is not None and identifier is not None:
        raise _invalid("LogGroupName and LogGroupIdentifier are mutually exclusive.")
    if (name or identifier) not in (LOG_GROUP, _group_arn(), f"{_group_arn()}:*"):
        raise LogResourceNotFoundError(_NO_GROUP)


def _group() -> dict[str, Any]:
    jobs_dir = config.home() / "jobs"
    created = int(jobs_dir.stat().st_mtime * 1000) if jobs_dir.is_dir() else 0
    return {
        "logGroupName": LOG_GROUP,
        "creationTime": created,
        "metricFilterCount": 0,
        "arn": f"{_group_arn()}:*",
        "logGroupArn": _group_arn(),
        "storedBytes": 0,
        "logGroupClass": "STANDARD",
    }


def _group_arn() -> str:
    return f"arn:aws:logs:{config.region()}:{config.account_id()}:log-group:{LOG_GROUP}"


# Events and pages


def _event(event: LogEvent) -> dict[str, Any]:
    """An event as GetLogEvents returns it; lines are stored as they are written."""
    return {
        "timestamp": event.timestamp,
        "message": event.message,
        "ingestionTime": event.timestamp,
    }


def _filtered_event(stream: StreamFile, index: int, event: LogEvent) -> dict[str, Any]:
    """An event as FilterLogEvents returns it, with a stable 56-digit id."""
    event_id = f"{event.timestamp:020d}{zlib.crc32(stream.name.encode()):010d}{index:026d}"
    return {"logStreamName": stream.name, **_event(event), "eventId": event_id}


def _fit(indexes: list[int], events: list[LogEvent], limit: int, from_end: bool) -> list[int]:
    """As many of ``indexes`` as fit a page (``limit`` events, 1 MiB), from the start or
    the end of the list, in ascending order."""
    chosen: list[int] = []
    size = 0
    for i in reversed(indexes) if from_end else indexes:
        size += len(events[i].message.encode()) + EVENT_OVERHEAD_BYTES
        if len(chosen) == limit or (chosen and size > PAGE_BYTES):
            break
        chosen.append(i)
    return sorted(chosen)


def _paged(member: str, items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    page: dict[str, Any] = {member: items[offset : offset + limit]}
    if offset + limit < len(items):
        page["nextToken"] = base64.urlsafe_b64encode(
            json.dumps({"offset": offset + limit}).encode()
        ).decode()
    return page


def _page_offset(request: Mapping[str, Any]) -> int:
    token = _string(request, "nextToken")
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise _invalid("The specified nextToken is invalid.") from exc
    if not isinstance(offset, int) or offset < 0:
        raise _invalid("The specified nextToken is invalid.")
    return offset


def _parse_token(token: str) -> tuple[bool, int]:
    """``f/<position>/s`` or ``b/<position>/s`` as (forward, position)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise _invalid("The specified nextToken is invalid.")
    return match.group(1) == "f", int(match.group(2))


def _pattern(text: str) -> Callable[[str], bool]:
    """A term pattern as a test of one message (see the module's docstring)."""
    if text.lstrip().startswith(("{", "[")):
        raise _invalid(
            f"filterPattern {text!r} is not supported: only terms, quoted phrases, "
            "-excluded and ?optional terms are."
        )
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise _invalid(f"Invalid filterPattern {text!r}: {exc}.") from exc
    required = [t for t in terms if not t.startswith(("-", "?"))]
    excluded = [t[1:] for t in terms if t.startswith("-") and len(t) > 1]
    optional = [t[1:] for t in terms if t.startswith("?") and len(t) > 1]

    def matches(message: str) -> bool:
        return (
            all(t in message for t in required)
            and not any(t in message for t in excluded)
            and (not optional or any(t in message for t in optional))
        )

    return matches


# Parameters


def _time_range(request: Mapping[str, Any]) -> tuple[int, int]:
    start = _integer(request, "startTime", 0, None)
    end = _integer(request, "endTime", 0, None)
    return start or 0, end if end is not None else 2**63


def _required(request: Mapping[str, Any], name: str) -> str:
    value = _string(request, name)
    if not value:
        raise _invalid(f"{name} is required.")
    return value


def _string(request: Mapping[str, Any], name: str) -> str | None:
    value = request.get(name)
    return None if value is None else _checked_string(value, name)


def _checked_string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string, not {type(value).__name__}.")
    return value


def _integer(request: Mapping[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = request.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer, not {type(value).__name__}.")
    if value < low or (high is not None and value > high):
        bound = (
            f"greater than or equal to {low}" if value < low else f"less than or equal to {high}"
        )
        raise _invalid(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    return value


def _boolean(request: Mapping[str, Any], name: str) -> bool:
    value = request.get(name, False)
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be a boolean, not {type(value).__name__}.")
    return value


def _invalid(message: str) -> InvalidLogParameterError:
    return InvalidLogParameterError(message)
