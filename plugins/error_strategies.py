"""``ExceptionData`` (identifier ``ex``): exceptions as JSON, readable without pickle.

The body is the ``"freight.exception/1"`` dict of ``freight.serialize.remote_errors``
(type, module, message, arguments, cause and context chain, notes, group members,
traceback text) as compact JSON with sorted keys.  Decoding validates it and rebuilds
the original exception type when its module is allowed, otherwise a
``RemoteExecutionError`` carrying every field; nothing is unpickled or evaluated.
Only exception instances serialize; anything else is refused.

Its properties hold because: decoding is ``json.loads`` plus validation, imports
only allowlisted modules and calls only allowlisted exception classes with scalar
arguments (SAFE_FOR_UNTRUSTED); the body is plain JSON in a documented schema
(PORTABLE, CROSS_LANGUAGE); and sorted keys, fixed separators and ASCII-only output
make the same exception give the same bytes (DETERMINISTIC).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from freight.serialize import (
    DeserializationError,
    Property,
    SerializationError,
    TextStrategy,
    hookimpl,
)
from freight.serialize.limits import loads_json
from freight.serialize.remote_errors import (
    DEFAULT_ALLOWED_MODULES,
    exception_from_dict,
    exception_to_dict,
)


class ExceptionData(TextStrategy):
    """An exception, with its chain and traceback text, as structured JSON.

    The registered instance rebuilds types from ``DEFAULT_ALLOWED_MODULES``; an
    instance made with other ``allowed_modules`` (or ``rebuild=False``) decodes that
    way when called directly.
    """

    identifier = "ex\n"
    for_code = False
    name = "exception"
    properties = (
        Property.SAFE_FOR_UNTRUSTED
        | Property.PORTABLE
        | Property.DETERMINISTIC
        | Property.CROSS_LANGUAGE
    )

    def __init__(
        self,
        *,
        allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES,
        rebuild: bool = True,
    ) -> None:
        if isinstance(allowed_modules, str):
            raise TypeError("allowed_modules must be a collection of module names")
        self.allowed_modules = frozenset(allowed_modules)
        self.rebuild = rebuild

    def encode_text(self, obj: Any) -> str:
        if not isinstance(obj, BaseException):
            raise SerializationError(
                f"ExceptionData serializes exception instances only, got"
                f" {type(obj).__name__}; use a general data strategy for other values"
            )
        return json.dumps(
            exception_to_dict(obj),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )

    def decode_text(self, text: str) -> Any:
        try:
            data = loads_json(text, "ExceptionData payload")
        except ValueError as e:
            raise DeserializationError(
                f"ExceptionData payload is not valid JSON: {e}"
            ) from e
        return exception_from_dict(
            data, rebuild=self.rebuild, allowed_modules=self.allowed_modules
        )


@hookimpl
def freight_strategies() -> list[type[TextStrategy]]:
    return [ExceptionData]
