"""The issue's performance figures, checked against one run's measurements.

Each check returns a ``Figure`` with status ``MET``, ``NOT MET``, ``N/A`` (its payload
was not measured in this run) or ``INFO`` (a number reported for comparison, with no
target).  All use freight's main rows: the default serializer, functions cold.
"""

from __future__ import annotations

from collections.abc import Callable

import units as fmt
from model import Figure, PayloadResult, RunResult, geometric_mean

ARRAY = "array_80mb"


def _status(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _na(name: str, target: str, why: str = "not measured in this run") -> Figure:
    return Figure(name, target, why, "N/A")


def _speedups(
    run: RunResult, freight_key: str, peer_key: str
) -> list[tuple[PayloadResult, float]]:
    """(payload, peer time / freight time) where both were measured."""
    out = []
    for p in run.payloads:
        ratio = p.ratio(freight_key, peer_key)
        if ratio is not None and ratio > 0:
            out.append((p, 1 / ratio))
    return out


def _speedup_figures(
    run: RunResult, freight_key: str, what: str, overall: float, each: float
) -> list[Figure]:
    """Geometric-mean speedup over the reference >= ``overall``, and >= ``each``
    on every class (``each`` = 1: simply faster)."""
    name = f"{what} vs reference default, geometric-mean speedup (encode+decode)"
    every = f"{what} vs reference default, speedup on every class"
    each_target = "faster on each (> 1x)" if each == 1 else f">= {each:g}x on each"
    speedups = _speedups(run, freight_key, "reference")
    if not speedups:
        return [_na(name, f">= {overall:g}x"), _na(every, each_target)]
    geo = geometric_mean([s for _, s in speedups])
    slowest, worst = min(speedups, key=lambda ps: ps[1])
    return [
        Figure(
            name,
            f">= {overall:g}x",
            f"{geo:.1f}x over {len(speedups)} classes",
            _status(geo >= overall),
        ),
        Figure(
            every,
            each_target,
            f"slowest class: {slowest.key} at {worst:.2f}x",
            _status(worst > each if each == 1 else worst >= each),
        ),
    ]


def _pickle_figures(run: RunResult) -> list[Figure]:
    figures = []
    for tiny, limit, label in (
        (False, 1.15, "payloads >= 1 KB"),
        (True, 2.0, "tiny payloads (< 1 KB)"),
    ):
        name = f"freight default blob vs raw pickle 5 in-band, {label}"
        ratios = [
            (p, r)
            for p in run.payloads
            if p.is_tiny == tiny and (r := p.main_ratio("pickle5")) is not None
        ]
        if not ratios:
            figures.append(_na(name, f"<= {limit:g}x"))
            continue
        worst_payload, worst = max(ratios, key=lambda pr: pr[1])
        each = ", ".join(f"{p.key} {r:.2f}x" for p, r in ratios)
        cached = [
            f"{p.key} {r:.2f}x"
            for p, _ in ratios
            if (r := p.ratio("freight_blob_cached", "pickle5")) is not None
        ]
        if cached:  # functions: cold is judged; sent again, one is a cache hit
            each += f"; sent again (cached): {', '.join(cached)}"
        figures.append(
            Figure(
                name,
                f"<= {limit:g}x slower on each",
                f"worst {worst_payload.key} {worst:.2f}x ({each})",
                _status(worst <= limit),
            )
        )
    return figures


def _array_figures(run: RunResult) -> list[Figure]:
    names = (
        "80 MB array, frames path encode+decode",
        "80 MB array, frames path copies nothing",
        "80 MB array, blob path encode+decode vs one 80 MB memory copy",
        "80 MB array round-trip peak memory, frames path",
        "80 MB array round-trip peak memory, blob path",
        "80 MB array round-trip peak memory, reference",
    )
    targets = (
        "< 100 µs",
        "encode and decode share the array's memory",
        "<= 1.5x",
        "<= 1.3x payload",
        "<= 2.5x payload",
        "reported (issue: about 7.6x)",
    )
    p = run.payload(ARRAY)
    frames = p.row("freight_frames") if p else None
    blob = p.row("freight_blob") if p else None
    reference = p.row("reference") if p else None
    if p is None or frames is None or blob is None:
        return [_na(n, t) for n, t in zip(names, targets, strict=True)]
    out = []
    frames_ns = frames.roundtrip_ns
    out.append(
        Figure(
            names[0],
            targets[0],
            fmt.duration(frames_ns),
            _status(frames_ns is not None and frames_ns < 100_000),
        )
    )
    if frames.zero_copy is None:
        out.append(_na(names[1], targets[1], frames.error or "not measured"))
    else:
        enc, dec = frames.zero_copy
        out.append(
            Figure(
                names[1],
                targets[1],
                f"encode {'shares' if enc else 'COPIES'},"
                f" decode {'shares' if dec else 'COPIES'}",
                _status(enc and dec),
            )
        )
    blob_ns, copy = blob.roundtrip_ns, run.memcpy_80mb
    if blob_ns is None or copy is None:
        out.append(_na(names[2], targets[2]))
    else:
        multiple = blob_ns / copy.median_ns
        out.append(
            Figure(
                names[2],
                targets[2],
                f"{fmt.duration(blob_ns)} = {multiple:.2f}x of"
                f" {fmt.duration(copy.median_ns)}",
                _status(multiple <= 1.5),
            )
        )
    for name, target, row, limit in (
        (names[3], targets[3], frames, 1.3),
        (names[4], targets[4], blob, 2.5),
        (names[5], targets[5], reference, None),
    ):
        if row is None or row.peak_bytes is None:
            why = "not measured in this run"
            if row is not None and row.measured:
                why = "memory pass skipped (--quick skips round trips over 0.5 s)"
            out.append(_na(name, target, why))
            continue
        multiple = row.peak_bytes / p.size
        measured = f"{multiple:.2f}x ({fmt.size(row.peak_bytes)})"
        status = "INFO" if limit is None else _status(multiple <= limit)
        out.append(Figure(name, target, measured, status))
    return out


def _text_figures(run: RunResult) -> list[Figure]:
    ours = run.strategies.get("freight_text", {})
    theirs = run.strategies.get("reference", {})
    # The compat figure is "at least 5x faster": the same measure as its
    # 20x figure, the geometric mean.  Each class must be faster, as there; the
    # classes under 5x are reported.
    what = "freight compat text path"
    figures = _speedup_figures(run, "freight_text", what, 5, 1)
    speedups = _speedups(run, "freight_text", "reference")
    if speedups:
        below = [f"{p.key} {s:.2f}x" for p, s in speedups if s < 5]
        figures.append(
            Figure(
                f"{what} vs reference default, classes under 5x",
                "reported",
                ", ".join(below) if below else "none",
                "INFO",
            )
        )
    if ours != theirs:
        note = f" (identifiers differ: freight {ours}, reference {theirs})"
        return [Figure(f.name, f.target, f.measured + note, "NOT MET") for f in figures]
    return figures


def _import_figures(run: RunResult) -> list[Figure]:
    name, target = "import freight.serialize", "< 100 ms"
    timings = {t.module: t for t in run.imports}
    ours = timings.get("freight.serialize")
    if ours is None:
        return [_na(name, target)]
    theirs = timings.get("globus_compute_sdk.serialize")
    against = f" (reference: {theirs.import_ms:.0f} ms)" if theirs else ""
    return [
        Figure(
            name,
            target,
            f"{ours.import_ms:.1f} ms{against}",
            _status(ours.import_ms < 100),
        )
    ]


CHECKS: tuple[Callable[[RunResult], list[Figure]], ...] = (
    lambda run: _speedup_figures(run, "freight_blob", "freight default blob", 20, 1),
    _pickle_figures,
    _array_figures,
    _text_figures,
    _import_figures,
)


def check(run: RunResult) -> list[Figure]:
    """Every figure, in the issue's order."""
    return [figure for check in CHECKS for figure in check(run)]
