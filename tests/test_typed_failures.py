"""Failures are values with types and fields: raised so, recorded so, read so.

``freight.serialize.isolation`` explains a failed round trip from the failure's type
and fields, read from its ``freight.exception/1`` record; these tests pin that it
never needs the words of a message (they scramble every message and expect the same
explanation).
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import subprocess
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import samples

from freight.plugins.source_strategies import exec_source, require_self_contained
from freight.serialize import (
    ClosureNotCarried,
    ComputeSerializer,
    DeserializationError,
    MemberFailed,
    MissingGlobal,
    SourceDoesNotDefine,
    SourceUnavailable,
    StrategyNotAllowed,
    TypedFailure,
    UnknownStrategy,
    exception_to_dict,
    pack_buffers,
)
from freight.serialize.isolation import (
    ErrorInfo,
    Stage,
    _reason,
    _Subject,
    _subject,
    check_isolated,
)
from freight.serialize.remote_errors import read_exception_record
from freight.serialize.stream import BufferTooSmallError

# -- raised with their fields ----------------------------------------------------------

CLOSURE_NAMES = samples.make_closure(3).__code__.co_freevars


def test_a_closure_is_refused_with_the_captured_names() -> None:
    with pytest.raises(ClosureNotCarried) as info:
        require_self_contained(samples.make_closure(3))
    assert info.value.names == CLOSURE_NAMES
    assert info.value.function == samples.make_closure(3).__qualname__
    assert isinstance(info.value, ValueError)  # what a caller of the strategy caught


def test_a_builtin_has_no_source_and_says_it_is_not_python() -> None:
    serde = ComputeSerializer(strategy_code="source-text-inspect")
    with pytest.raises(Exception) as info:
        serde.serialize(len)
    cause = info.value.__cause__
    assert isinstance(cause, SourceUnavailable)
    assert cause.builtin is True and cause.function == "len"
    # What inspect raises (and the reference lets through) is still caught.
    assert isinstance(cause, TypeError) and isinstance(cause, OSError)


def test_source_that_binds_nothing_names_the_missing_name() -> None:
    with pytest.raises(SourceDoesNotDefine) as info:
        exec_source("foo", "x = 1\n")
    assert info.value.name == "foo"


def test_an_unknown_identifier_is_an_unknown_strategy() -> None:
    with pytest.raises(UnknownStrategy) as info:
        ComputeSerializer().deserialize("zz\nbody")
    assert info.value.identifier == "zz\n"
    # A malformed header is not an unknown strategy.
    with pytest.raises(DeserializationError) as malformed:
        ComputeSerializer().deserialize("zzzbody")
    assert not isinstance(malformed.value, UnknownStrategy)


def test_a_disallowed_strategy_names_its_identifier_and_name() -> None:
    sender = ComputeSerializer(strategy_code="source-dill")
    receiver = ComputeSerializer(allowed_deserializer_types=["dill-code", "dill-data"])
    with pytest.raises(StrategyNotAllowed) as info:
        receiver.deserialize(sender.serialize(samples.add))
    assert (info.value.identifier, info.value.strategy) == ("sd\n", "source-dill")
    assert "disabled by current configuration" in str(info.value)  # the reference's


def test_a_combo_whose_members_all_fail_raises_from_a_group_of_member_failures() -> (
    None
):
    serde = ComputeSerializer(strategy_code="all-code")
    # Two member parts whose sources do not define the function they name.
    broken = "12\n" + pack_buffers(["st\nfoo:x = 1\n", "sd\nfoo:x = 1\n"])
    with pytest.raises(DeserializationError) as info:
        serde.deserialize(broken)
    group = _find_group(info.value)
    assert group is not None
    assert all(isinstance(m, MemberFailed) for m in group.exceptions)
    members = [m.member for m in group.exceptions]  # type: ignore[attr-defined]
    assert members == ["source-text-inspect", "source-dill"]
    assert all(isinstance(m.__cause__, SourceDoesNotDefine) for m in group.exceptions)


def _find_group(error: BaseException | None) -> BaseExceptionGroup[Any] | None:
    while error is not None:
        if isinstance(error, BaseExceptionGroup):
            return error
        error = error.__cause__
    return None


@pytest.mark.parametrize("padding", [0, 4096], ids=["small", "large"])
def test_a_name_the_receiver_lacks_is_a_missing_global(
    monkeypatch: pytest.MonkeyPatch, padding: int
) -> None:
    # A module-level function pickled by reference, as a peer whose module had it
    # sends it; here the module does not define it.  (Small bodies take
    # pickle.loads first, large ones dill's Unpickler: both must say which name.)
    module = types.ModuleType("freight_test_peer_module")
    exec("def helper():\n    return 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    body = pickle.dumps((module.helper, b"x" * padding), protocol=4)
    del module.helper

    with pytest.raises(DeserializationError) as info:
        ComputeSerializer().deserialize("01\n" + base64.b64encode(body).decode())

    cause = info.value.__cause__
    assert isinstance(cause, MissingGlobal)
    assert (cause.module, cause.name) == (module.__name__, "helper")


# -- kept across pickling and across the wire ------------------------------------------

FAILURES: list[TypedFailure] = [
    UnknownStrategy("x", identifier="zz\n"),
    StrategyNotAllowed("x", identifier="sd\n", strategy="source-dill"),
    ClosureNotCarried("x", function="f", names=("a", "b")),
    SourceUnavailable("x", function="len", builtin=True),
    SourceDoesNotDefine("x", name="foo"),
    MissingGlobal("x", module="__main__", name="helper"),
    MemberFailed("x", member="dill-code"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: type(f).__name__)
def test_a_typed_failure_keeps_its_fields_through_pickle(
    failure: TypedFailure,
) -> None:
    again = pickle.loads(pickle.dumps(failure))
    assert type(again) is type(failure) and str(again) == str(failure)
    for name in failure.error_fields:
        assert getattr(again, name) == getattr(failure, name)


@pytest.mark.parametrize(
    "copy_of",
    [lambda e: pickle.loads(pickle.dumps(e)), copy.copy, copy.deepcopy],
    ids=["pickle", "copy", "deepcopy"],
)
def test_an_error_with_its_own_constructor_survives_pickle_and_copy(
    copy_of: Any,
) -> None:
    # BufferTooSmallError(needed, available) takes no message: unpickling must not
    # call it with one.
    error = BufferTooSmallError(10, 4)
    again = copy_of(error)
    assert type(again) is BufferTooSmallError and str(again) == str(error)
    assert (again.needed, again.available, again.reason) == (10, 4, error.reason)


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: type(f).__name__)
def test_a_typed_failure_keeps_its_fields_through_its_record(
    failure: TypedFailure,
) -> None:
    record = json.loads(json.dumps(exception_to_dict(failure)))
    read = read_exception_record(record)
    assert read.is_a(type(failure))
    expected = {n: getattr(failure, n) for n in failure.error_fields}
    assert dict(read.fields) == expected


def test_standard_errors_record_their_name() -> None:
    try:
        import no_such_module_here  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as e:
        record = read_exception_record(exception_to_dict(e))
    assert record.fields == {"name": "no_such_module_here", "path": None}
    try:
        undefined_name  # type: ignore[name-defined]  # noqa: B018
    except NameError as e:
        assert read_exception_record(exception_to_dict(e)).fields == {
            "name": "undefined_name"
        }


@pytest.mark.parametrize(
    "fields",
    [[], "x", {"k": 1.5}, {"k": {"nested": 1}}, {"k": [1, 2]}, {1: "v"}, {(1,): 1}],
    ids=[
        "array",
        "string",
        "float",
        "object",
        "non-string-array",
        "int-key",
        "tuple-key",
    ],
)
def test_the_reader_refuses_malformed_fields(fields: object) -> None:
    record = exception_to_dict(ValueError("v"))
    record["fields"] = fields
    with pytest.raises(DeserializationError, match="fields"):
        read_exception_record(record)


def test_error_info_reads_records_with_the_validating_reader() -> None:
    with pytest.raises(DeserializationError, match="malformed exception payload"):
        ErrorInfo.from_dict({"format": "freight.exception/1", "type": 3})


# -- explained by type and fields, not by words ----------------------------------------


def _scrambled(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with every message, argument and traceback replaced."""
    out = dict(record)
    out["message"] = "(scrambled)"
    out["args"] = None
    out["args_repr"] = None
    out["traceback"] = None
    for key in ("cause", "context"):
        if isinstance(out.get(key), dict):
            out[key] = _scrambled(out[key])
    if isinstance(out.get("exceptions"), list):
        out["exceptions"] = [_scrambled(m) for m in out["exceptions"]]
    return out


def _explain(
    error: BaseException, stage: Stage, subject: _Subject | None = None
) -> tuple[str, str]:
    """The reason for ``error``, from its record and from the scrambled record."""
    serde = ComputeSerializer(strategy_code="source-text-inspect")
    subject = subject or _Subject("f")
    record = exception_to_dict(error)
    plain = _reason(stage, ErrorInfo.from_dict(record), serde, subject)
    scrambled = _reason(stage, ErrorInfo.from_dict(_scrambled(record)), serde, subject)
    return plain, scrambled


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as e:
        return e


@pytest.mark.parametrize(
    ("error", "stage", "expected"),
    [
        (
            ClosureNotCarried("x", function="f", names=("a", "b")),
            Stage.SERIALIZE,
            "source strategies cannot carry closures (it captures a, b)",
        ),
        (
            MissingGlobal("x", module="__main__", name="helper"),
            Stage.DESERIALIZE,
            "'helper' is defined in __main__ and was pickled by reference",
        ),
        (
            MissingGlobal("x", module="pkg.mod", name="helper"),
            Stage.DESERIALIZE,
            "'helper' was pickled by reference to module 'pkg.mod'",
        ),
        (
            SourceUnavailable("x", function="len", builtin=True),
            Stage.SERIALIZE,
            "a built-in has no Python source",
        ),
        (
            SourceUnavailable("x", function="f", builtin=False),
            Stage.SERIALIZE,
            "its source code cannot be found",
        ),
        (
            SourceDoesNotDefine("x", name="foo"),
            Stage.DESERIALIZE,
            "does not define 'foo'",
        ),
        (
            StrategyNotAllowed("x", identifier="st\n", strategy="source-text-inspect"),
            Stage.DESERIALIZE,
            "the deserializer allowlist does not allow source-text-inspect",
        ),
        (
            UnknownStrategy("x", identifier="st\n"),
            Stage.DESERIALIZE,
            "is not registered in the receiving process",
        ),
        (
            ModuleNotFoundError("x", name="pkg"),
            Stage.DESERIALIZE,
            "module 'pkg' is not importable in the receiving process",
        ),
        (
            NameError("x", name="math"),
            Stage.CALL,
            "name 'math' is not defined",
        ),
        (
            SyntaxError("x"),
            Stage.DESERIALIZE,
            "does not compile on its own",
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_a_reason_comes_from_the_type_and_fields_alone(
    error: BaseException, stage: Stage, expected: str
) -> None:
    plain, scrambled = _explain(_raised(error), stage)
    assert expected in plain
    assert scrambled == plain


def _real_reason(serde: ComputeSerializer, stage: Stage, act: Any, fn: Any) -> str:
    """The reason ``_reason`` gives for the error ``act()`` really raises: chained
    as the strategies chain it (a typed failure from the raw error it read)."""
    with pytest.raises(Exception) as info:
        act()
    return _reason(stage, ErrorInfo.from_exception(info.value), serde, _subject(fn))


def test_a_real_builtin_failure_is_explained_by_its_typed_failure() -> None:
    for strategy in ("source-dill", "source-text-inspect"):
        serde = ComputeSerializer(strategy_code=strategy)
        reason = _real_reason(
            serde, Stage.SERIALIZE, lambda s=serde: s.serialize(len), len
        )
        assert "a built-in has no Python source" in reason


def test_a_real_exec_made_function_is_explained_by_its_typed_failure() -> None:
    namespace: dict[str, Any] = {}
    exec("def made(x):\n    return x\n", namespace)
    serde = ComputeSerializer(strategy_code="source-text-inspect")
    reason = _real_reason(
        serde,
        Stage.SERIALIZE,
        lambda: serde.serialize(namespace["made"]),
        namespace["made"],
    )
    assert "its source code cannot be found" in reason


def test_a_real_missing_global_is_explained_by_its_typed_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("freight_test_peer_module")
    exec("def helper():\n    return 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    helper = module.helper
    body = pickle.dumps(helper, protocol=4)
    del module.helper
    serde = ComputeSerializer()
    reason = _real_reason(
        serde,
        Stage.DESERIALIZE,
        lambda: serde.deserialize("01\n" + base64.b64encode(body).decode()),
        helper,
    )
    assert (
        "'helper' was pickled by reference to module 'freight_test_peer_module'"
        in reason
    )


def test_a_closure_over_more_names_than_max_args_still_names_them() -> None:
    names = tuple(f"v{i}" for i in range(40))
    record = read_exception_record(
        exception_to_dict(ClosureNotCarried("x", function="f", names=names))
    )
    kept = record.fields["names"]
    assert isinstance(kept, tuple) and kept and names[: len(kept)] == kept
    reason = _explain(
        ClosureNotCarried("x", function="f", names=names), Stage.SERIALIZE
    )
    assert "it captures v0, v1" in reason[0]


def test_a_real_combo_failure_explains_each_member_by_its_typed_failure() -> None:
    serde = ComputeSerializer(strategy_code="source-dill")
    combo = ComputeSerializer(strategy_code="all-code")
    # Both source members refuse a builtin, each from inspect's raw TypeError.
    group = ExceptionGroup(
        "no member worked",
        [
            MemberFailed.wrapping(member, _caught(lambda m=member: m.serialize(len)))
            for member in (
                serde.registry.resolve("source-text-inspect").strategy,
                serde.registry.resolve("source-dill").strategy,
            )
        ],
    )
    reason = _reason(
        Stage.SERIALIZE, ErrorInfo.from_exception(_raised(group)), combo, _subject(len)
    )
    assert reason.count("a built-in has no Python source") == 2


def _caught(act: Any) -> Exception:
    try:
        act()
    except Exception as e:
        return e
    raise AssertionError("expected a failure")


def test_a_combo_failure_is_explained_member_by_member() -> None:
    members = [
        MemberFailed("x", member="source-dill"),
        MemberFailed("x", member="dill-code"),
    ]
    members[0].__cause__ = ClosureNotCarried("x", function="f", names=("n",))
    members[1].__cause__ = MissingGlobal("x", module="__main__", name="g")
    error = DeserializationError("all failed")
    error.__cause__ = ExceptionGroup("members", members)

    plain, scrambled = _explain(_raised(error), Stage.DESERIALIZE)

    assert plain.startswith("no member worked: source-dill: source strategies cannot")
    assert "dill-code: 'g' is defined in __main__" in plain
    assert scrambled == plain


def test_a_lambda_without_source_is_explained_as_a_lambda() -> None:
    plain, scrambled = _explain(
        _raised(SourceUnavailable("x", function="<lambda>", builtin=False)),
        Stage.SERIALIZE,
        _Subject("<lambda>", is_lambda=True),
    )
    assert plain == scrambled
    assert plain.startswith("a lambda has no source of its own")


# -- the child that cannot import freight ----------------------------------------------


def test_a_child_without_freight_reports_it_in_the_protocol(tmp_path: Path) -> None:
    # A bare virtual environment: python -I there cannot import freight.
    venv = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    check = check_isolated(
        ComputeSerializer(), samples.add, 1, 2, python=str(python), timeout=60
    )
    assert check.stage is Stage.START
    assert check.error is not None and check.error.is_a(ModuleNotFoundError)
    assert check.reason is not None
    assert check.reason.startswith("freight is not importable in a fresh interpreter")


def test_field_text_counts_against_the_payload_text_budget() -> None:
    # 16 fields of 16 strings of 16 KiB: 4 MiB of field text for one exception.
    class Wide(TypedFailure):
        error_fields = tuple(f"f{i}" for i in range(16))

    big = tuple("x" * 16_000 for _ in range(16))
    error = Wide("wide", **{name: big for name in Wide.error_fields})
    record = exception_to_dict(error)

    text = json.dumps(record)
    assert len(text) < 1_100_000  # about max_total_chars (1 MiB), not 4 MiB
    assert record["truncated"] is True and "fields" not in record
    # Within the budget, fields are kept.
    small = Wide("wide", **{name: ("a", "b") for name in Wide.error_fields})
    assert exception_to_dict(small)["fields"]["f0"] == ["a", "b"]
