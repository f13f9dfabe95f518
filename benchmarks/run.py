"""Run the freight benchmark suite: ``python benchmarks/run.py [options]``.

See ``benchmarks/README.md`` for the options, the columns and the conventions.
Exit status: 0 normally; 1 if ``--compare`` found a regression; 3 if a freight
contender failed to round-trip a payload; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so ``python -c``/``runpy`` callers work too
    sys.path.insert(0, str(HERE))

import baseline  # noqa: E402
import figures  # noqa: E402
import imports  # noqa: E402
import measure  # noqa: E402
import payloads  # noqa: E402
import report  # noqa: E402
import stream  # noqa: E402
import suite  # noqa: E402
from contenders import Serializers  # noqa: E402
from model import RunResult  # noqa: E402

IMPORTED_MODULES = (
    "freight.serialize",
    "globus_compute_sdk.serialize",
    "globus_compute_sdk.serialize" + imports.ALONE,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Measure freight against the reference SDK, pickle 5,"
        " cloudpickle, dill and msgpack on the same payloads.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 short samples, 1 for very slow operations (< 1 minute)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="PAYLOAD[,PAYLOAD]",
        help="measure only these payloads (repeatable): "
        + ", ".join(payloads.PAYLOAD_KEYS),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="where results.md, results.json and throughput.png go"
        " (default: benchmarks/results/)",
    )
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="write (merge) this run's medians into --baseline",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="compare with --baseline; exit 1 if a freight row regressed",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=HERE / "baseline.json",
        help="the baseline file (default: benchmarks/baseline.json)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=baseline.DEFAULT_TOLERANCE,
        help="--compare flags encode+decode medians slower than baseline x this"
        f" (default {baseline.DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--no-imports", action="store_true", help="skip the import-time measurement"
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="CLASS[,CLASS]",
        help="measure only these classes of the distinct-message stream"
        " (repeatable): " + ", ".join(stream.STREAM_KEYS),
    )
    parser.add_argument(
        "--no-stream",
        action="store_true",
        help="skip the distinct-message stream (the cold path)",
    )
    parser.add_argument(
        "--stream-only",
        action="store_true",
        help="measure only the distinct-message stream (no payload rows, no imports)",
    )
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="run the task suite instead (benchmarks/tasks.py); every other"
        " option is then its own: --quick, --systems, --workers, --json",
    )
    args = parser.parse_args(argv)
    only = [k for item in args.only or [] for k in item.split(",") if k]
    classes = [k for item in args.stream or [] for k in item.split(",") if k]
    try:
        args.specs = [] if args.stream_only else payloads.select(only)
        args.stream_specs = [] if args.no_stream else stream.select(classes)
    except ValueError as e:
        parser.error(str(e))
    if args.stream_only:
        args.no_imports = True
        if args.save_baseline or args.compare:
            parser.error("--stream-only has no payload rows to save or compare")
    if args.compare and not args.baseline.exists():
        parser.error(f"--compare: no baseline at {args.baseline}")
    return args


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    import cloudpickle
    import dill
    import msgpack
    import numpy

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine makes every number noisier: look here first.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": {
            "freight": version("freight"),
            "globus-compute-sdk": version("globus-compute-sdk"),
            "numpy": numpy.__version__,
            "dill": dill.__version__,
            "cloudpickle": cloudpickle.__version__,
            "msgpack": ".".join(map(str, msgpack.version)),
        },
    }


def measure_run(args: argparse.Namespace) -> RunResult:
    settings = measure.Settings.quick() if args.quick else measure.Settings()
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        suite.log_progress(
            f"warning: load average {load:.1f} on {cpus} CPUs; other work on this"
            " machine will make the timings noisy"
        )
    serializers = Serializers.create()
    run = RunResult(
        machine=machine_info(),
        settings={"mode": "quick" if args.quick else "full", **vars(settings)},
        strategies=serializers.identifiers(),
    )
    for spec in args.specs:
        run.payloads.append(suite.run_payload(spec, serializers, settings))
        if spec.key == figures.ARRAY:
            run.memcpy_80mb = measure.memcpy_yardstick(80_000_000, settings)
    run.stream_rounds = settings.repeats
    for spec in args.stream_specs:
        started = time.perf_counter()
        run.stream.append(stream.run_stream(spec, settings.repeats, args.quick))
        suite.log_progress(
            f"  stream {spec.key:<11} {time.perf_counter() - started:6.1f} s"
        )
    if not args.no_imports:
        runs = 3 if args.quick else 7
        for module in IMPORTED_MODULES:
            suite.log_progress(f"  import time: {module} ({runs} fresh interpreters)")
            run.imports.append(imports.import_time(module, runs))
    run.figures = figures.check(run) + stream.figures(run.stream)
    run.machine["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    return run


def main(argv: list[str] | None = None) -> int:
    if "--tasks" in (sys.argv[1:] if argv is None else argv):
        # The task suite has options of its own: hand every other argument over.
        import tasks

        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--tasks"]
        return tasks.main(rest)
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    run = measure_run(args)
    text = report.markdown(run, command)
    comparison = None
    if args.compare:
        comparison = baseline.compare(run, args.baseline, args.tolerance)
        text += "\n" + comparison.markdown(args.tolerance)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    as_json = report.to_json(run, command)
    as_json["stream"] = stream.to_json(run.stream)
    (args.out / "results.json").write_text(json.dumps(as_json, indent=2) + "\n")
    if run.payloads:
        import plot  # matplotlib is slow to import; only needed here

        plot.throughput_png(run, args.out / "throughput.png")
    print(text)
    elapsed = time.perf_counter() - started
    print(
        f"Wrote results.md, results.json and throughput.png to {args.out}"
        f" ({elapsed:.0f} s)"
    )
    if args.save_baseline:
        baseline.save(run, args.baseline)
        print(f"Saved the baseline to {args.baseline}.")
    failed = [
        f"{p.key}/{r.key}"
        for p in run.payloads
        for r in p.rows
        if r.family == "freight" and r.error
    ]
    if failed:
        print(f"freight failed on: {', '.join(failed)}", file=sys.stderr)
        return 3
    return 1 if comparison is not None and comparison.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
