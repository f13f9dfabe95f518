"""freight.serialize: strategies, framing, the plugin registry and the facade.

Concrete strategies live in plugins and are found through the registry; their class
names (``DillCode``, ``JSONData`` ...) are importable from here too, resolved through
the registry on first access, so ``from freight.serialize import DillCode`` works
for any registered strategy, built-in or third-party, without this package naming
one.  ``import freight.serialize`` itself loads no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    VersionMismatchWarning,
)
from freight.serialize.identifiers import IdentifierPolicyError
from freight.serialize.limits import Limits
from freight.serialize.policy import Policy
from freight.serialize.registry import (
    ENTRY_POINT_GROUP,
    PluginError,
    PluginInfo,
    PluginSettings,
    PluginStatus,
    RegisteredStrategy,
    Strategylike,
    StrategyRegistry,
    default_registry,
)
from freight.serialize.remote_errors import (
    DEFAULT_ALLOWED_MODULES,
    ExceptionLimits,
    RemoteExecutionError,
    exception_from_dict,
    exception_to_dict,
)
from freight.serialize.strategy import (
    BodyEncoder,
    BytesStrategy,
    ComboSerializationStrategy,
    Property,
    SerializationStrategy,
    TextStrategy,
)
from freight.serialize.text import IDENTIFIER_LENGTH, pack_buffers, unpack_buffers

if TYPE_CHECKING:  # imported lazily (it imports pluggy); typed for plugin authors
    from freight.serialize.hookspecs import hookimpl

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "DEFAULT_CODE_STRATEGY",
    "DEFAULT_DATA_STRATEGY",
    "ENTRY_POINT_GROUP",
    "IDENTIFIER_LENGTH",
    "AllowlistWildcard",
    "BodyEncoder",
    "BytesStrategy",
    "ComboSerializationStrategy",
    "ComputeSerializer",
    "DeserializationError",
    "DeserializerAllowlist",
    "ExceptionLimits",
    "IdentifierPolicyError",
    "Limits",
    "PluginError",
    "PluginInfo",
    "PluginSettings",
    "PluginStatus",
    "Policy",
    "Property",
    "RegisteredStrategy",
    "RemoteExecutionError",
    "SerdeError",
    "SerializationError",
    "SerializationStrategy",
    "StrategyRegistry",
    "Strategylike",
    "TextStrategy",
    "VersionMismatchWarning",
    "default_registry",
    "exception_from_dict",
    "exception_to_dict",
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
