"""Finding engines: the entry-point group ``freight.engines``.

An engine plugin is an entry point in that group naming a class (or any
callable) that takes keyword options and returns an ``Engine``; freight's own
``thread`` and ``process`` are declared in its ``pyproject.toml`` exactly as a
third party's would be::

    [project.entry-points."freight.engines"]
    thread = "freight.endpoint.thread:ThreadEngine"
    process = "freight.endpoint.process:ProcessEngine"

(Engines are classes, not pluggy hook modules, so this is a plain entry-point
lookup rather than ``freight.serialize``'s plugin registry.)
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from freight.endpoint.engine import ENGINE_ENTRY_POINT_GROUP, Engine

__all__ = ["UnknownEngine", "available_engines", "load_engine"]


class UnknownEngine(LookupError):
    """No engine of that name is installed; ``available`` lists those that are."""

    def __init__(self, name: str, available: tuple[str, ...]) -> None:
        super().__init__(name, available)
        self.name = name
        self.available = available

    def __str__(self) -> str:
        known = ", ".join(self.available) or "none"
        return (
            f"no engine named {self.name!r} in the entry-point group "
            f"{ENGINE_ENTRY_POINT_GROUP!r} (installed: {known})"
        )


#: The built-ins, found even when the installed metadata predates them (an
#: editable install not reinstalled); an entry point of the same name wins.
_BUILTIN = {
    "thread": "freight.endpoint.thread:ThreadEngine",
    "process": "freight.endpoint.process:ProcessEngine",
}


def available_engines() -> dict[str, str]:
    """Engine name -> ``"module:Class"``: the entry points and the built-ins."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENGINE_ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def load_engine(name: str, **options: Any) -> Engine:
    """A new engine of the plugin ``name``, made with ``options`` (not started);
    options whose value is ``None`` are left out, so the engine's defaults apply.

    Raises ``TypeError`` if ``name`` is not a str, ``UnknownEngine`` (a
    ``LookupError``) naming the installed engines if there is no such engine,
    ``ImportError`` (naming the entry point) if it does not load, ``TypeError``
    if it does not name a callable, and whatever the engine's constructor raises
    for bad options.
    """
    if not isinstance(name, str):
        raise TypeError(f"an engine name is a str, not {type(name).__name__}")
    engines = available_engines()
    spec = engines.get(name)
    if spec is None:
        raise UnknownEngine(name, tuple(sorted(engines)))
    try:
        factory = EntryPoint(name, spec, ENGINE_ENTRY_POINT_GROUP).load()
    except Exception as exc:
        raise ImportError(
            f"the engine {name!r} ({spec}) could not be loaded: {exc}"
        ) from exc
    if not callable(factory):
        raise TypeError(
            f"the engine {name!r} ({spec}) is not callable: an entry point of "
            f"{ENGINE_ENTRY_POINT_GROUP!r} names a class, 'module:Class'"
        )
    engine: Engine = factory(**{k: v for k, v in options.items() if v is not None})
    return engine
