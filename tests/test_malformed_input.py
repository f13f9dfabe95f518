"""Malformed input gets a ``DeserializationError`` that says what was wrong.

Nothing a peer sends may surface as a bare ``IndexError``, ``ValueError``,
``UnicodeDecodeError``, ``binascii.Error``, ``KeyError`` ...: the explicit cases pin
the message for each kind of damage, and the fuzzing properties check that random and
mutated payloads and packed buffers either decode or raise ``DeserializationError``.

Safety: several strategies (``st``, ``sd``, ``03``, ``04``, ``10``, ``12``) execute
source code when they decode.  The fuzzed payloads are made only from harmless seeds
(sample functions that merely add or scale), and every generated fragment is
filtered so a mutation cannot introduce a name that could do harm (``import``,
``os``, ``open``, ``exec``, ``eval``, dunders, loops, exponentiation ...), checked
after NFKC normalization because Python identifiers are normalized that way.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickle
import re
import string
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import dill
import pybase64
import pytest
import samples
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    RegisteredStrategy,
    default_registry,
    pack_buffers,
    unpack_buffers,
)
from freight.serialize.b64 import decode_base64

# -- helpers --------------------------------------------------------------------------

REGISTERED = list(default_registry())
IDENTIFIERS = [rec.identifier for rec in REGISTERED]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def deserialize_error(payload: Any) -> DeserializationError:
    """The ``DeserializationError`` the default serializer raises for ``payload``."""
    with pytest.raises(DeserializationError) as info:
        ComputeSerializer().deserialize(payload)
    return info.value


def cause_chain(exc: BaseException) -> list[BaseException]:
    """``exc.__cause__``, its cause, and so on."""
    chain: list[BaseException] = []
    cause = exc.__cause__
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__
    return chain


def class_name(identifier: str) -> str:
    rec = default_registry().by_identifier(identifier)
    assert rec is not None, f"no strategy registered for {identifier!r}"
    return rec.cls.__name__


def assert_strategy_failure(
    exc: DeserializationError, identifier: str, cause: type[BaseException]
) -> None:
    """The message names the strategy; ``__cause__`` is the original exception."""
    assert class_name(identifier) in str(exc)
    assert isinstance(exc.__cause__, cause), f"__cause__ is {exc.__cause__!r}"
    assert not isinstance(exc.__cause__, DeserializationError)
    assert type(exc.__cause__).__name__ in str(exc)


UNPACKERS = [
    pytest.param(unpack_buffers, id="unpack_buffers"),
    pytest.param(
        ComputeSerializer.unpack_buffers, id="ComputeSerializer.unpack_buffers"
    ),
]


# -- the header -----------------------------------------------------------------------


def test_empty_payload_is_too_short_for_a_header() -> None:
    exc = deserialize_error("")
    assert "too short for an identifier header" in str(exc)
    assert "0 characters" in str(exc)


@pytest.mark.parametrize("payload", ["0", "01", "\n", "1\n"])
def test_payload_shorter_than_a_header_is_too_short(payload: str) -> None:
    exc = deserialize_error(payload)
    assert "too short for an identifier header" in str(exc)
    assert f"{len(payload)} characters" in str(exc)


@pytest.mark.parametrize(
    "payload", ["abcdef", "01x{}", "0\n1body", "\n\n\nbody", "abc"]
)
def test_header_without_its_newline_is_malformed(payload: str) -> None:
    exc = deserialize_error(payload)
    assert "malformed identifier header" in str(exc)
    assert repr(payload[:3]) in str(exc)


@pytest.mark.parametrize("payload", ["zz\n", "zz\nbody", "99\n" + b64(b"x"), "s1\n:"])
def test_unknown_identifier_is_named(payload: str) -> None:
    exc = deserialize_error(payload)
    assert "unknown strategy identifier" in str(exc)
    assert repr(payload[:3]) in str(exc)


@pytest.mark.parametrize(
    ("payload", "type_name"),
    [
        (b"00\ngARLAS4=", "bytes"),
        (bytearray(b"11\n1"), "bytearray"),
        (memoryview(b"11\n1"), "memoryview"),
        (None, "NoneType"),
        (42, "int"),
        (["11\n1"], "list"),
    ],
)
def test_payload_of_the_wrong_type_is_refused(payload: Any, type_name: str) -> None:
    exc = deserialize_error(payload)
    assert f"expected a str payload, got {type_name}" in str(exc)


# -- base64 bodies (00, 01, 02, 03, 04) ------------------------------------------------

BAD_BASE64_BODIES = [
    pytest.param("abc", id="bad-padding"),
    pytest.param("AAAAA", id="one-char-too-many"),
    pytest.param("gASV\u00e9", id="non-ascii"),
    pytest.param("\u2603", id="only-non-ascii"),
]


@pytest.mark.parametrize("header", ["00\n", "01\n"])
@pytest.mark.parametrize("body", BAD_BASE64_BODIES)
def test_invalid_base64_body_is_reported_as_invalid_base64(
    header: str, body: str
) -> None:
    exc = deserialize_error(header + body)
    assert "not valid base64" in str(exc)
    assert any(isinstance(c, binascii.Error | ValueError) for c in cause_chain(exc)), (
        cause_chain(exc)
    )


@pytest.mark.parametrize("header", ["00\n", "01\n"])
@pytest.mark.parametrize("body", BAD_BASE64_BODIES)
def test_invalid_base64_error_names_the_strategy(header: str, body: str) -> None:
    exc = deserialize_error(header + body)
    assert class_name(header) in str(exc), str(exc)


@pytest.mark.parametrize("header", ["00\n", "01\n"])
@pytest.mark.parametrize("body", ["!!!!", "gASV!!!!", "@@@@" + b64(b"x"), "ab=cd==="])
def test_base64_body_with_characters_outside_the_alphabet_is_rejected(
    header: str, body: str
) -> None:
    # Silently skipping stray characters turns a corrupted body into a confusing
    # pickle error (or, worse, into a different valid body).
    exc = deserialize_error(header + body)
    assert "not valid base64" in str(exc), str(exc)


_BASE64ISH = st.text(
    alphabet=string.ascii_letters + string.digits + "+/=-_ .\x00é",
    max_size=200,
)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_BASE64ISH)
def test_short_and_long_base64_bodies_are_judged_alike(text: str) -> None:
    # Short bodies decode with binascii, long ones with pybase64: either way a
    # body decodes to the same bytes, or is refused, as pybase64 alone would.
    try:
        expected: bytes | None = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        expected = None
    try:
        got: bytes | None = decode_base64(text)
    except DeserializationError:
        got = None
    assert got == expected


def test_base64_body_with_the_references_line_breaks_still_decodes() -> None:
    # The reference wraps base64 every 76 columns; a stricter decoder must keep that.
    value = {"text": "x" * 200, "n": list(range(50))}
    payload = "00\n" + base64.encodebytes(dill.dumps(value)).decode("ascii")
    assert "\n" in payload[3:-1]
    assert ComputeSerializer().deserialize(payload) == value


@pytest.mark.parametrize("header", ["00\n", "01\n", "02\n"])
@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        pytest.param(b"garbage", pickle.UnpicklingError, id="garbage"),
        pytest.param(b"", EOFError, id="empty"),
        pytest.param(
            pickle.dumps({"a": [1, 2, 3]})[:-4], pickle.UnpicklingError, id="truncated"
        ),
        pytest.param(
            b"\x80\x05\x95\xff\xff\xff\xff\x00\x00\x00\x00",
            pickle.UnpicklingError,
            id="huge-frame",
        ),
    ],
)
def test_valid_base64_of_garbage_pickle_names_the_strategy_and_chains_the_cause(
    header: str, raw: bytes, cause: type[BaseException]
) -> None:
    exc = deserialize_error(header + b64(raw))
    assert "failed to deserialize" in str(exc)
    assert_strategy_failure(exc, header, cause)


@pytest.mark.parametrize("header", ["03\n", "04\n"])
def test_pickled_source_of_the_wrong_shape_names_the_strategy(header: str) -> None:
    exc = deserialize_error(header + b64(dill.dumps(42)))
    assert_strategy_failure(exc, header, TypeError)


@pytest.mark.parametrize("header", ["03\n", "04\n"])
def test_pickled_source_that_does_not_define_the_name_says_so(header: str) -> None:
    exc = deserialize_error(header + b64(dill.dumps(("foo", "x = 1\n"))))
    assert "does not define 'foo'" in str(exc)
    assert_strategy_failure(exc, header, ValueError)


# -- JSON (11) ------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["{bad", "", "[1,", "{'a': 1}", "1 2", "\u2603"])
def test_invalid_json_names_json_data_and_chains_the_decode_error(body: str) -> None:
    exc = deserialize_error("11\n" + body)
    assert "failed to deserialize" in str(exc)
    assert_strategy_failure(exc, "11\n", json.JSONDecodeError)


# -- plain source (st, sd) -------------------------------------------------------------


@pytest.mark.parametrize("header", ["st\n", "sd\n"])
@pytest.mark.parametrize("body", ["", "no separator here", "x = 1\n"])
def test_source_without_the_name_separator_says_so(header: str, body: str) -> None:
    exc = deserialize_error(header + body)
    assert "no ':' separating the function name from its source" in str(exc)
    assert_strategy_failure(exc, header, ValueError)


@pytest.mark.parametrize("header", ["st\n", "sd\n"])
@pytest.mark.parametrize(
    "body", ["foo:x = 1\n", "foo:def bar():\n    return 1\n", "foo:"]
)
def test_source_that_does_not_define_the_name_says_so(header: str, body: str) -> None:
    exc = deserialize_error(header + body)
    assert "does not define 'foo'" in str(exc)
    assert_strategy_failure(exc, header, ValueError)


@pytest.mark.parametrize("header", ["st\n", "sd\n"])
def test_source_with_a_syntax_error_chains_it(header: str) -> None:
    exc = deserialize_error(header + "foo:def foo(:\n")
    assert_strategy_failure(exc, header, SyntaxError)


# -- combos (12, 13) ------------------------------------------------------------------

MALFORMED_INNER_FRAMING = {
    "no-newline": ("xyz", "no newline"),
    "truncated": ("5\nab", "truncated"),
    "negative": ("-1\n", "negative length"),
    "non-numeric": ("x\nab", "bad length"),
    "second-part-truncated": ("3\n11\n1" + "9\n", "truncated"),
}


@pytest.mark.parametrize("header", ["12\n", "13\n"])
@pytest.mark.parametrize(
    ("body", "phrase"),
    list(MALFORMED_INNER_FRAMING.values()),
    ids=list(MALFORMED_INNER_FRAMING),
)
def test_combo_with_malformed_inner_framing_says_what_is_wrong(
    header: str, body: str, phrase: str
) -> None:
    exc = deserialize_error(header + body)
    assert phrase in str(exc)


NON_MEMBER_PARTS = {
    "unknown-in-all-code": ("12\n", ["zz\nabc"]),
    # A data pickle smuggled into a code combo, and code into a data combo: only the
    # combo's own members may decode a part.
    "data-in-all-code": ("12\n", ["00\n" + b64(dill.dumps(1))]),
    "code-in-all-data": ("13\n", ["01\n" + b64(dill.dumps(samples.add))]),
    "source-in-all-data": ("13\n", ["st\nadd:def add(x, y):\n    return x + y\n"]),
}


@pytest.mark.parametrize(
    ("header", "parts"), list(NON_MEMBER_PARTS.values()), ids=list(NON_MEMBER_PARTS)
)
def test_combo_part_for_a_non_member_is_refused(header: str, parts: list[str]) -> None:
    exc = deserialize_error(header + pack_buffers(parts))
    assert "is not a member" in str(exc)
    assert repr(parts[0][:3]) in str(exc)


COMBO_FAILURES = {
    **{
        f"{header.strip()}-{name}": header + body
        for header in ("12\n", "13\n")
        for name, (body, _) in MALFORMED_INNER_FRAMING.items()
    },
    **{
        name: header + pack_buffers(parts)
        for name, (header, parts) in NON_MEMBER_PARTS.items()
    },
    "12-no-parts": "12\n",
}


@pytest.mark.parametrize(
    "payload", list(COMBO_FAILURES.values()), ids=list(COMBO_FAILURES)
)
def test_combo_failure_names_the_strategy(payload: str) -> None:
    exc = deserialize_error(payload)
    assert class_name(payload[:3]) in str(exc), str(exc)


def test_combo_whose_every_part_fails_lists_each_failure() -> None:
    exc = deserialize_error("13\n" + pack_buffers(["11\n{bad", "00\nabc"]))
    assert "could be deserialized" in str(exc)
    assert "JSONDecodeError" in str(exc)
    assert "base64" in str(exc)


@pytest.mark.parametrize("header", ["12\n", "13\n"])
def test_combo_without_parts_says_so(header: str) -> None:
    exc = deserialize_error(header)
    assert "holds no parts" in str(exc)


# -- CombinedCode (10) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param("zz\n:abc", "invalid member identifier 'zz\\n'", id="unknown"),
        pytest.param(
            "00\n:" + b64(dill.dumps(1)),
            "invalid member identifier '00\\n'",
            id="data-member",
        ),
        pytest.param("", "invalid member identifier ''", id="empty"),
        pytest.param(
            "garbage without separators", "invalid member identifier", id="garbage"
        ),
        pytest.param("01\n", "has no body", id="no-body"),
        pytest.param(
            "01\n:!!!!", "deserialization failed after 1 tries", id="member-fails"
        ),
    ],
)
def test_combined_code_with_bad_members_says_what_is_wrong(
    body: str, phrase: str
) -> None:
    exc = deserialize_error("10\n" + body)
    assert phrase in str(exc)
    assert "CombinedCode" in str(exc)


# -- packed buffers -------------------------------------------------------------------


@pytest.mark.parametrize("unpack", UNPACKERS)
@pytest.mark.parametrize(
    ("packed", "phrase"),
    [
        pytest.param("5", "no newline", id="digits-only"),
        pytest.param("abc", "no newline", id="no-newline"),
        pytest.param("x\nab", "bad length", id="non-numeric"),
        pytest.param(" 1\na", "bad length", id="space"),
        pytest.param("1.5\na", "bad length", id="decimal-point"),
        pytest.param("+1\na", "bad length", id="plus-sign"),
        pytest.param("\u0663\nabc", "bad length", id="non-ascii-digit"),
        pytest.param("\n", "bad length", id="empty-length"),
        pytest.param("-1\nab", "negative length", id="negative"),
        pytest.param("5\nab", "truncated", id="truncated"),
        pytest.param("2\nab3\nx", "truncated", id="second-truncated"),
        pytest.param("9" * 40 + "\nabc", "length prefix", id="huge-length"),
        pytest.param("99999999999999999999\nabc", "truncated", id="20-digit-length"),
    ],
)
def test_malformed_packed_buffers_say_what_is_wrong(
    unpack: Callable[[str], list[str]], packed: str, phrase: str
) -> None:
    with pytest.raises(DeserializationError, match=re.escape(phrase)):
        unpack(packed)


@pytest.mark.parametrize("unpack", UNPACKERS)
def test_packed_buffer_errors_give_the_offset(
    unpack: Callable[[str], list[str]],
) -> None:
    with pytest.raises(DeserializationError, match=r"packed buffer 1 at offset 4"):
        unpack("2\nab3\nx")


@pytest.mark.parametrize("unpack", UNPACKERS)
@pytest.mark.parametrize("packed", [b"1\na", bytearray(b"1\na"), None, 3, ["1\na"]])
def test_unpack_buffers_refuses_a_non_str(
    unpack: Callable[[Any], list[str]], packed: Any
) -> None:
    with pytest.raises(
        DeserializationError, match=f"must be str, got {type(packed).__name__}"
    ):
        unpack(packed)


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_unpack_and_deserialize_requires_exactly_three_buffers(count: int) -> None:
    packed = pack_buffers(["11\n1"] * count)
    with pytest.raises(
        DeserializationError, match=rf"expects 3 packed buffers.*got {count}"
    ):
        ComputeSerializer().unpack_and_deserialize(packed)


def test_unpack_and_deserialize_checks_the_count_before_decoding() -> None:
    # Four bogus payloads: the count is wrong, and that is what is reported.
    packed = pack_buffers(["zz\n", "01\n!!", "", "st\nnope"])
    with pytest.raises(DeserializationError, match="expects 3 packed buffers"):
        ComputeSerializer().unpack_and_deserialize(packed)


@pytest.mark.parametrize(
    ("packed", "phrase"),
    [("zz", "no newline"), ("5\nab", "truncated"), (None, "must be str")],
)
def test_unpack_and_deserialize_reports_malformed_framing(
    packed: Any, phrase: str
) -> None:
    with pytest.raises(DeserializationError, match=phrase):
        ComputeSerializer().unpack_and_deserialize(packed)


# -- fuzzing --------------------------------------------------------------------------

#: Substrings a generated fragment may not contain (after NFKC normalization and
#: lower-casing), so that no payload a strategy executes can do anything but define
#: harmless functions or fail.
FORBIDDEN = (
    "import", "os", "open", "exec", "eval", "__", "exit", "quit", "input",
    "breakpoint", "help", "while", "for", "raise", "sys", "compile", "getattr",
    "setattr", "globals", "locals", "vars", "lambda", "range", "del", "*", "<<",
)  # fmt: skip


def _normalized(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def is_harmless(text: str) -> bool:
    norm = _normalized(text)
    return not any(word in norm for word in FORBIDDEN)


def _danger(payload: str) -> Counter[str]:
    """How often each forbidden word occurs in ``payload``'s text and in what its
    chunks decode to as (lenient) base64, i.e. what a pickle strategy would read."""
    norm = _normalized(payload)
    counts: Counter[str] = Counter({w: norm.count(w) for w in FORBIDDEN})
    for chunk in re.split(r"[\n:]", payload):
        try:
            raw = binascii.a2b_base64(chunk.encode("ascii", "ignore"))
        except (binascii.Error, ValueError):
            continue
        low = raw.lower()
        counts.update({w: low.count(w.encode()) for w in FORBIDDEN})
    return counts


def introduces_danger(seed: str, mutated: str) -> bool:
    before, after = _danger(seed), _danger(mutated)
    return any(after[w] > before[w] for w in FORBIDDEN)


safe_chars = st.characters(exclude_characters="*_<", exclude_categories=["Cs"])
safe_text = st.text(safe_chars, max_size=60).filter(is_harmless)
safe_fragments = st.text(safe_chars, min_size=1, max_size=8).filter(is_harmless)


def _serializer_for(rec: RegisteredStrategy) -> ComputeSerializer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if rec.for_code:
            return ComputeSerializer(strategy_code=rec.cls)
        return ComputeSerializer(strategy_data=rec.cls)


#: Harmless seeds: small JSON-able values, and functions that only add or scale.
SEED_VALUES: list[Any] = [42, "hello", {"a": [1, 2.5, None, True], "b": "text"}]
SEED_FUNCTIONS = [samples.add, samples.keyword_only]
#: Strategies whose domain is narrower than "any value": their own harmless seeds.
SPECIAL_SEEDS: dict[str, list[Any]] = {
    "exception": [ValueError("bad value"), KeyError("k")],
}


def _seed_payloads() -> dict[str, list[str]]:
    seeds: dict[str, list[str]] = {}
    for rec in REGISTERED:
        if rec.strategy.decode_only:
            continue
        serializer = _serializer_for(rec)
        default = SEED_FUNCTIONS if rec.for_code else SEED_VALUES
        for obj in SPECIAL_SEEDS.get(rec.name, default):
            payload = serializer.serialize(obj)
            assert serializer.deserialize(payload) is not None
            seeds.setdefault(rec.identifier, []).append(payload)
    return seeds


SEEDS_BY_IDENTIFIER = _seed_payloads()
SEEDS = [p for payloads in SEEDS_BY_IDENTIFIER.values() for p in payloads]

#: Headers a swap may put in front of a body: every registered one, and some that
#: are not headers at all.
SWAP_HEADERS = [*IDENTIFIERS, "zz\n", "0\n", "", "00", "\n\n\n", "99\n"]


def test_every_selectable_strategy_contributes_fuzzing_seeds() -> None:
    selectable = {r.identifier for r in REGISTERED if not r.strategy.decode_only}
    assert set(SEEDS_BY_IDENTIFIER) == selectable


@st.composite
def mutations_of(draw: st.DrawFn, seeds: list[str]) -> tuple[str, str]:
    """A seed, and the seed after one to three random mutations.

    Positions fall in the body three times out of four, so most mutations get past
    the header check and reach a strategy's decoder.
    """
    seed = draw(st.sampled_from(seeds))
    payload = seed

    def position(last: int) -> int:
        low = min(draw(st.sampled_from([0, 3, 3, 3])), last)
        return draw(st.integers(low, last))

    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["truncate", "substitute", "insert", "delete", "swap"])
        )
        n = len(payload)
        if kind == "truncate":
            payload = payload[: position(n)]
        elif kind == "substitute" and n:
            i = position(n - 1)
            payload = payload[:i] + draw(safe_fragments)[:1] + payload[i + 1 :]
        elif kind == "insert":
            i = position(n)
            payload = payload[:i] + draw(safe_fragments) + payload[i:]
        elif kind == "delete" and n:
            i = position(n - 1)
            j = draw(st.integers(i + 1, min(n, i + 16)))
            payload = payload[:i] + payload[j:]
        elif kind == "swap":
            payload = draw(st.sampled_from(SWAP_HEADERS)) + payload[3:]
    assume(not introduces_danger(seed, payload))
    return seed, payload


def decodes_or_raises_deserialization_error(call: Callable[[], Any]) -> None:
    """The property: a normal return, or ``DeserializationError`` with a message.

    Any other exception propagates and fails the test.
    """
    try:
        call()
    except DeserializationError as e:
        assert str(e), "DeserializationError without a message"


FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@FUZZ
@given(payload=st.text(max_size=80).filter(is_harmless))
def test_random_text_payload_decodes_or_raises_deserialization_error(
    payload: str,
) -> None:
    decodes_or_raises_deserialization_error(
        lambda: ComputeSerializer().deserialize(payload)
    )


@FUZZ
@given(header=st.sampled_from(SWAP_HEADERS), body=safe_text)
def test_random_body_under_any_header_decodes_or_raises_deserialization_error(
    header: str, body: str
) -> None:
    payload = header + body
    decodes_or_raises_deserialization_error(
        lambda: ComputeSerializer().deserialize(payload)
    )


@FUZZ
@given(case=mutations_of(SEEDS))
def test_mutated_valid_payload_decodes_or_raises_deserialization_error(
    case: tuple[str, str],
) -> None:
    _, payload = case
    decodes_or_raises_deserialization_error(
        lambda: ComputeSerializer().deserialize(payload)
    )


@st.composite
def packed_like(draw: st.DrawFn) -> str:
    """Text shaped like ``pack_buffers`` output, with lengths that may be wrong."""
    parts = draw(
        st.lists(
            st.tuples(
                st.integers(-3, 40).map(str) | st.text("0123456789-+ x", max_size=4),
                st.sampled_from(["\n", "", "\r\n", " "]),
                st.text(max_size=20),
            ),
            max_size=5,
        )
    )
    return "".join(length + sep + body for length, sep, body in parts)


@pytest.mark.parametrize("unpack", UNPACKERS)
@FUZZ
@given(packed=st.text(max_size=80) | packed_like())
def test_random_packed_buffers_unpack_or_raise_deserialization_error(
    unpack: Callable[[str], list[str]], packed: str
) -> None:
    try:
        result = unpack(packed)
    except DeserializationError as e:
        assert str(e)
        return
    assert isinstance(result, list)
    assert all(isinstance(b, str) for b in result)
    assert sum(map(len, result)) <= len(packed)


def _packed_seeds() -> list[str]:
    packed = []
    for code, data in [
        ("DillCode", "DillDataBase64"),
        ("st", "JSONData"),
        ("all-code", "all-data"),
    ]:
        serializer = ComputeSerializer(strategy_code=code, strategy_data=data)
        packed.append(
            serializer.pack_buffers(
                [
                    serializer.serialize(samples.add),
                    serializer.serialize((1, 2)),
                    serializer.serialize({"k": "v"}),
                ]
            )
        )
    return packed


PACKED_SEEDS = _packed_seeds()


@FUZZ
@given(
    packed=st.text(max_size=80).filter(is_harmless) | packed_like().filter(is_harmless)
)
def test_random_packed_buffers_to_unpack_and_deserialize(packed: str) -> None:
    decodes_or_raises_deserialization_error(
        lambda: ComputeSerializer().unpack_and_deserialize(packed)
    )


@FUZZ
@given(case=mutations_of(PACKED_SEEDS))
def test_mutated_packed_buffers_to_unpack_and_deserialize(
    case: tuple[str, str],
) -> None:
    _, packed = case
    decodes_or_raises_deserialization_error(
        lambda: ComputeSerializer().unpack_and_deserialize(packed)
    )
