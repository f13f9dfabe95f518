"""``JSONData`` (identifier ``11``): data as JSON text.

Safe to decode from anyone and readable by any language, but only for the JSON
domain: ``None``, bools, numbers, strings, lists and string-keyed dicts.  Tuples come
back as lists and non-string keys as strings, as ``json`` does.  Decoding enforces
the decode limits' ``max_depth`` exactly (``loads_json``), whatever the
interpreter's recursion limit; keys are strings, whose hashes are randomized.
"""

from __future__ import annotations

import json
from typing import Any

from freight.serialize import Property, TextStrategy, hookimpl
from freight.serialize.limits import loads_json


class JSONData(TextStrategy):
    """Python data via ``json.dumps``."""

    identifier = "11\n"
    for_code = False
    name = "json"
    properties = (
        Property.SAFE_FOR_UNTRUSTED
        | Property.PORTABLE
        | Property.DETERMINISTIC
        | Property.CROSS_LANGUAGE
    )

    def encode_text(self, obj: Any) -> str:
        return json.dumps(obj)

    def decode_text(self, text: str) -> Any:
        return loads_json(text)


@hookimpl
def freight_strategies() -> list[type[TextStrategy]]:
    return [JSONData]
