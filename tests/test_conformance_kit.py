"""The conformance kit (``freight.testing``) and the example plugin it is proven on.

The example package ``examples/freight-zstd`` is installed separately (its own
``pyproject.toml`` and entry point); these tests prove freight discovers it through
the entry point, uses it by identifier and name in both envelopes, and that it
passes the kit.  Then the kit is pointed at strategies broken in one way each, and
must fail exactly the check that covers that way (or the one parametrization of it).
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from freight.serialize import (
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    default_registry,
)
from freight.testing import assert_rejects_malformed, assert_same_value, payload_of

# The whole kit is imported before any pytester run, so the nested runs share this
# process's one copy of hypothesis (pytester forgets the modules a run imports).
from freight.testing import conformance as _conformance  # noqa: F401
from freight.testing.assertions import KitSerializer, frame_message

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "freight-zstd"
INSTALL_HINT = f"install the example plugin: pip install -e {EXAMPLE}"

#: Few examples: these runs prove the kit catches each fault, not the strategies.
KIT_ARGS = ("--freight-examples=8", "-p", "no:cacheprovider", "-q")


def zstd() -> Any:
    """The ``zstandard`` module, which the example plugin depends on."""
    try:
        import zstandard
    except ImportError:
        pytest.fail(f"zstandard is not installed; {INSTALL_HINT}")
    return zstandard


def example_record() -> Any:
    try:
        return default_registry().resolve("Z1")
    except Exception as e:
        pytest.fail(f"Z1 is not registered ({e}); {INSTALL_HINT}")


# -- the example plugin ----------------------------------------------------------------


def test_example_plugin_is_discovered_through_its_entry_point() -> None:
    rec = example_record()
    assert rec.cls.__name__ == "ZstdPickle"
    assert rec.cls.__module__.startswith("freight_zstd")
    distribution = rec.plugin.distribution or ""
    assert distribution.startswith(("freight-zstd", "freight_zstd")), rec.describe()
    assert rec.plugin.name == "zstd"


@pytest.mark.parametrize("selector", ["Z1", "zstd-pickle", "ZstdPickle"])
def test_example_plugin_is_used_by_identifier_and_name(selector: str) -> None:
    serde = ComputeSerializer(strategy_data=selector)
    assert type(serde.data_serializer).__name__ == "ZstdPickle"
    value = {"rows": [(i, str(i), i / 3) for i in range(200)], "tags": {"a", "b"}}

    text = serde.serialize(value)
    assert text.startswith("Z1\n")
    assert_same_value(serde.deserialize(text), value)

    blob = serde.dumps(value)
    assert_same_value(serde.loads(blob), value)
    assert_same_value(serde.loads_frames(serde.dumps_frames(value)), value)


def test_example_plugin_carries_large_arrays_as_compressed_frames() -> None:
    serde = ComputeSerializer(strategy_data="Z1")
    array = np.zeros((1000, 1000))
    frames = serde.dumps_frames(array)
    assert len(frames) == 3  # header, body, one buffer frame for the array
    assert sum(memoryview(f).nbytes for f in frames) < array.nbytes // 100
    assert_same_value(serde.loads_frames([bytes(f) for f in frames]), array)


def test_example_plugin_refuses_a_frame_that_declares_more_than_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serde = ComputeSerializer(strategy_data="Z1")
    blob = serde.dumps(b"x" * 1000)
    monkeypatch.setattr(example_record().cls, "max_decompressed_size", 100)
    with pytest.raises(DeserializationError, match="over the limit of 100"):
        serde.loads(blob)


def test_example_plugin_passes_the_conformance_kit(tmp_path: Path) -> None:
    # Exactly what its author runs, in a process of its own.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLE / "tests"), *KIT_ARGS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and " failed" not in result.stdout


# -- the kit catches broken strategies ------------------------------------------------

#: A correct data strategy (JSON as bytes), the base every broken one changes.
GOOD = """
import json
import os

from freight.serialize import BytesStrategy, DeserializationError, Property
from freight.testing import json_values, strategy_conformance
from hypothesis import Phase


class GoodJSON(BytesStrategy):
    identifier = "Q1\\n"
    for_code = False
    name = "kit-good-json"
    properties = Property.SAFE_FOR_UNTRUSTED

    def encode(self, obj):
        return json.dumps(obj).encode()

    def decode(self, data):
        try:
            return json.loads(data)
        except ValueError as e:
            raise DeserializationError(f"{type(self).__name__}: {e}") from e


# Find each fault fast; shrinking it to a minimal example is not the point here.
OPTIONS = dict(
    registered=False,
    oversized_size=1 << 16,
    hypothesis_settings=dict(
        phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False
    ),
)
"""

#: Each case: the source of a strategy broken in one way, and the checks that must
#: fail, and nothing else.  A check named bare may fail in any parametrization; one
#: named with its ids (``test_deterministic[across-processes]``) in exactly that one.
BROKEN = {
    "a correct strategy": (
        """
        TestGood = strategy_conformance(
            GoodJSON, values=json_values(), strict_errors=True, **OPTIONS
        )
        """,
        set(),
    ),
    "a decoder that returns a wrong value": (
        """
        class IntegralFloatsBecomeInts(GoodJSON):
            def decode(self, data):
                def as_number(s):
                    return int(float(s)) if float(s).is_integer() else float(s)

                try:
                    return json.loads(data, parse_float=as_number)
                except ValueError as e:
                    raise DeserializationError(str(e)) from e

        TestWrong = strategy_conformance(
            IntegralFloatsBecomeInts, values=json_values(), **OPTIONS
        )
        """,
        {"test_roundtrip"},
    ),
    "a decoder that lets ValueError escape": (
        """
        class LeaksValueError(GoodJSON):
            def decode(self, data):
                return json.loads(data)

        TestLeaks = strategy_conformance(
            LeaksValueError, values=json_values(), strict_errors=True, **OPTIONS
        )
        """,
        {"test_decoder_raises_only_deserialization_error"},
    ),
    "an identifier outside the third-party range": (
        """
        class LowercaseIdentifier(GoodJSON):
            identifier = "q1\\n"

        TestLowercase = strategy_conformance(
            LowercaseIdentifier, values=json_values(), **OPTIONS
        )
        """,
        {"test_identifier_follows_the_allocation_policy"},
    ),
    "an identifier another plugin owns": (
        """
        class ClaimsZ1(GoodJSON):
            identifier = "Z1\\n"

        TestClaimsZ1 = strategy_conformance(ClaimsZ1, values=json_values(), **OPTIONS)
        """,
        {"test_identifier_and_name_are_unique"},
    ),
    "a body_decoder that disagrees with from_frames": (
        """
        class StaleFastPath(GoodJSON):
            def body_decoder(self):
                return lambda body: json.loads(bytes(body)[:-1] or b"null")

        TestStale = strategy_conformance(StaleFastPath, values=json_values(), **OPTIONS)
        """,
        {"test_roundtrip"},
    ),
    "a decoder that trusts a length it reads": (
        """
        class TrustsALength(GoodJSON):
            def decode(self, data):
                if len(data) > 1024:
                    bytearray(1 << 27)  # as if a header had claimed it
                return super().decode(data)

        TestT = strategy_conformance(TrustsALength, values=json_values(), **OPTIONS)
        """,
        {"test_malformed_input_raises_only_deserialization_error"},
    ),
    "a body_encoder that disagrees with to_frames": (
        """
        from freight.serialize import BodyEncoder

        class StaleEncoder(GoodJSON):
            def body_encoder(self):
                # Every JSON scalar comes back wrapped in a list.
                scalars = frozenset({int, float, str, bool, type(None)})
                return BodyEncoder(scalars, lambda v: json.dumps([v]).encode())

        TestEnc = strategy_conformance(StaleEncoder, values=json_values(), **OPTIONS)
        """,
        {"test_roundtrip"},
    ),
    "a claim of determinism that does not hold": (
        """
        class Nonce(GoodJSON):
            properties = GoodJSON.properties | Property.DETERMINISTIC

            def encode(self, obj):
                return json.dumps({"value": obj, "nonce": os.urandom(8).hex()}).encode()

            def decode(self, data):
                decoded = super().decode(data)
                if not isinstance(decoded, dict) or "value" not in decoded:
                    raise DeserializationError("Nonce: no value in the payload")
                return decoded["value"]

        TestNonce = strategy_conformance(Nonce, values=json_values(), **OPTIONS)
        """,
        {"test_deterministic"},
    ),
    "a checksum made with the salted built-in hash()": (
        """
        class SaltedChecksum(GoodJSON):
            properties = GoodJSON.properties | Property.DETERMINISTIC

            def encode(self, obj):
                body = super().encode(obj)
                # hash() of bytes is salted per process: stable here, not elsewhere.
                return b"%d:%s" % (hash(body), body)

            def decode(self, data):
                checksum, _, body = data.partition(b":")
                if checksum != b"%d" % hash(body):
                    raise DeserializationError("SaltedChecksum: checksum mismatch")
                return super().decode(body)

        TestSalted = strategy_conformance(
            SaltedChecksum, values=json_values(), **OPTIONS
        )
        """,
        {"test_deterministic[across-processes]"},
    ),
    # The identifier half of the same check is "an identifier another plugin owns".
    "a name a built-in strategy owns": (
        """
        class NamedJSON(GoodJSON):
            name = "json"

        TestNamed = strategy_conformance(NamedJSON, values=json_values(), **OPTIONS)
        """,
        {"test_identifier_and_name_are_unique"},
    ),
    "a strategy not declared under an entry point": (
        """
        # GoodJSON is not installed; the other cases say so with registered=False.
        TestUnregistered = strategy_conformance(
            GoodJSON, values=json_values(), **dict(OPTIONS, registered=True)
        )
        """,
        {"test_is_registered_through_an_entry_point"},
    ),
    "a decode-only strategy that claims determinism": (
        """
        class Retired(GoodJSON):
            decode_only = True
            properties = GoodJSON.properties | Property.DETERMINISTIC

        TestRetired = strategy_conformance(Retired, values=json_values(), **OPTIONS)
        """,
        {"test_declarations_are_well_formed"},
    ),
    "a zero-copy claim whose decoder copies the frame": (
        """
        import numpy as np

        class CopiesFrames(GoodJSON):
            properties = GoodJSON.properties | Property.ZERO_COPY

            def to_frames(self, obj):
                if isinstance(obj, np.ndarray):
                    header = {"dtype": obj.dtype.str, "shape": obj.shape}
                    return json.dumps(header).encode(), [np.ascontiguousarray(obj)]
                return super().to_frames(obj)

            def from_frames(self, body, buffers):
                if not buffers:
                    return super().from_frames(body, buffers)
                header = self.decode(bytes(body))
                try:
                    # bytes() copies the received frame: no view of it any more.
                    flat = np.frombuffer(bytes(buffers[0]), dtype=header["dtype"])
                    return flat.reshape(header["shape"])
                except (TypeError, ValueError, KeyError) as e:
                    raise DeserializationError(f"CopiesFrames: {e}") from e

        TestCopies = strategy_conformance(CopiesFrames, values=json_values(), **OPTIONS)
        """,
        {"test_zero_copy"},
    ),
    # Carries bytes, bytearray and memoryview out-of-band, but copies each on the
    # way out and on the way in: the check sees no numpy array here.
    "a zero-copy claim whose strategy copies every buffer": (
        """
        class CopiesEveryBuffer(GoodJSON):
            properties = GoodJSON.properties | Property.ZERO_COPY

            def to_frames(self, obj):
                if isinstance(obj, (bytes, bytearray, memoryview)):
                    return b"B", [bytes(obj)]  # a copy of the value
                return super().to_frames(obj)

            def from_frames(self, body, buffers):
                if bytes(body) == b"B" and len(buffers) == 1:
                    return bytes(buffers[0])  # a copy of the frame
                return super().from_frames(body, buffers)

        TestCopiesEvery = strategy_conformance(
            CopiesEveryBuffer, values=json_values(), **OPTIONS
        )
        """,
        {"test_zero_copy"},
    ),
    "a zero-copy claim whose encoder copies the array": (
        """
        import numpy as np

        class CopiesOnEncode(GoodJSON):
            properties = GoodJSON.properties | Property.ZERO_COPY

            def to_frames(self, obj):
                if isinstance(obj, np.ndarray):
                    header = {"dtype": obj.dtype.str, "shape": obj.shape}
                    # tobytes() copies the array: the frame is not its memory.
                    return json.dumps(header).encode(), [obj.tobytes()]
                return super().to_frames(obj)

            def from_frames(self, body, buffers):
                if not buffers:
                    return super().from_frames(body, buffers)
                header = self.decode(bytes(body))
                try:
                    flat = np.frombuffer(buffers[0], dtype=header["dtype"])
                    return flat.reshape(header["shape"])  # a view: fine
                except (TypeError, ValueError, KeyError) as e:
                    raise DeserializationError(f"CopiesOnEncode: {e}") from e

        TestCopiesOnEncode = strategy_conformance(
            CopiesOnEncode, values=json_values(), **OPTIONS
        )
        """,
        {"test_zero_copy"},
    ),
    # A code strategy: test_roundtrip calls the decoded copy and the original with
    # the same arguments, in every envelope.
    "a decoded callable that drops its return value": (
        """
        import functools
        import pickle

        import cloudpickle

        class LogsCalls(BytesStrategy):
            identifier = "Q3\\n"
            for_code = True
            name = "kit-logs-calls"

            def encode(self, fn):
                return cloudpickle.dumps(fn)

            def decode(self, data):
                fn = pickle.loads(data)

                @functools.wraps(fn)
                def logged(*args, **kwargs):
                    fn(*args, **kwargs)  # the result is lost

                return logged

        # A flipped byte can make pickle allocate gigabytes (its nature, see the
        # damages option): only the damage that cannot forge opcodes.
        TestLogs = strategy_conformance(
            LogsCalls,
            **dict(OPTIONS, damages=("truncated", "extended", "oversized")),
        )
        """,
        {"test_roundtrip[text]", "test_roundtrip[blob]", "test_roundtrip[frames]"},
    ),
    # Sends only the function's id and looks it up again: everything "works" in
    # the sending process, nothing would anywhere else.
    "a code strategy that sends no code": (
        """
        import ctypes

        class SendsAnId(BytesStrategy):
            identifier = "Q4\\n"
            for_code = True
            name = "kit-sends-an-id"

            def encode(self, fn):
                return str(id(fn)).encode()

            def decode(self, data):
                try:
                    return ctypes.cast(int(data), ctypes.py_object).value
                except ValueError as e:
                    raise DeserializationError(f"SendsAnId: {e}") from e

        # A damaged body that still reads as a number would point ctypes at any
        # address: only megabytes of junk, which never parse as one.
        TestId = strategy_conformance(
            SendsAnId, **dict(OPTIONS, damages=("oversized",))
        )
        """,
        {"test_roundtrip[text]", "test_roundtrip[blob]", "test_roundtrip[frames]"},
    ),
}


def failed_checks(pytester: pytest.Pytester, source: str) -> set[str]:
    """Run the kit on ``source`` (appended to ``GOOD``); the checks that failed, each
    with its parameter ids (``test_deterministic[across-processes]``)."""
    pytester.makepyfile(test_strategy=GOOD + textwrap.dedent(source))
    recorder = pytester.inline_run(*KIT_ARGS)
    passed, _skipped, failed = recorder.listoutcomes()
    assert passed, "the kit generated no passing check at all"
    return {r.nodeid.split("::")[-1] for r in failed}


def as_stated(failed: set[str], expected: set[str]) -> set[str]:
    """``failed`` as precisely as ``expected`` states it: a check named there without
    ids stands for any of its parametrizations, one named with ids for that one."""
    bare = {name for name in expected if "[" not in name}
    assert not any(name.split("[")[0] in bare for name in expected - bare), (
        f"a check is stated both with and without ids: {sorted(expected)}"
    )
    return {check if (check := name.split("[")[0]) in bare else name for name in failed}


def test_failed_checks_are_compared_as_precisely_as_stated() -> None:
    failed = {"test_roundtrip[text]", "test_deterministic[across-processes]"}
    assert as_stated(failed, {"test_roundtrip", "test_deterministic"}) == {
        "test_roundtrip",
        "test_deterministic",
    }
    # Pinned ids keep a failing parametrization the case did not name visible.
    assert as_stated(failed, {"test_deterministic[in-process]"}) == failed


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_kit_fails_exactly_the_check_for_each_fault(
    pytester: pytest.Pytester, case: str
) -> None:
    source, expected = BROKEN[case]
    assert as_stated(failed_checks(pytester, source), expected) == expected


#: Honest: it does not claim DETERMINISTIC.  Its payloads differ, in length too,
#: from one encode to the next.
HONEST_NONCE = """
class HonestNonce(GoodJSON):
    def encode(self, obj):
        nonce = os.urandom(1 + os.urandom(1)[0] % 32).hex()
        return json.dumps({"value": obj, "nonce": nonce}).encode()

    def decode(self, data):
        decoded = super().decode(data)
        if not isinstance(decoded, dict) or "value" not in decoded:
            raise DeserializationError("HonestNonce: no value in the payload")
        return decoded["value"]

TestHonest = strategy_conformance(
    HonestNonce, values=json_values(), strict_errors=True, registered=False,
    oversized_size=1 << 16,
)
"""


def test_a_strategy_whose_payloads_vary_passes_the_kit(
    pytester: pytest.Pytester,
) -> None:
    # The kit draws nothing from the strategy's output, so hypothesis replays and
    # shrinks the same examples (it used to stop with FlakyStrategyDefinition in
    # the malformed-input checks).  Enough examples for hypothesis to replay.
    pytester.makepyfile(test_strategy=GOOD + HONEST_NONCE)
    result = pytester.inline_run("--freight-examples=40", *KIT_ARGS[1:])
    passed, _skipped, failed = result.listoutcomes()
    assert not failed, [str(r.longrepr)[-2000:] for r in failed]
    assert len(passed) >= 20


def test_a_fault_of_a_strategy_whose_payloads_vary_reproduces(
    pytester: pytest.Pytester,
) -> None:
    # The same nonce strategy with a decoder that lets ValueError escape: the kit
    # must report that fault as such, not hypothesis' FlakyFailure (a replayed
    # example damages the payload it damaged the first time).
    source = HONEST_NONCE.replace(
        "decoded = super().decode(data)", "decoded = json.loads(data)"
    )
    pytester.makepyfile(test_strategy=GOOD + source)
    result = pytester.inline_run("--freight-examples=40", *KIT_ARGS[1:])
    _passed, _skipped, failed = result.listoutcomes()
    assert {r.nodeid.split("::")[-1].split("[")[0] for r in failed} == {
        "test_decoder_raises_only_deserialization_error"
    }
    for report in failed:
        text = str(report.longrepr)
        assert "let JSONDecodeError escape" in text
        assert "Flaky" not in text, text[-3000:]


def test_a_failing_property_names_the_strategy(pytester: pytest.Pytester) -> None:
    # A decoder that is wrong half of the time: hypothesis reports the flaky
    # failure in its own words; the kit adds which strategy it was.
    source = """
    class Unreliable(GoodJSON):
        def decode(self, data):
            value = super().decode(data)
            return [value] if os.urandom(1)[0] % 2 else value

    TestUnreliable = strategy_conformance(
        Unreliable, values=json_values(), envelopes=("text",), **OPTIONS
    )
    """
    pytester.makepyfile(test_strategy=GOOD + textwrap.dedent(source))
    result = pytester.inline_run(*KIT_ARGS)
    _passed, _skipped, failed = result.listoutcomes()
    roundtrip = [r for r in failed if "test_roundtrip" in r.nodeid]
    assert roundtrip, [r.nodeid for r in failed]
    text = str(roundtrip[0].longrepr)
    assert "freight conformance kit: strategy test_strategy.Unreliable" in text
    assert "identifier 'Q1\\n'" in text


def test_a_declaration_is_collected_under_a_lowercase_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_lowercase=GOOD
        + "test_good_json = strategy_conformance(GoodJSON, values=json_values(),"
        " **OPTIONS)\n"
    )
    result = pytester.runpytest(*KIT_ARGS, "-k", "identifier or declarations")
    result.assert_outcomes(passed=4, deselected=None)


def test_a_data_strategy_must_declare_its_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_novalues=GOOD + "TestGood = strategy_conformance(GoodJSON, **OPTIONS)\n"
    )
    result = pytester.runpytest(*KIT_ARGS)
    result.stdout.fnmatch_lines(["*declare the values it carries*"])
    assert result.ret != 0


# -- memory and time bounds -----------------------------------------------------------


class TrustsItsHeader(BytesStrategy):
    """zstd-compressed pickle that allocates whatever the frame header declares."""

    identifier = "N1\n"
    for_code = False

    def encode(self, obj: Any) -> bytes:
        return zstd().ZstdCompressor().compress(pickle.dumps(obj))

    def decode(self, data: bytes) -> Any:
        try:
            return pickle.loads(zstd().ZstdDecompressor().decompress(data))
        except Exception as e:
            raise DeserializationError(str(e)) from e


def lying_header(strategy: Any, value: Any) -> list[bytes]:
    """A binary message whose zstd body declares hundreds of MiB it does not hold."""
    zstandard = zstd()
    body = bytes(payload_of(strategy, "frames", value)[1])
    for position in range(4, 14):
        for bit in range(8):
            forged = bytearray(body)
            forged[position] ^= 1 << bit
            try:
                declared = zstandard.frame_content_size(bytes(forged))
            except zstandard.ZstdError:
                continue
            if 200 * 2**20 < declared < 2**30:
                kit = KitSerializer(strategy)
                return [bytes(f) for f in frame_message(kit.strategy, forged, [])]
    raise AssertionError("no single bit flip makes the header lie enough")


def test_the_kit_catches_a_decoder_that_allocates_what_a_header_claims() -> None:
    forged = lying_header(TrustsItsHeader, bytes(300_000))
    with pytest.raises(AssertionError, match=r"allocated .* MiB decoding a malformed"):
        assert_rejects_malformed(TrustsItsHeader, forged, allow_success=True)


def test_the_example_plugin_does_not_believe_a_lying_header() -> None:
    forged = lying_header(example_record().cls, bytes(300_000))
    assert assert_rejects_malformed(example_record().cls, forged) is not None


class Hangs(BytesStrategy):
    """Never finishes decoding."""

    identifier = "H1\n"
    for_code = False

    def encode(self, obj: Any) -> bytes:
        return b""

    def decode(self, data: bytes) -> Any:
        while True:
            time.sleep(0.01)


def test_the_kit_catches_a_decoder_that_hangs() -> None:
    with pytest.raises(AssertionError, match="did not finish"):
        assert_rejects_malformed(Hangs, "H1\nAAAA", seconds=0.5)


# -- the pieces ------------------------------------------------------------------------


def test_importing_the_kit_and_its_plugin_does_not_import_hypothesis() -> None:
    code = (
        "import sys, freight.testing, freight.testing.pytest_plugin;"
        " print('hypothesis' in sys.modules, 'freight.serialize' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (1, 1.0),
        ([1, 2], (1, 2)),
        (0.0, -0.0),
        ({"a": 1}, {"a": True}),
        ({1, 2}, {1.0, 2}),
        (np.zeros(3, dtype="float32"), np.zeros(3)),
        (b"x", bytearray(b"x")),
    ],
)
def test_same_value_is_type_strict(actual: Any, expected: Any) -> None:
    with pytest.raises(AssertionError):
        assert_same_value(actual, expected)


def test_the_kit_exports_stay_what_they_are_after_its_modules_load() -> None:
    # The module defining them is imported by now (the conformance module is);
    # an export must not be shadowed by a submodule of the same name.
    import freight.testing as kit

    for name in kit.__all__:
        value = getattr(kit, name)
        assert not isinstance(value, type(kit)), f"freight.testing.{name} is a module"
    from freight.testing import callables

    assert callable(callables) and callables.__name__ == "callables"


def _by_value_twin(source: str) -> Any:
    from freight.testing import define_by_value

    return define_by_value(source, "twin")


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ([math.floor], [math.ceil]),  # builtins found by name: the very object
        ([textwrap.dedent], [textwrap.indent]),  # Python functions
        ([np.float32], [np.float64]),  # classes
        ([math], [pickle]),  # modules
        (
            __import__("functools").partial(pickle.dumps, protocol=4),
            __import__("functools").partial(pickle.dumps, protocol=5),
        ),
        (
            _by_value_twin("def twin(x):\n    return x + 1\n"),
            _by_value_twin("def twin(x):\n    return x - 1\n"),
        ),
    ],
    ids=["builtin", "function", "class", "module", "partial", "by-value"],
)
def test_same_value_tells_named_objects_apart(actual: Any, expected: Any) -> None:
    with pytest.raises(AssertionError):
        assert_same_value(actual, expected)


def test_same_value_accepts_a_by_value_function_rebuilt() -> None:
    import cloudpickle

    twin = _by_value_twin("def twin(x):\n    return x + 1\n")
    assert_same_value(pickle.loads(cloudpickle.dumps(twin)), twin)
    assert_same_value([pickle.loads(pickle.dumps(pickle.dumps))], [pickle.dumps])


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        [math.nan, {"x": (1, math.nan)}],
        complex(math.nan, 1),
        np.array([1.0, math.nan]),
        __import__("decimal").Decimal("NaN"),
    ],
)
def test_same_value_counts_nan_equal_to_nan(value: Any) -> None:
    import copy

    assert_same_value(copy.deepcopy(value), value)


def test_examples_count_comes_from_the_option_the_environment_or_the_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from freight.testing.conformance import DEFAULT_EXAMPLES, examples_setting

    monkeypatch.delenv("FREIGHT_EXAMPLES", raising=False)
    assert examples_setting(None, None) == DEFAULT_EXAMPLES
    assert examples_setting(None, 7) == 7
    monkeypatch.setenv("FREIGHT_EXAMPLES", "300")
    assert examples_setting(None, 7) == 300


def test_traced_yields_a_traced_record_filled_in_when_the_block_ends() -> None:
    # Traced is a plain dataclass (it was once wrapped in contextmanager by mistake,
    # so ``Traced()`` made a context manager that the memory limits wrote into).
    from freight.testing.assertions import Traced, traced

    assert isinstance(Traced(), Traced)
    with traced() as memory:
        assert isinstance(memory, Traced)
        held = bytearray(8 * (1 << 20))
    assert memory.peak >= len(held)
    assert memory.retained >= len(held)
    del held


def test_shares_memory_sees_views_of_every_buffer_type() -> None:
    from freight.testing.assertions import buffer_span, shares_memory

    data = bytearray(range(256)) * 16
    array = np.frombuffer(data, dtype=np.uint8)
    for view in (
        memoryview(data)[100:200],
        pickle.PickleBuffer(data),
        array[::-1][:10],  # negative strides: the end of data
        np.frombuffer(memoryview(data)[8:], dtype=np.float64),
    ):
        assert shares_memory(view, data), view
    assert shares_memory(array[::-1][:10], array[-10:])
    assert not shares_memory(array[::-1][:10], array[:10])
    for copy in (bytes(data), bytearray(data), array.copy(), memoryview(bytes(data))):
        assert not shares_memory(copy, data), type(copy)
    assert buffer_span(42) is None
    assert not shares_memory(b"", data)
