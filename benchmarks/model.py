"""The results of a run, as plain data: rows, payloads, figures, and the whole run.

Convention for ratios: ``freight time / peer time`` on encode+decode medians, so a
ratio above 1 means freight is slower and below 1 means freight is faster.
Encode+decode is the median encode time plus the median decode time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from contenders import MAIN_FREIGHT
from measure import Timing

MB = 1_000_000


@dataclass
class RowResult:
    """One contender on one payload: measured, skipped (out of domain) or failed."""

    key: str
    label: str
    family: str
    strategy: str = ""
    skipped: str | None = None
    error: str | None = None
    encode: Timing | None = None
    decode: Timing | None = None
    wire_bytes: int | None = None
    peak_bytes: int | None = None
    #: For buffer payloads: (encode shares the payload's memory, decode does).
    zero_copy: tuple[bool, bool] | None = None

    @property
    def measured(self) -> bool:
        return self.encode is not None and self.decode is not None

    @property
    def roundtrip_ns(self) -> float | None:
        if self.encode is None or self.decode is None:
            return None
        return self.encode.median_ns + self.decode.median_ns


@dataclass
class PayloadResult:
    """Every contender's row for one payload class."""

    key: str
    title: str
    size: int
    is_function: bool
    is_tiny: bool
    rows: list[RowResult] = field(default_factory=list)

    def row(self, key: str) -> RowResult | None:
        return next((r for r in self.rows if r.key == key), None)

    def roundtrip(self, key: str) -> float | None:
        """Encode+decode median (ns) of contender ``key``, if it was measured."""
        row = self.row(key)
        return row.roundtrip_ns if row is not None else None

    def ratio(self, freight_key: str, peer_key: str) -> float | None:
        """``freight time / peer time`` on encode+decode (>1: freight slower)."""
        ours, theirs = self.roundtrip(freight_key), self.roundtrip(peer_key)
        if ours is None or theirs is None or theirs <= 0:
            return None
        return ours / theirs

    def main_ratio(self, peer_key: str) -> float | None:
        """The ratio of freight's main row (default blob, cold) to ``peer_key``."""
        return self.ratio(MAIN_FREIGHT, peer_key)

    def mb_per_s(self, ns: float | None) -> float | None:
        """Throughput of handling this payload in ``ns`` nanoseconds, MB/s."""
        if ns is None or ns <= 0:
            return None
        return self.size / MB / (ns / 1e9)


@dataclass(frozen=True)
class ImportTiming:
    """Import cost of one module in fresh interpreters, median of ``runs``."""

    module: str
    import_ms: float
    #: Import plus constructing the default serializer and one round trip.
    first_use_ms: float
    runs: int


@dataclass(frozen=True)
class Figure:
    """One target from the issue, checked against the measurements."""

    name: str
    target: str
    measured: str
    #: ``"MET"``, ``"NOT MET"``, or ``"N/A"`` when it could not be measured.
    status: str


@dataclass
class RunResult:
    """Everything one run measured."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    strategies: dict[str, dict[str, str]]
    payloads: list[PayloadResult] = field(default_factory=list)
    memcpy_80mb: Timing | None = None
    imports: list[ImportTiming] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    #: The distinct-message stream (``stream.StreamResult``; cold, not warm).
    stream: list[Any] = field(default_factory=list)
    stream_rounds: int = 0

    def payload(self, key: str) -> PayloadResult | None:
        return next((p for p in self.payloads if p.key == key), None)


def geometric_mean(values: list[float]) -> float:
    """The geometric mean of positive ``values`` (``nan`` if there are none)."""
    if not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))
