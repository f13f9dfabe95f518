"""The ``freight`` command line.

Running functions, on the embedded service by default (``Client()``: state under
``$FREIGHT_HOME``, one local endpoint):

* ``freight run TARGET [ARGS...]`` registers the function, runs it once on the
  local endpoint (or ``--endpoint ID``), waits and prints the result;
* ``freight map TARGET ITEMS... | --range N | --args-file FILE`` runs it over many
  inputs through ``Executor.map`` (``--chunksize``), with a progress bar on a
  terminal;
* ``freight task ID``, ``freight tasks``, ``freight functions`` and
  ``freight endpoints`` show what the service holds.

Inspecting strategies: ``freight strategies`` lists every registered strategy and
where it came from; ``freight check MODULE:FUNCTION [ARGS...]`` round-trips a
function and its arguments through every code strategy and says which ones work and
why the others do not (``freight.serialize.explain``); with ``--isolated`` each copy
is decoded and called in a fresh ``python -I`` subprocess, as a receiving process
would (``freight.serialize.isolation``).

TARGET and ARGS are parsed the same way for ``check``, ``run`` and ``map``.  Exit
status: 0 done, 1 a task failed (or no strategy worked, for ``check``), 2 bad input.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import importlib
import itertools
import json
import operator
import os
import runpy
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from freight.serialize import Property, SerdeError, default_registry
from freight.serialize.explain import explain_call, format_table
from freight.serialize.isolation import DEFAULT_TIMEOUT
from freight.service.errors import ServiceError

if TYPE_CHECKING:
    from freight.client import Client, Executor


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="freight",
        description="Run functions on freight's embedded service and inspect its"
        " tasks; inspect and exercise freight's strategies.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser(
        "strategies", help="list every registered strategy and its origin"
    )
    listing.add_argument("--json", action="store_true", help="print JSON lines")

    check = commands.add_parser(
        "check",
        help="round-trip a function through every code strategy",
        description="ARGS are Python literals (strings otherwise); NAME=VALUE"
        " passes a keyword argument. TARGET is MODULE:FUNCTION or PATH.py:FUNCTION.",
        epilog="Exit status: 0 if some strategy worked, 1 if none did, 2 for bad"
        " arguments.",
    )
    check.add_argument("target", metavar="TARGET")
    check.add_argument("args", nargs="*", metavar="ARGS")
    check.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        help="only this code strategy (repeatable)",
    )
    check.add_argument("--json", action="store_true", help="print JSON lines")
    check.add_argument(
        "--isolated",
        action="store_true",
        help="decode and call each round trip in a fresh `python -I` subprocess,"
        " which sees installed packages only (plus --pythonpath)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"with --isolated: kill a child after this long (default"
        f" {DEFAULT_TIMEOUT:g})",
    )
    check.add_argument(
        "--pythonpath",
        action="append",
        default=[],
        metavar="DIR",
        help="with --isolated: a directory the child may import from (repeatable)",
    )

    _add_client_commands(commands)
    _add_service_command(commands)

    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        if ns.command in _CLIENT_COMMANDS:
            return _CLIENT_COMMANDS[ns.command](ns)
        if ns.command == "strategies":
            return _strategies(as_json=ns.json)
        return _check(
            ns.target,
            ns.args,
            ns.strategy,
            as_json=ns.json,
            isolated=ns.isolated,
            timeout=ns.timeout,
            pythonpath=ns.pythonpath,
        )
    except (SerdeError, UsageError, ServiceError) as e:
        print(f"freight: {e}", file=sys.stderr)
        return 2


class UsageError(Exception):
    """A command-line argument that cannot be acted on."""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _strategies(*, as_json: bool) -> int:
    registry = default_registry()
    strategies = []
    for rec in registry:
        s = rec.strategy
        deprecated = "decode-only" if s.decode_only else "yes" if s.deprecated else "no"
        strategies.append(
            {
                "identifier": rec.identifier.rstrip("\n"),
                "name": rec.name,
                "class": rec.cls.__name__,
                "kind": "code" if rec.for_code else "data",
                "plugin": rec.plugin.name,
                "distribution": rec.plugin.distribution or "(run time)",
                "deprecated": deprecated,
                "properties": _property_names(s.properties),
            }
        )
    plugins = [
        {
            "plugin": status.name,
            "distribution": status.distribution or "(run time)",
            "state": status.state,
            "identifiers": " ".join(i.rstrip("\n") for i in status.identifiers),
            "reason": status.reason,
        }
        for status in registry.plugin_statuses()
    ]
    if as_json:
        for row in strategies:
            print(json.dumps({"record": "strategy", **row}))
        for row in plugins:
            print(json.dumps({"record": "plugin", **row}))
        return 0
    print(format_table(strategies))
    print()
    print(format_table(plugins))
    for status in registry.plugin_statuses():
        if status.state == "failed":
            print(f"\nplugin {status.name!r} failed to load:\n{status.traceback}")
    return 0


def _property_names(properties: Property) -> str:
    return (
        ",".join(
            (p.name or "").lower().replace("_", "-")
            for p in Property
            if p in properties
        )
        or "-"
    )


def _check(
    target: str,
    raw_args: list[str],
    only: list[str] | None,
    *,
    as_json: bool,
    isolated: bool,
    timeout: float,
    pythonpath: list[str],
) -> int:
    fn = _load_target(target)
    args, kwargs = _parse_call_args(raw_args)
    report = explain_call(
        only or None,
        fn,
        args,
        kwargs,
        isolated=isolated,
        timeout=timeout,
        pythonpath=pythonpath,
    )
    if as_json:
        for row in report.to_dicts():
            print(json.dumps(row))
    else:
        print(report)
    return 0 if report.ok else 1


def _load_target(target: str) -> Callable[..., Any]:
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise UsageError(
            f"TARGET must be MODULE:FUNCTION or PATH.py:FUNCTION, got {target!r}"
        )
    try:
        if module_part.endswith(".py"):
            # Run as a module nobody can import: the way code typed into __main__
            # or a notebook reaches a serializer.
            namespace = runpy.run_path(module_part, run_name="__freight_check__")
        else:
            namespace = vars(importlib.import_module(module_part))
    except Exception as e:  # missing, unreadable, or failing as it runs
        raise UsageError(f"cannot load {module_part!r}: {type(e).__name__}: {e}") from e
    obj: Any = namespace
    for part in attr.split("."):
        try:
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        except (KeyError, AttributeError):
            raise UsageError(f"{module_part!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise UsageError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def _parse_call_args(raw: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for item in raw:
        key, eq, value = item.partition("=")
        if eq and key.isidentifier():
            kwargs[key] = _literal(value)
        else:
            args.append(_literal(item))
    return tuple(args), kwargs


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# -- the client commands ------------------------------------------------------------
#
# ``run``, ``map``, ``task``, ``tasks``, ``functions`` and ``endpoints`` talk to the
# service a ``Client()`` resolves (the embedded default: ``$FREIGHT_HOME``,
# ``$FREIGHT_ENGINE``, ``$FREIGHT_WORKERS``), through the public client API.  The
# listings (``tasks``, ``functions``) are freight additions that the ``Transport``
# protocol does not carry yet: they are read from ``client.transport`` when it has
# ``list_tasks`` / ``list_functions`` (the in-process ``ServiceCore`` does; the HTTP
# transport can add them as ``/freight/v1/`` routes), so ``Client`` gains no methods.
#
# Exit status: 0 done; 1 the task (or a call of the map) failed, or timed out; 2 bad
# input (target, arguments, ids the service does not know, a refused request).


@runtime_checkable
class _Listing(Protocol):
    """The freight-only listing calls of a transport (``ServiceCore`` has them)."""

    def list_tasks(self, limit: int = ...) -> list[dict[str, Any]]: ...

    def list_functions(self, limit: int = ...) -> list[dict[str, Any]]: ...


def _add_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    call_args = (
        "ARGS are Python literals (strings otherwise); NAME=VALUE passes a keyword"
        " argument.  TARGET is MODULE:FUNCTION or PATH.py:FUNCTION."
    )
    status_epilog = (
        "Exit status: 0 on success, 1 if the task (or a call of the map) failed or"
        " timed out (the remote exception's type and traceback are printed), 2 for"
        " bad arguments."
    )

    run = commands.add_parser(
        "run",
        help="register a function, run it on an endpoint and print its result",
        description="Register TARGET, run it once with ARGS on the local endpoint"
        " of the embedded service (or --endpoint), wait and print the result. "
        + call_args,
        epilog=status_epilog,
    )
    run.add_argument("target", metavar="TARGET")
    run.add_argument("args", nargs="*", metavar="ARGS")
    _endpoint_option(run)
    run.add_argument("--json", action="store_true", help="print one JSON object")
    _timeout_option(run, "stop waiting (and stop the task) after this long")
    run.set_defaults(handler=_run)

    bulk = commands.add_parser(
        "map",
        help="run a function over many inputs (Executor.map) with a progress bar",
        description="Call TARGET once per input, in order, through Executor.map,"
        " and print each result on its own line.  Inputs come from exactly one of:"
        " ITEMS (Python literals, each the single argument of one call); --range N"
        " (calls with 0 .. N-1); --args-file FILE ('-' for stdin: one JSON value per"
        " line, an array being the call's positional arguments, anything else its"
        " single argument; blank lines are skipped).  Stops at the first failed"
        " call, as Executor.map does.",
        epilog=status_epilog,
    )
    bulk.add_argument("target", metavar="TARGET")
    bulk.add_argument("items", nargs="*", metavar="ITEMS")
    bulk.add_argument(
        "--range", type=_count, metavar="N", dest="range_n", help="calls with 0 .. N-1"
    )
    bulk.add_argument(
        "--args-file", metavar="FILE", help="one JSON value per line ('-': stdin)"
    )
    bulk.add_argument(
        "--chunksize",
        type=_count,
        default=1,
        metavar="K",
        help="calls per task message (default 1)",
    )
    _endpoint_option(bulk)
    bulk.add_argument("--json", action="store_true", help="print JSON lines")
    _timeout_option(bulk, "give up if the map has not finished after this long")
    bulk.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    bulk.set_defaults(handler=_map)

    task = commands.add_parser(
        "task",
        help="one task: status, then result or exception with traceback",
        epilog="Exit status: 0 if the task succeeded or has not finished, 1 if it"
        " failed, 2 for an id the service does not know.",
    )
    task.add_argument("task_id", metavar="ID")
    task.add_argument("--json", action="store_true", help="print one JSON object")
    task.set_defaults(handler=_task)

    tasks = commands.add_parser("tasks", help="recent tasks, newest first")
    _limit_option(tasks, 20)
    tasks.add_argument("--json", action="store_true", help="print JSON lines")
    tasks.set_defaults(handler=_tasks)

    functions = commands.add_parser(
        "functions", help="registered functions, newest first"
    )
    _limit_option(functions, 20)
    functions.add_argument("--json", action="store_true", help="print JSON lines")
    functions.set_defaults(handler=_functions)

    endpoints = commands.add_parser(
        "endpoints",
        help="the service's endpoints: id, name, status, engine, workers",
    )
    endpoints.add_argument("--json", action="store_true", help="print JSON lines")
    endpoints.set_defaults(handler=_endpoints)


def _endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        metavar="ID",
        help="the endpoint to run on (default: the embedded service's local one)",
    )


def _timeout_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout", type=_positive_seconds, metavar="SECONDS", help=what
    )


def _limit_option(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--limit",
        type=_count,
        default=default,
        metavar="N",
        help=f"at most N rows (default {default})",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _client() -> Client:
    """``Client()``; a service that cannot start (an unknown ``$FREIGHT_ENGINE``
    or ``$FREIGHT_SERVICE``, a bad ``$FREIGHT_WORKERS``, an unusable
    ``$FREIGHT_HOME`` or database) is a ``UsageError``."""
    import sqlite3

    from freight.client import Client

    try:
        return Client()
    except (LookupError, ValueError, OSError, RuntimeError, sqlite3.Error) as e:
        raise UsageError(f"cannot start the service: {e}") from e


def _uuid(text: str, what: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise UsageError(f"{what} is not a valid id (a UUID): {text!r}") from None


def _executor(client: Client, endpoint: str | None) -> Executor:
    """An executor on ``endpoint`` (checked to exist) or the local endpoint."""
    from freight.client import Executor

    if endpoint is not None:
        endpoint = _uuid(endpoint, "--endpoint")
        client.get_endpoint_status(endpoint)  # UnknownEndpoint -> exit 2
    elif not client.binary_payloads or not client.get_endpoints():
        raise UsageError("this service has no local endpoint; pass --endpoint ID")
    return Executor(endpoint_id=endpoint, client=client)


def _run(ns: argparse.Namespace) -> int:
    fn = _load_target(ns.target)
    args, kwargs = _parse_call_args(ns.args)
    client = _client()
    ex = _executor(client, ns.endpoint)  # a bad endpoint fails before registering
    try:
        function_id = client.register_function(fn)
        future = ex.submit_to_registered_function(function_id, args, kwargs)
        if not futures.wait([future], ns.timeout).done:
            stopped = future.terminate()
            print(
                f"freight: task {future.task_id} did not finish within"
                f" {ns.timeout:g} s; "
                + (
                    "it was stopped"
                    if stopped
                    else "this engine cannot stop it, so the service waits for it"
                    " before it shuts down"
                ),
                file=sys.stderr,
            )
            return 1
        try:
            value = future.result()
        except (ServiceError, SerdeError):  # refused, or a result not decodable here
            raise
        except Exception as exc:  # the task's own exception
            return _report_failure(exc, future.task_id, as_json=ns.json)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
    if ns.json:
        print(
            json.dumps(
                {
                    "task_id": future.task_id,
                    "function_id": function_id,
                    "endpoint_id": ex.endpoint_id,
                    "status": "success",
                    **_result_fields(value),
                }
            )
        )
    else:
        print(value)
    return 0


def _map(ns: argparse.Namespace) -> int:
    sources = [bool(ns.items), ns.range_n is not None, ns.args_file is not None]
    if sum(sources) != 1:
        raise UsageError(
            "map: give the inputs as exactly one of ITEMS, --range N or --args-file"
        )
    fn = _load_target(ns.target)
    total: int | None
    if ns.items:
        calls: Iterator[tuple[Any, ...]] = ((_literal(i),) for i in ns.items)
        total = len(ns.items)
    elif ns.range_n is not None:
        calls = ((i,) for i in range(ns.range_n))
        total = ns.range_n
    else:
        calls, total = _file_calls(ns.args_file)
    iterables = _columns(calls)
    show = ns.progress if ns.progress is not None else sys.stderr.isatty()
    client = _client()
    ex = _executor(client, ns.endpoint)
    done = 0
    try:
        results = ex.map(fn, *iterables, timeout=ns.timeout, chunksize=ns.chunksize)
        with _progress(total, enabled=show) as advance:
            for value in results:
                if ns.json:
                    print(json.dumps({"index": done, **_result_fields(value)}))
                else:
                    print(value)
                done += 1
                advance()
    except (ServiceError, SerdeError, UsageError):
        raise
    except Exception as exc:
        if isinstance(exc, TimeoutError) and not hasattr(exc, "remote_traceback"):
            # Executor.map's own deadline, not a call that raised TimeoutError.
            print(
                f"freight: map did not finish within {ns.timeout:g} s ({done} results)",
                file=sys.stderr,
            )
            return 1
        # A call's own exception, raised when the iteration reached it.
        return _report_failure(exc, None, as_json=ns.json, call=done)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
    return 0


def _file_calls(path: str) -> tuple[Iterator[tuple[Any, ...]], int | None]:
    """The calls of an ``--args-file`` (read lazily) and their number if known."""
    if path == "-":
        return _json_calls(sys.stdin, "<stdin>"), None
    try:
        with open(path, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
        handle = open(path, encoding="utf-8")  # closed by _json_calls
    except OSError as e:
        raise UsageError(f"cannot read {path!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path!r} is not UTF-8 text: {e.reason}") from None
    return _json_calls(handle, path, close=True), total


def _json_calls(
    lines: IO[str], name: str, *, close: bool = False
) -> Iterator[tuple[Any, ...]]:
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{name}, line {number}: not JSON: {e.msg}") from None
            if isinstance(value, list):
                if not value:
                    raise UsageError(f"{name}, line {number}: an empty argument list")
                yield tuple(value)
            else:
                yield (value,)
    finally:
        if close:
            lines.close()


def _columns(calls: Iterator[tuple[Any, ...]]) -> list[Iterator[Any]]:
    """``Executor.map``'s iterables (one per argument position) from calls of
    one arity, lazily: the first call fixes the arity, a later one that differs
    raises ``UsageError`` when the map reaches it."""
    first = next(calls, None)
    if first is None:
        return []
    arity = len(first)

    def checked() -> Iterator[tuple[Any, ...]]:
        yield first
        for number, call in enumerate(calls, 2):
            if len(call) != arity:
                raise UsageError(
                    f"input {number} has {len(call)} argument(s); the first had {arity}"
                )
            yield call

    return [
        map(operator.itemgetter(i), column)
        for i, column in enumerate(itertools.tee(checked(), arity))
    ]


@contextlib.contextmanager
def _progress(total: int | None, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr; yields the function that advances it."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("map"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        # Results printed to a terminal go above the bar; to a file, untouched.
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task("map", total=total)
        yield lambda: bar.advance(task)


def _task(ns: argparse.Namespace) -> int:
    task_id = _uuid(ns.task_id, "task ID")
    status = _client().get_task(task_id)  # UnknownTask -> exit 2
    out: dict[str, Any] = {
        "task_id": task_id,
        "status": status["status"],
        "pending": status["pending"],
        "completion_t": status.get("completion_t"),
    }
    failed = "exception" in status
    if "result" in status:
        out.update(_result_fields(status["result"]))
    elif failed:
        out["exception"] = _exception_fields(status["exception"])
    if ns.json:
        print(json.dumps(out))
        return 1 if failed else 0
    print(f"task       {task_id}")
    print(f"status     {out['status']}")
    if out["completion_t"] is not None:
        print(f"completed  {_when(out['completion_t'])}")
    if "result" in status:
        print(f"result     {_clip(str(status['result']))}")
    elif failed:
        exc = out["exception"]
        print(f"exception  {exc['type']}: {exc['message']}")
        if exc["traceback"]:
            print(exc["traceback"].rstrip("\n"))
    return 1 if failed else 0


def _tasks(ns: argparse.Namespace) -> int:
    client = _client()
    rows = _listing(client).list_tasks(ns.limit)
    names: dict[str, str] = {}
    for row in rows:
        fid = str(row["function_id"])
        if row.get("function_name"):  # the core may give it with the row
            names[fid] = str(row["function_name"])
        elif fid not in names:
            names[fid] = _function_name(client, fid)
    if ns.json:
        for row in rows:
            print(json.dumps({**row, "function_name": names[str(row["function_id"])]}))
        return 0
    print(
        format_table(
            [
                {
                    "task_id": row["task_id"],
                    "status": row["status"],
                    "function": names[str(row["function_id"])],
                    "completed": _when(row.get("completion_t")),
                }
                for row in rows
            ]
        )
    )
    return 0


def _functions(ns: argparse.Namespace) -> int:
    rows = _listing(_client()).list_functions(ns.limit)
    if ns.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(
        format_table(
            [
                {
                    "function_id": row["function_uuid"],
                    "name": row["function_name"],
                    "registered": _when(row.get("created")),
                    "description": _first_line(row.get("description")),
                }
                for row in rows
            ]
        )
    )
    return 0


def _endpoints(ns: argparse.Namespace) -> int:
    client = _client()
    rows = []
    for ep in client.get_endpoints():
        details = client.get_endpoint_status(ep["uuid"]).get("details", {})
        rows.append(
            {
                "endpoint_id": ep["uuid"],
                "name": ep.get("name"),
                "status": ep.get("status"),
                "engine": details.get("engine"),
                # Live workers (an engine may start them on demand), and how many
                # tasks it can run at once.
                "workers": details.get("workers"),
                "capacity": details.get("capacity"),
                "queued": details.get("queued"),
                "running": details.get("running"),
            }
        )
    if ns.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(format_table([{k: _cell(v) for k, v in row.items()} for row in rows]))
    return 0


def _listing(client: Client) -> _Listing:
    transport = client.transport
    if not isinstance(transport, _Listing):
        raise UsageError(
            f"this service ({type(transport).__name__}) cannot list tasks and"
            " functions; freight's embedded service can"
        )
    return transport


def _function_name(client: Client, function_id: str) -> str:
    try:
        return str(client.get_function(function_id)["function_name"])
    except ServiceError:  # deleted since
        return "(deleted)"


def _result_fields(value: Any) -> dict[str, Any]:
    """``result`` as JSON where the value is JSON-able, else its repr; and
    ``result_repr`` always."""
    try:
        json.dumps(value)
        jsonable = value
    except (TypeError, ValueError):
        jsonable = repr(value)
    return {"result": jsonable, "result_repr": repr(value)}


def _exception_fields(exc: BaseException) -> dict[str, Any]:
    """A task's exception as ``type``, ``message`` and remote ``traceback``:
    the original type where the client rebuilt it, else the remote type name
    ``TaskExecutionFailed`` carries."""
    from freight.client.errors import TaskExecutionFailed

    if isinstance(exc, TaskExecutionFailed) and exc.type_name:
        type_name, message = exc.type_name, exc.message or ""
    else:
        type_name, message = type(exc).__qualname__, str(exc)
        module = type(exc).__module__
        if module != "builtins":
            type_name = f"{module}.{type_name}"
    traceback = getattr(exc, "remote_traceback", None) or ""
    return {"type": type_name, "message": message, "traceback": traceback}


def _report_failure(
    exc: BaseException, task_id: str | None, *, as_json: bool, call: int | None = None
) -> int:
    """Print a failed task's (or the map input's at index ``call``) exception:
    type, message and remote traceback on stderr, and the JSON object on stdout
    with ``as_json``; returns exit status 1."""
    fields = _exception_fields(exc)
    if as_json:
        record: dict[str, Any] = {
            "task_id": task_id,
            "status": "failed",
            "exception": fields,
        }
        if call is not None:
            record["index"] = call
        print(json.dumps(record))
    what = f"task {task_id}" if task_id else f"input {(call or 0) + 1}"
    print(
        f"freight: {what} failed: {fields['type']}: {fields['message']}",
        file=sys.stderr,
    )
    if fields["traceback"]:
        print(fields["traceback"].rstrip("\n"), file=sys.stderr)
    return 1


def _when(epoch: object) -> str:
    """A stored epoch time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` if none."""
    try:
        t = float(epoch)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def _first_line(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        return "-"
    line = text.strip().splitlines()[0]
    return line if len(line) <= 60 else line[:57] + "..."


def _clip(text: str, limit: int = 2000) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters; --json prints all)"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


_CLIENT_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "map": _map,
    "task": _task,
    "tasks": _tasks,
    "functions": _functions,
    "endpoints": _endpoints,
}


# -- freight service: the networked service over HTTP ---------------------------------
def _add_service_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    serve = commands.add_parser(
        "service",
        help="serve the service over HTTP (the reference's REST routes)",
        description="Serve the embedded service of HOME (its local endpoint"
        " included) over HTTP with uvicorn, until interrupted.  No authentication"
        " yet: bind to 127.0.0.1 unless the network is trusted.  Needs the"
        " `service` extra (fastapi, uvicorn).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument(
        "--port", type=int, default=5000, help="default 5000 (the SDK's 'local')"
    )
    serve.add_argument("--home", default=None, help="default $FREIGHT_HOME")
    serve.add_argument(
        "--workers", type=_count, default=None, help="the local endpoint's workers"
    )
    # -- AMQP results for the reference's Executor --
    serve.add_argument(
        "--broker-url",
        default=os.environ.get("FREIGHT_BROKER_URL") or None,
        help="AMQP broker for the reference Executor's results, e.g."
        " amqp://guest:guest@127.0.0.1:5672/ (default $FREIGHT_BROKER_URL; none:"
        " GET /v2/get_amqp_result_connection_url answers 501)",
    )
    serve.add_argument(
        "--queue-prefix",
        default=os.environ.get("FREIGHT_QUEUE_PREFIX") or None,
        help="prefix of the result queues (default $FREIGHT_QUEUE_PREFIX, else"
        " freight.results.)",
    )
    # -- end AMQP --
    serve.set_defaults(handler=_serve)


def _serve(ns: argparse.Namespace) -> int:
    try:
        import uvicorn

        from freight.service.http import create_app
    except ImportError as e:
        raise UsageError(
            f"`freight service` needs the service extra ({e});"
            " pip install 'freight[service]'"
        ) from None
    from freight.service.embedded import embedded_service, shutdown_embedded

    if ns.broker_url and not ns.broker_url.startswith(("amqp://", "amqps://")):
        raise UsageError(f"--broker-url must be amqp:// or amqps://: {ns.broker_url!r}")
    core = embedded_service(ns.home, workers=ns.workers)
    try:
        app = create_app(core, broker_url=ns.broker_url, queue_prefix=ns.queue_prefix)
        uvicorn.run(
            app,
            host=ns.host,
            port=ns.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    finally:
        shutdown_embedded()
    return 0


_CLIENT_COMMANDS["service"] = _serve


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
