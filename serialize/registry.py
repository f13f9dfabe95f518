"""The strategy registry: discovery by entry point, lookup by every name a strategy has.

One ``StrategyRegistry`` holds the strategies its plugins provide.  Plugins come from
the ``freight.strategies`` entry-point group (read once, lazily, on the first lookup)
or from ``register_plugin`` at run time; both go through the same pluggy hook
(``freight_strategies``), so freight's built-ins have no privileges a third-party
package lacks beyond their identifier range (``freight.serialize.identifiers``).
A strategy is found by identifier (the hot path: one dict access), class, instance,
short name, class name or import path.

Loading is under the user's control (``PluginSettings``, read from the environment;
names are entry-point names, comma-separated):

``FREIGHT_DISABLE_PLUGIN_AUTOLOAD=1``
    load no third-party plugin that is not named in ``FREIGHT_PLUGINS``.
``FREIGHT_PLUGINS=a,b``
    load these third-party plugins, and no other third party.  A plugin named here
    loads even when autoloading is disabled, as ``pytest -p name`` does under
    ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``; a name with no installed entry point is
    reported (a warning, or ``PluginError`` in strict mode).
``FREIGHT_BLOCK_PLUGINS=a,b``
    never load these plugins, built-ins included (e.g. ``pickle,dill,combo``
    leaves no built-in pickle-family decoder registered; the combo strategies
    have dill members).
``FREIGHT_STRICT_PLUGINS=1``
    a plugin that fails to import or register (or a name in ``FREIGHT_PLUGINS``
    that is not installed) raises ``PluginError`` from the first lookup, instead of
    being logged and skipped.

Precedence, for one entry point: ``FREIGHT_BLOCK_PLUGINS`` wins over everything (a
name both allowed and blocked is blocked); then freight's built-ins always load
(the default strategies must keep working: the two other variables concern third
parties only); then a third party loads if ``FREIGHT_PLUGINS`` names it, is
skipped if ``FREIGHT_PLUGINS`` is set and does not, and otherwise loads unless
``FREIGHT_DISABLE_PLUGIN_AUTOLOAD`` is set.  So with ``FREIGHT_PLUGINS`` set,
``FREIGHT_DISABLE_PLUGIN_AUTOLOAD`` changes nothing.

Without strict mode a broken plugin is logged as a ``WARNING`` on the
``freight.serialize.registry`` logger, with its traceback, recorded in
``plugin_statuses()`` (and ``freight strategies``) and skipped; every other
strategy keeps working.  Built-ins load first, so a third party cannot take over a
built-in identifier by loading earlier.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from freight.serialize.errors import SerdeError
from freight.serialize.identifiers import check_allocation
from freight.serialize.plugin_loading import (
    PluginError,
    PluginInfo,
    PluginRegistry,
    PluginSettings,
    PluginState,
    PluginStatus,
    logger,
)
from freight.serialize.strategy import SerializationStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "PluginSettings",
    "PluginState",
    "PluginStatus",
    "RegisteredStrategy",
    "StrategyRegistry",
    "Strategylike",
    "default_registry",
    "logger",
]

#: The entry-point group freight reads plugins from.
ENTRY_POINT_GROUP = "freight.strategies"

#: Anything that names a strategy: an instance, a class, or a string that is an
#: identifier (``"01\\n"`` or ``"01"``), a short name, a class name or an import path.
Strategylike = SerializationStrategy | type[SerializationStrategy] | str


@dataclass(frozen=True)
class RegisteredStrategy:
    """A strategy instance as registered, with the plugin it came from."""

    strategy: SerializationStrategy
    plugin: PluginInfo

    @property
    def cls(self) -> type[SerializationStrategy]:
        return type(self.strategy)

    @property
    def identifier(self) -> str:
        return self.strategy.identifier

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def for_code(self) -> bool:
        return self.strategy.for_code

    @property
    def import_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def describe(self) -> str:
        return f"{self.cls.__name__} ({self.identifier!r}) from {self.plugin}"


class StrategyRegistry(PluginRegistry[RegisteredStrategy]):
    """The strategies known to one process (or one embedding), by every key.

    Loading (entry points, settings, statuses, strict mode, run-time
    registration) is ``PluginRegistry``'s, shared with ``CodecRegistry``.
    """

    hook_name = "freight_strategies"
    provides = "strategy classes"

    def __init__(
        self,
        *,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        settings: PluginSettings | None = None,
    ) -> None:
        """``entry_point_group=None`` makes a registry that only holds what is
        registered explicitly (useful for embedding and tests).  ``settings``
        default to ``PluginSettings.from_env()``, read at first load."""
        super().__init__(entry_point_group=entry_point_group, settings=settings)
        self._by_identifier: dict[str, RegisteredStrategy] = {}
        self._by_class: dict[type[SerializationStrategy], RegisteredStrategy] = {}
        self._by_name: dict[str, RegisteredStrategy] = {}
        self._by_class_name: dict[str, list[RegisteredStrategy]] = {}

    # -- what the plugins provide -------------------------------------------------

    def _hookspecs(self) -> ModuleType | type:
        from freight.serialize import hookspecs

        return hookspecs

    def _accept(
        self, provided: list[object], info: PluginInfo, builtin: bool | None
    ) -> tuple[list[RegisteredStrategy], PluginStatus]:
        """Instantiate ``provided``, check names, identifiers and (for an entry
        point, ``builtin`` not ``None``) the allocation policy, then register."""
        records: list[RegisteredStrategy] = []
        for cls in provided:
            rec = RegisteredStrategy(self._instantiate(cls, info), info)
            for other in [*records, *self._by_identifier.values()]:
                if other.identifier == rec.identifier:
                    raise PluginError(
                        f"identifier {rec.identifier!r} is claimed twice:"
                        f" by {other.describe()} and by {rec.describe()}"
                    )
                if other.name == rec.name:
                    raise PluginError(
                        f"strategy name {rec.name!r} is claimed twice:"
                        f" by {other.describe()} and by {rec.describe()}"
                    )
            records.append(rec)
        if builtin is not None:
            for rec in records:
                check_allocation(rec.identifier, builtin=builtin, owner=rec.describe())
        for rec in records:
            self._by_identifier[rec.identifier] = rec
            self._by_class[rec.cls] = rec
            self._by_name[rec.name] = rec
            self._by_class_name.setdefault(rec.cls.__name__, []).append(rec)
        status = PluginStatus(
            info.name,
            info.distribution,
            "loaded",
            identifiers=tuple(r.identifier for r in records),
        )
        return records, status

    def _forget(self, name: str, records: list[RegisteredStrategy]) -> None:
        for rec in records:
            del self._by_identifier[rec.identifier]
            del self._by_class[rec.cls]
            del self._by_name[rec.name]
            self._by_class_name[rec.cls.__name__].remove(rec)

    @staticmethod
    def _instantiate(cls: object, info: PluginInfo) -> SerializationStrategy:
        if not (inspect.isclass(cls) and issubclass(cls, SerializationStrategy)):
            raise PluginError(
                f"{info} returned {cls!r}, which is not a SerializationStrategy"
                " subclass"
            )
        for attr in ("identifier", "for_code"):
            if not hasattr(cls, attr):
                raise PluginError(f"{info}: {cls.__name__} does not define {attr}")
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise PluginError(
                f"{info}: {cls.__name__} is abstract (does not implement {missing})"
            )
        try:
            return cls()
        except Exception as e:
            raise PluginError(f"{info}: {cls.__name__}() failed: {e}") from e

    # -- lookup ------------------------------------------------------------------

    def by_identifier(self, identifier: str) -> RegisteredStrategy | None:
        """The strategy whose header is ``identifier`` (``"01\\n"``), or ``None``."""
        if not self._loaded:
            self.load()
        return self._by_identifier.get(identifier)

    def resolve(self, strategylike: Strategylike) -> RegisteredStrategy:
        """The registered strategy ``strategylike`` names.

        Raises ``SerdeError`` if it names none, or names an unregistered class.
        """
        self.load()
        if isinstance(strategylike, str):
            return self._resolve_string(strategylike)
        cls = strategylike if inspect.isclass(strategylike) else type(strategylike)
        if not issubclass(cls, SerializationStrategy):
            raise SerdeError(
                f"invalid strategy-like {strategylike!r}: expected a"
                " SerializationStrategy instance or subclass, an identifier, a"
                " registered name or an import path"
            )
        rec = self._by_class.get(cls)
        if rec is None:
            raise SerdeError(
                f"{cls.__name__} is not a registered serialization strategy; register"
                f" it through the {ENTRY_POINT_GROUP!r} entry-point group or"
                " default_registry().register_plugin()"
            )
        return rec

    def _resolve_string(self, text: str) -> RegisteredStrategy:
        ident = text if text.endswith("\n") else text + "\n"
        if len(ident) == 3 and ident in self._by_identifier:
            return self._by_identifier[ident]
        if text in self._by_name:
            return self._by_name[text]
        same_name = self._by_class_name.get(text, [])
        if len(same_name) == 1:
            return same_name[0]
        if len(same_name) > 1:
            found = "; ".join(rec.import_path for rec in same_name)
            raise SerdeError(
                f"{text!r} is ambiguous: several strategies have that class name"
                f" ({found}); use an import path or identifier"
            )
        if "." in text:
            return self.resolve(_import_object(text))
        raise SerdeError(
            f"no registered strategy is named {text!r}; known: "
            + ", ".join(sorted(self._by_name))
        )

    def find_class(self, class_name: str) -> type[SerializationStrategy] | None:
        """The registered class named ``class_name``, if exactly one has that name."""
        self.load()
        same_name = self._by_class_name.get(class_name, [])
        return same_name[0].cls if len(same_name) == 1 else None

    def __iter__(self) -> Iterator[RegisteredStrategy]:
        """Every registered strategy, in identifier order."""
        self.load()
        return iter(sorted(self._by_identifier.values(), key=lambda r: r.identifier))

    def __len__(self) -> int:
        self.load()
        return len(self._by_identifier)


def _import_object(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except Exception as e:
        raise SerdeError(f"cannot import strategy {path!r}: {e}") from e


_default: StrategyRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> StrategyRegistry:
    """The process-wide registry that reads the ``freight.strategies`` group."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = StrategyRegistry()
    return _default
