"""The reference SDK's remaining public names and error phrases (issue 10, section 3).

Code written for ``globus_compute_sdk.serialize`` ports by changing imports: these
names exist with the reference's shapes, and the phrases a caller may match on
are inside freight's messages.  (``tests/reference/`` runs the reference's own
tests through a module-name shim.)
"""

from __future__ import annotations

import dataclasses

import pytest
import samples

import freight.serialize as fs
from freight.serialize import (
    AllowlistWildcard,
    ComputeSerializer,
    DeserializationError,
    SerdeError,
    SerializationError,
    SerializationStrategy,
    ValidatedStrategylike,
    validate_strategylike,
)
from freight.serialize.facade import parse_allowlist

# -- SELECTABLE_* ----------------------------------------------------------------------


def test_selectable_strategies_are_every_registered_class_but_decode_only() -> None:
    selectable = fs.SELECTABLE_STRATEGIES
    registered = {rec.cls for rec in fs.default_registry()}
    assert set(selectable) <= registered
    assert fs.DillCode in selectable and fs.JSONData in selectable
    assert fs.CombinedCode in selectable  # deprecated, but selectable (as reference)
    assert fs.PickleCode not in selectable  # decode-only
    assert set(selectable) == {
        c
        for c in registered
        if not fs.default_registry().resolve(c).strategy.decode_only
    }


def test_selectable_code_and_data_split_selectable_by_kind() -> None:
    code, data = fs.SELECTABLE_CODE_STRATEGIES, fs.SELECTABLE_DATA_STRATEGIES
    assert code and data
    assert all(c.for_code for c in code)
    assert not any(c.for_code for c in data)
    assert set(code) | set(data) == set(fs.SELECTABLE_STRATEGIES)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_selectable_strategies_each_encode_with_their_own_header() -> None:
    for cls in fs.SELECTABLE_CODE_STRATEGIES:
        payload = ComputeSerializer(strategy_code=cls()).serialize(samples.add)
        assert payload[:3] == cls.identifier
    for cls in fs.SELECTABLE_DATA_STRATEGIES:
        value = ValueError("x") if cls.identifier == "ex\n" else "foo"
        payload = ComputeSerializer(strategy_data=cls()).serialize(value)
        assert payload[:3] == cls.identifier


# -- get_cached_by_id / get_cached_by_class --------------------------------------------


def test_get_cached_by_id_returns_the_registered_instance() -> None:
    strategy = SerializationStrategy.get_cached_by_id("01\n")
    assert strategy is fs.default_registry().by_identifier("01\n").strategy  # type: ignore[union-attr]
    assert type(strategy) is fs.DillCode


@pytest.mark.parametrize("identifier", ["zz\n", "01", "", 1, None])
def test_get_cached_by_id_of_an_unknown_identifier_is_none(identifier: object) -> None:
    assert SerializationStrategy.get_cached_by_id(identifier) is None  # type: ignore[arg-type]


def test_get_cached_by_class_returns_the_registered_instance() -> None:
    strategy = SerializationStrategy.get_cached_by_class(fs.JSONData)
    assert strategy is fs.default_registry().resolve(fs.JSONData).strategy
    assert fs.JSONData.get_cached_by_class(fs.DillCode) is (
        SerializationStrategy.get_cached_by_class(fs.DillCode)
    )


def test_get_cached_by_class_of_an_unregistered_class_raises_serde_error() -> None:
    class Unregistered(fs.JSONData):
        identifier = "u1\n"

    with pytest.raises(SerdeError, match="Unregistered"):
        SerializationStrategy.get_cached_by_class(Unregistered)


# -- validate_strategylike / ValidatedStrategylike -------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        fs.DillCode,
        fs.DillCode(),
        "DillCode",
        "dill-code",
        "01\n",
        "freight.plugins.dill_strategies.DillCode",
    ],
)
def test_validate_strategylike_returns_the_reference_record(value: object) -> None:
    validated = validate_strategylike(value, for_code=True)  # type: ignore[arg-type]
    registered = SerializationStrategy.get_cached_by_class(fs.DillCode)
    assert validated == ValidatedStrategylike(
        fs.DillCode, registered, "freight.plugins.dill_strategies.DillCode"
    )
    assert [f.name for f in dataclasses.fields(validated)][:3] == [
        "type_",
        "instance",
        "import_path",
    ]
    # freight's own callers read the registry record's names.
    assert validated.cls is fs.DillCode and validated.strategy is registered
    assert validated.for_code is True and validated.identifier == "01\n"
    assert validated.plugin is not None and validated.plugin.name == "dill"


def test_validate_strategylike_refuses_the_other_kind_in_the_reference_words() -> None:
    with pytest.raises(
        SerdeError, match="is a code serialization strategy, expected a data"
    ):
        validate_strategylike(fs.DillCode(), for_code=False)
    with pytest.raises(
        SerdeError, match="is a data serialization strategy, expected a code"
    ):
        validate_strategylike(fs.JSONData, for_code=True)


@pytest.mark.parametrize(
    "value", ["invalid_path_1", "invalid path 2", "", "no_such_module.Thing"]
)
def test_validate_strategylike_of_a_bad_string_names_an_import_path(value: str) -> None:
    with pytest.raises(SerdeError) as excinfo:
        validate_strategylike(value)
    message = str(excinfo.value)
    assert message.startswith("Invalid strategy-like")
    assert "an import path" in message
    # The short form pytest shows (and the reference's tests match) keeps it too.
    assert "an import path" in str(excinfo)


@pytest.mark.parametrize("value", [None, 123, object(), int, {"foo": "bar"}])
def test_validate_strategylike_of_a_non_strategy_says_a_subclass_of(
    value: object,
) -> None:
    with pytest.raises(SerdeError) as excinfo:
        validate_strategylike(value)  # type: ignore[arg-type]
    assert "Invalid strategy-like" in str(excinfo.value)
    assert "a subclass of" in str(excinfo)


def test_validate_strategylike_of_an_unregistered_class_is_not_known() -> None:
    class Unknown(SerializationStrategy):
        identifier = "aa\n"
        for_code = True

        def serialize(self, data: object) -> str:
            return self.identifier

        def deserialize(self, payload: str) -> object:
            return None

    with pytest.raises(SerdeError, match="is not a known serialization strategy"):
        validate_strategylike(Unknown())


# -- allowlist wildcard strings -------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["globus_compute_sdk.*Code", "freight.*Code", AllowlistWildcard.CODE]
)
@pytest.mark.parametrize(
    "data", ["globus_compute_sdk.*Data", "freight.*Data", AllowlistWildcard.DATA]
)
def test_wildcard_strings_in_either_spelling_allow_every_selectable_strategy(
    code: str, data: str
) -> None:
    allowed = ComputeSerializer(allowed_deserializer_types=[code, data])
    assert allowed.allowed_deserializer_types == set(fs.SELECTABLE_STRATEGIES)


def test_reference_wildcard_string_mixed_with_a_specific_entry_names_its_spelling() -> (
    None
):
    with pytest.raises(SerdeError, match=r"Cannot mix 'globus_compute_sdk\.\*Code'"):
        parse_allowlist(["globus_compute_sdk.*Code", fs.DillCode, fs.JSONData])


def test_reference_wildcard_string_with_a_data_entry_allows_only_those() -> None:
    serializer = ComputeSerializer(
        allowed_deserializer_types=["globus_compute_sdk.*Code", "JSONData"]
    )
    assert serializer.deserialize(serializer.serialize(samples.add))(1, 2) == 3
    with pytest.raises(DeserializationError, match="disabled"):
        serializer.deserialize(fs.DillDataBase64().serialize([1]))


# -- the reference's phrases inside freight's messages --------------------------------


@pytest.mark.parametrize(
    ("packed", "phrase"),
    [
        ("5", "Missing newline delimiter"),
        ("abc\nhello", "Invalid length delimiter"),
        ("-1\nhello", "Length delimiter must be non-negative"),
        ("10\nhello", "Truncated buffer"),
    ],
)
def test_unpack_buffers_errors_keep_the_reference_phrase_and_type(
    packed: str, phrase: str
) -> None:
    with pytest.raises(ValueError, match=phrase) as excinfo:
        fs.unpack_buffers(packed)
    assert isinstance(excinfo.value, DeserializationError)
    assert isinstance(excinfo.value, fs.PackedBuffersError)
    assert "offset 0" in str(excinfo.value)


def test_combined_code_failure_lists_each_member_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    combined = fs.CombinedCode()
    for member in combined._members.values():
        monkeypatch.setattr(member, "serialize", _raise_bad)
    with pytest.raises(SerializationError) as excinfo:
        combined.serialize(samples.add)
    message = str(excinfo.value)
    assert message.startswith("No serialization methods were successful")
    assert message.count("RuntimeError: bad") == 5


@pytest.mark.parametrize("combo", ["AllCodeStrategies", "AllDataStrategies"])
def test_combo_that_cannot_serialize_says_serialization_failed_and_names_members(
    combo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = getattr(fs, combo)
    for member in cls.strategies:
        monkeypatch.setattr(member, "serialize", _raise_bad)
    with pytest.raises(SerializationError) as excinfo:
        cls().serialize(samples.add if cls.for_code else "data")
    message = str(excinfo.value)
    assert "Serialization failed" in message
    for member in cls.strategies:
        assert member.__name__ in message


@pytest.mark.parametrize(
    ("part", "phrase"),
    [
        ("BAD\n", "Invalid strategy identifier 'BAD'"),
        ("NO_NEWLINE" + "a" * 100, "Malformed data (no newline separator)"),
    ],
)
def test_combo_part_that_is_not_a_member_keeps_the_reference_phrase(
    part: str, phrase: str
) -> None:
    with pytest.raises(DeserializationError) as excinfo:
        fs.AllCodeStrategies().deserialize("12\n" + fs.pack_buffers([part]))
    assert phrase in str(excinfo.value)
    assert "Deserialization failed" in str(excinfo.value)


def test_identifier_without_a_final_newline_says_so_in_the_reference_words() -> None:
    with pytest.raises(ValueError, match="must end with a newline character"):

        class NoNewline(fs.JSONData):
            identifier = "123"


def _raise_bad(*args: object, **kwargs: object) -> str:
    raise RuntimeError("bad")
