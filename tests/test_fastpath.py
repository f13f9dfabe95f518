"""The per-message paths of ``dumps`` / ``loads`` (``freight.serialize.fastpath``).

Two implementations, the C accelerator and its pure-Python twin, must be
interchangeable: the same bytes out, the same values back, the same errors with
the same causes.  These tests run each behaviour against both (``each_fast_path``)
and compare the two directly; they also pin the ``body_encoder()`` hook and the
fallbacks around it, and check that the C one leaks no references.
"""

from __future__ import annotations

import gc
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
import types
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import traced

from freight.plugins import dill_strategies, json_strategies
from freight.serialize import (
    BodyEncoder,
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    SerializationError,
    StrategyRegistry,
    binary,
    fastpath,
    hookimpl,
)
from freight.serialize.envelope import encoders_of
from freight.testing import assert_same_value, picklable_values

try:
    from freight.serialize import _accel
except ImportError:  # built without a compiler
    _accel = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(_accel is None, reason="the C accelerator is not built")


class Repr(BytesStrategy):
    """``repr`` bodies read back with ``eval`` (test data only); records how each
    object was encoded.  Class attributes set per test: ``encoder`` (what
    ``body_encoder()`` returns) and ``frames`` (a fixed ``to_frames`` result)."""

    identifier = "T4\n"
    for_code = False
    name = "test-repr"
    calls: ClassVar[list[str]] = []
    encoder: ClassVar[BodyEncoder | None] = None
    frames: ClassVar[Any] = None

    def encode(self, obj: Any) -> bytes:
        type(self).calls.append("to_frames")
        return repr(obj).encode()

    def decode(self, data: bytes) -> Any:
        if data == b"'boom'":
            raise ValueError("cannot read boom")
        if data == b"'interrupt'":
            raise KeyboardInterrupt
        if data == b"'refuse'":  # an error that already names the strategy
            raise DeserializationError("Repr refuses this payload")
        return eval(data)

    def to_frames(self, obj: Any) -> Any:
        if type(self).frames is not None:
            return type(self).frames
        return super().to_frames(obj)

    def body_encoder(self) -> BodyEncoder | None:
        return type(self).encoder


def direct(obj: Any, *args: Any) -> bytes:
    """A body encoder giving what ``Repr.to_frames`` gives; records its args."""
    Repr.calls.append(f"direct{args}")
    return repr(obj).encode()


@hookimpl
def _local() -> list[type[BytesStrategy]]:
    return [Repr]


def make(encoder: BodyEncoder | None = None) -> ComputeSerializer:
    """A serializer with ``Repr`` as its data strategy and ``encoder`` as its body
    encoder (dill for code)."""
    Repr.calls = []
    Repr.encoder = encoder
    Repr.frames = None
    registry = StrategyRegistry(entry_point_group=None)
    for plugin in (json_strategies, dill_strategies):
        registry.register_plugin(plugin, plugin.__name__)
    registry.register_plugin(types.SimpleNamespace(freight_strategies=_local), "local")
    return ComputeSerializer("DillCode", "test-repr", registry=registry)


SCALARS = BodyEncoder(frozenset({int, float, str}), direct)


# -- the body encoder ----------------------------------------------------------------


def test_a_covered_type_is_encoded_by_the_body_encoder_alone(each_fast_path):
    s = make(SCALARS)
    blobs = [s.dumps(v) for v in (7, 2.5, "text")]
    assert Repr.calls == ["direct()"] * 3
    Repr.calls.clear()
    frames = [s.dumps_frames(v) for v in (7, 2.5, "text")]
    assert Repr.calls == ["direct()"] * 3
    assert [b"".join(f) for f in frames] == blobs
    assert [s.loads(b) for b in blobs] == [7, 2.5, "text"]
    assert [s.loads_frames(f) for f in frames] == [7, 2.5, "text"]


def test_other_types_and_subclasses_go_through_to_frames(each_fast_path):
    class MyInt(int):
        pass

    s = make(SCALARS)
    for value in ([1], {"a": 1}, None, True, MyInt(3)):
        Repr.calls.clear()
        blob = s.dumps(value)
        assert Repr.calls == ["to_frames"], value
        assert s.loads(blob) == value


def test_both_routes_make_the_same_blob(each_fast_path):
    direct_blob = make(SCALARS).dumps(12345)
    assert make(None).dumps(12345) == direct_blob
    assert Repr.calls == ["to_frames"]


@pytest.mark.parametrize("count", [1, 7, 12])
def test_encoder_arguments_follow_the_object(each_fast_path, count):
    args = tuple(range(count))
    s = make(BodyEncoder(frozenset({int}), direct, args))
    assert s.loads(s.dumps(5)) == 5
    assert Repr.calls == [f"direct{args}"]


def failing(obj: Any) -> bytes:
    Repr.calls.append("failing")
    raise RuntimeError("no")


def not_bytes(obj: Any) -> Any:
    Repr.calls.append("not_bytes")
    return bytearray(repr(obj).encode())


@pytest.mark.parametrize("function", [failing, not_bytes])
def test_an_encoder_that_fails_or_gives_no_bytes_falls_back(each_fast_path, function):
    s = make(BodyEncoder(frozenset({int}), function))
    blob = s.dumps(41)
    assert Repr.calls == [function.__name__, "to_frames"]
    assert blob == make(None).dumps(41)
    assert s.loads(blob) == 41


def interrupting(obj: Any) -> bytes:
    raise KeyboardInterrupt


def test_an_encoder_interrupt_is_not_swallowed(each_fast_path):
    s = make(BodyEncoder(frozenset({int}), interrupting))
    with pytest.raises(KeyboardInterrupt):
        s.dumps(1)


class Callable_:
    def __call__(self) -> None: ...

    def __repr__(self) -> str:
        return "Callable_()"


class Plain:
    pass


def test_types_with_callable_instances_are_left_to_the_code_strategy(each_fast_path):
    encoder = BodyEncoder(frozenset({Callable_, Plain, int}), direct)
    assert set(encoders_of(make(encoder).data_serializer)) == {Plain, int}
    s = make(encoder)
    blob = s.dumps(Callable_())
    assert blob[8:11] == b"01\n"  # DillCode's message
    assert Repr.calls == []


# -- to_frames results and failures --------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise TypeError("no repr")


@pytest.mark.parametrize("method", ["dumps", "dumps_frames"])
def test_a_to_frames_failure_is_wrapped_with_its_cause(each_fast_path, method):
    s = make()
    with pytest.raises(SerializationError, match="Repr failed: TypeError") as info:
        getattr(s, method)(BadRepr())
    assert isinstance(info.value.__cause__, TypeError)


@pytest.mark.parametrize(
    "frames",
    [(b"1",), (b"1", [], []), 42],
    ids=["one item", "three items", "not a sequence"],
)
def test_to_frames_must_return_a_pair(each_fast_path, frames):
    s = make()
    Repr.frames = frames
    with pytest.raises(SerializationError, match="Repr failed"):
        s.dumps([1])
    with pytest.raises(SerializationError, match="Repr failed"):
        s.dumps_frames([1])


@pytest.mark.parametrize("frames", [[b"[1]", []], (bytearray(b"[1]"), [])])
def test_other_bodies_and_list_results_are_assembled(each_fast_path, frames):
    s = make()
    Repr.frames = frames
    blob = s.dumps([1])
    assert type(blob) is bytes
    assert s.loads(blob) == [1]
    assert b"".join(s.dumps_frames([1])) == blob


# -- decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("handling", [False, True], ids=["plain", "in-except"])
def test_a_decode_failure_on_a_learned_header_is_wrapped_with_its_cause(
    each_fast_path, handling
):
    s = make()
    good, bad = s.dumps("fine"), s.dumps("boom")
    assert len(good) == len(bad)
    assert s.loads(good) == "fine"
    assert good[:12] in s._known  # its own strategy: decided when it was made

    def attempt() -> BaseException:
        with pytest.raises(DeserializationError) as info:
            s.loads(bad)
        return info.value

    if handling:
        # While the caller handles an exception of its own, the context is still
        # the cause (as ``raise ... from e`` inside ``except ... as e``).
        try:
            raise LookupError("the caller's own")
        except LookupError:
            error = attempt()
    else:
        error = attempt()
    assert "cannot read boom" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert error.__context__ is error.__cause__


def test_a_decode_failure_on_a_learned_header_frame_is_wrapped(each_fast_path):
    s = make()
    good, bad = s.dumps_frames("fine"), s.dumps_frames("boom")
    assert good[0] == bad[0]
    assert s.loads_frames(good) == "fine"  # learns the header
    with pytest.raises(DeserializationError, match="cannot read boom") as info:
        s.loads_frames(bad)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("envelope", ["blob", "frames"])
@pytest.mark.parametrize("learned", [True, False], ids=["learned", "slow"])
def test_a_decode_error_that_names_the_strategy_propagates_as_it_is(
    each_fast_path, envelope, learned
):
    s = make()
    dumps, loads = {
        "blob": (s.dumps, s.loads),
        "frames": (s.dumps_frames, s.loads_frames),
    }[envelope]
    if learned:
        assert loads(dumps("fine--")) == "fine--"
    else:
        s._known.clear()  # forget what was decided when it was made
    with pytest.raises(DeserializationError, match="Repr refuses") as info:
        loads(dumps("refuse"))
    assert len(s._known) == 2 * int(learned)  # the data and the code strategy
    # Not wrapped again, and not made its own cause.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_a_decode_interrupt_on_a_learned_header_is_not_wrapped(each_fast_path):
    s = make()
    good, stop = s.dumps("fine-----"), s.dumps("interrupt")
    assert len(good) == len(stop)
    s.loads(good)
    with pytest.raises(KeyboardInterrupt):
        s.loads(stop)


def forgetful(s: ComputeSerializer) -> Any:
    def decode(body: Any) -> Any:
        s._known.clear()  # the entry being used leaves the table
        return eval(bytes(body))

    return decode


def test_tables_may_change_while_a_decoder_runs(each_fast_path, monkeypatch):
    s = make()
    blob = s.dumps([1, 2])
    s.loads(blob)
    monkeypatch.setattr(Repr, "body_decoder", lambda self: forgetful(s))
    s._known.clear()
    for _ in range(3):
        assert s.loads(blob) == [1, 2]


# -- the data strategy may change ----------------------------------------------------


def test_reassigning_the_data_strategy_takes_effect(each_fast_path):
    s = make(SCALARS)
    repr_blob = s.dumps(3)
    s.loads(repr_blob)
    json_strategy = s.registry.resolve("JSONData").strategy
    s.data_serializer = json_strategy
    assert s.data_serializer is json_strategy
    blob = s.dumps(3)
    assert blob[8:11] == b"11\n"
    assert s.loads(blob) == 3
    assert s.loads(repr_blob) == 3  # still allowed: no allowlist
    assert s._known  # learned afresh


# -- the two implementations ---------------------------------------------------------


@needs_c
@settings(max_examples=150, deadline=None)
@given(value=picklable_values())
def test_c_and_python_agree_on_every_value(value):
    c, py = serializer_on(_accel.FastPath), serializer_on(fastpath.PyFastPath)
    blob = c.dumps(value)
    assert py.dumps(value) == blob
    frames = c.dumps_frames(value)
    assert [bytes(f) for f in py.dumps_frames(value)] == [bytes(f) for f in frames]
    assert b"".join(frames) == blob
    for serde in (c, py, c, py):  # the second time through a learned header
        assert_same_value(serde.loads(blob), value)
        assert_same_value(serde.loads_frames([bytes(f) for f in frames]), value)


def serializer_on(implementation: Any) -> ComputeSerializer:
    """A default serializer whose fast path is ``implementation``, built by the
    facade itself."""
    original = fastpath.FastPath
    fastpath.FastPath = implementation
    try:
        serde = ComputeSerializer()
    finally:
        fastpath.FastPath = original
    assert type(serde._fast) is implementation
    return serde


@needs_c
def test_the_c_fast_path_holds_no_stray_references():
    s = serializer_on(_accel.FastPath)
    # The C object's fields, as its tp_traverse reports them.
    encoders = next(
        r for r in gc.get_referents(s._fast) if isinstance(r, dict) and int in r
    )
    blob_int, blob_list, blob_big = s.dumps(10**30), s.dumps([1]), s.dumps(b"x" * 9000)
    for blob in (blob_int, blob_list, blob_big):
        s.loads(blob)
    watched = [blob_int, blob_list, blob_big, encoders[int]]
    watched += [s.data_serializer, s._known[blob_int[:12]]]
    bad = bytearray(blob_list)
    bad[-2] ^= 0xFF  # same header, corrupt body: the decode error path
    bad_blob = bytes(bad)

    frames_list = s.dumps_frames([1])
    bad_frames = [frames_list[0], bad_blob[len(frames_list[0]) :]]
    watched += frames_list
    # Messages with out-of-band buffers, and received memory of other types.
    with_buffers = [1, pickle.PickleBuffer(bytearray(b"abc" * 100))]
    buffered_blob = s.dumps(with_buffers)
    buffered_frames = [bytearray(f) for f in s.dumps_frames(with_buffers)]
    short_frames = [*buffered_frames[:-1], b"x"]  # a buffer shorter than declared
    watched += [buffered_blob, *buffered_frames]

    def exercise() -> None:
        for _ in range(200):
            s.dumps(10**30)
            s.dumps([1])
            s.dumps_frames(10**30)
            s.dumps_frames([1])
            s.loads(blob_int)
            s.loads(blob_list)
            s.loads(blob_big)
            s.loads_frames(frames_list)
            s.loads(buffered_blob)
            s.loads(memoryview(buffered_blob))
            s.loads(bytearray(blob_big))
            s.loads_frames(buffered_frames)
            s.loads_frames(tuple(memoryview(f) for f in buffered_frames))
            s.dumps(with_buffers)
            s.dumps_frames(with_buffers)
            with pytest.raises(DeserializationError):
                s.loads_frames(short_frames)
            with pytest.raises(DeserializationError):
                s.loads(bad_blob)
            with pytest.raises(DeserializationError):
                s.loads_frames(bad_frames)
            with pytest.raises(SerializationError):
                s.dumps([threading.Lock()])

    def counts() -> list[int]:
        gc.collect()  # failed calls leave exception-traceback-frame cycles
        return [sys.getrefcount(o) for o in watched]

    exercise()  # warm up caches the first round fills
    before = counts()
    exercise()
    assert counts() == before


@needs_c
def test_the_c_fast_path_leaks_nothing_passing_an_error_on_as_it_is(monkeypatch):
    monkeypatch.setattr(fastpath, "FastPath", _accel.FastPath)
    s = make()
    fine, refuse = s.dumps("fine--"), s.dumps("refuse")
    s.loads(fine)  # learned: "refuse" fails on the fast path
    watched = [fine, refuse, s.data_serializer, s._known[fine[:12]]]

    def exercise() -> None:
        for _ in range(200):
            with pytest.raises(DeserializationError, match="Repr refuses"):
                s.loads(refuse)

    def counts() -> list[int]:
        gc.collect()
        return [sys.getrefcount(o) for o in watched]

    exercise()
    before = counts()
    exercise()
    assert counts() == before


# -- utf8_buffer -------------------------------------------------------------------

UTF8_BUFFERS = [binary.py_utf8_buffer] + ([_accel.utf8_buffer] if _accel else [])
utf8_buffers = pytest.mark.parametrize(
    "utf8_buffer", UTF8_BUFFERS, ids=["python", "c"][: len(UTF8_BUFFERS)]
)


class Text(str):
    pass


@utf8_buffers
@given(text=st.text() | st.sampled_from(["", "\ud800", "a\udfffb", "\u00e9" * 9]))
def test_utf8_buffer_holds_the_utf8_encoding(utf8_buffer: Any, text: str) -> None:
    expected = text.encode("utf-8", "surrogatepass")
    assert bytes(utf8_buffer(text)) == expected
    assert bytes(utf8_buffer(Text(text))) == expected


@utf8_buffers
def test_utf8_buffer_takes_only_a_str(utf8_buffer: Any) -> None:
    with pytest.raises(TypeError, match="takes a str"):
        utf8_buffer(b"bytes")


@needs_c
def test_the_c_utf8_buffer_is_an_ascii_strs_own_memory() -> None:
    text = "".join(["ascii ", "text " * 20_000])  # made here: no other reference
    alone = sys.getrefcount(text)
    with traced() as memory:
        view = _accel.utf8_buffer(text)
    assert memory.peak < 1000  # nothing the size of the text was allocated
    assert type(view) is memoryview and view.readonly
    assert (view.format, view.nbytes) == ("B", len(text))
    assert sys.getrefcount(text) == alone + 1  # the view holds the str
    del text
    assert bytes(view[:11]) == b"ascii text "
    # Not ASCII (or a subclass): encoded, a bytes object of its own.
    assert type(_accel.utf8_buffer("\u00e9")) is bytes
    assert type(_accel.utf8_buffer(Text("abc"))) is bytes


@needs_c
def test_the_c_utf8_buffer_leaks_no_references() -> None:
    text = "y" * 1000
    other = "\u00e9" * 10

    def exercise() -> None:
        for _ in range(100):
            with memoryview(_accel.utf8_buffer(text)) as view:
                bytes(view)
            _accel.utf8_buffer(other)
            with pytest.raises(TypeError):
                _accel.utf8_buffer(5)

    exercise()
    before = [sys.getrefcount(text), sys.getrefcount(other)]
    exercise()
    gc.collect()
    assert [sys.getrefcount(text), sys.getrefcount(other)] == before


# -- which implementation is used ----------------------------------------------------


def _c_compiler() -> str | None:
    cc = sysconfig.get_config_var("CC")
    return shutil.which(shlex.split(cc)[0]) if cc else None


def test_the_accelerator_is_built_where_a_compiler_is():
    if os.environ.get("FREIGHT_PURE_PYTHON"):
        pytest.skip("FREIGHT_PURE_PYTHON is set")
    if _c_compiler() is None:
        pytest.skip("no C compiler: the pure-Python twin serves")
    assert fastpath.ACCELERATED, "the C accelerator failed to build (see pip's log)"
    assert fastpath.FastPath is _accel.FastPath


def test_freight_pure_python_selects_the_twin():
    code = (
        "from freight.serialize import ComputeSerializer, fastpath\n"
        "s = ComputeSerializer()\n"
        "assert s.loads(s.dumps({'a': 1})) == {'a': 1}\n"
        "print(fastpath.ACCELERATED, type(s._fast).__name__)\n"
    )
    env = {**os.environ, "FREIGHT_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "PyFastPath"]


def test_a_subclass_override_of_a_per_message_method_is_kept(each_fast_path):
    # The per-message methods are bound to the fast path per instance, except
    # where a subclass overrides one.
    class Tagged(ComputeSerializer):
        def dumps(self, obj: Any) -> bytes:
            return b"tag:" + super().dumps(obj)

    s = Tagged()
    blob = s.dumps(5)
    assert blob.startswith(b"tag:") and s.loads(blob[4:]) == 5
    plain = ComputeSerializer()
    assert plain.dumps(5) == blob[4:]
    assert type(plain.dumps) is not type(Tagged.dumps)
