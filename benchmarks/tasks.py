"""The task suite: freight's Executor beside its peers, on the same machine, in one
run: ``python benchmarks/tasks.py [--quick] [--systems a,b] [--workers 2]
[--json out.json]``.

Each system is measured in a fresh Python process of its own (so one system's
threads, imports and memory never count against another's), one system after
another, every one with the same number of workers.  Per system:

(c) round trip: submit one no-op, wait for its result, again and again: p50, p99;
(a) no-op tasks submitted one by one, then all results awaited: tasks/s;
(b) the same through the system's map or batch API: tasks/s;
(d) one task taking an 80 MB float64 array and returning its sum: median seconds;
(f) client RSS and the started processes' RSS with 100,000 no-op tasks submitted;
(e) from nothing to the first result, in fresh interpreters (cold).

See benchmarks/README.md ("Tasks") for the conventions.  Exit status: 0; 1 if a
system that is installed failed; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so ``python -c``/``runpy``/tests work too
    sys.path.insert(0, str(HERE))

import task_functions  # noqa: E402
from task_systems import SYSTEMS, System  # noqa: E402

ARRAY_ITEMS = 10_000_000  # float64: 80 MB
COLD_TIMEOUT_S = 300.0  # a cold start (or its shutdown) taking longer fails


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much of everything one run measures."""

    sample_s: float = 1.0  # a throughput sample is sized to last about this long
    samples: int = 3  # throughput samples per figure (median)
    max_tasks: int = 200_000  # the largest throughput sample
    round_trips: int = 300  # (c), after 20 warm-up round trips
    round_trip_budget_s: float = 15.0  # ... fewer if they take longer (at least 100)
    array_runs: int = 5  # (d), after one warm-up call
    array_items: int = ARRAY_ITEMS
    inflight: int = 100_000  # (f)
    inflight_budget_s: float = 240.0  # (f) stops submitting after this long
    cold_runs: int = 3  # (e)

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            sample_s=0.2,
            samples=1,
            max_tasks=20_000,
            round_trips=50,
            round_trip_budget_s=5.0,
            array_runs=1,
            inflight=2_000,
            inflight_budget_s=20.0,
            cold_runs=1,
        )


# --- measurements, run inside the system's own process --------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(got: list[Any], n: int, what: str) -> None:
    if got != list(range(n)):
        raise AssertionError(f"{what}: wrong results (first {got[:5]!r})")


def submit_all(system: System, n: int) -> float:
    """Seconds to submit ``n`` no-ops one by one and receive every result."""
    fn = task_functions.noop
    started = time.perf_counter()
    handles = [system.submit(fn, i) for i in range(n)]
    got = system.results(handles)
    elapsed = time.perf_counter() - started
    check(got, n, "submit")
    return elapsed


def map_all(system: System, n: int) -> float:
    started = time.perf_counter()
    got = system.map(task_functions.noop, range(n))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    check(got, n, "map")
    return elapsed


def throughput(
    run: Callable[[System, int], float], system: System, first: int, s: Settings
) -> dict[str, Any]:
    """Tasks/s: one calibration batch of ``first`` tasks (the warm-up), then
    ``s.samples`` batches sized to last about ``s.sample_s`` each; the median."""
    rate = first / run(system, first)
    n = max(first, min(s.max_tasks, int(rate * s.sample_s)))
    rates = [n / run(system, n) for _ in range(s.samples)]
    return {
        "tasks_per_s": statistics.median(rates),
        "tasks_per_sample": n,
        "samples_per_s": rates,
    }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def round_trips(system: System, s: Settings) -> dict[str, Any]:
    fn = task_functions.noop
    for i in range(20):
        system.result(system.submit(fn, i))
    times: list[float] = []
    deadline = time.perf_counter() + s.round_trip_budget_s
    for i in range(s.round_trips):
        started = time.perf_counter_ns()
        got = system.result(system.submit(fn, i))
        times.append((time.perf_counter_ns() - started) / 1e6)
        if got != i:
            raise AssertionError(f"round trip: got {got!r} for {i}")
        if len(times) >= 100 and time.perf_counter() > deadline:
            break
    times.sort()
    return {
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "count": len(times),
    }


def big_array(system: System, s: Settings) -> dict[str, Any]:
    import numpy

    array = numpy.random.default_rng(0).random(s.array_items)
    expected = float(array.sum())
    times = []
    for i in range(1 + s.array_runs):  # the first call is the warm-up
        started = time.perf_counter()
        got = system.result(system.submit(task_functions.array_sum, array))
        elapsed = time.perf_counter() - started
        if not math.isclose(got, expected, rel_tol=1e-9):
            raise AssertionError(f"array sum: got {got!r}, expected {expected!r}")
        if i:
            times.append(elapsed)
    return {
        "median_s": statistics.median(times),
        "runs_s": times,
        "mb": array.nbytes / 1e6,
    }


class MemorySampler:
    """Samples this process's RSS and the summed RSS of its descendants (the
    processes the system started) every ``interval`` seconds; keeps the peaks."""

    def __init__(self, roots: Sequence[int] = (), interval: float = 0.05) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.roots = []
        for pid in roots:
            try:
                self.roots.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        self.interval = interval
        self.client_peak = 0
        self.service_peak = 0
        self.service_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int, int]:
        client = self.me.memory_info().rss
        service = count = 0
        processes = {p.pid: p for p in self.me.children(recursive=True)}
        for root in self.roots:
            try:
                processes[root.pid] = root
                processes.update((p.pid, p) for p in root.children(recursive=True))
            except self.psutil.NoSuchProcess:
                pass
        processes.pop(self.me.pid, None)
        for proc in processes.values():
            try:
                service += proc.memory_info().rss
                count += 1
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                pass
        self.client_peak = max(self.client_peak, client)
        self.service_peak = max(self.service_peak, service)
        self.service_processes = max(self.service_processes, count)
        return client, service, count

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def in_flight_memory(system: System, s: Settings) -> dict[str, Any]:
    """Submit ``s.inflight`` no-ops without waiting (stopping early after
    ``s.inflight_budget_s``), sampling memory throughout; the rest is cancelled
    by ``stop``."""
    fn = task_functions.noop
    for i in range(10):  # lets go of the last big argument (a queue's feeder holds it)
        system.result(system.submit(fn, i))
    gc.collect()
    mb = 1e6
    sampler = MemorySampler(system.service_roots())
    client0, service0, _ = sampler.sample()
    handles = []
    deadline = time.perf_counter() + s.inflight_budget_s
    started = time.perf_counter()
    with sampler:
        for i in range(s.inflight):
            handles.append(system.submit(fn, i))
            if not i % 1000 and time.perf_counter() > deadline:
                break
        submit_s = time.perf_counter() - started
        done = system.done_count(handles)
    submitted = len(handles)
    system.cancel(handles)
    del handles[:]
    return {
        "tasks": s.inflight,
        "submitted": submitted,
        "done_when_submitted": done,
        "submit_s": submit_s,
        "client_rss_mb_before": client0 / mb,
        "client_rss_mb_peak": sampler.client_peak / mb,
        "service_rss_mb_before": service0 / mb,
        "service_rss_mb_peak": sampler.service_peak / mb,
        "service_processes": sampler.service_processes,
        "service_counts": system.service_note,
    }


def measure_system(key: str, workers: int, s: Settings, path: Path) -> dict[str, Any]:
    """Every warm figure of one system, in this process, written to ``path`` after
    each step (so a system that crashes on the way keeps what it measured)."""
    system = SYSTEMS[key]()
    out: dict[str, Any] = {"errors": {}}

    def step(name: str, fn: Callable[[], Any]) -> None:
        log(f"  {key}: {name}")
        try:
            out[name] = fn()
        except Exception as e:
            out["errors"][name] = f"{type(e).__name__}: {e}"
            log(traceback.format_exc())
        path.write_text(json.dumps(out))

    started = time.perf_counter()
    system.start(workers)
    out["start_warm_s"] = time.perf_counter() - started
    try:
        step("round_trip", lambda: round_trips(system, s))
        step("submit", lambda: throughput(submit_all, system, 100, s))
        if type(system).map is not System.map:

            def mapped() -> dict[str, Any]:
                system.prepare_map()
                try:
                    return throughput(map_all, system, 20 * 64, s)
                finally:
                    system.finish_map()

            step("map", mapped)
        step("array", lambda: big_array(system, s))
        step("memory", lambda: in_flight_memory(system, s))
    finally:
        stopping = time.perf_counter()
        system.stop()
        out["stop_s"] = time.perf_counter() - stopping
    path.write_text(json.dumps(out))
    return out


def cold_start(key: str, workers: int) -> None:
    """The child of (e): from before the system is imported to the first result,
    printed as one JSON line with the imports' share; then the system is stopped
    (not timed)."""
    import importlib

    started = time.perf_counter()
    system = SYSTEMS[key]()
    for module in system.modules:
        importlib.import_module(module)
    imported = time.perf_counter()
    system.start(workers)
    got = system.result(system.submit(task_functions.noop, 1))
    elapsed = time.perf_counter() - started
    assert got == 1, got
    figures = {"first_result_s": elapsed, "import_s": imported - started}
    print("COLD " + json.dumps(figures), flush=True)
    system.stop()


# --- orchestration, in the parent process ---------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every process the suite starts: this folder on
    PYTHONPATH, so every worker of every system imports ``task_functions``."""
    env = dict(os.environ)
    paths = [str(HERE), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_child(
    args: list[str], timeout: float, log_path: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    with log_path.open("a") as err:
        done = subprocess.run(
            [sys.executable, str(HERE / "tasks.py"), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=child_env(),
            timeout=timeout,
            check=False,
        )
    return done, time.perf_counter() - started


def measure_cold(key: str, workers: int, runs: int, log_path: Path) -> dict[str, Any]:
    """(e): ``runs`` fresh interpreters; the median of the in-process figure (the
    system's imports, start and first task) and of the wall time of the whole
    process up to the printed result (interpreter start-up included)."""
    inner: list[float] = []
    imports: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        with log_path.open("a") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "tasks.py"),
                    "--_cold",
                    key,
                    "--workers",
                    str(workers),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=child_env(),
            )
        assert proc.stdout is not None
        watchdog = threading.Timer(COLD_TIMEOUT_S, proc.kill)  # a wedged start
        watchdog.start()
        line = ""
        for line in proc.stdout:
            if line.startswith("COLD "):
                break
        wall_s = time.perf_counter() - started
        try:
            proc.communicate(timeout=COLD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        watchdog.cancel()
        if not line.startswith("COLD "):
            raise RuntimeError(
                f"cold start of {key} printed no result (see {log_path})"
            )
        figures = json.loads(line[5:])
        inner.append(figures["first_result_s"])
        imports.append(figures["import_s"])
        wall.append(wall_s)
    return {
        "first_result_s": statistics.median(inner),
        "import_s": statistics.median(imports),
        "process_s": statistics.median(wall),
        "runs_s": inner,
    }


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    s: Settings = args.settings
    log_dir = Path(tempfile.mkdtemp(prefix="bench-tasks-logs-"))
    results: dict[str, Any] = {}
    for key in args.systems:
        system = SYSTEMS[key]()
        reason = system.missing()
        if reason:
            log(f"{key}: skipped ({reason})")
            results[key] = {"label": system.label, "skipped": reason}
            continue
        log(f"{key}: measuring ({args.workers} workers)")
        log_path = log_dir / f"{key}.log"
        entry: dict[str, Any] = {"label": system.label, "map_api": system.map_api}
        with tempfile.TemporaryDirectory() as tmp:
            out_path = Path(tmp) / "out.json"
            child = [
                "--_measure",
                key,
                "--workers",
                str(args.workers),
                "--_settings",
                json.dumps(dataclasses.asdict(s)),
                "--_out",
                str(out_path),
            ]
            try:
                done, elapsed = run_child(child, 3600, log_path)
                entry["measure_s"] = elapsed
                if done.returncode:
                    entry.setdefault("errors", {})["process"] = (
                        f"exit status {done.returncode}; log: {log_path}\n"
                        + tail(log_path)
                    )
            except subprocess.TimeoutExpired:
                entry.setdefault("errors", {})["process"] = (
                    f"timed out; log: {log_path}"
                )
            if out_path.exists():
                measured = json.loads(out_path.read_text())
                measured["errors"].update(entry.get("errors", {}))
                entry.update(measured)
            else:
                entry["failed"] = entry["errors"]["process"]
        log(f"{key}: cold start ({s.cold_runs} fresh interpreters)")
        try:
            entry["cold"] = measure_cold(key, args.workers, s.cold_runs, log_path)
        except Exception as e:
            entry.setdefault("errors", {})["cold"] = f"{type(e).__name__}: {e}"
        results[key] = entry
        if entry.get("failed") or entry.get("errors"):
            log(f"{key}: problems: {entry.get('failed') or entry.get('errors')}")
    return results


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in (
        "freight",
        "distributed",
        "ray",
        "parsl",
        "globus-compute-endpoint",
        "numpy",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": versions,
    }


# --- report ---------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    """Three significant figures or so, thousands separated."""
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def figure(entry: dict[str, Any], *path: str) -> float | None:
    value: Any = entry
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    array_mb = f"{report['settings']['array_items'] * 8 / 1e6:g}"
    lines = [
        f"`{report['command']}` on CPython {m['python']}, {m['cpu_count']} CPUs,"
        f" {report['workers']} workers per system, {report['mode']} mode,"
        f" load average {m['load_average_1min']} at the start,"
        f" {m['load_average_end']} at the end ({m['date']})",
        "",
        "| system | submit tasks/s | map tasks/s | map API | p50 ms | p99 ms"
        f" | {array_mb} MB s | first result s (imports) | client RSS MB"
        " | service RSS MB | in flight |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for e in report["systems"].values():
        if "skipped" in e:
            lines.append(f"| {e['label']} | skipped: {e['skipped']} ||||||||||")
            continue
        if "failed" in e:
            lines.append(f"| {e['label']} | failed (see the JSON) ||||||||||")
            continue
        mem = e.get("memory") or {}
        client = service = in_flight = "—"
        if mem:
            done = mem["done_when_submitted"]
            if done is not None:
                in_flight = f"{mem['submitted'] - done:,}"
            peak, growth = mem["client_rss_mb_peak"], mem["client_rss_mb_before"]
            client = f"{fmt(peak)} (+{fmt(peak - growth)})"
            service = (
                f"{fmt(mem['service_rss_mb_peak'])} ({mem['service_processes']} proc.)"
            )
            if mem["submitted"] < mem["tasks"]:
                notes.append(
                    f"{e['label']}: memory measured after {mem['submitted']:,} of"
                    f" {mem['tasks']:,} submissions (the"
                    f" {report['settings']['inflight_budget_s']:.0f} s budget)."
                )
        has_map = "map" in e or "map" in e.get("errors", {})
        lines.append(
            "| "
            + " | ".join(
                [
                    e["label"],
                    fmt(figure(e, "submit", "tasks_per_s")),
                    fmt(figure(e, "map", "tasks_per_s")),
                    e.get("map_api") if has_map else "— (none)",
                    fmt(figure(e, "round_trip", "p50_ms")),
                    fmt(figure(e, "round_trip", "p99_ms")),
                    fmt(figure(e, "array", "median_s")),
                    first_result(e),
                    client,
                    service,
                    in_flight,
                ]
            )
            + " |"
        )
        for name, error in e.get("errors", {}).items():
            notes.append(f"{e['label']}: {name} failed: {short(error)}")
    lines += [
        "",
        "Slowdown against ProcessPoolExecutor (the floor): how many times slower"
        " each figure is than its (> 1 is slower; rates inverted, so one reading"
        " holds for every column):",
        "",
    ]
    lines += ratio_table(report["systems"])
    targets = freight_targets(report["systems"])
    if targets:
        lines += ["", "freight's targets (issue 11):", "", *targets]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


# (column, path to the figure, higher is better)
def short(error: str) -> str:
    """An error's first line and, for a log tail, its last (the JSON has all)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


def first_result(e: dict[str, Any]) -> str:
    total, imports = figure(e, "cold", "first_result_s"), figure(e, "cold", "import_s")
    return "—" if total is None else f"{fmt(total)} ({fmt(imports)})"


COLUMNS = (
    ("submit", ("submit", "tasks_per_s"), True),
    ("map", ("map", "tasks_per_s"), True),
    ("p50", ("round_trip", "p50_ms"), False),
    ("80 MB", ("array", "median_s"), False),
    ("first result", ("cold", "first_result_s"), False),
)


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 100 else f"{value:,.0f}x"


def ratio_table(systems: dict[str, Any]) -> list[str]:
    floor = systems.get("ppe")
    if not floor or "skipped" in floor or "failed" in floor:
        return ["(no ProcessPoolExecutor figures in this run)"]
    lines = [
        "| system | " + " | ".join(c for c, _, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for e in systems.values():
        if "skipped" in e or "failed" in e:
            continue
        cells = []
        for _, path, higher_is_better in COLUMNS:
            mine, base = figure(e, *path), figure(floor, *path)
            if not mine or not base:
                cells.append("—")
            else:
                cells.append(ratio(base / mine if higher_is_better else mine / base))
        lines.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    return lines


def freight_targets(systems: dict[str, Any]) -> list[str]:
    """The issue's targets for freight, MET / NOT MET (reported, never asserted)."""
    f = systems.get("freight")
    if not f or "skipped" in f or "failed" in f:
        return []
    peers = [
        figure(e, "submit", "tasks_per_s")
        for k, e in systems.items()
        if k not in ("freight", "ppe") and "skipped" not in e and "failed" not in e
    ]
    best_peer = max((p for p in peers if p is not None), default=None)

    def status(ok: bool | None) -> str:
        return "N/A" if ok is None else ("MET" if ok else "NOT MET")

    def cmp(
        value: float | None, limit: float | None, op: Callable[[float, float], bool]
    ) -> bool | None:
        return None if value is None or limit is None else op(value, limit)

    submit = figure(f, "submit", "tasks_per_s")
    rows = [
        (
            "submit >= 2x the best peer but ProcessPoolExecutor",
            cmp(
                submit,
                None if best_peer is None else 2 * best_peer,
                lambda a, b: a >= b,
            ),
        ),
        (
            "map >= 20,000 tasks/s",
            cmp(figure(f, "map", "tasks_per_s"), 20_000, lambda a, b: a >= b),
        ),
        (
            "p50 round trip <= 1 ms",
            cmp(figure(f, "round_trip", "p50_ms"), 1.0, lambda a, b: a <= b),
        ),
        (
            "80 MB no slower than ProcessPoolExecutor",
            cmp(
                figure(f, "array", "median_s"),
                figure(systems.get("ppe", {}), "array", "median_s"),
                lambda a, b: a <= b,
            ),
        ),
        (
            "first result < 1 s",
            cmp(figure(f, "cold", "first_result_s"), 1.0, lambda a, b: a < b),
        ),
    ]
    return [f"- {name}: {status(ok)}" for name, ok in rows]


# --- command line ---------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/tasks.py",
        description="Measure freight's Executor beside ProcessPoolExecutor, Dask,"
        " Ray, Parsl HTEX and the reference endpoint's ProcessPoolEngine.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (about a minute per system)"
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, in this order (default: {','.join(SYSTEMS)})",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="workers per system (default 2)"
    )
    parser.add_argument("--json", type=Path, help="also write the full results here")
    parser.add_argument(
        "--inflight", type=int, help="tasks in flight for the memory figure"
    )
    parser.add_argument(
        "--array-mb", type=float, help="size of the array task (default 80)"
    )
    parser.add_argument(
        "--cold-runs", type=int, help="fresh interpreters for the start figure"
    )
    # Internal: the per-system child processes.
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--_cold", help=argparse.SUPPRESS)
    parser.add_argument("--_settings", help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.systems = [k for k in args.systems.split(",") if k]
    unknown = [k for k in args.systems if k not in SYSTEMS]
    if unknown:
        parser.error(
            f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}"
        )
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    s = Settings.quick() if args.quick else Settings()
    overrides: dict[str, Any] = {}
    if args.inflight is not None:
        overrides["inflight"] = args.inflight
    if args.array_mb is not None:
        overrides["array_items"] = max(1, int(args.array_mb * 1e6 / 8))
    if args.cold_runs is not None:
        overrides["cold_runs"] = args.cold_runs
    if args._settings:
        overrides = json.loads(args._settings)
    args.settings = dataclasses.replace(s, **overrides)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._cold:
        cold_start(args._cold, args.workers)
        return 0
    if args._measure:
        measure_system(args._measure, args.workers, args.settings, args._out)
        return 0
    started = time.perf_counter()
    machine = machine_info()
    systems = measure_all(args)
    machine["load_average_end"] = round(os.getloadavg()[0], 2)
    report = {
        "command": shlex.join(["python", "benchmarks/tasks.py", *argv]),
        "mode": "quick" if args.quick else "full",
        "workers": args.workers,
        "settings": dataclasses.asdict(args.settings),
        "machine": machine,
        "systems": systems,
        "elapsed_s": time.perf_counter() - started,
    }
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = [k for k, e in systems.items() if "failed" in e or e.get("errors")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
