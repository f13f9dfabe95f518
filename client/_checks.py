"""Argument checks shared by the client's public methods.

Each raises ``TypeError`` (wrong type) or ``ValueError`` (right type, bad value)
whose message starts with the parameter's name, before anything is sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "check_bool",
    "check_json_dict",
    "check_optional_str",
    "check_str",
    "check_uuid",
    "optional_uuid",
]


def check_uuid(value: object, what: str) -> str:
    """``value`` (a ``UUID`` or a UUID string) in canonical string form."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a UUID string, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{what}: not a valid UUID: {value!r}") from None


def optional_uuid(value: object, what: str) -> str | None:
    """``check_uuid`` that lets ``None`` through."""
    return None if value is None else check_uuid(value, what)


def check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what}: expected a bool, got {type(value).__name__}")
    return value


def check_str(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a str, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{what}: expected a non-empty str")
    return value


def check_optional_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what}: expected a str, got {type(value).__name__}")
    return value


def check_json_dict(value: object, what: str) -> dict[str, Any] | None:
    """``None``, or a dict that JSON can carry (returned as a copy)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a dict, got {type(value).__name__}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what}: must be JSON-serializable ({e})") from e
    return dict(value)
