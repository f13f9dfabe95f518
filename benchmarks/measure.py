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

Operations compared with each other are timed *interleaved* (``time_calls``): one
sample of each in turn, round after round, so that a slow spell of a shared,
noisy machine lands on every contender's samples alike instead of on whichever
contender happened to be running; ratios of the medians are then far steadier.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
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


def _calibrate(
    fn: Callable[[Any], Any], arg: Any, settings: Settings
) -> tuple[int, int]:
    """The loop count for ``fn(arg)`` samples, and the last calibration sample."""
    loops = 1
    while True:
        elapsed = _sample(fn, arg, loops)
        if elapsed >= settings.min_sample_ns:
            return loops, elapsed
        # Jump most of the way at once, then let the doubling finish the job.
        wanted = settings.min_sample_ns / max(elapsed, 1)
        loops = max(loops * 2, int(loops * wanted * 0.5))


def time_calls(
    calls: Sequence[tuple[Callable[[Any], Any], Any]], settings: Settings
) -> list[Timing]:
    """The median times of each ``fn(arg)`` in ``calls``, sampled interleaved (see
    the module docstring for the method)."""
    loops: list[int] = []
    samples: list[list[float]] = []
    wanted: list[int] = []
    for fn, arg in calls:
        n, elapsed = _calibrate(fn, arg, settings)
        loops.append(n)
        repeats = settings.repeats
        taken: list[float] = []
        if n == 1 and elapsed * settings.repeats > settings.budget_ns:
            # Too slow to repeat in full: fewer repeats, and the calibration call
            # counts as one (the caller's checked round trip has warmed it up).
            repeats = max(settings.min_repeats, settings.budget_ns // max(elapsed, 1))
            taken.append(float(elapsed))
        samples.append(taken)
        wanted.append(repeats)
    while any(len(taken) < n for taken, n in zip(samples, wanted, strict=True)):
        for i, (fn, arg) in enumerate(calls):
            if len(samples[i]) < wanted[i]:
                gc.collect()
                samples[i].append(_sample(fn, arg, loops[i]) / loops[i])
    return [
        Timing(statistics.median(taken), tuple(taken), n)
        for taken, n in zip(samples, loops, strict=True)
    ]


def time_call(fn: Callable[[Any], Any], arg: Any, settings: Settings) -> Timing:
    """The median time of ``fn(arg)`` alone (see the module docstring)."""
    return time_calls([(fn, arg)], settings)[0]


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
