"""How freight loads plugins: one mechanism for strategies and frame codecs.

``PluginRegistry`` is the base of ``StrategyRegistry`` (group ``freight.strategies``,
hook ``freight_strategies``) and ``CodecRegistry`` (group ``freight.codecs``, hook
``freight_codecs``).  It owns everything about *loading*: reading the entry-point
group once, lazily, under a lock; the order (freight's built-ins first, then third
parties, each by entry-point name); ``PluginSettings`` (the ``FREIGHT_*``
variables and their precedence, documented in ``freight.serialize.registry``);
a ``PluginStatus`` per plugin; a broken plugin logged as a ``WARNING`` on the
``freight.serialize.registry`` logger and skipped, or ``PluginError`` in strict
mode; a name in ``FREIGHT_PLUGINS`` that is not installed reported; run-time
``register_plugin`` / ``unregister_plugin``.  A subclass says only what its hook
is called and what to do with what a plugin's hook returned (``_accept``: check
it and register it, all or nothing) and with a plugin that goes away
(``_forget``).

``FREIGHT_PLUGINS`` and ``FREIGHT_BLOCK_PLUGINS`` name plugins of every group: a
name is reported as not installed only if no entry point of that name exists in
any of ``PLUGIN_GROUPS`` (nor in the registry's own group), so naming a codec
plugin does not make the strategy registry complain, and vice versa.

pluggy and ``importlib.metadata`` are imported at first load, not at import.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar

from freight.serialize.errors import SerdeError
from freight.serialize.identifiers import BUILTIN_DISTRIBUTION

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import pluggy

__all__ = [
    "PLUGIN_GROUPS",
    "PluginError",
    "PluginInfo",
    "PluginRegistry",
    "PluginSettings",
    "PluginState",
    "PluginStatus",
]

#: The logger every registry reports broken and missing plugins on (the name
#: PLUGINS.md documents; kept when this code moved out of ``registry.py``).
logger = logging.getLogger("freight.serialize.registry")

#: Every entry-point group freight reads plugins from.
PLUGIN_GROUPS = ("freight.strategies", "freight.codecs")

T = TypeVar("T")


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
    ``FREIGHT_*`` variables described in ``freight.serialize.registry``."""

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
        """The settings the ``FREIGHT_*`` variables of ``environ`` (default:
        ``os.environ``) give."""
        env = os.environ if environ is None else environ
        return cls(
            autoload=not _env_flag(env.get("FREIGHT_DISABLE_PLUGIN_AUTOLOAD")),
            allow=_env_names(env.get("FREIGHT_PLUGINS")),
            block=_env_names(env.get("FREIGHT_BLOCK_PLUGINS")) or frozenset(),
            strict=_env_flag(env.get("FREIGHT_STRICT_PLUGINS")),
        )

    def skip_reason(self, name: str, builtin: bool) -> tuple[PluginState, str] | None:
        """Why the entry point ``name`` is not loaded (``("blocked", ...)`` or
        ``("skipped", ...)``), or ``None`` if it loads.  The precedence: the block
        list wins; built-ins load; a third party named in ``allow`` loads; with
        ``allow`` set, any other third party is skipped; else ``autoload``."""
        if name in self.block:
            return "blocked", "named in FREIGHT_BLOCK_PLUGINS"
        if builtin or (self.allow is not None and name in self.allow):
            return None  # built-ins always load; an explicitly named plugin loads
        if self.allow is not None:
            return "skipped", "not named in FREIGHT_PLUGINS"
        if not self.autoload:
            return (
                "skipped",
                "FREIGHT_DISABLE_PLUGIN_AUTOLOAD is set (name it in FREIGHT_PLUGINS)",
            )
        return None


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
    """Where strategies or codecs came from: the plugin's name and distribution."""

    name: str
    #: ``"name version"`` of the installed distribution, or ``None`` for a plugin
    #: registered at run time.
    distribution: str | None = None

    def __str__(self) -> str:
        where = self.distribution or "registered at run time"
        return f"plugin {self.name!r} ({where})"


class PluginRegistry(ABC, Generic[T]):
    """Loads the plugins of one entry-point group; a subclass holds what they
    provide (``T``: one registered strategy, one codec).

    Subclasses set ``hook_name`` (the pluggy hook every plugin of the group
    implements), ``provides`` (what the hook returns, for error messages) and
    ``kind`` (how messages name a plugin), and implement ``_hookspecs``,
    ``_accept`` and ``_forget``.
    """

    #: How log lines and errors name one plugin ("plugin", "codec plugin").
    kind: ClassVar[str] = "plugin"
    #: The hook a plugin of this registry implements.
    hook_name: ClassVar[str]
    #: What the hook must return, as error messages say it.
    provides: ClassVar[str]

    def __init__(
        self,
        *,
        entry_point_group: str | None,
        settings: PluginSettings | None = None,
    ) -> None:
        """``entry_point_group=None`` makes a registry that only holds what is
        registered explicitly.  ``settings`` default to
        ``PluginSettings.from_env()``, read at first load."""
        self.entry_point_group = entry_point_group
        self._settings = settings
        self._statuses: dict[str, PluginStatus] = {}
        self._plugins: dict[str, list[T]] = {}
        self._pm: pluggy.PluginManager | None = None
        self._loaded = entry_point_group is None
        self._lock = threading.RLock()

    # -- what a subclass provides -------------------------------------------------

    @abstractmethod
    def _hookspecs(self) -> ModuleType | type:
        """The module or class holding the ``hook_name`` specification."""

    @abstractmethod
    def _accept(
        self, provided: list[object], info: PluginInfo, builtin: bool | None
    ) -> tuple[list[T], PluginStatus]:
        """Check what ``info``'s hook returned and register it, all or nothing
        (raise before changing anything); return the records and the plugin's
        status.  ``builtin`` is whether an entry point is freight's own, ``None``
        for a plugin registered at run time."""

    @abstractmethod
    def _forget(self, name: str, records: list[T]) -> None:
        """Drop ``records``, which the plugin ``name`` registered."""

    # -- loading ------------------------------------------------------------------

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
            # a third party can never pre-empt a built-in's id or name.
            for ep in sorted(found, key=lambda e: (not _is_builtin(e), e.name)):
                if ep.name not in self._plugins:
                    self._load_entry_point(ep, settings)
            if settings.allow:
                installed = {ep.name for ep in found}
                for group in PLUGIN_GROUPS:
                    if group != self.entry_point_group:
                        installed.update(ep.name for ep in entry_points(group=group))
                self._report_missing(settings, installed)
            self._loaded = True

    def _report_missing(self, settings: PluginSettings, found: set[str]) -> None:
        """A name in ``FREIGHT_PLUGINS`` that no installed entry point has is a
        mistake the user should hear about: a warning, or strict mode's error."""
        others = [g for g in PLUGIN_GROUPS if g != self.entry_point_group]
        for name in sorted((settings.allow or frozenset()) - found):
            if name in settings.block:
                continue
            reason = (
                f"named in FREIGHT_PLUGINS, but no {self.entry_point_group!r} entry"
                " point of that name is installed"
                + (f" (nor in {', '.join(map(repr, others))})" if others else "")
            )
            if settings.strict:
                raise PluginError(
                    f"{self.kind} {name!r}: {reason} (FREIGHT_STRICT_PLUGINS is set)"
                )
            logger.warning("freight %s %r: %s", self.kind, name, reason)
            self._statuses[name] = PluginStatus(name, None, "failed", reason)

    def _load_entry_point(self, ep: EntryPoint, settings: PluginSettings) -> None:
        builtin = _is_builtin(ep)
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else None
        skip = settings.skip_reason(ep.name, builtin)
        if skip is not None:
            self._statuses[ep.name] = PluginStatus(ep.name, dist, *skip)
            return
        try:
            self._register(ep.load(), PluginInfo(ep.name, dist), builtin)
        except Exception as e:
            if settings.strict:
                raise PluginError(
                    f"{self.kind} {ep.name!r} ({dist}) failed to load: {e}"
                    " (FREIGHT_STRICT_PLUGINS is set)"
                ) from e
            logger.warning(
                "freight %s %r (%s) failed to load and was skipped: %s",
                self.kind,
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

    def plugin_statuses(self) -> list[PluginStatus]:
        """Every plugin this registry has seen, in load order, with its fate."""
        self.load()
        return list(self._statuses.values())

    # -- run-time registration ----------------------------------------------------

    def register_plugin(self, plugin: object, name: str | None = None) -> list[T]:
        """Register ``plugin`` (an object with ``@hookimpl`` functions) at run time.

        Returns what it registered.  All or nothing: on a conflict or a bad
        class, nothing from ``plugin`` is registered and ``PluginError`` says
        why (a conflict names both sides).
        """
        self.load()
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        with self._lock:
            return self._register(plugin, PluginInfo(name), builtin=None)

    def unregister_plugin(self, name: str) -> None:
        """Forget the plugin registered as ``name`` and what it provided."""
        with self._lock:
            if name not in self._plugins:
                raise PluginError(f"no {self.kind} named {name!r} is registered")
            self._forget(name, self._plugins.pop(name))
            self._statuses.pop(name, None)
            self._plugin_manager().unregister(name=name)

    def _plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            import pluggy

            from freight.serialize.hookspecs import PROJECT_NAME

            self._pm = pluggy.PluginManager(PROJECT_NAME)
            self._pm.add_hookspecs(self._hookspecs())
        return self._pm

    def _register(
        self, plugin: object, info: PluginInfo, builtin: bool | None
    ) -> list[T]:
        """Register ``plugin`` with the plugin manager and what its hook returns
        with the subclass, all or nothing."""
        if info.name in self._plugins:
            raise PluginError(
                f"a {self.kind} named {info.name!r} is already registered"
            )
        pm = self._plugin_manager()
        pm.register(plugin, name=info.name)
        try:
            records, status = self._accept(self._provided(plugin, info), info, builtin)
        except BaseException:
            pm.unregister(plugin)
            raise
        self._plugins[info.name] = records
        self._statuses[info.name] = status
        return records

    def _provided(self, plugin: object, info: PluginInfo) -> list[object]:
        """What ``plugin``'s implementations of the hook return, in one list."""
        provided: list[object] = []
        hook = getattr(self._plugin_manager().hook, self.hook_name)
        for impl in hook.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            returned = impl.function()
            if returned is not None and not isinstance(returned, Iterable):
                raise PluginError(
                    f"{info}: {self.hook_name}() must return an iterable of"
                    f" {self.provides}, got {type(returned).__name__}"
                )
            provided.extend(returned or ())
        return provided


def _is_builtin(ep: EntryPoint) -> bool:
    """Whether ``ep`` belongs to freight's own distribution."""
    if ep.dist is None:
        return False
    name = ep.dist.name.lower().replace("_", "-").replace(".", "-")
    return name == BUILTIN_DISTRIBUTION
