"""The strategy contract: identifiers, names, ``chomp``, the helper bases and combos.

These tests define their own small strategies so they pin the contract in
``freight.serialize.strategy`` itself, not the behaviour of any built-in plugin.
"""

from __future__ import annotations

import base64
import types
from typing import Any

import pytest

from freight.serialize import (
    BytesStrategy,
    ComboSerializationStrategy,
    ComputeSerializer,
    DeserializationError,
    SerializationError,
    SerializationStrategy,
    StrategyRegistry,
    TextStrategy,
    hookimpl,
    pack_buffers,
    unpack_buffers,
)

# -- helpers ---------------------------------------------------------------------------


class Upper(TextStrategy):
    """Data as text, upper-cased so the body is visibly the strategy's own."""

    identifier = "u1\n"
    for_code = False

    def encode_text(self, obj: Any) -> str:
        return str(obj).upper()

    def decode_text(self, text: str) -> Any:
        return text.lower()


class Utf8(BytesStrategy):
    """Data as UTF-8 bytes."""

    identifier = "u2\n"
    for_code = False
    name = "utf8"

    def encode(self, obj: Any) -> bytes:
        return str(obj).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        return data.decode("utf-8")


def make_spy(
    identifier: str,
    *,
    name: str,
    for_code: bool = False,
    fail_encode: bool = False,
    fail_decode: bool = False,
) -> type[TextStrategy]:
    """A fresh text strategy class that records every encode and decode call."""

    def encode_text(self: TextStrategy, obj: Any) -> str:
        type(self).calls.append(("encode", obj))  # type: ignore[attr-defined]
        if fail_encode:
            raise ValueError(f"{name} refuses to encode")
        return repr(obj)

    def decode_text(self: TextStrategy, text: str) -> Any:
        type(self).calls.append(("decode", text))  # type: ignore[attr-defined]
        if fail_decode:
            raise ValueError(f"{name} refuses to decode")
        return f"{name}:{text}"

    return type(  # type: ignore[return-value]
        name.replace("-", "_").title().replace("_", ""),
        (TextStrategy,),
        {
            "identifier": identifier,
            "for_code": for_code,
            "name": name,
            "calls": [],
            "encode_text": encode_text,
            "decode_text": decode_text,
        },
    )


def make_combo(identifier: str, members: list[type[SerializationStrategy]]) -> Any:
    cls = type(
        "TestCombo",
        (ComboSerializationStrategy,),
        {"identifier": identifier, "for_code": False, "name": "test-combo"},
    )
    cls.strategies = members
    return cls()


def plugin_providing(*classes: type[SerializationStrategy]) -> object:
    @hookimpl
    def freight_strategies() -> list[type[SerializationStrategy]]:
        return list(classes)

    return types.SimpleNamespace(freight_strategies=freight_strategies)


# -- identifier validation at class definition -----------------------------------------


MALFORMED_IDENTIFIERS = {
    "too-short": "0\n",
    "two-chars-no-newline": "01",
    "too-long": "0001\n",
    "empty": "",
    "only-newline": "\n",
    "no-trailing-newline": "012",
    "newline-in-the-middle": "0\n1",
    "leading-newline": "\n0\n",
    "all-newlines": "\n\n\n",
}


@pytest.mark.parametrize(
    "value", MALFORMED_IDENTIFIERS.values(), ids=MALFORMED_IDENTIFIERS.keys()
)
def test_malformed_identifier_raises_value_error_when_class_statement_runs(value):
    with pytest.raises(ValueError, match="identifier"):

        class Bad(TextStrategy):
            identifier = value
            for_code = False

            def encode_text(self, obj):  # pragma: no cover - never instantiated
                return ""

            def decode_text(self, text):  # pragma: no cover
                return text


def test_identifier_without_trailing_newline_fails_in_class_statement():
    with pytest.raises(ValueError, match="newline"):

        class NoNewline(SerializationStrategy):
            identifier = "abc"
            for_code = False


def test_identifier_of_wrong_length_fails_in_class_statement():
    with pytest.raises(ValueError, match="3 characters"):

        class TooLong(SerializationStrategy):
            identifier = "abcd\n"
            for_code = False


def test_identifier_with_newline_in_the_middle_fails_in_class_statement():
    with pytest.raises(ValueError, match="two characters followed by a newline"):

        class MiddleNewline(SerializationStrategy):
            identifier = "a\n\n"
            for_code = False


@pytest.mark.parametrize("value", [1, b"01\n", None, ["0", "1", "\n"]])
def test_non_str_identifier_raises_type_error_in_class_statement(value):
    with pytest.raises(TypeError, match="must be a str"):

        class NotAStr(SerializationStrategy):
            identifier = value
            for_code = False


def test_non_bool_for_code_raises_type_error_in_class_statement():
    with pytest.raises(TypeError, match="for_code"):

        class BadKind(SerializationStrategy):
            identifier = "bk\n"
            for_code = "yes"


def test_well_formed_identifier_is_accepted():
    class Fine(SerializationStrategy):
        identifier = "zz\n"
        for_code = True

        def serialize(self, data):  # pragma: no cover
            return ""

        def deserialize(self, payload):  # pragma: no cover
            return None

    assert Fine.identifier == "zz\n"


# -- name ------------------------------------------------------------------------------


def test_name_defaults_to_class_name():
    assert Upper.name == "Upper"
    assert Upper().name == "Upper"


def test_explicit_name_is_kept():
    assert Utf8.name == "utf8"


def test_subclass_without_own_name_gets_its_own_class_name_not_the_parents():
    class Utf8Variant(Utf8):
        identifier = "u3\n"

    assert Utf8Variant.name == "Utf8Variant"


# -- chomp -----------------------------------------------------------------------------


def test_chomp_strips_the_header():
    assert Upper().chomp("u1\nHELLO") == "HELLO"
    assert Upper().chomp("u1\n") == ""


def test_chomp_keeps_later_newlines_in_the_body():
    assert Upper().chomp("u1\nA\nB\n") == "A\nB\n"


@pytest.mark.parametrize("payload", ["u2\nHELLO", "01\nxyz", "u1", "", "U1\nX"])
def test_chomp_raises_deserialization_error_for_wrong_header(payload):
    with pytest.raises(DeserializationError, match="identifier"):
        Upper().chomp(payload)


@pytest.mark.parametrize("payload", [b"u1\nHELLO", None, 42, ["u1\n"]])
def test_chomp_raises_deserialization_error_for_non_str(payload):
    with pytest.raises(DeserializationError, match="str payload"):
        Upper().chomp(payload)


# -- helper bases ----------------------------------------------------------------------


def test_text_strategy_payload_is_identifier_plus_body():
    assert Upper().serialize("hello") == "u1\nHELLO"


def test_text_strategy_round_trips():
    s = Upper()
    assert s.deserialize(s.serialize("hello")) == "hello"


def test_bytes_strategy_payload_is_identifier_plus_base64_body():
    body = "héllo wörld".encode()
    assert Utf8().serialize("héllo wörld") == "u2\n" + base64.b64encode(body).decode()


def test_bytes_strategy_round_trips():
    s = Utf8()
    text = "unicode ✓ " * 50
    assert s.deserialize(s.serialize(text)) == text


def test_bytes_strategy_decodes_base64_broken_into_lines():
    # The reference writes base64 in 76-column lines; the decoder must accept it.
    text = "x" * 200
    body = base64.encodebytes(text.encode()).decode()
    assert "\n" in body
    assert Utf8().deserialize("u2\n" + body) == text


def test_bytes_strategy_deserialize_refuses_another_strategys_header():
    with pytest.raises(DeserializationError):
        Utf8().deserialize(Upper().serialize("x"))


# -- ComboSerializationStrategy --------------------------------------------------------


def test_combo_body_holds_one_payload_per_member_in_declared_order():
    first = make_spy("c1\n", name="first")
    second = make_spy("c2\n", name="second")
    combo = make_combo("cc\n", [first, second])

    payload = combo.serialize(7)

    assert payload.startswith("cc\n")
    assert unpack_buffers(payload[3:]) == ["c1\n7", "c2\n7"]
    assert [c[0] for c in first.calls] == ["encode"]
    assert [c[0] for c in second.calls] == ["encode"]


def test_combo_skips_members_that_cannot_serialize():
    failing = make_spy("c1\n", name="failing", fail_encode=True)
    working = make_spy("c2\n", name="working")
    combo = make_combo("cc\n", [failing, working])

    assert unpack_buffers(combo.serialize(1)[3:]) == ["c2\n1"]


def test_combo_decodes_with_first_member_that_works():
    first = make_spy("c1\n", name="first")
    second = make_spy("c2\n", name="second")
    combo = make_combo("cc\n", [first, second])
    payload = combo.serialize("v")
    first.calls.clear()
    second.calls.clear()

    assert combo.deserialize(payload) == "first:'v'"
    assert first.calls == [("decode", "'v'")]
    assert second.calls == []


def test_combo_falls_back_to_next_member_when_decoding_fails():
    first = make_spy("c1\n", name="first", fail_decode=True)
    second = make_spy("c2\n", name="second")
    combo = make_combo("cc\n", [first, second])
    payload = combo.serialize("v")

    assert combo.deserialize(payload) == "second:'v'"
    assert ("decode", "'v'") in first.calls


def test_combo_serialization_error_lists_each_member_error():
    first = make_spy("c1\n", name="first", fail_encode=True)
    second = make_spy("c2\n", name="second", fail_encode=True)
    combo = make_combo("cc\n", [first, second])

    with pytest.raises(SerializationError) as excinfo:
        combo.serialize(object())

    message = str(excinfo.value)
    assert "first" in message and "first refuses to encode" in message
    assert "second" in message and "second refuses to encode" in message
    assert "ValueError" in message


def test_combo_deserialization_error_lists_each_member_error():
    first = make_spy("c1\n", name="first", fail_decode=True)
    second = make_spy("c2\n", name="second", fail_decode=True)
    combo = make_combo("cc\n", [first, second])
    payload = combo.serialize(1)

    with pytest.raises(DeserializationError) as excinfo:
        combo.deserialize(payload)

    message = str(excinfo.value)
    assert "first refuses to decode" in message
    assert "second refuses to decode" in message


def test_combo_refuses_part_from_registered_non_member_without_decoding_it():
    member = make_spy("c1\n", name="member")
    outsider = make_spy("c9\n", name="outsider")
    code = make_spy("c8\n", name="code", for_code=True)
    registry = StrategyRegistry(entry_point_group=None)
    registry.register_plugin(plugin_providing(member, outsider, code), "spies")
    # The outsider is a real, registered strategy: its payload is valid on its own.
    serializer = ComputeSerializer(code, outsider, registry=registry)
    outsider_payload = outsider().serialize("smuggled")
    assert serializer.deserialize(outsider_payload) == "outsider:'smuggled'"
    outsider.calls.clear()
    member.calls.clear()

    combo = make_combo("cc\n", [member])
    smuggling = "cc\n" + pack_buffers([outsider_payload])

    with pytest.raises(DeserializationError, match="not a member"):
        combo.deserialize(smuggling)
    assert outsider.calls == []
    assert member.calls == []


def test_combo_refuses_non_member_part_but_still_decodes_a_member_part_after_it():
    member = make_spy("c1\n", name="member")
    outsider = make_spy("c9\n", name="outsider")
    combo = make_combo("cc\n", [member])
    payload = "cc\n" + pack_buffers(
        [outsider().serialize("evil"), member().serialize("good")]
    )
    outsider.calls.clear()
    member.calls.clear()

    assert combo.deserialize(payload) == "member:'good'"
    assert outsider.calls == []


def test_combo_with_no_parts_raises_deserialization_error():
    combo = make_combo("cc\n", [make_spy("c1\n", name="member")])
    with pytest.raises(DeserializationError, match="no parts"):
        combo.deserialize("cc\n")


def test_combo_with_wrong_header_raises_deserialization_error():
    combo = make_combo("cc\n", [make_spy("c1\n", name="member")])
    with pytest.raises(DeserializationError):
        combo.deserialize("c1\nwhatever")


def test_combo_with_malformed_framing_raises_deserialization_error():
    combo = make_combo("cc\n", [make_spy("c1\n", name="member")])
    with pytest.raises(DeserializationError):
        combo.deserialize("cc\n999\nshort")
