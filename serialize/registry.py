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
import logging
import os
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from freight.serialize.errors import SerdeError
from freight.serialize.identifiers import BUILTIN_DISTRIBUTION, check_allocation
from freight.serialize.strategy import SerializationStrategy

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import pluggy

logger = logging.getLogger(__name__)

#: The entry-point group freight reads plugins from.
ENTRY_POINT_GROUP = "freight.strategies"

#: Anything that names a strategy: an instance, a class, or a string that is an
#: identifier (``"01\\n"`` or ``"01"``), a short name, a class name or an import path.
Strategylike = SerializationStrategy | type[SerializationStrategy] | str


class PluginError(SerdeError):
    """A plugin provided something that cannot be registered."""


def _env_names(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class PluginSettings:
    """Which entry-point plugins a registry loads; ``from_env()`` reads the
    ``FREIGHT_*`` variables described in this module's docstring."""

    #: Load third-party plugins that ``allow`` does not name.
    autoload: bool = True
    #: If set, the only third-party plugins loaded (entry-point names); they load
    #: whatever ``autoload`` says.
    allow: frozenset[str] | None = None
    #: Plugins never loaded, built-ins included.
    block: frozenset[str] = frozenset()
    #: A plugin that fails to load raises ``PluginError`` instead of being skipped.
    strict: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PluginSettings:
        env = os.environ if environ is None else environ
        return cls(
            autoload=not _env_flag(env.get("FREIGHT_DISABLE_PLUGIN_AUTOLOAD")),
            allow=_env_names(env.get("FREIGHT_PLUGINS")),
            block=_env_names(env.get("FREIGHT_BLOCK_PLUGINS")) or frozenset(),
            strict=_env_flag(env.get("FREIGHT_STRICT_PLUGINS")),
        )


PluginState = Literal["loaded", "skipped", "blocked", "failed"]


@dataclass(frozen=True)
class PluginStatus:
    """What happened to one plugin: loaded, skipped, blocked or failed, and why."""

    name: str
    distribution: str | None
    state: PluginState
    reason: str = ""
    #: The formatted traceback of a failure.
    traceback: str = ""
    identifiers: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PluginInfo:
    """Where strategies came from: the plugin's name and its distribution."""

    name: str
    #: ``"name version"`` of the installed distribution, or ``None`` for a plugin
    #: registered at run time.
    distribution: str | None = None

    def __str__(self) -> str:
        where = self.distribution or "registered at run time"
        return f"plugin {self.name!r} ({where})"


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


class StrategyRegistry:
    """The strategies known to one process (or one embedding), by every key."""

    def __init__(
        self,
        *,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        settings: PluginSettings | None = None,
    ) -> None:
        """``entry_point_group=None`` makes a registry that only holds what is
        registered explicitly (useful for embedding and tests).  ``settings``
        default to ``PluginSettings.from_env()``, read at first load."""
        self.entry_point_group = entry_point_group
        self._settings = settings
        self._statuses: dict[str, PluginStatus] = {}
        self._by_identifier: dict[str, RegisteredStrategy] = {}
        self._by_class: dict[type[SerializationStrategy], RegisteredStrategy] = {}
        self._by_name: dict[str, RegisteredStrategy] = {}
        self._by_class_name: dict[str, list[RegisteredStrategy]] = {}
        self._plugins: dict[str, list[RegisteredStrategy]] = {}
        self._pm: pluggy.PluginManager | None = None
        self._loaded = entry_point_group is None
        self._lock = threading.RLock()

    # -- discovery ---------------------------------------------------------------

    def load(self) -> None:
        """Read the entry-point group and register its plugins, once.

        A plugin that fails to import or register is logged, recorded in
        ``plugin_statuses()`` and skipped, unless strict mode is on, in which case
        ``PluginError`` is raised (and the next lookup tries again).
        """
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            from importlib.metadata import entry_points

            assert self.entry_point_group is not None
            settings = self._settings or PluginSettings.from_env()
            found = entry_points(group=self.entry_point_group)
            # Built-ins first, then third parties, each by name: deterministic, and
            # a third party can never pre-empt a built-in identifier.
            for ep in sorted(found, key=lambda e: (not _is_builtin(e), e.name)):
                if ep.name not in self._plugins:
                    self._load_entry_point(ep, settings)
            self._report_missing(settings, {ep.name for ep in found})
            self._loaded = True

    def _report_missing(self, settings: PluginSettings, found: set[str]) -> None:
        """A name in ``FREIGHT_PLUGINS`` that no installed entry point has is a
        mistake the user should hear about: a warning, or strict mode's error."""
        for name in sorted((settings.allow or frozenset()) - found):
            if name in settings.block:
                continue
            reason = (
                f"named in FREIGHT_PLUGINS, but no {self.entry_point_group!r} entry"
                " point of that name is installed"
            )
            if settings.strict:
                raise PluginError(
                    f"plugin {name!r}: {reason} (FREIGHT_STRICT_PLUGINS is set)"
                )
            logger.warning("freight plugin %r: %s", name, reason)
            self._statuses[name] = PluginStatus(name, None, "failed", reason)

    def _load_entry_point(self, ep: EntryPoint, settings: PluginSettings) -> None:
        builtin = _is_builtin(ep)
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else None
        skip = None
        if ep.name in settings.block:
            self._statuses[ep.name] = PluginStatus(
                ep.name, dist, "blocked", "named in FREIGHT_BLOCK_PLUGINS"
            )
            return
        if builtin or (settings.allow is not None and ep.name in settings.allow):
            pass  # built-ins always load; an explicitly named plugin loads
        elif settings.allow is not None:
            skip = "not named in FREIGHT_PLUGINS"
        elif not settings.autoload:
            skip = "FREIGHT_DISABLE_PLUGIN_AUTOLOAD is set (name it in FREIGHT_PLUGINS)"
        if skip:
            self._statuses[ep.name] = PluginStatus(ep.name, dist, "skipped", skip)
            return
        try:
            records = self._register(ep.load(), PluginInfo(ep.name, dist), builtin)
        except Exception as e:
            if settings.strict:
                raise PluginError(
                    f"plugin {ep.name!r} ({dist}) failed to load: {e}"
                    " (FREIGHT_STRICT_PLUGINS is set)"
                ) from e
            logger.warning(
                "freight plugin %r (%s) failed to load and was skipped: %s",
                ep.name,
                dist,
                e,
                exc_info=True,
            )
            self._statuses[ep.name] = PluginStatus(
                ep.name,
                dist,
                "failed",
                f"{type(e).__name__}: {e}",
                traceback.format_exc(),
            )
            return
        self._statuses[ep.name] = PluginStatus(
            ep.name, dist, "loaded", identifiers=tuple(r.identifier for r in records)
        )

    def plugin_statuses(self) -> list[PluginStatus]:
        """Every plugin this registry has seen, in load order, with its fate."""
        self.load()
        return list(self._statuses.values())

    def register_plugin(
        self, plugin: object, name: str | None = None
    ) -> list[RegisteredStrategy]:
        """Register ``plugin`` (an object with ``@hookimpl`` functions) at run time.

        Returns what it registered.  All or nothing: on a conflict, nothing from
        ``plugin`` is registered and ``PluginError`` names both sides.
        """
        self.load()
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        with self._lock:
            records = self._register(plugin, PluginInfo(name), builtin=None)
            self._statuses[name] = PluginStatus(
                name, None, "loaded", identifiers=tuple(r.identifier for r in records)
            )
            return records

    def unregister_plugin(self, name: str) -> None:
        """Forget the plugin registered as ``name`` and its strategies."""
        with self._lock:
            if name not in self._plugins:
                raise PluginError(f"no plugin named {name!r} is registered")
            records = self._plugins.pop(name)
            self._statuses.pop(name, None)
            for rec in records:
                del self._by_identifier[rec.identifier]
                del self._by_class[rec.cls]
                del self._by_name[rec.name]
                self._by_class_name[rec.cls.__name__].remove(rec)
            self._plugin_manager().unregister(name=name)

    def _plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            import pluggy

            from freight.serialize import hookspecs

            self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            self._pm.add_hookspecs(hookspecs)
        return self._pm

    def _register(
        self, plugin: object, info: PluginInfo, builtin: bool | None
    ) -> list[RegisteredStrategy]:
        """Register ``plugin``'s strategies, all or nothing.  ``builtin`` says which
        identifier range an entry-point plugin may use; ``None`` (run time) skips
        the allocation policy."""
        if info.name in self._plugins:
            raise PluginError(f"a plugin named {info.name!r} is already registered")
        pm = self._plugin_manager()
        pm.register(plugin, name=info.name)
        try:
            records = self._collect(plugin, info)
            if builtin is not None:
                for rec in records:
                    check_allocation(
                        rec.identifier, builtin=builtin, owner=rec.describe()
                    )
        except BaseException:
            pm.unregister(plugin)
            raise
        for rec in records:
            self._by_identifier[rec.identifier] = rec
            self._by_class[rec.cls] = rec
            self._by_name[rec.name] = rec
            self._by_class_name.setdefault(rec.cls.__name__, []).append(rec)
        self._plugins[info.name] = records
        return records

    def _collect(self, plugin: object, info: PluginInfo) -> list[RegisteredStrategy]:
        """Call ``plugin``'s hook and validate what it returns, registering nothing."""
        pm = self._plugin_manager()
        records: list[RegisteredStrategy] = []
        for impl in pm.hook.freight_strategies.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            provided = impl.function()
            if provided is not None and not isinstance(provided, Iterable):
                raise PluginError(
                    f"{info}: freight_strategies() must return an iterable of"
                    f" strategy classes, got {type(provided).__name__}"
                )
            for cls in provided or ():
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
        return records

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


def _is_builtin(ep: EntryPoint) -> bool:
    return ep.dist is not None and _normalize(ep.dist.name) == BUILTIN_DISTRIBUTION


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


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
