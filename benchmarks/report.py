"""The run as a markdown report (printed and ``results.md``) and as JSON.

Markdown: a header with the machine and conventions, an at-a-glance matrix of
encode+decode medians, one detail table per payload, import times, and the issue's
figures (MET / NOT MET) last.  JSON: the same numbers, machine readable, including
every timing sample.
"""

from __future__ import annotations

from typing import Any

import contenders
import units
from imports import ALONE
from measure import Timing
from model import PayloadResult, RowResult, RunResult

CONVENTIONS = (
    "Times are medians per call. encode+decode = median encode + median decode."
    " MB/s = payload size / encode+decode time, MB = 10^6 bytes; payload size is"
    " the payload's in-memory size (`sys.getsizeof` over its object graph, each"
    " object once). Wire = bytes sent (text: UTF-8 length; frames and pickle"
    " out-of-band: sum of all buffers). Peak = tracemalloc peak of one round trip"
    " (wire form + decoded copy + temporaries) divided by the payload size,"
    " measured in a separate untimed pass. Ratios are freight time / peer time on"
    " encode+decode: > 1 means freight is slower, < 1 freight is faster."
    " For functions, freight rows are *cold* (function cache cleared before every"
    " encode) unless labelled *cached*."
)

_DETAIL_HEADER = (
    "| contender | strategy | encode | decode | encode+decode | MB/s | wire |"
    " peak x payload | blob/peer | frames/peer |"
)


def _row_cells(p: PayloadResult, row: RowResult, zero_copy: bool) -> list[str]:
    if row.skipped is not None:
        cells = [row.label, row.strategy or "-", f"skipped: {row.skipped}"]
        return cells + [""] * (7 + zero_copy)
    if row.error is not None:
        cells = [row.label, row.strategy or "-", f"**FAILED**: {row.error}"]
        return cells + [""] * (7 + zero_copy)
    enc = row.encode.median_ns if row.encode else None
    dec = row.decode.median_ns if row.decode else None
    peak = f"{row.peak_bytes / p.size:.2f}" if row.peak_bytes is not None else "-"
    cells = [
        row.label,
        row.strategy or "-",
        units.duration(enc),
        units.duration(dec),
        units.duration(row.roundtrip_ns),
        units.rate(p.mb_per_s(row.roundtrip_ns)),
        units.size(row.wire_bytes),
        peak,
        units.ratio(p.ratio("freight_blob", row.key)),
        units.ratio(p.ratio("freight_frames", row.key)),
    ]
    if zero_copy:
        cells.append(_zero_copy_cell(row.zero_copy))
    return cells


def _zero_copy_cell(value: tuple[bool, bool] | None) -> str:
    if value is None:
        return "-"
    enc, dec = value
    return f"enc {'yes' if enc else 'no'} / dec {'yes' if dec else 'no'}"


def _table(header: str, rows: list[list[str]]) -> list[str]:
    columns = header.count("|") - 1
    return [
        header,
        "|" + "---|" * columns,
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _payload_section(p: PayloadResult) -> list[str]:
    zero_copy = any(r.zero_copy is not None for r in p.rows)
    header = _DETAIL_HEADER + (" zero-copy |" if zero_copy else "")
    kind = "code strategy" if p.is_function else "data strategy"
    lines = [
        f"### {p.title} (`{p.key}`): {units.size(p.size)}",
        "",
        f"Strategy column: the {kind} identifier each serializer used.",
        "",
    ]
    return lines + _table(header, [_row_cells(p, r, zero_copy) for r in p.rows])


def _overview(run: RunResult) -> list[str]:
    keys = list(contenders.PLOTTED)
    header = (
        "| payload | size | "
        + " | ".join(contenders.LABELS[k] for k in keys)
        + " | blob speedup vs reference |"
    )
    rows = []
    for p in run.payloads:
        cells = [p.key, units.size(p.size)]
        for key in keys:
            row = p.row(key)
            if row is None or row.skipped is not None:
                cells.append("n/a")
            elif row.error is not None:
                cells.append("FAILED")
            else:
                cells.append(units.duration(row.roundtrip_ns))
        ratio = p.main_ratio("reference")
        cells.append(f"{1 / ratio:.1f}x" if ratio else "-")
        rows.append(cells)
    return _table(header, rows)


def _strategies_line(run: RunResult) -> str:
    parts = [
        f"{name.replace('_', ' ')} = code `{ids['code']}` / data `{ids['data']}`"
        for name, ids in run.strategies.items()
    ]
    return "Strategies (identifiers): " + "; ".join(parts) + "."


def _machine_line(run: RunResult) -> str:
    m, s = run.machine, run.settings
    return (
        f"Python {m['python']} ({m['implementation']}) on {m['platform']},"
        f" {m['cpu_count']} CPUs (load average {m['load_average_1min']} at the start,"
        f" {m.get('load_average_1min_end', '?')} at the end);"
        f" {s['mode']} mode: {s['repeats']} repeats"
        f" (>= {s['min_repeats']} for slow operations),"
        f" samples >= {s['min_sample_ns'] / 1e6:g} ms. Run at {m['date']}."
    )


def _imports(run: RunResult) -> list[str]:
    if not run.imports:
        return []
    header = (
        "| module | import | first use (serializer + one round trip) |"
        " import + first use | runs |"
    )
    rows = [
        [
            f"`{t.module.removesuffix(ALONE)}`"
            + (
                " alone (package `__init__` skipped)"
                if t.module.endswith(ALONE)
                else ""
            ),
            f"{t.import_ms:.1f} ms",
            f"{t.first_use_ms - t.import_ms:.1f} ms",
            f"{t.first_use_ms:.1f} ms",
            str(t.runs),
        ]
        for t in run.imports
    ]
    return [
        "## Import time (fresh interpreter, median)",
        "",
        *_table(header, rows),
        "",
    ]


def _stream(run: RunResult) -> list[str]:
    if not run.stream:
        return []
    import stream  # the cold rows, beside the warm ones above

    return stream.markdown(run.stream, run.stream_rounds)


def _summary(run: RunResult) -> list[str]:
    header = "| status | figure | target | measured |"
    rows = [[f"**{f.status}**", f.name, f.target, f.measured] for f in run.figures]
    return ["## Summary: the issue's figures", "", *_table(header, rows)]


def markdown(run: RunResult, command: str) -> str:
    """The whole report as markdown, the figures last."""
    lines = [
        "# freight benchmark results",
        "",
        f"`{command}`",
        "",
        _machine_line(run),
        "",
        _strategies_line(run),
        "",
        CONVENTIONS,
        "",
        "## Encode+decode at a glance (median per call; functions cold)",
        "",
        *_overview(run),
        "",
        "## Per payload",
        "",
    ]
    for p in run.payloads:
        lines += [*_payload_section(p), ""]
    if run.memcpy_80mb is not None:
        lines += [
            "Yardstick: one memory copy of 80 MB, `bytes(bytearray(80_000_000))`:"
            f" {units.duration(run.memcpy_80mb.median_ns)}.",
            "",
        ]
    lines += _stream(run)
    lines += _imports(run)
    lines += _summary(run)
    return "\n".join(lines) + "\n"


def _timing_json(t: Timing | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "median_ns": t.median_ns,
        "samples_ns": list(t.samples_ns),
        "loops": t.loops,
    }


def _row_json(p: PayloadResult, row: RowResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": row.label,
        "family": row.family,
        "strategy": row.strategy,
    }
    if row.skipped is not None:
        return out | {"skipped": row.skipped}
    if row.error is not None:
        return out | {"error": row.error}
    rt = row.roundtrip_ns
    return out | {
        "encode": _timing_json(row.encode),
        "decode": _timing_json(row.decode),
        "encode_ns": row.encode.median_ns if row.encode else None,
        "decode_ns": row.decode.median_ns if row.decode else None,
        "roundtrip_ns": rt,
        "mb_per_s": {
            "encode": p.mb_per_s(row.encode.median_ns if row.encode else None),
            "decode": p.mb_per_s(row.decode.median_ns if row.decode else None),
            "roundtrip": p.mb_per_s(rt),
        },
        "wire_bytes": row.wire_bytes,
        "peak_bytes": row.peak_bytes,
        "peak_multiple": (
            row.peak_bytes / p.size if row.peak_bytes is not None else None
        ),
        "zero_copy": (
            None
            if row.zero_copy is None
            else {"encode": row.zero_copy[0], "decode": row.zero_copy[1]}
        ),
        "ratios_freight_over_this": {
            key: p.ratio(key, row.key)
            for key in ("freight_blob", "freight_frames", "freight_text")
        },
    }


def to_json(run: RunResult, command: str) -> dict[str, Any]:
    """The run as a JSON-ready dict (see the module docstring)."""
    return {
        "schema": 1,
        "command": command,
        "machine": run.machine,
        "settings": run.settings,
        "conventions": CONVENTIONS,
        "strategies": run.strategies,
        "payloads": {
            p.key: {
                "title": p.title,
                "size_bytes": p.size,
                "is_function": p.is_function,
                "tiny": p.is_tiny,
                "contenders": {r.key: _row_json(p, r) for r in p.rows},
            }
            for p in run.payloads
        },
        "memcpy_80mb": _timing_json(run.memcpy_80mb),
        "imports": {
            t.module: {
                "import_ms": t.import_ms,
                "first_use_ms": t.first_use_ms,
                "runs": t.runs,
            }
            for t in run.imports
        },
        "figures": [
            {
                "name": f.name,
                "target": f.target,
                "measured": f.measured,
                "status": f.status,
            }
            for f in run.figures
        ],
    }
