"""Exceptions crossing the wire as structured data (``freight.serialize.remote_errors``
and the ``ExceptionData`` strategy, identifier ``ex``).

What is pinned down: every field survives a round trip through JSON; builtin and
allowlisted types come back as themselves with their chain, notes and remote
traceback; anything else comes back as ``RemoteExecutionError`` carrying every
field; hostile exceptions (``str()`` that raises, cycles, huge chains) encode within
the limits; decoding never unpickles, never imports a module outside the allowlist
and never calls a constructor outside it; and malformed input only ever raises
``DeserializationError``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import subprocess
import sys
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.plugins import error_strategies
from freight.plugins.error_strategies import ExceptionData
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Property,
    SerializationError,
    default_registry,
)
from freight.serialize import remote_errors as remote
from freight.serialize.remote_errors import (
    DEFAULT_ALLOWED_MODULES,
    FORMAT,
    REMOTE_TRACEBACK_NOTE,
    ExceptionLimits,
    RemoteExecutionError,
    exception_from_dict,
    exception_to_dict,
)
from freight.testing import strategy_conformance

# -- exception classes of a user's module ----------------------------------------------

#: The module the classes below claim to live in; ``app_module`` makes it importable.
APP_MODULE = "freight_test_app_errors"


class AppError(Exception):
    """A user's exception: not rebuilt unless its module is allowed."""


class CodedError(Exception):
    """A user's exception whose constructor takes two scalars."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return f"[{self.code}] {self.detail}"


class NeedsObject(Exception):
    """A user's exception whose constructor needs more than the message."""

    def __init__(self, message: str, payload: dict[str, int]) -> None:
        super().__init__(message)
        self.payload = payload


class Outer:
    class InnerError(Exception):
        """A nested class: its qualname has a dot."""


class Recording(Exception):
    """Records every construction, to prove a decoder did not construct it."""

    calls: list[tuple[Any, ...]] = []  # noqa: RUF012 - a shared recorder on purpose

    def __init__(self, *args: Any) -> None:
        Recording.calls.append(args)
        super().__init__(*args)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() is broken")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr() is broken")


APP_CLASSES = [AppError, CodedError, NeedsObject, Outer, Recording, BadStr]
for _cls in APP_CLASSES:
    _cls.__module__ = APP_MODULE
Outer.InnerError.__module__ = APP_MODULE

#: The default allowlist plus the user's module.
WITH_APP = DEFAULT_ALLOWED_MODULES | {APP_MODULE}


@pytest.fixture
def app_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """``APP_MODULE`` importable, holding the classes above."""
    module = types.ModuleType(APP_MODULE)
    for cls in APP_CLASSES:
        setattr(module, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, APP_MODULE, module)
    return module


@pytest.fixture(autouse=True)
def _reset_recorder() -> None:
    Recording.calls.clear()


# -- helpers ---------------------------------------------------------------------------


def raised(exc: BaseException) -> BaseException:
    """``exc`` after being raised and caught, so it has a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def assert_json_domain(value: object, path: str = "$") -> None:
    """Only str, int, bool, None, list and str-keyed dict, all the way down."""
    if value is None or type(value) in (str, int, bool):
        return
    if type(value) is list:
        for i, item in enumerate(value):
            assert_json_domain(item, f"{path}[{i}]")
        return
    assert type(value) is dict, f"{path} is a {type(value).__name__}"
    for key, item in value.items():
        assert type(key) is str, f"{path} has a {type(key).__name__} key"
        assert_json_domain(item, f"{path}.{key}")


def to_wire(exc: BaseException, **kwargs: Any) -> dict[str, Any]:
    """The dict for ``exc`` after a trip through JSON text, checked JSON-typed."""
    d = exception_to_dict(exc, **kwargs)
    assert_json_domain(d)
    return json.loads(json.dumps(d))  # type: ignore[no-any-return]


def round_trip(exc: BaseException, **kwargs: Any) -> Exception:
    return exception_from_dict(to_wire(exc), **kwargs)


def payload(**fields: Any) -> dict[str, Any]:
    """A minimal valid top-level dict, with ``fields`` replacing its defaults."""
    d: dict[str, Any] = {
        "format": FORMAT,
        "type": "ValueError",
        "module": "builtins",
        "qualname": "ValueError",
        "message": "boom",
    }
    d.update(fields)
    return d


def chain_of(kind: str, n: int) -> BaseException:
    """``n`` + 1 exceptions linked by ``__cause__`` or ``__context__``."""
    exc: BaseException = KeyError("root")
    for i in range(n):
        new = ValueError(f"level {i}")
        setattr(new, kind, exc)
        exc = new
    return exc


def depth_of(d: dict[str, Any], key: str) -> int:
    depth = 0
    while d.get(key) is not None:
        d = d[key]
        depth += 1
    return depth


def fail_deep_inside() -> None:
    raise ValueError("failed deep inside")


# -- builtin exceptions ----------------------------------------------------------------


def test_value_error_round_trips_as_value_error() -> None:
    back = round_trip(ValueError("bad value", 3))
    assert type(back) is ValueError
    assert back.args == ("bad value", 3)


def test_key_error_keeps_its_key_not_its_quoted_str() -> None:
    d = to_wire(KeyError("k"))
    assert d["message"] == "'k'"  # str(KeyError) is the key's repr
    assert d["args"] == ["k"]
    back = exception_from_dict(d)
    assert type(back) is KeyError
    assert back.args == ("k",)
    assert str(back) == "'k'"


def test_key_error_with_an_unrepresentable_key_is_not_rebuilt_with_a_wrong_str() -> (
    None
):
    # The tuple key is not a scalar, so only the message travels; KeyError(message)
    # would read differently, so the decoder keeps the fields instead.
    back = round_trip(KeyError(("a", 1)))
    assert isinstance(back, RemoteExecutionError)
    assert back.message == "('a', 1)"
    assert back.args_repr == "(('a', 1),)"
    assert back.rebuild_error is not None and "not the message" in back.rebuild_error


def test_os_error_keeps_errno_strerror_and_file_names() -> None:
    exc = OSError(errno.ENOENT, "No such file or directory", "/tmp/x")
    assert type(exc) is FileNotFoundError
    back = round_trip(exc)
    assert type(back) is FileNotFoundError
    assert (back.errno, back.strerror, back.filename) == (
        errno.ENOENT,
        "No such file or directory",
        "/tmp/x",
    )
    assert back.args == exc.args
    assert str(back) == str(exc)


def test_os_error_with_two_file_names_round_trips() -> None:
    exc = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    back = round_trip(exc)
    assert type(back) is type(exc)
    assert (back.filename, back.filename2, str(back)) == ("a", "b", str(exc))


def test_zero_division_error_from_real_arithmetic_round_trips() -> None:
    with pytest.raises(ZeroDivisionError) as info:
        _ = 1 / 0
    back = round_trip(info.value)
    assert type(back) is ZeroDivisionError
    assert str(back) == "division by zero"


def test_exception_without_args_round_trips() -> None:
    back = round_trip(TypeError())
    assert type(back) is TypeError
    assert back.args == ()


def test_allowlisted_stdlib_exception_is_rebuilt() -> None:
    exc = subprocess.CalledProcessError(2, "make all")
    back = round_trip(exc)
    assert type(back) is subprocess.CalledProcessError
    assert (back.returncode, back.cmd, str(back)) == (2, "make all", str(exc))


def test_stdlib_exception_outside_the_allowlist_keeps_its_fields() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads("{")
    back = round_trip(info.value)
    assert isinstance(back, RemoteExecutionError)
    assert (back.type_name, back.module) == ("JSONDecodeError", "json.decoder")
    assert back.message == str(info.value)


def test_builtin_that_cannot_be_made_from_its_message_keeps_its_fields() -> None:
    exc = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    back = round_trip(exc)
    assert isinstance(back, RemoteExecutionError)
    assert back.type_name == "UnicodeDecodeError"
    assert back.message == str(exc)
    assert back.rebuild_error is not None


@pytest.mark.parametrize("cls", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exceptions_that_would_stop_the_receiver_are_never_rebuilt(
    cls: type[BaseException],
) -> None:
    back = round_trip(cls("stop"))
    assert isinstance(back, RemoteExecutionError)
    assert isinstance(back, Exception)
    assert back.type_name == cls.__name__
    assert "never rebuilt" in (back.rebuild_error or "")


def test_rebuild_false_gives_remote_execution_error_even_for_builtins() -> None:
    back = round_trip(ValueError("x"), rebuild=False)
    assert isinstance(back, RemoteExecutionError)
    assert back.rebuild_error is not None and "rebuild=False" in back.rebuild_error


# -- user exceptions -------------------------------------------------------------------


def test_user_exception_is_not_rebuilt_by_default(app_module: object) -> None:
    exc = raised(AppError("disk full"))
    back = round_trip(exc)
    assert isinstance(back, RemoteExecutionError)
    assert not isinstance(back, AppError)
    assert back.type_name == "AppError"
    assert back.module == APP_MODULE
    assert back.qualname == "AppError"
    assert back.message == "disk full"
    assert back.remote_args == ("disk full",)
    assert back.args_repr == "('disk full',)"
    assert back.traceback is not None and "AppError: disk full" in back.traceback
    assert back.remote_traceback == back.traceback
    assert back.rebuild_error == f"module {APP_MODULE!r} is not in allowed_modules"


def test_remote_execution_error_str_names_type_message_and_traceback() -> None:
    back = round_trip(raised(AppError("disk full")))
    text = str(back)
    assert f"{APP_MODULE}.AppError: disk full" in text
    assert ".traceback" in text
    assert repr(back) == "RemoteExecutionError('AppError', 'disk full')"


def test_remote_execution_error_of_a_builtin_type_reads_like_the_builtin() -> None:
    back = round_trip(raised(ValueError("bad")), rebuild=False)
    assert str(back).startswith("ValueError: bad (raised remotely")


def test_user_exception_is_rebuilt_when_its_module_is_allowed(
    app_module: object,
) -> None:
    back = round_trip(raised(AppError("disk full")), allowed_modules=WITH_APP)
    assert type(back) is AppError
    assert back.args == ("disk full",)


def test_user_exception_with_scalar_constructor_arguments_is_rebuilt(
    app_module: object,
) -> None:
    back = round_trip(CodedError(7, "no quota"), allowed_modules=WITH_APP)
    assert type(back) is CodedError
    assert (back.code, back.detail, str(back)) == (7, "no quota", "[7] no quota")


def test_nested_user_class_is_rebuilt_by_its_qualname(app_module: object) -> None:
    exc = Outer.InnerError("inner")
    assert to_wire(exc)["qualname"] == "Outer.InnerError"
    back = round_trip(exc, allowed_modules=WITH_APP)
    assert type(back) is Outer.InnerError


def test_user_exception_whose_constructor_needs_objects_keeps_its_fields(
    app_module: object,
) -> None:
    back = round_trip(NeedsObject("bad", {"a": 1}), allowed_modules=WITH_APP)
    assert isinstance(back, RemoteExecutionError)
    assert back.message == "bad"
    assert "raised TypeError" in (back.rebuild_error or "")


def test_allowed_module_that_cannot_be_imported_keeps_the_fields() -> None:
    d = payload(module="freight_no_such_module", qualname="Gone", type="Gone")
    back = exception_from_dict(d, allowed_modules={"freight_no_such_module"})
    assert isinstance(back, RemoteExecutionError)
    assert "could not be imported" in (back.rebuild_error or "")


def test_remote_execution_error_survives_pickle_with_its_fields() -> None:
    back = round_trip(raised(AppError("disk full")))
    assert isinstance(back, RemoteExecutionError)
    copy = pickle.loads(pickle.dumps(back))
    assert (copy.type_name, copy.message, copy.traceback) == (
        "AppError",
        "disk full",
        back.traceback,
    )


# -- chains, notes, groups, tracebacks -------------------------------------------------


def test_explicit_cause_is_rebuilt_and_context_is_the_same_exception() -> None:
    try:
        try:
            {}["missing"]
        except KeyError as e:
            raise ValueError("lookup failed") from e
    except ValueError as e:
        exc = e
    d = to_wire(exc)
    assert d["context_is_cause"] is True and d["context"] is None
    back = exception_from_dict(d)
    assert type(back) is ValueError
    assert type(back.__cause__) is KeyError
    assert back.__cause__.args == ("missing",)
    assert back.__context__ is back.__cause__
    assert back.__suppress_context__ is True


def test_implicit_context_is_rebuilt() -> None:
    try:
        try:
            raise KeyError("first")
        except KeyError:
            raise RuntimeError("while handling") from None
    except RuntimeError as e:
        suppressed = e
    try:
        try:
            raise KeyError("first")
        except KeyError:
            raise RuntimeError("while handling")  # noqa: B904 - implicit context
    except RuntimeError as e:
        implicit = e

    back = round_trip(implicit)
    assert back.__cause__ is None
    assert type(back.__context__) is KeyError
    assert back.__suppress_context__ is False

    back = round_trip(suppressed)
    assert back.__cause__ is None
    assert type(back.__context__) is KeyError  # kept, though not displayed
    assert back.__suppress_context__ is True


def test_remote_execution_error_keeps_its_chain_in_cause_and_context() -> None:
    try:
        try:
            raise AppError("root")
        except AppError as e:
            raise AppError("top") from e
    except AppError as e:
        exc = e
    back = round_trip(exc)
    assert isinstance(back, RemoteExecutionError)
    assert isinstance(back.cause, RemoteExecutionError)
    assert back.cause.message == "root"
    assert back.__cause__ is back.cause
    assert back.context is back.cause
    assert back.suppress_context is True


def test_notes_are_kept_and_the_remote_traceback_is_the_last_note() -> None:
    exc = ValueError("x")
    exc.add_note("first note")
    exc.add_note("second note")
    exc = raised(exc)
    back = round_trip(exc)
    assert back.__notes__[:2] == ["first note", "second note"]
    assert len(back.__notes__) == 3
    assert back.__notes__[2].startswith(REMOTE_TRACEBACK_NOTE)
    assert round_trip(exc, traceback_note=False).__notes__ == [
        "first note",
        "second note",
    ]


def test_remote_execution_error_notes_are_the_remote_notes() -> None:
    exc = AppError("x")
    exc.add_note("a note")
    back = round_trip(raised(exc))
    assert isinstance(back, RemoteExecutionError)
    assert back.notes == ("a note",)
    assert back.__notes__[0] == "a note"


def test_traceback_text_is_preserved_and_shown_in_a_note() -> None:
    try:
        fail_deep_inside()
    except ValueError as e:
        exc = e
    d = to_wire(exc)
    tb = d["traceback"]
    assert tb.startswith("Traceback (most recent call last):\n")
    assert "in fail_deep_inside" in tb
    assert 'raise ValueError("failed deep inside")' in tb
    assert tb.endswith("ValueError: failed deep inside\n")

    back = exception_from_dict(d)
    assert back.remote_traceback == tb  # type: ignore[attr-defined]
    note = back.__notes__[-1]
    assert note.startswith(REMOTE_TRACEBACK_NOTE + " (most recent call last):\n")
    assert "in fail_deep_inside" in note
    assert "ValueError: failed deep inside" not in note  # the rebuilt one says that


def test_exception_never_raised_has_no_traceback() -> None:
    d = to_wire(ValueError("x"))
    assert d["traceback"] is None
    back = exception_from_dict(d)
    assert vars(back) == {}  # nothing added: no remote_traceback, no note
    assert not hasattr(back, "__notes__")


def test_exception_group_round_trips_with_its_members() -> None:
    inner = ExceptionGroup("inner", [TypeError("t")])
    exc = raised(ExceptionGroup("many", [ValueError("a"), KeyError("b"), inner]))
    d = to_wire(exc)
    assert d["args"] == ["many"]
    assert [m["type"] for m in d["exceptions"]] == [
        "ValueError",
        "KeyError",
        "ExceptionGroup",
    ]
    back = exception_from_dict(d)
    assert type(back) is ExceptionGroup
    assert back.message == "many"
    assert [type(m) for m in back.exceptions] == [ValueError, KeyError, ExceptionGroup]
    assert type(back.exceptions[2].exceptions[0]) is TypeError
    assert str(back) == str(exc)


def test_exception_group_with_a_user_member_is_rebuilt_around_it() -> None:
    back = round_trip(ExceptionGroup("g", [AppError("mine"), ValueError("v")]))
    assert type(back) is ExceptionGroup
    assert isinstance(back.exceptions[0], RemoteExecutionError)
    assert back.exceptions[0].message == "mine"


def test_base_exception_group_keeps_its_members_as_fields() -> None:
    back = round_trip(BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError("v")]))
    assert isinstance(back, RemoteExecutionError)
    assert back.type_name == "BaseExceptionGroup"
    assert back.exceptions is not None
    assert [type(m) for m in back.exceptions] == [RemoteExecutionError, ValueError]


def test_remote_execution_error_of_a_plain_exception_has_no_members() -> None:
    back = round_trip(AppError("x"))
    assert isinstance(back, RemoteExecutionError)
    assert back.exceptions is None


def test_forwarding_a_decoded_exception_gives_the_same_dict() -> None:
    try:
        try:
            fail_deep_inside()
        except ValueError as e:
            e.add_note("context")
            raise AppError("wrapped") from e
    except AppError as e:
        exc = e
    d = to_wire(exc)
    assert to_wire(exception_from_dict(d)) == d
    assert to_wire(exception_from_dict(d, rebuild=False)) == d


@pytest.mark.parametrize(
    "exc",
    [
        ModuleNotFoundError("No module named 'pkg'", name="pkg"),
        ImportError("cannot import name 'f'", name="pkg", path="/x/pkg.py"),
        NameError("name 'helper' is not defined", name="helper"),
        AttributeError("no attribute 'a'", name="a"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_forwarding_a_rebuilt_standard_error_keeps_its_fields(
    exc: BaseException,
) -> None:
    d = to_wire(exc)
    assert d["fields"]["name"] is not None
    back = exception_from_dict(d)
    assert type(back) is type(exc)
    assert back.name == exc.name  # type: ignore[attr-defined]
    assert to_wire(back) == d


@pytest.mark.parametrize("rebuild", [True, False], ids=["rebuilt", "remote-error"])
def test_a_note_added_while_forwarding_travels_once(rebuild: bool) -> None:
    d = to_wire(raised(KeyError("k")))
    decoded = exception_from_dict(d, rebuild=rebuild)
    decoded.add_note("added while forwarding")
    again = exception_from_dict(to_wire(decoded), rebuild=rebuild)
    notes = getattr(again, "__notes__", [])
    assert notes.count("added while forwarding") == 1
    assert sum(n.startswith("Remote traceback") for n in notes) == 1


# -- hostile exceptions and limits -----------------------------------------------------


def test_exception_whose_str_raises_gets_a_placeholder_message() -> None:
    d = to_wire(raised(BadStr("x")))
    assert d["message"] == "<unprintable BadStr: str() raised RuntimeError>"
    assert d["traceback"] is not None
    back = exception_from_dict(d)
    assert isinstance(back, RemoteExecutionError)
    assert back.message == d["message"]


def test_exception_whose_args_repr_raises_gets_placeholders() -> None:
    d = to_wire(ValueError(BadRepr()))
    assert d["args"] is None
    assert d["args_repr"] == "<unprintable args: repr() raised RuntimeError>"
    assert d["message"] == "<unprintable ValueError: str() raised RuntimeError>"
    back = exception_from_dict(d)
    assert type(back) is ValueError  # made from the placeholder, which is its str
    assert str(back) == d["message"]


def test_odd_notes_are_written_as_text() -> None:
    exc = ValueError("x")
    exc.__notes__ = ["fine", 42]  # type: ignore[list-item]
    assert to_wire(exc)["notes"] == ["fine", "42"]
    exc.__notes__ = "not a list"  # type: ignore[assignment]
    assert to_wire(exc)["notes"] == ["'not a list'"]


@pytest.mark.parametrize("kind", ["__cause__", "__context__"])
def test_long_chain_is_cut_at_max_depth(kind: str) -> None:
    key = "cause" if kind == "__cause__" else "context"
    d = to_wire(chain_of(kind, 100))
    assert depth_of(d, key) == ExceptionLimits().max_depth
    deepest = d
    while deepest[key] is not None:
        deepest = deepest[key]
    assert deepest["truncated"] is True
    back = exception_from_dict(d)
    assert type(back) is ValueError


def test_cause_cycle_is_cut_where_it_closes() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    d = to_wire(a)
    assert d["cause"]["message"] == "b"
    assert d["cause"]["cause"] is None
    assert d["cause"]["truncated"] is True
    back = exception_from_dict(d)
    assert str(back.__cause__) == "b"
    assert back.__cause__.__cause__ is None


def test_exception_that_is_its_own_context_is_cut() -> None:
    exc = ValueError("self")
    exc.__context__ = exc
    d = to_wire(exc)
    assert d["context"] is None and d["truncated"] is True


def test_wide_group_is_bounded_by_max_exceptions() -> None:
    limits = ExceptionLimits()
    group = ExceptionGroup("wide", [ValueError(str(i)) for i in range(500)])
    d = to_wire(group)
    assert len(d["exceptions"]) == limits.max_exceptions - 1
    assert d["truncated"] is True
    back = exception_from_dict(d)
    # Members were dropped, so the group cannot be rebuilt truthfully.
    assert isinstance(back, RemoteExecutionError)
    assert back.exceptions is not None
    assert len(back.exceptions) == limits.max_exceptions - 1


def test_huge_message_is_cut_with_a_marker() -> None:
    limits = ExceptionLimits()
    d = to_wire(ValueError("x" * 1_000_000))
    assert len(d["message"]) <= limits.max_message_chars
    assert d["message"].endswith("...[1000000 characters, truncated]...")
    assert d["args"] is None  # the argument is over the limit, not cut
    assert d["truncated"] is True
    back = exception_from_dict(d)
    assert type(back) is ValueError  # rebuilt from the cut message
    assert str(back) == d["message"]


def test_long_traceback_keeps_its_start_and_its_end() -> None:
    limits = ExceptionLimits(max_traceback_chars=200)
    try:
        fail_deep_inside()
    except ValueError as e:
        exc = e
    exc.add_note("n" * 500)
    d = exception_to_dict(exc, limits=limits)
    assert len(d["traceback"]) <= 200
    assert d["traceback"].startswith("Traceback (most recent call last):")
    assert d["traceback"].endswith("n" * 20 + "\n")
    assert "characters, truncated]" in d["traceback"]


def test_total_text_budget_bounds_the_payload_but_keeps_every_name() -> None:
    exc: BaseException = KeyError("root")
    for i in range(5):
        new = ValueError("m" * 10_000)
        for j in range(8):
            new.add_note(f"{i}.{j}" * 1_000)
        new.__cause__ = exc
        exc = new
    limits = ExceptionLimits(max_total_chars=20_000)
    d = exception_to_dict(exc, limits=limits)
    text = json.dumps(d)
    assert len(text) < 30_000
    types_in_chain = []
    node: dict[str, Any] | None = d
    while node is not None:
        types_in_chain.append(node["type"])
        node = node["cause"]
    assert types_in_chain == ["ValueError"] * 5 + ["KeyError"]
    exception_from_dict(json.loads(text), limits=limits)


def test_too_many_notes_are_dropped() -> None:
    exc = ValueError("x")
    for i in range(100):
        exc.add_note(str(i))
    d = to_wire(exc)
    assert d["notes"] == [str(i) for i in range(ExceptionLimits().max_notes)]
    assert d["truncated"] is True


def test_exception_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ExceptionLimits(max_depth=-1)
    with pytest.raises(ValueError, match="max_message_chars"):
        ExceptionLimits(max_message_chars=3)


def test_exception_to_dict_refuses_non_exceptions() -> None:
    with pytest.raises(TypeError, match="exception instance, got int"):
        exception_to_dict(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception instance, got type"):
        exception_to_dict(ValueError)  # type: ignore[arg-type]


def test_allowed_modules_must_not_be_a_single_string() -> None:
    with pytest.raises(TypeError, match="not a str"):
        exception_from_dict(payload(), allowed_modules="builtins")


# -- decoding never runs what the payload names ----------------------------------------


def test_side_effecting_constructor_outside_the_allowlist_is_never_called(
    app_module: object,
) -> None:
    # The class is importable (its module is in sys.modules) but not allowed.
    d = to_wire(AppError("x")) | {"type": "Recording", "qualname": "Recording"}
    back = exception_from_dict(d)
    assert isinstance(back, RemoteExecutionError)
    assert Recording.calls == []
    # The recorder works: once the module is allowed, the class is constructed.
    assert type(exception_from_dict(d, allowed_modules=WITH_APP)) is Recording
    assert Recording.calls == [("x",)]


def test_os_system_named_by_a_payload_is_not_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    d = payload(type="system", module="os", qualname="system", args=["echo pwned"])
    for allowed in (DEFAULT_ALLOWED_MODULES, {"os", "posix"}):
        back = exception_from_dict(d, allowed_modules=allowed)
        assert isinstance(back, RemoteExecutionError)
    assert calls == []
    assert "does not name a class" in (back.rebuild_error or "")


def test_allowed_module_class_that_is_not_an_exception_is_not_constructed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    constructed: list[object] = []

    class Popen:  # stands in for subprocess.Popen, which must never be called
        def __init__(self, *args: object) -> None:
            constructed.append(args)

    Popen.__module__, Popen.__qualname__ = "subprocess", "Popen"
    monkeypatch.setattr(subprocess, "Popen", Popen)
    d = payload(type="Popen", module="subprocess", qualname="Popen", args=["rm -rf x"])
    back = exception_from_dict(d)
    assert isinstance(back, RemoteExecutionError)
    assert "not an exception class" in (back.rebuild_error or "")
    assert constructed == []


@pytest.mark.parametrize(
    ("module", "qualname", "why"),
    [
        ("subprocess", "os.system", "does not name a class"),  # walks out of module
        ("subprocess", "os.error", "does not name a class"),
        ("builtins", "ValueError.__init__", "does not name a class"),
        ("builtins", "ValueError.mro", "does not name a class"),
        ("socket", "timeout", "alias of builtins.TimeoutError"),
        ("builtins", "ValueError()", "does not name a module-level class"),
        ("builtins", "", "does not name a module-level class"),
        ("..builtins", "ValueError", "not in allowed_modules"),
    ],
)
def test_qualname_cannot_reach_beyond_a_class_defined_in_the_module(
    module: str, qualname: str, why: str
) -> None:
    name = qualname.rsplit(".", 1)[-1]
    back = exception_from_dict(payload(type=name, module=module, qualname=qualname))
    assert isinstance(back, RemoteExecutionError)
    assert why in (back.rebuild_error or "")


def test_type_name_must_match_the_class() -> None:
    back = exception_from_dict(payload(type="Harmless"))
    assert isinstance(back, RemoteExecutionError)
    assert "not 'Harmless'" in (back.rebuild_error or "")


def test_module_outside_the_allowlist_is_never_imported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "this" in sys.modules:  # pragma: no cover - someone imported the Zen
        pytest.skip("the 'this' module is already imported")
    back = exception_from_dict(payload(type="x", module="this", qualname="x"))
    assert isinstance(back, RemoteExecutionError)
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""  # importing `this` prints the Zen


def test_decoding_never_unpickles(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exception decoder unpickled something")

    try:
        try:
            raise AppError("root")
        except AppError as e:
            raise ExceptionGroup("g", [ValueError("v"), KeyError("k")]) from e
    except ExceptionGroup as e:
        exc = e
    serializer = ComputeSerializer(strategy_data="exception")
    text, blob = serializer.serialize(exc), serializer.dumps(exc)
    # Load every plugin first: dill subclasses pickle.Unpickler on import.
    list(default_registry())
    with monkeypatch.context() as patch:
        for name in ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler"):
            patch.setattr(pickle, name, forbidden, raising=False)
        assert type(serializer.deserialize(text)) is ExceptionGroup
        assert type(serializer.loads(blob)) is ExceptionGroup
    # ... and neither module so much as imports pickle.
    assert "pickle" not in vars(remote)
    assert "pickle" not in vars(error_strategies)


# -- the ExceptionData strategy --------------------------------------------------------


def test_exception_data_is_registered_under_its_identifier_and_name() -> None:
    rec = default_registry().by_identifier("ex\n")
    assert rec is not None and rec.cls is ExceptionData
    assert default_registry().resolve("exception").cls is ExceptionData
    assert rec.plugin.name == "errors"
    assert not ExceptionData.for_code


def test_exception_data_declares_its_properties() -> None:
    for prop in (
        Property.SAFE_FOR_UNTRUSTED,
        Property.PORTABLE,
        Property.DETERMINISTIC,
        Property.CROSS_LANGUAGE,
    ):
        assert prop in ExceptionData.properties
    assert Property.ZERO_COPY not in ExceptionData.properties


def test_text_envelope_round_trip() -> None:
    serializer = ComputeSerializer(strategy_data="exception")
    exc = raised(KeyError("k"))
    text = serializer.serialize(exc)
    assert text.startswith("ex\n")
    assert json.loads(text[3:])["format"] == FORMAT
    back = serializer.deserialize(text)
    assert type(back) is KeyError and back.args == ("k",)


def test_binary_envelope_round_trip() -> None:
    serializer = ComputeSerializer(strategy_data="exception")
    back = serializer.loads(serializer.dumps(raised(AppError("in a blob"))))
    assert isinstance(back, RemoteExecutionError)
    assert back.message == "in a blob"
    frames = serializer.dumps_frames(ValueError("in frames"))
    assert type(serializer.loads_frames(frames)) is ValueError


def test_serialize_from_list_uses_the_exception_strategy() -> None:
    text = ComputeSerializer.serialize_from_list(ValueError("v"), ["exception"])
    assert text.startswith("ex\n")
    assert type(ComputeSerializer().deserialize(text)) is ValueError
    # A value it refuses falls through to the next strategy.
    text = ComputeSerializer.serialize_from_list({"a": 1}, ["exception", "json"])
    assert text.startswith("11\n")


def test_exception_data_passes_an_allowlist_that_names_it() -> None:
    serializer = ComputeSerializer(
        strategy_data="exception",
        allowed_deserializer_types=["exception", "DillCode"],
    )
    assert type(serializer.deserialize(serializer.serialize(ValueError()))) is (
        ValueError
    )


@pytest.mark.parametrize("value", [42, "text", None, ValueError, [ValueError("x")]])
def test_non_exception_values_are_refused_clearly(value: object) -> None:
    with pytest.raises(SerializationError, match="exception instances only"):
        ExceptionData().serialize(value)
    if not callable(value):
        with pytest.raises(SerializationError, match="exception instances only"):
            ComputeSerializer(strategy_data="exception").serialize(value)


def test_same_exception_gives_identical_bytes() -> None:
    def make() -> BaseException:
        try:
            try:
                fail_deep_inside()
            except ValueError as e:
                raise ExceptionGroup("g", [KeyError("k"), e]) from e
        except ExceptionGroup as e:
            return e

    strategy = ExceptionData()
    first, second = make(), make()
    assert strategy.serialize(first) == strategy.serialize(first)
    assert strategy.serialize(first) == strategy.serialize(second)
    body = strategy.serialize(first)[3:]
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    assert body.isascii()


def test_same_exception_gives_identical_bytes_in_processes_with_other_hash_seeds() -> (
    None
):
    code = (
        "from freight.plugins.error_strategies import ExceptionData\n"
        "def f():\n"
        "    try:\n"
        "        {}['k']\n"
        "    except KeyError as e:\n"
        "        raise ValueError('vé') from e\n"
        "try:\n"
        "    f()\n"
        "except ValueError as e:\n"
        "    print(ExceptionData().serialize(e))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    (out,) = outputs
    assert out.startswith("ex\n")


def test_registered_instance_uses_the_default_allowlist_and_a_configured_one_its_own(
    app_module: object,
) -> None:
    text = ExceptionData().serialize(AppError("x"))
    assert isinstance(ComputeSerializer().deserialize(text), RemoteExecutionError)
    assert type(ExceptionData(allowed_modules=WITH_APP).deserialize(text)) is AppError
    assert isinstance(
        ExceptionData(rebuild=False).deserialize(ExceptionData().serialize(KeyError())),
        RemoteExecutionError,
    )


#: Unraised exceptions whose every attribute survives: what the conformance kit's
#: equality can check (a raised one gains its remote traceback, by design).
_kit_texts = st.text(max_size=10)
_kit_leaves = (
    st.builds(ValueError, _kit_texts)
    | st.builds(KeyError, _kit_texts)
    | st.builds(ZeroDivisionError)
    | st.builds(OSError, st.sampled_from([errno.ENOENT, errno.EACCES]), _kit_texts)
)
_kit_exceptions = _kit_leaves | st.builds(
    ExceptionGroup, _kit_texts, st.lists(_kit_leaves, min_size=1, max_size=3)
)

#: freight.testing's conformance checks: round trips in every envelope, malformed,
#: truncated and oversized input, identifier policy and determinism.
# strict_errors: ExceptionData's own decoders raise only DeserializationError.
TestExceptionDataConformance = strategy_conformance(
    ExceptionData, values=_kit_exceptions, max_examples=10, strict_errors=True
)


# -- malformed input -------------------------------------------------------------------


def decode_error(text: str) -> str:
    with pytest.raises(DeserializationError) as info:
        ComputeSerializer().deserialize("ex\n" + text)
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "not valid JSON"),
        ("{not json", "not valid JSON"),
        ('{"format": "freight.exception/1"', "not valid JSON"),
        ("[]", "expected a JSON object, got an array"),
        ("42", "expected a JSON object, got a number"),
        ("{}", "no 'format' key"),
        ('{"format": "pickle"}', "'format' is 'pickle'"),
        ('{"format": 1}', "'format' is a number"),
        ('{"format": "freight.exception/2"}', "unsupported exception payload format"),
        ("[" * 100_000 + "]" * 100_000, "deeper"),
    ],
)
def test_malformed_body_raises_a_clear_deserialization_error(
    body: str, expected: str
) -> None:
    assert expected in decode_error(body)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"message": None}, "message is null; it must be a string"),
        ({"type": 3}, "type must be a string, got a number"),
        ({"args": "x"}, "args must be an array or null, got a string"),
        ({"args": [1.5]}, "args[0] must be a string, an integer, a boolean or null"),
        ({"args": [2**64]}, "args[0] is an integer outside the 64-bit range"),
        ({"args": [[1]]}, "args[0] must be a string, an integer"),
        ({"notes": [1]}, "notes[0] must be a string, got a number"),
        ({"notes": "n"}, "notes must be an array of strings"),
        ({"traceback": {}}, "traceback must be a string, got an object"),
        ({"suppress_context": "yes"}, "suppress_context must be a boolean"),
        ({"truncated": 0}, "truncated must be a boolean, got a number"),
        ({"cause": []}, "cause must be an object, got an array"),
        ({"cause": {"type": "X"}}, "cause.module is missing"),
        ({"exceptions": {}}, "exceptions must be an array or null, got an object"),
        (
            {"exceptions": [payload(), {"message": 1}]},
            "exceptions[1].type is missing",
        ),
        ({"context_is_cause": True}, "context_is_cause is true, so cause must be"),
    ],
)
def test_malformed_field_is_named_with_its_path(
    fields: dict[str, Any], expected: str
) -> None:
    d = payload(**fields)
    with pytest.raises(DeserializationError) as info:
        exception_from_dict(d)
    assert expected in str(info.value)
    assert "exception payload" in str(info.value)
    assert expected in decode_error(json.dumps(d))


def test_binary_body_that_is_not_utf8_is_a_deserialization_error() -> None:
    with pytest.raises(DeserializationError, match="not UTF-8"):
        ExceptionData().from_frames(memoryview(b"\xff{}"), [])


def test_missing_required_key_is_named() -> None:
    d = payload()
    del d["qualname"]
    with pytest.raises(DeserializationError, match="qualname is missing"):
        exception_from_dict(d)


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"message": "m" * 20_000}, "max_message_chars=16384"),
        ({"type": "T" * 600}, "max_name_chars=512"),
        ({"traceback": "t" * 70_000}, "max_traceback_chars=65536"),
        ({"notes": ["n"] * 33}, "max_notes=32"),
        ({"notes": ["n" * 5_000]}, "max_note_chars=4096"),
        ({"args": [1] * 17}, "max_args=16"),
        ({"exceptions": [payload()] * 200}, "max_exceptions=200"),
    ],
)
def test_payload_over_a_limit_names_the_limit(
    fields: dict[str, Any], limit: str
) -> None:
    with pytest.raises(DeserializationError, match=re.escape(limit)):
        exception_from_dict(payload(**fields))


def test_chain_deeper_than_max_depth_names_the_limit() -> None:
    d = payload()
    for _ in range(40):
        d = payload(cause=d)
    with pytest.raises(DeserializationError, match="max_depth=32"):
        exception_from_dict(d)
    # Within a larger limit it decodes.
    back = exception_from_dict(d, limits=ExceptionLimits(max_depth=64))
    assert type(back) is ValueError


def test_unknown_keys_are_ignored() -> None:
    back = exception_from_dict(payload(added_in_a_later_release={"x": [1.5]}))
    assert type(back) is ValueError and str(back) == "boom"


def test_minimal_payload_from_another_language_decodes() -> None:
    back = exception_from_dict(
        payload(type="Timeout", module="my.go.service", qualname="Timeout")
    )
    assert isinstance(back, RemoteExecutionError)
    assert str(back).startswith("my.go.service.Timeout: boom")


# -- fuzzing ---------------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
#: (module, qualname) pairs that reach the interesting paths: rebuildable classes,
#: classes that cannot be rebuilt, BaseException-only types, non-classes, walks out
#: of a module, modules outside the allowlist and malformed names.  None of them
#: does harm even if it were called.
names = st.sampled_from(
    [
        ("builtins", "ValueError"),
        ("builtins", "KeyError"),
        ("builtins", "OSError"),
        ("builtins", "FileNotFoundError"),
        ("builtins", "ExceptionGroup"),
        ("builtins", "BaseExceptionGroup"),
        ("builtins", "SystemExit"),
        ("builtins", "UnicodeDecodeError"),
        ("builtins", "ValueError.__init__"),
        ("subprocess", "CalledProcessError"),
        ("subprocess", "TimeoutExpired"),
        ("subprocess", "os.getpid"),
        ("decimal", "InvalidOperation"),
        ("re", "error"),
        ("socket", "gaierror"),
        ("socket", "timeout"),
        ("os", "getpid"),
        ("this", "x"),
        ("", ""),
        (".", "1x"),
    ]
)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
)


@st.composite
def exception_objects(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """Mostly well-formed exception objects; in about one of four, one field is left
    out or replaced by an arbitrary JSON value."""
    module, qualname = draw(names)
    fields: dict[str, Any] = {
        "type": draw(st.just(qualname.rsplit(".", 1)[-1]) | st.text(max_size=6)),
        "module": module,
        "qualname": qualname,
        "message": draw(st.text(max_size=10)),
        "args": draw(st.none() | st.lists(scalars, max_size=4)),
        "args_repr": draw(st.none() | st.text(max_size=8)),
        "traceback": draw(st.none() | st.text(max_size=30)),
        "suppress_context": draw(st.booleans()),
        "notes": draw(st.lists(st.text(max_size=8), max_size=3)),
        "truncated": draw(st.booleans()),
    }
    if draw(st.booleans()):  # args that make the message: rebuilds can succeed
        fields["args"] = [fields["message"]]
    if depth < 2:  # a few links of chain and group, kept small to stay fast
        child = exception_objects(depth + 1)
        link = draw(st.sampled_from([None, "cause", "context", "exceptions"]))
        if link == "exceptions":
            fields[link] = draw(st.lists(child, min_size=1, max_size=2))
        elif link is not None:
            fields[link] = draw(child)
            fields["context_is_cause"] = link == "cause" and draw(st.booleans())
    if draw(st.booleans()) and draw(st.booleans()):
        victim = draw(st.sampled_from(sorted(fields)))
        if draw(st.booleans()):
            del fields[victim]
        else:
            fields[victim] = draw(json_values)
    return fields


def decodes_or_raises_deserialization_error(d: object) -> None:
    try:
        result = exception_from_dict(d)
    except DeserializationError as e:
        assert str(e)
    else:
        assert isinstance(result, Exception)


@FUZZ
@given(value=json_values)
def test_fuzz_random_json_values_only_raise_deserialization_error(value: Any) -> None:
    decodes_or_raises_deserialization_error(value)
    if isinstance(value, dict):
        decodes_or_raises_deserialization_error({**value, "format": FORMAT})


@FUZZ
@given(obj=exception_objects(), version=st.sampled_from([FORMAT, FORMAT, "x", 1]))
def test_fuzz_near_valid_payloads_only_raise_deserialization_error(
    obj: dict[str, Any], version: object
) -> None:
    decodes_or_raises_deserialization_error({"format": version, **obj})


SEED_BODIES = [
    ExceptionData().serialize(e)[3:]
    for e in (
        raised(ValueError("v")),
        ExceptionGroup("g", [KeyError("k"), OSError(2, "x", "f")]),
        chain_of("__cause__", 3),
    )
]


@FUZZ
@given(
    seed=st.sampled_from(SEED_BODIES),
    cuts=st.lists(st.tuples(st.integers(0, 10_000), st.text(max_size=3)), max_size=3),
)
def test_fuzz_mutated_bodies_only_raise_deserialization_error(
    seed: str, cuts: list[tuple[int, str]]
) -> None:
    body = seed
    for position, insert in cuts:
        i = position % (len(body) + 1)
        body = body[:i] + insert + body[i + 1 :]
    try:
        ComputeSerializer().deserialize("ex\n" + body)
    except DeserializationError as e:
        assert str(e)
