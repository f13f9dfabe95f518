"""freight.serialize: strategies, framing, the plugin registry and the facade.

Concrete strategies live in plugins and are found through the registry; their class
names (``DillCode``, ``JSONData`` ...) are importable from here too, resolved through
the registry on first access, so ``from freight.serialize import DillCode`` works
for any registered strategy, built-in or third-party, without this package naming
one.  ``import freight.serialize`` itself loads no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freight.serialize.envelope import (
    BLOB,
    ENVELOPES,
    FRAMES,
    TEXT,
    Envelope,
    StrategyCodec,
)
from freight.serialize.errors import (
    ClosureNotCarried,
    DeserializationError,
    MemberFailed,
    MissingGlobal,
    SerdeError,
    SerializationError,
    SourceDoesNotDefine,
    SourceUnavailable,
    StrategyNotAllowed,
    TypedFailure,
    UnknownStrategy,
)
from freight.serialize.facade import (
    DEFAULT_CODE_STRATEGY,
    DEFAULT_DATA_STRATEGY,
    WILDCARD_SPELLINGS,
    AllowlistWildcard,
    ComputeSerializer,
    DeserializerAllowlist,
    ValidatedStrategylike,
    VersionMismatchWarning,
    parse_allowlist,
    selectable_strategies,
    validate_strategylike,
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
from freight.serialize.stream import (
    BufferTooSmallError,
    FrameReader,
    Layout,
    prefix_length,
    read_frames,
    read_layout,
)
from freight.serialize.text import (
    IDENTIFIER_LENGTH,
    PackedBuffersError,
    pack_buffers,
    unpack_buffers,
)

# -- the reference SDK's remaining public names (issue 10, section 3) -----------------
# SELECTABLE_STRATEGIES and its code/data halves, read through ``__getattr__``; the
# other names of that issue (validate_strategylike, ValidatedStrategylike,
# selectable_strategies, parse_allowlist, WILDCARD_SPELLINGS, PackedBuffersError) are
# imported above.
_SELECTABLE = {
    "SELECTABLE_STRATEGIES": None,
    "SELECTABLE_CODE_STRATEGIES": True,
    "SELECTABLE_DATA_STRATEGIES": False,
}
# -- end of the reference's names ------------------------------------------------------

if TYPE_CHECKING:  # imported lazily (it imports pluggy); typed for plugin authors
    from freight.serialize.hookspecs import hookimpl

__all__ = [
    "BLOB",
    "DEFAULT_ALLOWED_MODULES",
    "DEFAULT_CODE_STRATEGY",
    "DEFAULT_DATA_STRATEGY",
    "ENTRY_POINT_GROUP",
    "ENVELOPES",
    "FRAMES",
    "IDENTIFIER_LENGTH",
    "SELECTABLE_CODE_STRATEGIES",
    "SELECTABLE_DATA_STRATEGIES",
    "SELECTABLE_STRATEGIES",
    "TEXT",
    "WILDCARD_SPELLINGS",
    "AllowlistWildcard",
    "BodyEncoder",
    "BufferTooSmallError",
    "BytesStrategy",
    "ClosureNotCarried",
    "ComboSerializationStrategy",
    "ComputeSerializer",
    "DeserializationError",
    "DeserializerAllowlist",
    "Envelope",
    "ExceptionLimits",
    "FrameReader",
    "IdentifierPolicyError",
    "Layout",
    "Limits",
    "MemberFailed",
    "MissingGlobal",
    "PackedBuffersError",
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
    "SourceDoesNotDefine",
    "SourceUnavailable",
    "StrategyCodec",
    "StrategyNotAllowed",
    "StrategyRegistry",
    "Strategylike",
    "TextStrategy",
    "TypedFailure",
    "UnknownStrategy",
    "ValidatedStrategylike",
    "VersionMismatchWarning",
    "default_registry",
    "exception_from_dict",
    "exception_to_dict",
    "hookimpl",
    "pack_buffers",
    "parse_allowlist",
    "prefix_length",
    "read_frames",
    "read_layout",
    "selectable_strategies",
    "unpack_buffers",
    "validate_strategylike",
]


def __getattr__(name: str) -> Any:
    """Resolve ``hookimpl``, the default strategy instances, the ``SELECTABLE_*``
    lists and registered strategy class names lazily."""
    if name == "hookimpl":
        from freight.serialize.hookspecs import hookimpl

        return hookimpl
    if name == "DEFAULT_STRATEGY_CODE":
        return default_registry().resolve(DEFAULT_CODE_STRATEGY).strategy
    if name == "DEFAULT_STRATEGY_DATA":
        return default_registry().resolve(DEFAULT_DATA_STRATEGY).strategy
    if name in _SELECTABLE:
        # A fresh list from the default registry each time it is read: the
        # reference's module-level lists, kept current as plugins register.
        return selectable_strategies(_SELECTABLE[name])
    if name[:1].isupper():
        cls = default_registry().find_class(name)
        if cls is not None:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
