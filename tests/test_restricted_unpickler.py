"""PickleData with a restricted unpickler: only allowlisted globals are loaded."""

from __future__ import annotations

import base64
import datetime
import decimal
import os
import pickle

import numpy as np
import pytest

from freight.plugins.pickle_strategies import (
    SAFE_DATA_GLOBALS,
    GlobalsAllowlist,
    PickleData,
)
from freight.serialize import ComputeSerializer, DeserializationError, binary, fastpath

# Every test here runs with the C fast path and with its pure-Python twin.
pytestmark = pytest.mark.usefixtures("each_fast_path")

RESTRICTED = ComputeSerializer(strategy_data=PickleData(SAFE_DATA_GLOBALS))
PLAIN = ComputeSerializer()


@pytest.fixture(autouse=True)
def _module_serializers_on_the_fast_path_under_test(each_fast_path: str) -> None:
    # Built at import, before each_fast_path chose an implementation: assigning
    # the data strategy again rebuilds their fast path with the chosen one.
    for serde in (
        RESTRICTED,
        PLAIN,
    ):
        serde.data_serializer = serde.data_serializer
        assert type(serde._fast) is fastpath.FastPath


VALUES = [
    {"a": [1, 2.5, None], "b": (True, "x")},
    {1, 2, 3},
    frozenset({"a"}),
    complex(1, 2),
    bytearray(b"abc"),
    decimal.Decimal("1.50"),
    datetime.datetime(2026, 11, 25, 1, 2, 3, tzinfo=datetime.UTC),
    np.arange(12.0).reshape(3, 4),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("envelope", ["text", "blob", "frames"])
def test_allowlisted_data_decodes_in_every_envelope(value, envelope):
    encode, decode = {
        "text": (PLAIN.serialize, RESTRICTED.deserialize),
        "blob": (PLAIN.dumps, RESTRICTED.loads),
        "frames": (PLAIN.dumps_frames, RESTRICTED.loads_frames),
    }[envelope]
    result = decode(encode(value))  # type: ignore[operator]
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(result, value)
    else:
        assert result == value
        assert type(result) is type(value)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_payload_naming_a_disallowed_callable_is_refused_before_it_runs(
    monkeypatch,
):
    body = pickle.dumps(Exploit(), protocol=5)
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    # A hostile peer's p5 message: a valid header around the exploit body.
    prefix = bytes(PLAIN.dumps_frames(0)[0][:12])
    header = binary.message_header(prefix, body, [])
    for decode, data in [
        (RESTRICTED.loads_frames, [header, body]),
        (RESTRICTED.loads, header + body),
        (RESTRICTED.deserialize, "p5\n" + base64.b64encode(body).decode()),
    ]:
        with pytest.raises(DeserializationError, match=r"allowed globals") as info:
            decode(data)  # type: ignore[operator]
        assert ".system" in str(info.value)
        assert info.value.__cause__ is not info.value  # raised as it is
    assert calls == []


def test_the_unrestricted_instance_is_unchanged():
    assert PickleData().allowed_globals is None
    assert PLAIN.loads(PLAIN.dumps({"x": {1, 2}})) == {"x": {1, 2}}


def test_allowlist_accepts_names_or_star_and_rejects_a_bare_string():
    allow = GlobalsAllowlist({"datetime": "*", "decimal": ["Decimal"]})
    assert allow.allows("datetime", "anything")
    assert allow.allows("decimal", "Decimal")
    assert not allow.allows("decimal", "getcontext")
    assert not allow.allows("os", "system")
    with pytest.raises(TypeError, match="collection of names"):
        GlobalsAllowlist({"decimal": "Decimal"})
