"""The benchmark suite's own logic (``benchmarks/``): the regression check against
the stored baseline, the issue's figures, and a quick real run.

Timings here are made up or quick: these tests pin what the suite concludes from
numbers, never how fast anything is.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import baseline  # noqa: E402
import figures  # noqa: E402
import model  # noqa: E402
import report  # noqa: E402
import run as runner  # noqa: E402
from measure import Timing  # noqa: E402
from model import Figure, PayloadResult, RowResult, RunResult  # noqa: E402

FAMILIES = {
    "freight_blob": "freight",
    "freight_frames": "freight",
    "freight_text": "freight",
    "freight_blob_cached": "freight",
    "reference": "reference",
}


def timing(ns: float) -> Timing:
    return Timing(median_ns=ns, samples_ns=(ns,), loops=1)


def payload(key: str, size: int = 5000, **roundtrips: float) -> PayloadResult:
    """A payload whose contenders took ``roundtrips`` ns (encode = decode)."""
    rows = [
        RowResult(
            key=name,
            label=name,
            family=FAMILIES.get(name, "peer"),
            encode=timing(ns / 2),
            decode=timing(ns / 2),
        )
        for name, ns in roundtrips.items()
    ]
    return PayloadResult(key, key, size, key == "function", size < 1000, rows)


def run_of(*payloads: PayloadResult, mode: str = "full") -> RunResult:
    ids = {"code": "01", "data": "00"}
    return RunResult(
        machine={"date": "today"},
        settings={"mode": mode},
        strategies={"freight_text": ids, "reference": ids},
        payloads=list(payloads),
    )


def by_name(found: list[Figure], start: str) -> Figure:
    return next(f for f in found if f.name.startswith(start))


# -- the baseline ------------------------------------------------------------------


def test_a_freight_row_slower_absolutely_and_against_the_peers_is_a_regression(
    tmp_path: Path,
) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(run_of(payload("ints", freight_blob=100, pickle5=100)), path)
    slower = run_of(payload("ints", freight_blob=200, pickle5=100))
    result = baseline.compare(slower, path, tolerance=1.25)
    assert [r.split()[0] for r in result.regressions] == ["ints/freight_blob"]


def test_a_slower_machine_is_not_a_regression(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(run_of(payload("ints", freight_blob=100, pickle5=100)), path)
    everything_slower = run_of(payload("ints", freight_blob=200, pickle5=200))
    assert baseline.compare(everything_slower, path, 1.25).regressions == []


def test_peer_rows_are_never_flagged(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(run_of(payload("ints", freight_blob=100, pickle5=100)), path)
    peer_slower = run_of(payload("ints", freight_blob=100, pickle5=300))
    assert baseline.compare(peer_slower, path, 1.25).regressions == []


def test_a_row_drifts_with_the_peers_of_its_own_time_scale(tmp_path: Path) -> None:
    # The zero-copy rows (microseconds) doubled with the zero-copy peer, while
    # the memory-bound peers (milliseconds) held still: machine noise at the
    # small scale, not a regression of the frames path ...
    path = tmp_path / "baseline.json"
    then = payload(
        "array",
        freight_frames=10_000,
        pickle5_oob=5_000,
        pickle5=60e6,
        cloudpickle=60e6,
        dill=90e6,
    )
    baseline.save(run_of(then), path)
    now = payload(
        "array",
        freight_frames=20_000,
        pickle5_oob=10_000,
        pickle5=60e6,
        cloudpickle=60e6,
        dill=90e6,
    )
    assert baseline.compare(run_of(now), path, 1.25).regressions == []
    # ... but the same row doubling alone is one.
    alone = payload(
        "array",
        freight_frames=20_000,
        pickle5_oob=5_000,
        pickle5=60e6,
        cloudpickle=60e6,
        dill=90e6,
    )
    assert len(baseline.compare(run_of(alone), path, 1.25).regressions) == 1


def test_saving_a_partial_run_keeps_the_other_payloads_and_their_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(
        run_of(payload("a", freight_blob=1), payload("b", freight_blob=2)), path
    )
    baseline.save(run_of(payload("b", freight_blob=3), mode="quick"), path)
    data = json.loads(path.read_text())
    assert data["payloads"]["a"]["freight_blob"]["roundtrip_ns"] == 1
    assert data["payloads"]["b"]["freight_blob"]["roundtrip_ns"] == 3
    assert data["taken"]["a"]["mode"] == "full"
    assert data["taken"]["b"]["mode"] == "quick"


def test_comparing_across_modes_says_so(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(run_of(payload("a", freight_blob=1, pickle5=1), mode="quick"), path)
    result = baseline.compare(
        run_of(payload("a", freight_blob=1, pickle5=1)), path, 1.25
    )
    assert any("quick mode" in note for note in result.notes)


# -- the figures -------------------------------------------------------------------


def test_the_default_path_figures() -> None:
    found = figures.check(
        run_of(
            payload("tiny", 28, freight_blob=300, reference=9000, pickle5=200),
            payload("ints", 36000, freight_blob=110, reference=3300, pickle5=100),
        )
    )
    geo = by_name(found, "freight default blob vs reference default, geometric")
    assert geo.status == "MET" and geo.measured.startswith("30.0x")
    big = by_name(found, "freight default blob vs raw pickle 5 in-band, payloads >=")
    assert big.status == "MET" and "ints 1.10x" in big.measured
    tiny = by_name(found, "freight default blob vs raw pickle 5 in-band, tiny")
    assert tiny.status == "MET" and "tiny 1.50x" in tiny.measured


def test_a_function_is_judged_cold_and_reported_cached() -> None:
    function = payload(
        "function",
        2000,
        freight_blob=2000,
        freight_blob_cached=900,
        reference=12000,
        pickle5=1000,
    )
    found = figures.check(run_of(function))
    big = by_name(found, "freight default blob vs raw pickle 5 in-band, payloads >=")
    assert big.status == "NOT MET"
    assert "function 2.00x" in big.measured
    assert "sent again (cached): function 0.90x" in big.measured


def test_the_compat_figure_is_the_geometric_mean_with_slow_classes_reported() -> None:
    found = figures.check(
        run_of(
            payload("tiny", 28, freight_text=100, reference=2000),  # 20x
            payload("function", 2000, freight_text=100, reference=400),  # 4x
        )
    )
    geo = by_name(found, "freight compat text path vs reference default, geometric")
    assert geo.status == "MET" and geo.measured.startswith("8.9x")
    every = by_name(found, "freight compat text path vs reference default, speedup")
    assert every.status == "MET"
    under = by_name(found, "freight compat text path vs reference default, classes")
    assert (under.status, under.measured) == ("INFO", "function 4.00x")


def test_the_compat_figures_fail_when_the_identifiers_differ() -> None:
    run = run_of(payload("tiny", 28, freight_text=100, reference=2000))
    run.strategies["freight_text"] = {"code": "cp", "data": "p5"}
    found = figures.check(run)
    compat = [f for f in found if f.name.startswith("freight compat text path")]
    assert compat and {f.status for f in compat} == {"NOT MET"}
    assert all("identifiers differ" in f.measured for f in compat)


def test_unmeasured_figures_are_not_applicable() -> None:
    found = figures.check(run_of())
    assert {f.status for f in found} == {"N/A"}


# -- a real run, quick -------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run() -> tuple[RunResult, dict[str, Any]]:
    args = runner.parse_args(["--quick", "--only", "tiny,function", "--no-imports"])
    run = runner.measure_run(args)
    return run, report.to_json(run, "test")


def test_a_quick_run_measures_every_contender_in_its_domain(
    quick_run: tuple[RunResult, dict[str, Any]],
) -> None:
    run, _ = quick_run
    for p in run.payloads:
        failed = [f"{p.key}/{r.key}: {r.error}" for r in p.rows if r.error]
        assert failed == []
        measured = {r.key for r in p.rows if r.measured}
        assert {"freight_blob", "freight_frames", "freight_text", "reference"} <= (
            measured
        )
    function = run.payload("function")
    assert function is not None and function.row("freight_blob_cached") is not None
    assert run.strategies["freight_text"] == run.strategies["reference"]


def test_a_quick_run_reports_markdown_and_json(
    quick_run: tuple[RunResult, dict[str, Any]], tmp_path: Path
) -> None:
    run, data = quick_run
    text = report.markdown(run, "test")
    assert "## Summary: the issue's figures" in text
    for key in ("tiny", "function"):
        assert f"(`{key}`)" in text  # each payload's own table
    assert set(json.loads(json.dumps(data))["payloads"]) == {"tiny", "function"}
    # Every figure these payloads feed has a verdict that follows from the
    # measured numbers; the rest are N/A.
    assert_speedup_verdict_follows_the_rows(run)
    statuses = {f.name: f.status for f in run.figures}
    assert statuses["import freight.serialize"] == "N/A"
    path = tmp_path / "baseline.json"
    baseline.save(run, path)
    assert set(json.loads(path.read_text())["taken"]) == {"tiny", "function"}


GEO = (
    "freight default blob vs reference default, geometric-mean speedup (encode+decode)"
)


def slowed(run: RunResult, key: str, factor: float, payload: str | None = None) -> Any:
    """A copy of ``run`` whose ``key`` rows (of ``payload``, or of every payload)
    took ``factor`` times as long; its figures are left as they were."""
    copy = dataclasses.replace(
        run, payloads=[dataclasses.replace(p, rows=list(p.rows)) for p in run.payloads]
    )
    for p in copy.payloads:
        if payload is not None and p.key != payload:
            continue
        for i, row in enumerate(p.rows):
            if row.key == key and row.measured:
                assert row.encode is not None and row.decode is not None
                p.rows[i] = dataclasses.replace(
                    row,
                    encode=timing(row.encode.median_ns * factor),
                    decode=timing(row.decode.median_ns * factor),
                )
    return copy


def geometric_speedup(run: RunResult) -> float:
    """The reference's time over freight's default blob, geometric mean."""
    ratios = [p.ratio("reference", "freight_blob") for p in run.payloads]
    return model.geometric_mean([r for r in ratios if r])


def assert_speedup_verdict_follows_the_rows(run: RunResult) -> None:
    """The geometric-mean figure says MET exactly when the rows' speedup reaches
    its target, and shows that speedup."""
    figure = by_name(run.figures, GEO)
    target = float(figure.target.removeprefix(">=").strip().removesuffix("x"))
    geo = geometric_speedup(run)
    expected = "MET" if geo >= target else "NOT MET"
    assert (figure.status, figure.measured.split("x")[0]) == (expected, f"{geo:.1f}")


def test_the_verdict_check_fails_on_a_verdict_the_numbers_do_not_give(
    quick_run: tuple[RunResult, dict[str, Any]],
) -> None:
    run, _ = quick_run
    target = float(
        by_name(run.figures, GEO).target.removeprefix(">=").strip().removesuffix("x")
    )
    # From either side of the target (whatever this machine measured) ...
    for side in (2 * target, target / 2):
        start = slowed(run, "freight_blob", geometric_speedup(run) / side)
        start.figures = figures.check(start)
        assert_speedup_verdict_follows_the_rows(start)
        verdict = by_name(start.figures, GEO).status
        # ... freight moved to the other side: the old verdict no longer follows.
        mutated = slowed(start, "freight_blob", side * side / target / target)
        with pytest.raises(AssertionError):
            assert_speedup_verdict_follows_the_rows(mutated)  # stale figures
        mutated.figures = figures.check(mutated)
        assert_speedup_verdict_follows_the_rows(mutated)
        assert by_name(mutated.figures, GEO).status != verdict


def test_a_quick_run_against_its_own_baseline_flags_exactly_a_slowed_row(
    quick_run: tuple[RunResult, dict[str, Any]], tmp_path: Path
) -> None:
    run, _ = quick_run
    path = tmp_path / "baseline.json"
    baseline.save(run, path)
    assert baseline.compare(run, path, 1.25).regressions == []
    # The same run with one freight row three times slower, the peers as they
    # were: that row, and nothing else, is a regression.
    regressions = baseline.compare(
        slowed(run, "freight_blob", 3.0, payload="tiny"), path, 1.25
    ).regressions
    assert [r.split()[0] for r in regressions] == ["tiny/freight_blob"]
    # A peer three times slower is not freight's regression.
    peer = slowed(run, "reference", 3.0, payload="tiny")
    assert baseline.compare(peer, path, 1.25).regressions == []
