"""What PLUGINS.md promises a plugin author, checked: its examples run, and the
answers it gives (which errors a strategy may raise ...) hold."""

from __future__ import annotations

from typing import Any

import pytest

from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    PluginSettings,
    SerializationError,
    StrategyRegistry,
    TextStrategy,
    hookimpl,
)

# -- a strategy may raise SerializationError / DeserializationError itself ----------


class RaisesItsOwnErrors(TextStrategy):
    identifier = "Q8\n"
    for_code = False
    name = "guide-raises-its-own"

    def encode_text(self, obj: Any) -> str:
        if isinstance(obj, set):
            raise SerializationError("sets are not carried")
        if isinstance(obj, frozenset):
            raise TypeError("frozensets are not carried")
        return repr(obj)

    def decode_text(self, text: str) -> Any:
        if text == "named":
            raise DeserializationError("RaisesItsOwnErrors: bad body at offset 3")
        if text == "plain":
            raise DeserializationError("bad body at offset 3")
        raise ValueError("not a body")


class _Plugin:
    @hookimpl
    def freight_strategies(self) -> list[type[TextStrategy]]:
        return [RaisesItsOwnErrors]


@pytest.fixture(scope="module")
def serde() -> ComputeSerializer:
    registry = StrategyRegistry(settings=PluginSettings(autoload=False))
    registry.register_plugin(_Plugin(), name="guide")
    return ComputeSerializer(strategy_data=RaisesItsOwnErrors, registry=registry)


PREFIX = "Data serialization strategy RaisesItsOwnErrors failed: "


@pytest.mark.parametrize("encode", ["serialize", "dumps", "dumps_frames"])
def test_a_strategy_s_own_serialization_error_is_wrapped_once(
    serde: ComputeSerializer, encode: str
) -> None:
    with pytest.raises(SerializationError) as info:
        getattr(serde, encode)({1, 2})
    assert str(info.value) == PREFIX + "sets are not carried"
    assert isinstance(info.value.__cause__, SerializationError)
    # Any other exception keeps its type name, the one thing that says what it was.
    with pytest.raises(SerializationError) as other:
        getattr(serde, encode)(frozenset())
    assert str(other.value) == PREFIX + "TypeError: frozensets are not carried"


def test_a_strategy_s_own_deserialization_error_is_wrapped_once(
    serde: ComputeSerializer,
) -> None:
    prefix = "RaisesItsOwnErrors ('Q8\\n') failed to deserialize the payload: "
    with pytest.raises(DeserializationError) as info:
        serde.deserialize("Q8\nplain")
    assert str(info.value) == prefix + "bad body at offset 3"
    # One that already names the strategy passes as it is.
    with pytest.raises(DeserializationError) as named:
        serde.deserialize("Q8\nnamed")
    assert str(named.value) == "RaisesItsOwnErrors: bad body at offset 3"
    with pytest.raises(DeserializationError) as other:
        serde.deserialize("Q8\nother")
    assert str(other.value) == prefix + "ValueError: not a body"
