"""No exception but a ``SerdeError`` escapes a decode, on any path.

Every decode entry point (``deserialize``, ``loads``, ``loads_frames``,
``unpack_and_deserialize``, ``unpack_frames_and_deserialize``) is fed hostile
input -- deeply nested metadata and bodies for each safe decoder, headers stamped
with another Python, wrong types, random bytes behind valid headers -- under the C
fast path and its pure-Python twin.  ``RecursionError`` and ``MemoryError`` from a
decoder must arrive as ``DeserializationError``.
"""

from __future__ import annotations

import base64
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.plugins.pickle_strategies import SAFE_DATA_GLOBALS, PickleData
from freight.serialize import ComputeSerializer, SerdeError, binary

pytestmark = pytest.mark.usefixtures("each_fast_path")

DEEP = 100_000

OTHER_PYTHON = (sys.version_info.major, sys.version_info.minor + 1)


def _message(
    identifier: str,
    body: bytes,
    *,
    metadata: bytes = b"",
    python: tuple[int, int] | None = None,
    text_body: bool = False,
) -> list[bytes]:
    """``[header, body]`` for a message claiming ``identifier`` (and ``python``)."""
    prefix = bytearray(binary.message_prefix(identifier, text_body=text_body))
    if python is not None:
        prefix[6:8] = bytes(python)
    return [binary.buffer_free_header(bytes(prefix), len(body), metadata), body]


def _serializers() -> dict[str, ComputeSerializer]:
    return {
        "default": ComputeSerializer(),
        "restricted": ComputeSerializer(
            strategy_data=PickleData(SAFE_DATA_GLOBALS),
            allowed_deserializer_types=["CloudPickleCode", "PickleData"],
        ),
    }


def _decode_everywhere(
    serde: ComputeSerializer, message: list[bytes]
) -> list[tuple[str, Callable[[], Any]]]:
    """Every binary entry point, fed ``message``."""
    blob = b"".join(message)
    bundle = ComputeSerializer.pack_frames([message, message, message])
    return [
        ("loads", lambda: serde.loads(blob)),
        ("loads(memoryview)", lambda: serde.loads(memoryview(blob))),
        ("loads_frames", lambda: serde.loads_frames(list(message))),
        ("loads_frames(tuple)", lambda: serde.loads_frames(tuple(message))),
        (
            "unpack_frames_and_deserialize",
            lambda: serde.unpack_frames_and_deserialize(bundle),
        ),
        (
            "unpack_frames_and_deserialize(blob)",
            lambda: serde.unpack_frames_and_deserialize(b"".join(bundle)),
        ),
    ]


def _only_serde_errors(call: Callable[[], Any], what: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # version-mismatch warnings are expected
        try:
            call()
        except SerdeError:
            pass
        except BaseException as e:
            pytest.fail(f"{what}: {type(e).__name__} escaped: {e!s:.300}")


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_dict_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


HOSTILE_MESSAGES = {
    # The defect: a code payload from "another Python" whose metadata is nested
    # 100,000 deep reaches _describe_producer.
    "cp-other-python-deep-metadata": _message(
        "cp\n", b"\x80\x05N.", metadata=_deep_json(DEEP), python=OTHER_PYTHON
    ),
    "cp-other-python-deep-dict-metadata": _message(
        "cp\n", b"not a pickle", metadata=_deep_dict_json(DEEP), python=OTHER_PYTHON
    ),
    "cp-other-python-bad-metadata": _message(
        "cp\n", b"not a pickle", metadata=b"\xff\xfe{", python=OTHER_PYTHON
    ),
    "p5-deep-metadata": _message("p5\n", b"\x80\x05N.", metadata=_deep_json(DEEP)),
    "11-deep-body": _message("11\n", _deep_json(DEEP), text_body=True),
    "ex-deep-body": _message("ex\n", _deep_dict_json(DEEP), text_body=True),
    "mp-deep-body": _message("mp\n", b"\x91" * DEEP + b"\xc0"),
    "mp-deep-map-body": _message("mp\n", b"\x81\xa1a" * DEEP + b"\xc0"),
    "p5-deep-pickle": _message("p5\n", b"\x80\x05" + b"(" * DEEP + b"l" * DEEP + b"."),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MESSAGES))
@pytest.mark.parametrize("which", ["default", "restricted"])
def test_hostile_binary_messages_raise_only_serde_errors(name, which):
    serde = _serializers()[which]
    for path, call in _decode_everywhere(serde, HOSTILE_MESSAGES[name]):
        _only_serde_errors(call, f"{which} {path} of {name}")


def _text_payloads() -> dict[str, str]:
    deep = _deep_json(DEEP).decode()
    return {
        "11-deep": "11\n" + deep,
        "ex-deep": "ex\n" + _deep_dict_json(DEEP).decode(),
        "mp-deep": "mp\n" + base64.b64encode(b"\x91" * DEEP + b"\xc0").decode(),
        "13-deep": "13\n" + deep,
        "p5-deep": "p5\n"
        + base64.b64encode(b"\x80\x05" + b"(" * DEEP + b"l" * DEEP + b".").decode(),
    }


@pytest.mark.parametrize("name", sorted(_text_payloads()))
@pytest.mark.parametrize("which", ["default", "restricted"])
def test_hostile_text_payloads_raise_only_serde_errors(name, which):
    serde = _serializers()[which]
    payload = _text_payloads()[name]
    _only_serde_errors(lambda: serde.deserialize(payload), f"deserialize {name}")
    packed = serde.pack_buffers([payload, payload, payload])
    _only_serde_errors(
        lambda: serde.unpack_and_deserialize(packed), f"unpack_and_deserialize {name}"
    )


WRONG_TYPES: list[Any] = [
    None,
    0,
    1.5,
    "text",
    b"",
    [],
    [b""],
    [None, None],
    [b"x", 1],
    {"a": 1},
    object(),
    [[b"x"]],
    (b"\x93FRT",),
    bytearray(b"\x93FRT\x01"),
]


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_wrong_types_raise_only_serde_errors(value):
    serde = ComputeSerializer()
    for name in (
        "deserialize",
        "loads",
        "loads_frames",
        "unpack_and_deserialize",
        "unpack_frames_and_deserialize",
        "unpack_buffers",
    ):
        method = getattr(serde, name)
        _only_serde_errors(lambda m=method: m(value), f"{name}({value!r:.40})")


IDENTIFIERS = ["p5\n", "cp\n", "mp\n", "11\n", "ex\n", "13\n", "00\n", "zz\n"]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    identifier=st.sampled_from(IDENTIFIERS),
    body=st.binary(max_size=64),
    metadata=st.one_of(
        st.just(b""),
        st.binary(max_size=32),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=5),
            lambda kids: (
                st.lists(kids, max_size=3)
                | st.dictionaries(st.text(max_size=3), kids, max_size=3)
            ),
            max_leaves=8,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    other_python=st.booleans(),
    text_body=st.booleans(),
    cut=st.integers(min_value=0, max_value=8),
)
def test_random_bodies_behind_valid_headers_raise_only_serde_errors(
    identifier, body, metadata, other_python, text_body, cut
):
    message = _message(
        identifier,
        body,
        metadata=metadata,
        python=OTHER_PYTHON if other_python else None,
        text_body=text_body,
    )
    serde = _serializers()["restricted" if cut % 2 else "default"]
    blob = b"".join(message)
    for what, call in [
        ("loads", lambda: serde.loads(blob)),
        ("loads(truncated)", lambda: serde.loads(blob[: len(blob) - cut])),
        ("loads_frames", lambda: serde.loads_frames(message)),
        ("deserialize", lambda: serde.deserialize(identifier + body.decode("latin-1"))),
    ]:
        _only_serde_errors(call, what)
