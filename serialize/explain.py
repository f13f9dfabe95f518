"""Why does this function round-trip with one strategy and not another?

``explain`` round-trips one call, ``function(*args, **kwargs)``, through every
selected code strategy and reports, per strategy (a ``StrategyExplanation`` row of an
``ExplainReport``): whether it worked, the function's payload size (text characters
and binary-envelope bytes), encode and decode times (measured and reported, never
asserted), what the copy's call did and whether that matched the original's outcome,
and *why* it failed in a sentence a user can act on.

The original is called once, for the outcome every copy must match; each copy is
decoded and called either in this process (through the message framing, as a
receiver gets it) or, with ``isolated=True``, in a fresh ``python -I`` subprocess per
strategy exactly as ``freight.serialize.isolation.check_isolated`` runs it (the
children run concurrently).  Every failure of a round trip is reported, not raised;
only a selection that names an unknown, data or decode-only strategy raises
``SerdeError``.  ``str(report)`` is a table (``format_table``, which the command line
uses too); ``report.to_dict()`` is JSON-able.

This module builds on ``freight.serialize.isolation`` (its ``Stage``, ``ErrorInfo``,
child process and reason table), never the other way round.  Nothing in it names a
concrete strategy: strategies are reached through the registry and the facade's
public API only.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias, TypedDict

from freight.serialize.envelope import FRAMES, TEXT
from freight.serialize.facade import ComputeSerializer
from freight.serialize.isolation import (
    DEFAULT_TIMEOUT,
    ErrorInfo,
    Stage,
    StrPath,
    _child_options,
    _ChildOptions,
    _clip,
    _decode_call,
    _reason,
    _run_child,
    _Subject,
    _subject,
)
from freight.serialize.registry import Strategylike
from freight.serialize.strategy import SerializationStrategy

__all__ = [
    "ExplainReport",
    "StrategyExplanation",
    "explain",
    "explain_call",
    "format_table",
]

#: What ``explain`` accepts as its first argument (see ``explain``).
StrategySelection: TypeAlias = (
    "ComputeSerializer | Strategylike | Iterable[Strategylike] | None"
)


@dataclass(frozen=True)
class StrategyExplanation:
    """One code strategy's verdict on one call."""

    #: The strategy's registered name, class name and identifier (without ``\\n``).
    strategy: str
    class_name: str
    identifier: str
    #: Round-tripped, and the copy's call outcome matched the original's.
    ok: bool
    stage: Stage
    #: The function's text payload length, and its binary-envelope size in bytes.
    payload_chars: int | None = None
    payload_bytes: int | None = None
    #: Time to serialize, and to deserialize, the function's payload (measured,
    #: reported, never asserted; in isolated mode decoding is timed in the child).
    encode_seconds: float | None = None
    decode_seconds: float | None = None
    #: What the copy did: ``"returned 3"`` or ``"raised ValueError: ..."``.
    outcome: str | None = None
    #: Whether ``outcome`` matched the original's; ``None`` if it was never called.
    matched: bool | None = None
    error: ErrorInfo | None = None
    #: Why it failed, in a sentence; ``None`` when ``ok``.
    reason: str | None = None
    isolated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict (``error`` as ``"Type: message"``)."""
        return {
            "strategy": self.strategy,
            "class": self.class_name,
            "identifier": self.identifier,
            "ok": self.ok,
            "stage": self.stage.value,
            "payload_chars": self.payload_chars,
            "payload_bytes": self.payload_bytes,
            "encode_seconds": self.encode_seconds,
            "decode_seconds": self.decode_seconds,
            "outcome": self.outcome,
            "matched": self.matched,
            "error": None if self.error is None else str(self.error),
            "reason": self.reason,
            "traceback": None if self.error is None else self.error.traceback or None,
            "isolated": self.isolated,
        }


@dataclass(frozen=True)
class ExplainReport:
    """Every explained strategy's verdict on one call; ``str()`` is a table."""

    #: ``module.qualname`` of the function.
    function: str
    #: The call's arguments as written: ``"1, 2, scale=3"``.
    call: str
    #: What the original did: ``"returned 3"`` or ``"raised ValueError: ..."``.
    expected: str
    isolated: bool
    strategies: tuple[StrategyExplanation, ...]

    @property
    def ok(self) -> bool:
        """Some strategy worked."""
        return any(s.ok for s in self.strategies)

    @property
    def working(self) -> list[str]:
        """The names of the strategies that worked, in report order."""
        return [s.strategy for s in self.strategies if s.ok]

    def __getitem__(self, strategy: str) -> StrategyExplanation:
        """The row for a strategy, by registered name, class name or identifier."""
        for row in self.strategies:
            if strategy in (row.strategy, row.class_name, row.identifier):
                return row
        raise KeyError(strategy)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-able dict per strategy."""
        return [s.to_dict() for s in self.strategies]

    def to_dict(self) -> dict[str, Any]:
        """The whole report as one JSON-able dict."""
        return {
            "function": self.function,
            "call": self.call,
            "expected": self.expected,
            "isolated": self.isolated,
            "ok": self.ok,
            "strategies": self.to_dicts(),
        }

    def __str__(self) -> str:
        where = (
            "decoded and called in a fresh `python -I` subprocess"
            if self.isolated
            else "decoded and called in this process"
        )
        rows = [
            {
                "strategy": s.strategy,
                "id": s.identifier,
                "round trip": "ok" if s.ok else "FAILED",
                "chars": _number(s.payload_chars),
                "bytes": _number(s.payload_bytes),
                "encode": _ms(s.encode_seconds),
                "decode": _ms(s.decode_seconds),
                "why": s.reason or "",
            }
            for s in self.strategies
        ]
        head = f"{self.function}({self.call}) {self.expected}\n{where}\n"
        return head + format_table(rows)


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Left-aligned columns under a dashed header; ``"(none)"`` for no rows."""
    if not rows:
        return "(none)"
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))

    out = [line(headers).rstrip(), "  ".join("-" * w for w in widths)]
    out += [line(c).rstrip() for c in cells]
    return "\n".join(out)


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def explain(
    strategies: StrategySelection,
    function: Callable[..., Any],
    /,
    *args: Any,
    isolated: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    pythonpath: Iterable[StrPath] = (),
    python: StrPath | None = None,
    **kwargs: Any,
) -> ExplainReport:
    """Round-trip ``function(*args, **kwargs)`` through code strategies and say, per
    strategy, whether it worked and why not.

    ``strategies`` is a ``ComputeSerializer`` (explain its code strategy with that
    serializer exactly as configured -- data strategy, allowlist, registry; its
    function cache too, so a function it already serialized reports a cache hit's
    encode time), one strategy-like or an iterable of them (each with the default
    data strategy, uncached), or ``None`` (every selectable code strategy in the
    default registry).  The function is called once here, for the
    outcome the copies must match, and once per strategy: in this process, or with
    ``isolated=True`` in a fresh subprocess per strategy (as ``check_isolated``; the
    children run concurrently).  Raises ``SerdeError`` if ``strategies`` names an
    unknown, data or decode-only strategy; every failure of a round trip is reported,
    not raised.  ``isolated``, ``timeout``, ``pythonpath`` and ``python`` are options
    of this function; ``explain_call`` takes the call's arguments without that
    restriction.
    """
    return explain_call(
        strategies,
        function,
        args,
        kwargs,
        isolated=isolated,
        timeout=timeout,
        pythonpath=pythonpath,
        python=python,
    )


def explain_call(
    strategies: StrategySelection,
    function: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    isolated: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    pythonpath: Iterable[StrPath] = (),
    python: StrPath | None = None,
) -> ExplainReport:
    """``explain`` with the call's arguments given as a sequence and a mapping."""
    call_args, call_kwargs = tuple(args), dict(kwargs or {})
    options = _child_options(timeout, pythonpath, python, None)
    serializers = _serializers_for(strategies)
    expected, _ = _call(function, call_args, call_kwargs)
    subject = _subject(function)
    if isolated:
        rows = _explain_isolated(
            serializers, function, call_args, call_kwargs, expected, options, subject
        )
    else:
        rows = [
            _explain_in_process(s, function, call_args, call_kwargs, expected, subject)
            for s in serializers
        ]
    return ExplainReport(
        function=f"{getattr(function, '__module__', None) or '?'}.{subject.name}",
        call=_call_repr(call_args, call_kwargs),
        expected=_describe(expected),
        isolated=isolated,
        strategies=tuple(rows),
    )


def _serializers_for(selection: StrategySelection) -> list[ComputeSerializer]:
    """The serializers to explain with: the one given, or one uncached serializer
    per selected code strategy."""
    if isinstance(selection, ComputeSerializer):
        return [selection]
    with warnings.catch_warnings():
        # Explaining a deprecated strategy is not using it.
        warnings.simplefilter("ignore", DeprecationWarning)
        base = ComputeSerializer(cache_code=False)
        chosen: list[Strategylike]
        if selection is None:
            chosen = [
                rec.strategy
                for rec in base.registry
                if rec.for_code and not rec.strategy.decode_only
            ]
        elif isinstance(selection, str | SerializationStrategy | type):
            chosen = [selection]
        else:
            chosen = list(selection)
        return [
            ComputeSerializer(
                strategy_code=strategy,
                strategy_data=base.data_serializer,
                registry=base.registry,
                cache_code=False,
            )
            for strategy in chosen
        ]


@dataclass
class _Encoded:
    """The caller's half of a round trip: payloads, sizes and encode time."""

    payloads: list[str]
    chars: int
    binary_bytes: int | None
    encode_seconds: float

    def measures(self) -> dict[str, Any]:
        """Its ``StrategyExplanation`` fields."""
        return {
            "payload_chars": self.chars,
            "payload_bytes": self.binary_bytes,
            "encode_seconds": self.encode_seconds,
        }


def _encode(
    serde: ComputeSerializer,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    subject: _Subject,
    isolated: bool,
) -> _Encoded | StrategyExplanation:
    """Serialize function, args and kwargs; a failed row if that is impossible.

    The function is encoded by the serializer's code ``StrategyCodec`` (its
    function cache, if any, would time a lookup, not an encode); the arguments
    by the serializer, as a call sends them."""
    codec = serde.code_codec
    started = time.perf_counter()
    try:
        code_payload = codec.serialize(function)
    except Exception as e:
        return _row(serde, Stage.SERIALIZE, isolated, error=e, subject=subject)
    encode_seconds = time.perf_counter() - started
    try:
        data_payloads = [serde.serialize(args), serde.serialize(kwargs)]
    except Exception as e:
        return _row(
            serde,
            Stage.SERIALIZE,
            isolated,
            error=e,
            subject=subject,
            arguments=True,
            payload_chars=TEXT.size(code_payload),
            encode_seconds=encode_seconds,
        )
    return _Encoded(
        [code_payload, *data_payloads],
        TEXT.size(code_payload),
        _binary_size(serde, function),
        encode_seconds,
    )


def _binary_size(serde: ComputeSerializer, function: Callable[..., Any]) -> int | None:
    """The function's binary-envelope message size (its frames, as the code
    strategy's codec makes them), or ``None`` if it cannot be had."""
    try:
        return FRAMES.size(FRAMES.dump(serde.code_codec, function))
    except Exception:
        return None


def _explain_in_process(
    serde: ComputeSerializer,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: _Outcome,
    subject: _Subject,
) -> StrategyExplanation:
    encoded = _encode(serde, function, args, kwargs, subject, isolated=False)
    if isinstance(encoded, StrategyExplanation):
        return encoded
    sizes = encoded.measures()
    try:
        # Through the message framing, as the receiver gets it.
        packed = serde.pack_buffers(encoded.payloads)
        copy, copy_args, copy_kwargs = _decode_call(serde, packed, sizes)
    except Exception as e:
        return _row(serde, Stage.DESERIALIZE, False, error=e, subject=subject, **sizes)
    got, error = _call(copy, copy_args, copy_kwargs)
    return _judge(serde, got, expected, False, subject, error=error, **sizes)


def _explain_isolated(
    serializers: list[ComputeSerializer],
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: _Outcome,
    options: _ChildOptions,
    subject: _Subject,
) -> list[StrategyExplanation]:
    # Encode here, one strategy after another, so encode times are not skewed by
    # the children; then run the children concurrently.
    encoded = [_encode(s, function, args, kwargs, subject, True) for s in serializers]

    def one(
        serde: ComputeSerializer, enc: _Encoded | StrategyExplanation
    ) -> StrategyExplanation:
        if isinstance(enc, StrategyExplanation):
            return enc
        packed = serde.pack_buffers(enc.payloads)
        check = _run_child(serde, packed, options, subject)
        sizes = {**enc.measures(), "decode_seconds": check.decode_seconds}
        if check.stage is Stage.DONE:
            return _judge(serde, (True, check.result), expected, True, subject, **sizes)
        if check.stage is Stage.CALL and check.error is not None:
            got = (False, str(check.error))
            return _judge(
                serde, got, expected, True, subject, error=check.error, **sizes
            )
        return StrategyExplanation(
            **_identity(serde),
            ok=False,
            stage=check.stage,
            error=check.error,
            reason=check.reason,
            isolated=True,
            **sizes,
        )

    workers = max(1, min(len(serializers), os.cpu_count() or 2))
    with ThreadPoolExecutor(workers, thread_name_prefix="freight-check") as pool:
        return list(pool.map(one, serializers, encoded))


#: ``(True, result)`` or ``(False, "ExceptionType: message")``.
_Outcome: TypeAlias = tuple[bool, Any]


def _call(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[_Outcome, ErrorInfo | None]:
    """Call ``function``: its outcome, and what it raised as data if it did."""
    try:
        return (True, function(*args, **kwargs)), None
    except Exception as e:
        info = ErrorInfo.from_exception(e, skip_frames=1)
        return (False, str(info)), info


def _same_outcome(got: _Outcome, expected: _Outcome) -> bool:
    """Equal outcomes; for results whose type compares by identity (functions,
    plain objects), the same type is as equal as a copy can be."""
    try:
        if bool(got == expected):
            return True
    except Exception:
        # An __eq__ without a plain truth value (numpy arrays, and containers
        # holding them): equal pickles are equal values.
        try:
            return pickle.dumps(got, 5) == pickle.dumps(expected, 5)
        except Exception:
            return False
    (ok_got, value_got), (ok_expected, value_expected) = got, expected
    return (
        ok_got
        and ok_expected
        and type(value_got) is type(value_expected)
        and _compares_by_identity(type(value_got))
    )


def _compares_by_identity(kind: type) -> bool:
    """No class in ``kind``'s MRO but ``object`` defines ``__eq__``."""
    return all("__eq__" not in vars(k) for k in kind.__mro__[:-1])


def _describe(outcome: _Outcome) -> str:
    returned, value = outcome
    return f"returned {_short_repr(value)}" if returned else f"raised {value}"


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {type(value).__name__}>"
    return _clip(text)


def _judge(
    serde: ComputeSerializer,
    got: _Outcome,
    expected: _Outcome,
    isolated: bool,
    subject: _Subject,
    *,
    error: ErrorInfo | None = None,
    **sizes: Any,
) -> StrategyExplanation:
    """The row for a copy that was called: ok if its outcome matched."""
    if _same_outcome(got, expected):
        return StrategyExplanation(
            **_identity(serde),
            ok=True,
            stage=Stage.DONE,
            outcome=_describe(got),
            matched=True,
            isolated=isolated,
            **sizes,
        )
    returned, _ = got
    detail = (
        f"the round-tripped function {_describe(got)},"
        f" the original {_describe(expected)}"
    )
    reason = (
        detail
        if returned or error is None
        else _reason(Stage.CALL, error, serde, subject, detail=detail)
    )
    return StrategyExplanation(
        **_identity(serde),
        ok=False,
        stage=Stage.CALL,
        outcome=_describe(got),
        matched=False,
        error=error,
        reason=reason,
        isolated=isolated,
        **sizes,
    )


def _row(
    serde: ComputeSerializer,
    stage: Stage,
    isolated: bool,
    *,
    error: BaseException,
    subject: _Subject,
    arguments: bool = False,
    **sizes: Any,
) -> StrategyExplanation:
    """A failed row for an exception raised here, before or while decoding."""
    info = ErrorInfo.from_exception(error)
    return StrategyExplanation(
        **_identity(serde),
        ok=False,
        stage=stage,
        error=info,
        reason=_reason(stage, info, serde, subject, arguments=arguments),
        isolated=isolated,
        **sizes,
    )


class _Identity(TypedDict):
    strategy: str
    class_name: str
    identifier: str


def _identity(serde: ComputeSerializer) -> _Identity:
    strategy = serde.code_serializer
    return {
        "strategy": strategy.name,
        "class_name": type(strategy).__name__,
        "identifier": strategy.identifier.rstrip("\n"),
    }


def _call_repr(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return ", ".join(
        [*map(_short_repr, args), *(f"{k}={_short_repr(v)}" for k, v in kwargs.items())]
    )
