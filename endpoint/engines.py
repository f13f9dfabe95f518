"""Finding engines: the ``freight.engines`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from freight.endpoint.engine import ENGINE_ENTRY_POINT_GROUP, Engine

__all__ = ["available_engines", "load_engine"]

_BUILTIN = {
    "thread": "freight.endpoint.thread:ThreadEngine",
}


def available_engines() -> dict[str, str]:
    """Engine name -> ``module:Class``, from the entry points (and built-ins)."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENGINE_ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def load_engine(name: str, **options: Any) -> Engine:
    """An engine instance of the plugin ``name``; options with value ``None`` are
    left out.  Raises ``LookupError`` naming the available engines."""
    import importlib

    spec = available_engines().get(name)
    if spec is None:
        known = ", ".join(sorted(available_engines()))
        raise LookupError(f"no engine named {name!r}; available: {known}")
    module, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    engine: Engine = cls(**{k: v for k, v in options.items() if v is not None})
    return engine
