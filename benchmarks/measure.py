"""Timing and memory measurement: medians of adaptive loops, tracemalloc peaks.

Timing follows ``timeit``: ``time.perf_counter_ns`` around a loop of ``loops`` calls,
the loop count grown (from 1, at least doubling) until one sample takes at least
``min_sample_ns`` (those calibration samples are the warm-up), then ``repeats``
samples whose median is reported per call.  The garbage collector is off while a
sample runs and collects between samples, so one operation does not pay for the
garbage of another (the suite ``gc.freeze()`` s everything alive before a payload, so
those collections are cheap).  An operation so slow that ``repeats`` samples would
exceed ``budget_ns`` gets fewer repeats, never fewer than ``min_repeats``, and its
calibration call counts as the first of them.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """How hard to measure."""

    repeats: int = 7
    min_repeats: int = 3
    min_sample_ns: int = 5_000_000
    #: Time one measurement (encode or decode of one contender) may take, roughly.
    budget_ns: int = 2_000_000_000
    #: Skip the tracemalloc pass for round trips slower than this (``None``: never).
    #: tracemalloc makes the reference's 80 MB encode ~5x slower (base64 line by line).
    memory_max_roundtrip_ns: int | None = None

    @classmethod
    def quick(cls) -> Settings:
        """A smoke run: a handful of short samples, one for very slow operations."""
        return cls(
            repeats=3,
            min_repeats=1,
            min_sample_ns=1_000_000,
            budget_ns=300_000_000,
            memory_max_roundtrip_ns=500_000_000,
        )


@dataclass(frozen=True)
class Timing:
    """Per-call times of one operation: the median and every sample."""

    median_ns: float
    samples_ns: tuple[float, ...]
    loops: int

    @property
    def repeats(self) -> int:
        return len(self.samples_ns)


def _sample(fn: Callable[[Any], Any], arg: Any, loops: int) -> int:
    """Nanoseconds for ``loops`` calls of ``fn(arg)``, with the GC off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        repeat = itertools.repeat(None, loops)
        start = time.perf_counter_ns()
        for _ in repeat:
            fn(arg)
        return time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def time_call(fn: Callable[[Any], Any], arg: Any, settings: Settings) -> Timing:
    """The median time of ``fn(arg)`` (see the module docstring for the method)."""
    loops = 1
    while True:
        elapsed = _sample(fn, arg, loops)
        if elapsed >= settings.min_sample_ns:
            break
        # Jump most of the way at once, then let the doubling finish the job.
        wanted = settings.min_sample_ns / max(elapsed, 1)
        loops = max(loops * 2, int(loops * wanted * 0.5))
    samples: list[float] = []
    repeats = settings.repeats
    if loops == 1 and elapsed * settings.repeats > settings.budget_ns:
        # Too slow to repeat in full: fewer repeats, and the calibration call counts
        # as one (the caller's checked round trip has already warmed it up).
        repeats = max(settings.min_repeats, settings.budget_ns // max(elapsed, 1))
        samples.append(float(elapsed))
    while len(samples) < repeats:
        gc.collect()
        samples.append(_sample(fn, arg, loops) / loops)
    return Timing(statistics.median(samples), tuple(samples), loops)


def peak_memory(round_trip: Callable[[], Any]) -> int:
    """The most memory allocated at once while ``round_trip()`` runs, in bytes.

    Measured with ``tracemalloc`` (numpy reports its buffers to it), in a pass of its
    own that is never timed, counting only what is allocated after it starts: the
    payload itself is not included, the wire form, temporaries and the decoded copy
    are.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        result = round_trip()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return max(0, peak - baseline)


def memcpy_yardstick(nbytes: int, settings: Settings) -> Timing:
    """The time of one memory copy of ``nbytes``: ``bytes(bytearray_of_nbytes)``."""
    # Filled, so every page is really mapped before the clock starts.
    source = bytearray(b"\x01") * nbytes
    return time_call(bytes, source, settings)
