"""The plugin module named by this distribution's ``freight.strategies`` entry point.

freight imports it the first time a strategy is looked up, and calls the hook.
"""

from __future__ import annotations

from freight.serialize import SerializationStrategy, hookimpl
from freight_zstd.strategy import ZstdPickle


@hookimpl
def freight_strategies() -> list[type[SerializationStrategy]]:
    return [ZstdPickle]
