"""``throughput.png``: encode+decode throughput against payload size, per contender.

Left panel: the data payloads, payload size on a log x axis (each point labelled
with its payload class along the top), one line per contender.  Right panel: the
function and the closure, which have no meaningful size order, as markers on a
shared log y axis.  freight's paths are drawn solid and bold, the reference red and
dashed, the other peers thin and dotted.  Skipped or failed points are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import contenders
from model import PayloadResult, RunResult

_STYLE: dict[str, dict[str, Any]] = {
    "freight_blob": {"color": "#1f4fd1", "marker": "o", "linewidth": 2.6},
    "freight_frames": {"color": "#12a4d9", "marker": "D", "linewidth": 2.6},
    "freight_text": {"color": "#7b3fc4", "marker": "s", "linewidth": 2.2},
    "reference": {
        "color": "#d62728",
        "marker": "X",
        "linewidth": 2.2,
        "linestyle": "--",
    },
    "pickle5": {"color": "#2ca02c", "marker": "^"},
    "pickle5_oob": {"color": "#7fd46b", "marker": "v"},
    "cloudpickle": {"color": "#ff7f0e", "marker": "<"},
    "dill": {"color": "#8c564b", "marker": ">"},
    "msgpack": {"color": "#7f7f7f", "marker": "P"},
}
_FREIGHT = {"linestyle": "-"}
_PEER = {"linewidth": 1.3, "linestyle": ":"}

_IDS = {
    "freight_blob": "freight_default",
    "freight_frames": "freight_default",
    "freight_text": "freight_text",
    "reference": "reference",
}


def _label(run: RunResult, key: str) -> str:
    """The legend entry, with the code/data identifiers a serializer used."""
    label = contenders.LABELS[key]
    ids = run.strategies.get(_IDS.get(key, ""))
    return f"{label} ({ids['code']}/{ids['data']})" if ids else label


def _style(key: str) -> dict[str, Any]:
    base = _FREIGHT if key.startswith("freight") else _PEER
    return {**base, **_STYLE[key], "markersize": 7, "alpha": 0.95}


def _points(payloads: list[PayloadResult], key: str) -> list[tuple[int, float]]:
    return [
        (i, mbs)
        for i, p in enumerate(payloads)
        if (mbs := p.mb_per_s(p.roundtrip(key))) is not None
    ]


def throughput_png(run: RunResult, path: Path) -> None:
    """Draw the plot for ``run`` into ``path`` (a panel only for what was run)."""
    data = sorted((p for p in run.payloads if not p.is_function), key=lambda p: p.size)
    code = [p for p in run.payloads if p.is_function]
    ratios = [r for r, group in ((5.0, data), (1.2, code)) if group]
    fig, axes = plt.subplots(
        1,
        len(ratios),
        figsize=(13, 7),
        dpi=110,
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": ratios},
    )
    panels = list(axes[0])
    left = panels[0] if data else None
    right = panels[-1] if code else None
    for n, key in enumerate(contenders.PLOTTED):
        style = _style(key)
        label = _label(run, key)
        if left is not None and (points := _points(data, key)):
            xs = [data[i].size for i, _ in points]
            left.plot(xs, [y for _, y in points], label=label, **style)
            label = ""
        if right is not None and (points := _points(code, key)):
            # Side by side within each function's slot, so markers do not hide.
            offset = (n - len(contenders.PLOTTED) / 2) * 0.06
            right.plot(
                [i + offset for i, _ in points],
                [y for _, y in points],
                label=label or None,
                **{**style, "linestyle": "none"},
            )
    for ax in panels:
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.1)
    panels[0].set_ylabel("encode+decode throughput (MB/s, log scale; higher is better)")
    if left is not None:
        left.set_xscale("log")
        left.set_xlabel("data payloads: size in memory (bytes, log scale)")
        top = left.secondary_xaxis("top")
        top.set_xticks([p.size for p in data], [p.key for p in data])
        top.tick_params(axis="x", labelrotation=35, labelsize=9)
        top.minorticks_off()
    if right is not None:
        right.set_xticks(range(len(code)), [p.key for p in code])
        right.set_xlim(-0.6, len(code) - 0.4)
        right.grid(False, axis="x")
        right.set_xlabel("functions (freight cold)")
    m = run.machine
    fig.suptitle(
        "freight vs peers: encode+decode throughput (median per call)\n"
        f"Python {m['python']}, {m['cpu_count']} CPUs, {run.settings['mode']} mode,"
        f" {m['date']}",
        fontsize=12,
    )
    fig.legend(loc="center right", fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.savefig(path)
    plt.close(fig)
