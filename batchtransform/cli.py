"""The ``batchtransform`` command: the AWS CLI's sagemaker commands, plus ``run``, ``logs``,
``server``, ``ui`` and ``db upgrade``.

Thin by design: each command builds a request document, calls the SDK session and prints
the response as JSON. ``--cli-input-json`` takes the same documents as ``aws sagemaker``.
``--endpoint-url`` (before or after the command, as the AWS CLI takes it) sends them to a
``batchtransform server`` instead of the embedded service.
Exit codes follow the AWS CLI: 0 success, 252 bad arguments, 254 the service refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from batchtransform import console
from batchtransform.api import ApiServer, ServerConfig, credentials_from
from batchtransform.api.metrics import METRICS_TOKEN_VARIABLE, metrics_token_from
from batchtransform.api.server import ACCESS_KEY_ID_VARIABLE, SECRET_ACCESS_KEY_VARIABLE
from batchtransform.errors import (
    BatchTransformError,
    DatabaseSchemaError,
    UnexpectedStatusException,
)
from batchtransform.executors import EXECUTOR_VARIABLE, EXECUTORS
from batchtransform.sdk import Session
from batchtransform.watch import ControllerWatch

EXIT_USAGE = 252
EXIT_SERVICE = 254
EXIT_DATABASE = 2  # the database's schema is newer than this release
EXIT_FOR_STATUS = {"Completed": 0, "Failed": 1, "Stopped": 3}
_ENDPOINT_URL_HELP = (
    "the batchtransform server to use, e.g. http://127.0.0.1:8080 (default: "
    "$BATCHTRANSFORM_ENDPOINT_URL, else the embedded service)"
)

# command -> (operation, help, [(flag, request member, type, help)])
_API_COMMANDS: dict[str, tuple[str, str, list[tuple[str, str, Any, str]]]] = {
    "create-model": ("CreateModel", "Register a model (image + model data).", [
        ("--model-name", "ModelName", str, "the model's name"),
    ]),
    "describe-model": ("DescribeModel", "Show one model.", [
        ("--model-name", "ModelName", str, "the model's name"),
    ]),
    "list-models": ("ListModels", "List models, newest first.", [
        ("--name-contains", "NameContains", str, "only names containing this"),
        ("--sort-by", "SortBy", str, "Name or CreationTime"),
        ("--sort-order", "SortOrder", str, "Ascending or Descending"),
        ("--max-results", "MaxResults", int, "page size (1-100)"),
        ("--next-token", "NextToken", str, "the page to continue from"),
    ]),
    "delete-model": ("DeleteModel", "Delete a model (not its artifacts).", [
        ("--model-name", "ModelName", str, "the model's name"),
    ]),
    "create-transform-job": ("CreateTransformJob", "Start a transform job; returns at once.", [
        ("--transform-job-name", "TransformJobName", str, "the job's name"),
        ("--model-name", "ModelName", str, "the model to run"),
    ]),
    "describe-transform-job": ("DescribeTransformJob", "Show a job's status and progress.", [
        ("--transform-job-name", "TransformJobName", str, "the job's name"),
    ]),
    "list-transform-jobs": ("ListTransformJobs", "List transform jobs, newest first.", [
        ("--status-equals", "StatusEquals", str, "InProgress, Completed, Failed, ..."),
        ("--name-contains", "NameContains", str, "only names containing this"),
        ("--sort-by", "SortBy", str, "Name, CreationTime or Status"),
        ("--sort-order", "SortOrder", str, "Ascending or Descending"),
        ("--max-results", "MaxResults", int, "page size (1-100)"),
        ("--next-token", "NextToken", str, "the page to continue from"),
    ]),
    "stop-transform-job": ("StopTransformJob", "Stop a running job; partial outputs are removed.", [
        ("--transform-job-name", "TransformJobName", str, "the job's name"),
    ]),
    "resume-transform-job": ("ResumeTransformJob", "Run a Failed or Stopped job again from where "
                             "it was: only work without a committed output runs (not in AWS).", [
        ("--transform-job-name", "TransformJobName", str, "the job's name"),
    ]),
}  # fmt: skip

_OUTPUTS = ("json", "table")
_OUTPUT_HELP = (
    "json or table, as the AWS CLI's --output (default: table at a terminal, json otherwise)"
)
# list operation -> (its list member, the table drawing it, the Describe filling it in, and
# that Describe's name member)
_TABLES: dict[str, tuple[str, Callable[..., Any], str, str]] = {
    "ListTransformJobs": (
        "TransformJobSummaries",
        console.jobs_table,
        "DescribeTransformJob",
        "TransformJobName",
    ),
    "ListModels": ("Models", console.models_table, "DescribeModel", "ModelName"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except _UsageError as exc:
        print(f"batchtransform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseSchemaError as exc:  # no operation ran: the store refused to open
        print(f"batchtransform: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except BatchTransformError as exc:
        operation = getattr(args, "operation", "the")
        print(
            f"An error occurred ({exc.code}) when calling the {operation} operation: {exc}",
            file=sys.stderr,
        )
        return EXIT_SERVICE
    except KeyboardInterrupt:
        return 130


class _UsageError(Exception):
    """Arguments that cannot make a request (unreadable --cli-input-json)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchtransform",
        description="Self-hosted batch inference with the SageMaker Batch Transform API.",
    )
    parser.add_argument("--endpoint-url", help=_ENDPOINT_URL_HELP)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (operation, help_text, flags) in _API_COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        _add_endpoint_url(command)
        command.add_argument("--cli-input-json", help="request JSON: inline, or file://PATH")
        for flag, member, kind, flag_help in flags:
            command.add_argument(flag, dest=member, type=kind, help=flag_help)
        command.set_defaults(handler=_api_command, operation=operation)
        if operation in _TABLES:
            command.add_argument("--output", help=_OUTPUT_HELP)
            command.set_defaults(handler=_list_command)
    _add_run(commands)
    _add_logs(commands)
    _add_server(commands)
    _add_ui(commands)
    _add_db(commands)
    return parser


def _add_endpoint_url(command: argparse.ArgumentParser) -> None:
    """``--endpoint-url`` after the command too; SUPPRESS keeps a value given before it."""
    command.add_argument("--endpoint-url", default=argparse.SUPPRESS, help=_ENDPOINT_URL_HELP)


def _add_run(commands: Any) -> None:
    help_text = "Create a transform job and follow it with a progress bar to its end."
    command = commands.add_parser("run", help=help_text, description=help_text)
    _add_endpoint_url(command)
    command.add_argument("--cli-input-json", required=True, help="CreateTransformJob JSON")
    command.add_argument("--logs", action="store_true", help="print the job's logs at the end")
    command.set_defaults(handler=_run, operation="CreateTransformJob")


def _add_logs(commands: Any) -> None:
    help_text = "Print a job's log streams (model output and data-log), here or from a server."
    command = commands.add_parser("logs", help=help_text, description=help_text)
    _add_endpoint_url(command)
    command.add_argument("transform_job_name", metavar="NAME", help="the transform job's name")
    command.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    command.set_defaults(handler=_logs, operation="DescribeTransformJob")


def _add_server(commands: Any) -> None:
    help_text = (
        "Serve the SageMaker and CloudWatch Logs APIs over HTTP (JSON 1.1), for boto3, the "
        "AWS CLI and SDKs."
    )
    command = commands.add_parser("server", help=help_text, description=help_text)
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    command.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (8080)")
    command.add_argument(
        "--access-key-id", help=f"the key id clients sign with (or ${ACCESS_KEY_ID_VARIABLE})"
    )
    command.add_argument(
        "--secret-access-key",
        help=f"its secret; prefer ${SECRET_ACCESS_KEY_VARIABLE}, which ps does not show",
    )
    command.add_argument(
        "--no-auth", action="store_true", help="accept unsigned requests from anyone who connects"
    )
    command.add_argument(
        "--metrics-token",
        help=f"a bearer token that may also read /metrics; prefer ${METRICS_TOKEN_VARIABLE}",
    )
    command.add_argument(
        "--executor",
        choices=EXECUTORS,
        help=f"where jobs' instances run: local processes or Ray actors (${EXECUTOR_VARIABLE})",
    )
    command.add_argument(
        "--ray-address",
        help="the Ray cluster to join, e.g. 10.0.0.5:6379 ($RAY_ADDRESS; none: a Ray per job)",
    )
    command.set_defaults(handler=_server)


def _add_db(commands: Any) -> None:
    help_text = "The state database: `db upgrade` migrates it to this release's schema."
    command = commands.add_parser("db", help=help_text, description=help_text)
    actions = command.add_subparsers(
        title="actions", metavar="ACTION", help="upgrade: migrate it to this release's schema"
    )
    upgrade_help = (
        "Migrate the database to this release's schema (servers and jobs also do it when "
        "they open it); a no-op when it is current."
    )
    upgrade = actions.add_parser("upgrade", help=upgrade_help, description=upgrade_help)
    upgrade.add_argument(
        "--database-url",
        help="its SQLAlchemy URL (default: $BATCHTRANSFORM_DATABASE_URL, else the SQLite "
        "file under $BATCHTRANSFORM_HOME)",
    )
    upgrade.set_defaults(handler=_db_upgrade)


def _db_upgrade(args: argparse.Namespace) -> int:
    from batchtransform import config
    from batchtransform.store import upgrade_database

    url = args.database_url or config.database_url()
    before, after = upgrade_database(url)
    shown = _hide_password(url)
    if before == after:
        print(f"{shown}: schema revision {after}, already current")
    else:
        print(f"{shown}: schema revision {after} (was {before or 'unversioned or empty'})")
    return 0


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _api_command(args: argparse.Namespace) -> int:
    request = _request(args)
    _print_json(_session(args).call(args.operation, request))
    return 0


def _list_command(args: argparse.Namespace) -> int:
    """A list as a table at a terminal, as JSON in a pipe (a script reading it keeps the
    JSON it always had), or as ``--output`` asks; a table describes each listed item."""
    output = args.output or ("table" if sys.stdout.isatty() else "json")
    if output not in _OUTPUTS:
        raise _UsageError(
            "error: argument --output: Invalid choice, valid choices are:\n\n"
            + " | ".join(_OUTPUTS)
        )
    session = _session(args)
    response = session.call(args.operation, _request(args))
    if output == "json":
        _print_json(response)
        return 0
    member, draw, describe_operation, name_member = _TABLES[args.operation]
    table = draw(
        response[member], lambda name: session.call(describe_operation, {name_member: name})
    )
    console.print_table(table, response.get("NextToken"))
    return 0


def _request(args: argparse.Namespace) -> dict[str, Any]:
    request = _read_input_json(args.cli_input_json) if args.cli_input_json else {}
    for key, value in vars(args).items():
        if key[:1].isupper() and value is not None:
            request[key] = value
    return request


def _read_input_json(value: str) -> dict[str, Any]:
    text = value
    if value.startswith("file://"):
        try:
            text = Path(value.removeprefix("file://")).read_text(encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"cannot read --cli-input-json {value}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"--cli-input-json is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _UsageError("--cli-input-json must hold a JSON object")
    return document


def _run(args: argparse.Namespace) -> int:
    session = _session(args)
    request = _read_input_json(args.cli_input_json)
    session.call("CreateTransformJob", request)
    name = request["TransformJobName"]
    description = console.follow_with_progress(
        lambda: session.call("DescribeTransformJob", {"TransformJobName": name}), name
    )
    if args.logs:
        session.logs_for_transform_job(name)
    status = description["TransformJobStatus"]
    line = console.summary_line(description)
    if description.get("FailureReason"):
        line += f"\n{description['FailureReason']}"
    print(line, file=sys.stderr if status != "Completed" else sys.stdout)
    print(f"Output: {description['TransformOutput']['S3OutputPath']}")
    return EXIT_FOR_STATUS.get(status, 1)


def _logs(args: argparse.Namespace) -> int:
    try:
        _session(args).logs_for_transform_job(args.transform_job_name, wait=args.follow)
    except UnexpectedStatusException as exc:
        print(exc, file=sys.stderr)
        return EXIT_FOR_STATUS["Failed"]
    return 0


def _session(args: argparse.Namespace) -> Session:
    return Session(endpoint_url=args.endpoint_url)


def _server(args: argparse.Namespace) -> int:
    # Jobs' controllers inherit this process's environment, and choose their executor by it.
    if args.executor:
        os.environ[EXECUTOR_VARIABLE] = args.executor
    if args.ray_address:
        os.environ["RAY_ADDRESS"] = args.ray_address
    try:
        credentials = credentials_from(args.access_key_id, args.secret_access_key)
        token = metrics_token_from(args.metrics_token, os.environ)
        config = ServerConfig(args.host, args.port, credentials, args.no_auth, token)
        server = ApiServer(config)
    except ValueError as exc:
        hint = "--access-key-id and --secret-access-key, or --no-auth"
        raise _UsageError(f"server: {exc} ({hint})") from exc
    except OSError as exc:
        raise _UsageError(f"server: cannot listen on {args.host}:{args.port}: {exc}") from exc
    auth = "SigV4 signatures required" if credentials else "NO authentication"
    print(
        f"Serving the SageMaker and CloudWatch Logs APIs on {server.endpoint_url} ({auth}).",
        flush=True,
    )
    return _serve(server)


def _serve(server: ApiServer) -> int:
    watch = ControllerWatch(server.service)  # jobs whose controller died end on their own
    watch.start()
    try:
        server.serve_forever()
    finally:
        watch.stop()
    return 0


def _add_ui(commands: Any) -> None:
    help_text = (
        "Open the web dashboard of this machine's jobs (and serve the API) on 127.0.0.1, "
        "with a fresh random credential: sign in with the URL it prints."
    )
    command = commands.add_parser("ui", help=help_text, description=help_text)
    command.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (0)")
    command.add_argument("--open", action="store_true", help="open the URL in a web browser")
    command.set_defaults(handler=_ui)


def _ui(args: argparse.Namespace) -> int:
    import webbrowser

    from batchtransform.api.ui.local import local_dashboard

    try:
        local = local_dashboard(args.port)
    except OSError as exc:
        raise _UsageError(f"ui: cannot listen on 127.0.0.1:{args.port}: {exc}") from exc
    print(f"Dashboard: open {local.sign_in_url} (it signs one browser in, once).")
    print(
        f"API clients: --endpoint-url {local.server.endpoint_url} with access key id "
        f"{local.access_key_id} and secret access key {local.secret_access_key}",
        flush=True,
    )
    if args.open:
        webbrowser.open(local.sign_in_url)
    return _serve(local.server)


def _print_json(response: dict[str, Any]) -> None:
    print(json.dumps(response, indent=4, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot print {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
