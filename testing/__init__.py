"""freight.testing: the conformance kit for strategy authors.

One line in a test module runs every check freight asks of a strategy::

    from freight.testing import picklable_values, strategy_conformance

    TestZstdPickle = strategy_conformance(ZstdPickle, values=picklable_values())

The pieces are usable on their own: hypothesis strategies for values
(``json_values``, ``msgpack_values``, ``picklable_values``, ``large_buffers``) and
for callables (``functions``, ``closures``, ``lambdas``, ``decorated_functions``,
``callables``), and assertion helpers (``assert_roundtrip``, ``assert_same_value``,
``assert_rejects_malformed``, ``assert_deterministic`` ...).  PLUGINS.md at the root
of freight's repository is the guide.

Importing this package is cheap: each name is imported from its module on first use,
so the pytest plugin (``freight.testing.pytest_plugin``) costs nothing in a test run
that does not use the kit, and hypothesis is imported only when a strategy is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freight.testing.assertions import (
        ENVELOPES,
        KitSerializer,
        assert_deterministic,
        assert_deterministic_across_processes,
        assert_rejects_malformed,
        assert_roundtrip,
        assert_same_value,
        payload_of,
        serializer_for,
        shares_memory,
    )
    from freight.testing.conformance import StrategyConformance, strategy_conformance
    from freight.testing.malformed import (
        DAMAGE,
        DamagePlan,
        apply_damage,
        damage_plans,
        damaged_payloads,
    )
    from freight.testing.sample_callables import (
        CallableCase,
        callables,
        closures,
        decorated_functions,
        define_by_value,
        functions,
        lambdas,
    )
    from freight.testing.values import (
        json_values,
        large_buffers,
        msgpack_values,
        picklable_values,
    )

_EXPORTS = {
    "ENVELOPES": "assertions",
    "KitSerializer": "assertions",
    "assert_deterministic": "assertions",
    "assert_deterministic_across_processes": "assertions",
    "assert_rejects_malformed": "assertions",
    "assert_roundtrip": "assertions",
    "assert_same_value": "assertions",
    "payload_of": "assertions",
    "serializer_for": "assertions",
    "shares_memory": "assertions",
    "CallableCase": "sample_callables",
    "callables": "sample_callables",
    "closures": "sample_callables",
    "decorated_functions": "sample_callables",
    "define_by_value": "sample_callables",
    "functions": "sample_callables",
    "lambdas": "sample_callables",
    "StrategyConformance": "conformance",
    "strategy_conformance": "conformance",
    "DAMAGE": "malformed",
    "damaged_payloads": "malformed",
    "DamagePlan": "malformed",
    "apply_damage": "malformed",
    "damage_plans": "malformed",
    "json_values": "values",
    "large_buffers": "values",
    "msgpack_values": "values",
    "picklable_values": "values",
}

__all__ = [
    "DAMAGE",
    "ENVELOPES",
    "CallableCase",
    "DamagePlan",
    "KitSerializer",
    "StrategyConformance",
    "apply_damage",
    "assert_deterministic",
    "assert_deterministic_across_processes",
    "assert_rejects_malformed",
    "assert_roundtrip",
    "assert_same_value",
    "callables",
    "closures",
    "damage_plans",
    "damaged_payloads",
    "decorated_functions",
    "define_by_value",
    "functions",
    "json_values",
    "lambdas",
    "large_buffers",
    "msgpack_values",
    "payload_of",
    "picklable_values",
    "serializer_for",
    "shares_memory",
    "strategy_conformance",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
