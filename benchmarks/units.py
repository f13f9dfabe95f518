"""Human-readable numbers: durations, sizes, rates, ratios (MB = 10**6 bytes)."""

from __future__ import annotations


def _scaled(value: float, units: tuple[str, ...]) -> str:
    """``value`` in the largest of ``units`` (each 1000x the one before) that keeps
    it at least 1 once rounded to three significant digits ("1 µs", never
    "1e+03 ns")."""
    for power, unit in enumerate(units):
        shown = float(f"{value / 1000**power:.3g}")
        if shown < 1000 or power == len(units) - 1:
            return f"{shown:.3g} {unit}"
    raise AssertionError("unreachable")


def duration(ns: float | None) -> str:
    """``1234.0`` -> ``"1.23 µs"``; ``None`` -> ``"-"``."""
    return "-" if ns is None else _scaled(ns, ("ns", "µs", "ms", "s"))


def size(nbytes: float | None) -> str:
    """``1_500_000`` -> ``"1.5 MB"`` (decimal units); ``None`` -> ``"-"``."""
    return "-" if nbytes is None else _scaled(nbytes, ("B", "KB", "MB", "GB"))


def rate(mb_per_s: float | None) -> str:
    """Throughput in MB/s with three significant digits; ``None`` -> ``"-"``."""
    if mb_per_s is None:
        return "-"
    if mb_per_s >= 1000:
        return f"{mb_per_s:,.0f}"
    return f"{mb_per_s:.3g}"


def ratio(value: float | None) -> str:
    """``0.0423`` -> ``"0.042x"``; ``None`` -> ``"-"``."""
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"
