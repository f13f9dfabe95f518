"""The ``freight`` command line.

``freight strategies`` lists every registered strategy and where it came from;
``freight check MODULE:FUNCTION [ARGS...]`` round-trips a function and its arguments
through every code strategy and says which ones work.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import runpy
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from freight.serialize import ComputeSerializer, SerdeError, default_registry


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

    ns = parser.parse_args(argv)
    try:
        if ns.command == "strategies":
            return _strategies(as_json=ns.json)
        return _check(ns.target, ns.args, ns.strategy, as_json=ns.json)
    except (SerdeError, UsageError) as e:
        print(f"freight: {e}", file=sys.stderr)
        return 2


class UsageError(Exception):
    """A command-line argument that cannot be acted on."""


def _strategies(*, as_json: bool) -> int:
    rows = []
    for rec in default_registry():
        s = rec.strategy
        status = "decode-only" if s.decode_only else "yes" if s.deprecated else "no"
        rows.append(
            {
                "identifier": rec.identifier.rstrip("\n"),
                "name": rec.name,
                "class": rec.cls.__name__,
                "kind": "code" if rec.for_code else "data",
                "plugin": rec.plugin.name,
                "distribution": rec.plugin.distribution or "(run time)",
                "deprecated": status,
            }
        )
    if as_json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print_table(rows)
    return 0


@dataclass
class CheckResult:
    """One strategy's verdict on one function."""

    strategy: str
    identifier: str
    ok: bool
    payload_size: int | None
    error: str | None


def _check(
    target: str, raw_args: list[str], only: list[str] | None, *, as_json: bool
) -> int:
    fn = _load_target(target)
    args, kwargs = _parse_call_args(raw_args)
    expected = _outcome(fn, args, kwargs)
    records = [
        rec
        for rec in default_registry()
        if rec.for_code and not rec.strategy.decode_only
    ]
    if only:
        wanted = {default_registry().resolve(name).identifier for name in only}
        records = [rec for rec in records if rec.identifier in wanted]
    results = [check_one(fn, args, kwargs, expected, rec.name) for rec in records]
    if as_json:
        for r in results:
            print(json.dumps(asdict(r)))
    else:
        print(f"{target}({_call_repr(args, kwargs)}) -> {expected[1]!r}")
        _print_table(
            [
                {
                    "strategy": r.strategy,
                    "id": r.identifier,
                    "round trip": "ok" if r.ok else "FAILED",
                    "payload chars": "-" if r.payload_size is None else r.payload_size,
                    "error": r.error or "",
                }
                for r in results
            ]
        )
    return 0 if any(r.ok for r in results) else 1


def check_one(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: tuple[bool, Any],
    strategy: str,
) -> CheckResult:
    """Round-trip ``fn`` with ``strategy`` and compare the call's outcome."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        serde = ComputeSerializer(strategy_code=strategy)
    ident = serde.code_serializer.identifier.rstrip("\n")
    size: int | None = None
    try:
        size = len(serde.serialize(fn))
        rfn, rargs, rkwargs = serde.check_strategies(fn, *args, **kwargs)
    except SerdeError as e:
        return CheckResult(strategy, ident, False, size, _cause_text(e))
    got = _outcome(rfn, rargs, rkwargs)
    if not _same_outcome(got, expected):
        detail = (
            f"the round-tripped function {_describe(got)},"
            f" the original {_describe(expected)}"
        )
        return CheckResult(strategy, ident, False, size, detail)
    return CheckResult(strategy, ident, True, size, None)


def _outcome(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, "ExceptionType: message")``."""
    try:
        return True, fn(*args, **kwargs)
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"


def _same_outcome(got: tuple[bool, Any], expected: tuple[bool, Any]) -> bool:
    """Equal outcomes; for results whose type compares by identity (functions,
    plain objects), the same type is as equal as a copy can be."""
    if got == expected:
        return True
    (ok_got, value_got), (ok_expected, value_expected) = got, expected
    return (
        ok_got
        and ok_expected
        and type(value_got) is type(value_expected)
        and type(value_got).__eq__ is object.__eq__
    )


def _describe(outcome: tuple[bool, Any]) -> str:
    returned, value = outcome
    return f"returned {value!r}" if returned else f"raised {value}"


def _cause_text(error: BaseException) -> str:
    """The innermost explanation in an exception chain, on one line."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:160]


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
    except (ImportError, OSError) as e:
        raise UsageError(f"cannot load {module_part!r}: {e}") from e
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


def _call_repr(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(none)")
        return
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
