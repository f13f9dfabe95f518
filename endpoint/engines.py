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


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENGINE_ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_engines() -> list[str]:
    """The names of the installed engines, sorted."""
    return sorted(_entry_points())


def load_engine(name: str, **options: Any) -> Engine:
    """A new engine of the plugin ``name``, made with ``options`` (not started).

    Raises ``TypeError`` if ``name`` is not a str, ``UnknownEngine`` if no such
    engine is installed, ``ImportError`` (naming the entry point) if its module
    does not import, and whatever the engine's constructor raises for bad
    options.
    """
    if not isinstance(name, str):
        raise TypeError(f"an engine name is a str, not {type(name).__name__}")
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        raise UnknownEngine(name, tuple(sorted(eps)))
    try:
        factory = ep.load()
    except Exception as exc:
        raise ImportError(
            f"the engine {name!r} ({ep.value}) could not be loaded: {exc}"
        ) from exc
    if not callable(factory):
        raise TypeError(
            f"the engine {name!r} ({ep.value}) is not callable: an entry point of "
            f"{ENGINE_ENTRY_POINT_GROUP!r} names a class, 'module:Class'"
        )
    engine: Engine = factory(**options)
    return engine
