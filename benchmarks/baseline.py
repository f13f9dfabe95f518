"""The stored baseline (``baseline.json``) and the regression check against it.

The baseline keeps, per payload and contender, the encode, decode and encode+decode
medians and the strategy identifiers used, plus import times.  ``compare`` flags a
freight row (and the ``import freight.serialize`` time) as a regression when its
encode+decode median is more than ``tolerance`` times the baseline's, both in
absolute terms and relative to the peers on the same payload: the median of their
now/baseline factors (the peers' code did not change, so their drift is the
machine's, e.g. other load on it), taken over the peers whose baseline time is
within ``SAME_SCALE`` of the row's (a zero-copy row of microseconds drifts with
the other zero-copy peer, not with the memory-bound ones of milliseconds), or over
all the payload's peers if none is.  Peer rows are shown but never flagged.
Saving merges into an existing baseline, so ``--only X --save-baseline`` refreshes
only payload X; each payload records the machine (and date) and the mode of the
run that measured it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model import RunResult

#: Slower than the baseline by more than this factor is a regression.
DEFAULT_TOLERANCE = 1.25
#: Peers whose baseline time is within this factor of a row's set its drift.
SAME_SCALE = 10.0


def _snapshot(run: RunResult) -> dict[str, Any]:
    return {
        "payloads": {
            p.key: {
                r.key: {
                    "strategy": r.strategy,
                    "encode_ns": r.encode.median_ns if r.encode else None,
                    "decode_ns": r.decode.median_ns if r.decode else None,
                    "roundtrip_ns": r.roundtrip_ns,
                }
                for r in p.rows
                if r.measured
            }
            for p in run.payloads
        },
        "imports": {t.module: {"import_ms": t.import_ms} for t in run.imports},
    }


def save(run: RunResult, path: Path) -> None:
    """Write (or merge into) the baseline at ``path``."""
    snap = _snapshot(run)
    data: dict[str, Any] = {"payloads": {}, "imports": {}}
    if path.exists():
        data = json.loads(path.read_text())
    taken = {
        "machine": run.machine,
        "mode": run.settings["mode"],
        "strategies": run.strategies,
    }
    # Schema 2: where and how each payload was measured is recorded with it (a
    # run with --only leaves the other payloads' records as they were).
    for stale in ("machine", "mode", "strategies"):
        data.pop(stale, None)
    data["schema"] = 2
    data.setdefault("taken", {})
    data["payloads"].update(snap["payloads"])
    data["taken"].update(dict.fromkeys(snap["payloads"], taken))
    data["imports"].update(snap["imports"])
    if snap["imports"]:
        data["taken"]["imports"] = taken
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@dataclass
class Comparison:
    """What changed since the baseline."""

    lines: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self, tolerance: float) -> str:
        head = [
            f"## Comparison with the baseline (regression: > {tolerance:g}x slower,"
            " absolutely and relative to the peers)",
            "",
            "| payload | contender | strategy (then -> now) | baseline | now |"
            " now / baseline | relative to peers | |",
            "|---|---|---|---|---|---|---|---|",
        ]
        tail = [""] + [f"- {n}" for n in self.notes]
        verdict = (
            f"**{len(self.regressions)} regression(s)**: " + "; ".join(self.regressions)
            if self.regressions
            else "No regressions."
        )
        return "\n".join([*head, *self.lines, *tail, "", verdict]) + "\n"


@dataclass(frozen=True)
class _Change:
    key: str
    label: str
    family: str
    strategy: str
    then_ns: float
    now_ns: float

    @property
    def factor(self) -> float:
        return self.now_ns / self.then_ns


def _changes(run: RunResult, base: dict[str, Any]) -> dict[str, list[_Change]]:
    """Per payload, every row measured both then and now."""
    out: dict[str, list[_Change]] = {}
    for p in run.payloads:
        then_rows = base["payloads"].get(p.key, {})
        for r in p.rows:
            then = then_rows.get(r.key)
            now = r.roundtrip_ns
            if then is None or now is None or not then.get("roundtrip_ns"):
                continue
            strategy = (
                r.strategy
                if then["strategy"] == r.strategy
                else f"{then['strategy']} -> {r.strategy}"
            )
            out.setdefault(p.key, []).append(
                _Change(r.key, r.label, r.family, strategy, then["roundtrip_ns"], now)
            )
    return out


def _drift(row: _Change, peers: list[_Change]) -> float:
    """The machine's drift for ``row``: the median now/baseline factor of the
    peers on the same time scale (all peers if none is; 1 if there are none)."""
    near = [
        p.factor
        for p in peers
        if row.then_ns / SAME_SCALE <= p.then_ns <= row.then_ns * SAME_SCALE
    ]
    factors = near or [p.factor for p in peers]
    return statistics.median(factors) if factors else 1.0


def compare(run: RunResult, path: Path, tolerance: float) -> Comparison:
    """Compare ``run`` with the baseline at ``path`` (see the module docstring)."""
    import units

    base = json.loads(path.read_text())
    result = Comparison()
    taken = base.get("taken", {})
    modes = {taken.get(p.key, {}).get("mode", base.get("mode")) for p in run.payloads}
    for mode in sorted(modes - {run.settings["mode"]}, key=str):
        result.notes.append(
            f"some of the baseline was taken in {mode} mode, this run in"
            f" {run.settings['mode']} mode: expect noise"
        )
    all_drift: list[float] = []
    for payload, changes in _changes(run, base).items():
        peers = [c for c in changes if c.family != "freight"]
        all_drift += [c.factor for c in peers]
        for c in changes:
            relative = c.factor / _drift(c, peers)
            flag = ""
            if c.family == "freight" and min(c.factor, relative) > tolerance:
                flag = "**REGRESSION**"
                result.regressions.append(
                    f"{payload}/{c.key} {c.factor:.2f}x ({relative:.2f}x vs peers)"
                )
            shown = f"{relative:.2f}x" if c.family == "freight" else ""
            result.lines.append(
                f"| {payload} | {c.label} | {c.strategy or '-'} |"
                f" {units.duration(c.then_ns)} | {units.duration(c.now_ns)} |"
                f" {c.factor:.2f}x | {shown} | {flag} |"
            )
    imports = {t.module: t.import_ms for t in run.imports}
    then_imports = {m: v["import_ms"] for m, v in base.get("imports", {}).items()}
    ref = "globus_compute_sdk.serialize"
    ref_drift = (
        imports[ref] / then_imports[ref]
        if ref in imports and ref in then_imports
        else 1.0
    )
    for module, now_ms in imports.items():
        if module not in then_imports:
            continue
        factor = now_ms / then_imports[module]
        ours = module.startswith("freight")
        relative = factor / ref_drift
        flag = ""
        if ours and min(factor, relative) > tolerance:
            flag = "**REGRESSION**"
            result.regressions.append(f"import {module} {factor:.2f}x")
        result.lines.append(
            f"| import | `{module}` | - | {then_imports[module]:.1f} ms |"
            f" {now_ms:.1f} ms | {factor:.2f}x | {f'{relative:.2f}x' if ours else ''}"
            f" | {flag} |"
        )
    if all_drift:
        result.notes.append(
            "the peers (never flagged) moved by a median factor of"
            f" {statistics.median(all_drift):.2f}x: the machine's own drift"
        )
    return result
