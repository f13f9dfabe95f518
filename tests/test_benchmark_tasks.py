"""The task suite (``benchmarks/tasks.py``): a tiny real run on ProcessPoolExecutor
(and freight's Executor when ``freight.client`` imports) must produce a report of
the documented shape; the report's rendering handles skipped and failed systems.

Never asserts a time: only that figures exist and are positive.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import tasks  # noqa: E402
from task_systems import SYSTEMS  # noqa: E402

TINY = ["--quick", "--inflight", "200", "--array-mb", "1", "--cold-runs", "1"]


def freight_client_available() -> bool:
    return SYSTEMS["freight"]().missing() is None


def positive(entry: dict[str, Any], *path: str) -> bool:
    value = tasks.figure(entry, *path)
    return value is not None and value > 0


def test_a_tiny_run_reports_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tasks.json"
    status = tasks.main([*TINY, "--systems", "ppe,freight", "--json", str(out)])

    report = json.loads(out.read_text())
    assert report["workers"] == 2
    assert report["mode"] == "quick"
    assert report["command"].startswith("python benchmarks/tasks.py --quick")
    systems = report["systems"]
    assert list(systems) == ["ppe", "freight"]

    measured = ["ppe"]
    if freight_client_available():
        measured.append("freight")
    else:
        assert systems["freight"]["skipped"] == "freight.client not available"
    for key in measured:
        entry = systems[key]
        assert entry.get("errors") == {}, entry.get("errors")
        for path in [
            ("submit", "tasks_per_s"),
            ("map", "tasks_per_s"),
            ("round_trip", "p50_ms"),
            ("round_trip", "p99_ms"),
            ("array", "median_s"),
            ("cold", "first_result_s"),
            ("cold", "process_s"),
            ("memory", "client_rss_mb_peak"),
        ]:
            assert positive(entry, *path), (key, path)
        assert entry["map_api"] == "Executor.map(chunksize=64)"
        assert entry["memory"]["submitted"] == 200
        assert 0 <= entry["memory"]["done_when_submitted"] <= 200
        assert entry["round_trip"]["p50_ms"] <= entry["round_trip"]["p99_ms"]
    assert status == 0

    printed = capsys.readouterr().out
    assert "| ProcessPoolExecutor |" in printed
    assert "Executor.map(chunksize=64)" in printed
    assert "| 1 MB s |" in printed


def test_run_py_hands_tasks_over(tmp_path: Path) -> None:
    import run

    out = tmp_path / "tasks.json"
    args = [
        "--tasks",
        *TINY,
        "--inflight",
        "50",
        "--systems",
        "ppe",
        "--json",
        str(out),
    ]
    assert run.main(args) == 0
    assert list(json.loads(out.read_text())["systems"]) == ["ppe"]


def test_unknown_system_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        tasks.main(["--systems", "ppe,celery"])
    assert exc.value.code == 2
    assert "unknown system(s) celery" in capsys.readouterr().err


def test_a_missing_system_is_skipped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(SYSTEMS["ray"], "requires", ("no_such_module_for_bench",))
    out = tmp_path / "tasks.json"
    assert tasks.main(["--quick", "--systems", "ray", "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["systems"]["ray"]
    assert entry == {
        "label": "Ray",
        "skipped": "no_such_module_for_bench not installed",
    }


def fake_report(systems: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": "python benchmarks/tasks.py",
        "mode": "full",
        "workers": 2,
        "settings": {"array_items": tasks.ARRAY_ITEMS, "inflight_budget_s": 120.0},
        "machine": {
            "python": "3.11",
            "cpu_count": 2,
            "load_average_1min": 0.1,
            "load_average_end": 0.2,
            "date": "today",
        },
        "systems": systems,
    }


def measured(
    rate: float, p50: float, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "label": f"system {rate:g}",
        "map_api": "Executor.map(chunksize=64)",
        "errors": errors or {},
        "submit": {"tasks_per_s": rate},
        "map": {"tasks_per_s": 10 * rate},
        "round_trip": {"p50_ms": p50, "p99_ms": 2 * p50},
        "array": {"median_s": 0.5},
        "cold": {"first_result_s": 1.0, "import_s": 0.25},
        "memory": {
            "tasks": 100_000,
            "submitted": 40_000,
            "done_when_submitted": 10_000,
            "client_rss_mb_before": 50.0,
            "client_rss_mb_peak": 150.0,
            "service_rss_mb_peak": 80.0,
            "service_processes": 2,
        },
    }


def test_the_report_renders_ratios_skips_failures_and_truncated_memory() -> None:
    text = tasks.markdown(
        fake_report(
            {
                "ppe": measured(4000, 0.5),
                "ray": measured(1000, 2.0, {"array": "OSError: boom"}),
                "parsl": {"label": "Parsl HTEX", "skipped": "parsl not installed"},
                "dask": {"label": "Dask LocalCluster", "failed": "exit status -6"},
            }
        )
    )
    assert "| system 1000 | 4.00x | 4.00x | 4.00x | 1.00x | 1.00x |" in text
    assert "| Parsl HTEX | skipped: parsl not installed |" in text
    assert "| Dask LocalCluster | failed" in text
    assert "system 1000: array failed: OSError: boom" in text
    assert "after 40,000 of 100,000 submissions" in text
    assert "| 80 MB s |" in text
    assert "| 150 (+100) | 80.0 (2 proc.) | 30,000 |" in text
    assert "1.00 (0.25)" in text


def test_freight_targets_are_judged_against_the_best_peer() -> None:
    systems = {
        "ppe": measured(4000, 0.5),
        "ray": measured(900, 3.0),
        "freight": measured(2000, 0.8),
    }
    lines = tasks.freight_targets(systems)
    assert "- submit >= 2x the best peer but ProcessPoolExecutor: MET" in lines
    assert "- map >= 20,000 tasks/s: MET" in lines
    assert "- p50 round trip <= 1 ms: MET" in lines
    assert "- first result < 1 s: NOT MET" in lines
    systems["freight"] = measured(1000, 0.8)
    assert "- submit >= 2x the best peer but ProcessPoolExecutor: NOT MET" in (
        tasks.freight_targets(systems)
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert tasks.percentile(values, 50) == 50.0
    assert tasks.percentile(values, 99) == 99.0
    assert tasks.percentile([3.0], 99) == 3.0
