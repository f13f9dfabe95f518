"""Memory measured around a block of test code, with ``tracemalloc``."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Traced:
    """Filled in when the block ends: bytes allocated at its peak, and still held."""

    peak: int = 0
    retained: int = 0


@contextlib.contextmanager
def traced() -> Iterator[Traced]:
    """Bytes allocated at the peak of the block, and still held after it (leaving
    tracemalloc as it was, in case something else is tracing)."""
    memory = Traced()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    try:
        yield memory
    finally:
        current, peak = tracemalloc.get_traced_memory()
        if not was_tracing:
            tracemalloc.stop()
        memory.peak, memory.retained = peak - before, current - before
