"""freight.serialize: strategies, framing, the plugin registry and the facade.

Concrete strategies live in plugins and are found through the registry; their class
names (``DillCode``, ``JSONData`` ...) are importable from here too, resolved through
the registry on first access, so ``from freight.serialize import DillCode`` works
for any registered strategy, built-in or third-party, without this package naming
one.  ``import freight.serialize`` itself loads no plugin.
"""

from __future__ import annotations

from typing import Any

from freight.serialize.errors import (
    DeserializationError,
    SerdeError,
    SerializationError,
)
from freight.serialize.facade import (
    DEFAULT_CODE_STRATEGY,
    DEFAULT_DATA_STRATEGY,
    AllowlistWildcard,
    ComputeSerializer,
    DeserializerAllowlist,
)
from freight.serialize.registry import (
    ENTRY_POINT_GROUP,
    PluginError,
    PluginInfo,
    RegisteredStrategy,
    Strategylike,
    StrategyRegistry,
    default_registry,
)
from freight.serialize.strategy import (
    BytesStrategy,
    ComboSerializationStrategy,
    SerializationStrategy,
    TextStrategy,
)
from freight.serialize.text import IDENTIFIER_LENGTH, pack_buffers, unpack_buffers

__all__ = [
    "DEFAULT_CODE_STRATEGY",
    "DEFAULT_DATA_STRATEGY",
    "ENTRY_POINT_GROUP",
    "IDENTIFIER_LENGTH",
    "AllowlistWildcard",
    "BytesStrategy",
    "ComboSerializationStrategy",
    "ComputeSerializer",
    "DeserializationError",
    "DeserializerAllowlist",
    "PluginError",
    "PluginInfo",
    "RegisteredStrategy",
    "SerdeError",
    "SerializationError",
    "SerializationStrategy",
    "StrategyRegistry",
    "Strategylike",
    "TextStrategy",
    "default_registry",
    "hookimpl",
    "pack_buffers",
    "unpack_buffers",
]


def __getattr__(name: str) -> Any:
    """Resolve ``hookimpl``, the default strategy instances, and registered strategy
    class names lazily."""
    if name == "hookimpl":
        from freight.serialize.hookspecs import hookimpl

        return hookimpl
    if name == "DEFAULT_STRATEGY_CODE":
        return default_registry().resolve(DEFAULT_CODE_STRATEGY).strategy
    if name == "DEFAULT_STRATEGY_DATA":
        return default_registry().resolve(DEFAULT_DATA_STRATEGY).strategy
    if name[:1].isupper():
        cls = default_registry().find_class(name)
        if cls is not None:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
