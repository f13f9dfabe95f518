"""Human-readable numbers: durations, sizes, rates, ratios (MB = 10**6 bytes)."""

from __future__ import annotations


def duration(ns: float | None) -> str:
    """``1234.0`` -> ``"1.23 µs"``; ``None`` -> ``"-"``."""
    if ns is None:
        return "-"
    for limit, unit, scale in (
        (1e3, "ns", 1.0),
        (1e6, "µs", 1e3),
        (1e9, "ms", 1e6),
    ):
        if ns < limit:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns / 1e9:.3g} s"


def size(nbytes: float | None) -> str:
    """``1_500_000`` -> ``"1.5 MB"`` (decimal units); ``None`` -> ``"-"``."""
    if nbytes is None:
        return "-"
    for limit, unit, scale in ((1e3, "B", 1.0), (1e6, "KB", 1e3), (1e9, "MB", 1e6)):
        if nbytes < limit:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 1e9:.3g} GB"


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
