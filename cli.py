"""The ``freight`` command line.

``freight strategies`` lists every registered strategy and where it came from;
``freight check MODULE:FUNCTION [ARGS...]`` round-trips a function and its arguments
through every code strategy and says which ones work and why the others do not
(``freight.serialize.explain``); with ``--isolated`` each copy is decoded and called
in a fresh ``python -I`` subprocess, as a receiving process would
(``freight.serialize.isolation``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from freight.serialize import Property, SerdeError, default_registry
from freight.serialize.explain import explain_call, format_table
from freight.serialize.isolation import DEFAULT_TIMEOUT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="freight", description="Inspect and exercise freight's strategies."
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

    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already printed
        return e.code if isinstance(e.code, int) else 2
    try:
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
    except (SerdeError, UsageError) as e:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
