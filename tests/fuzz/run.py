"""Run the fuzz targets (``targets.py``): with atheris, or a short deterministic
loop, or replaying saved inputs.

    python tests/fuzz/run.py list
    python tests/fuzz/run.py seeds CORPUS_DIR [TARGET ...]
    python tests/fuzz/run.py fuzz TARGET [--seconds S] [--runs N] [--corpus DIR]
                                  [--memory tracemalloc|off] [-- LIBFUZZER_ARGS ...]
    python tests/fuzz/run.py short TARGET [--iterations N] [--seed S]
    python tests/fuzz/run.py replay TARGET FILE|OTHER_TARGET=FILE ...

``fuzz`` is coverage-guided (atheris/libFuzzer), with Python coverage of
every module loaded (``atheris.instrument_all``) and the structure-aware
custom mutator of ``cases.py``; the C accelerator runs uninstrumented (see
README.md beside this file).  Crashes are saved as ``crash-*`` files in the
working directory (libFuzzer's ``-artifact_prefix=`` moves them).  ``short`` is
what the test suite runs: a fixed number of mutations from the seeds with a
fixed random seed, no atheris needed.  Exit status 0: no finding.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    sys.path.insert(0, str(HERE.parent))  # tests/, so `fuzz` imports as a package


def _targets():  # type: ignore[no-untyped-def]
    from fuzz import targets

    return targets


def _with_checks(
    target: Callable[[bytes], None], memory: bool, name: str = ""
) -> Callable[[bytes], None]:
    """``target`` that also fails when a call reports an unraisable exception
    (``sys.unraisablehook``: an error in a destructor, say), and with ``memory``
    when its traced peak exceeds ``targets.memory_bound``."""
    t = _targets()
    unraisable: list[str] = []

    def hook(info: sys.UnraisableHookArgs) -> None:
        unraisable.append(
            f"{getattr(info.exc_type, '__name__', '?')}: {info.exc_value}"
        )

    sys.unraisablehook = hook
    if memory and not tracemalloc.is_tracing():
        tracemalloc.start()

    def checked(data: bytes) -> None:
        t.CURRENT_INPUT[0] = data
        unraisable.clear()
        if memory:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        target(data)
        if unraisable and not t.known_unraisable(unraisable):
            raise t.Finding(f"unraisable exceptions during the decode: {unraisable}")
        if memory:
            peak = tracemalloc.get_traced_memory()[1] - base
            if peak > t.memory_bound(data) and not t.known_memory(name, data):
                raise t.Finding(
                    f"peak traced memory {peak} bytes for a {len(data)}-byte input"
                    f" (bound {t.memory_bound(data)})"
                )

    return checked


def short_run(
    name: str,
    iterations: int,
    seed: int = 0,
    *,
    memory: bool = True,
    report_every: int = 0,
) -> int:
    """Run target ``name`` on its seeds, then on ``iterations`` mutants made with
    ``random.Random(seed)``; return the number of inputs run.  A finding raises,
    with the input in the message (``repr`` of the bytes)."""
    from fuzz import cases

    t = _targets()
    # The checks install an unraisable hook and start tracemalloc: leave the
    # process as it was (a test run goes on after this, and tracemalloc left on
    # would slow it and skew its own memory checks).
    was_tracing, hook = tracemalloc.is_tracing(), sys.unraisablehook
    try:
        target = _with_checks(t.make_target(name), memory, name)
        return _short_run(t, cases, target, name, iterations, seed, report_every)
    finally:
        sys.unraisablehook = hook
        if not was_tracing:
            tracemalloc.stop()


def _short_run(
    t: Any,
    cases: Any,
    target: Callable[[bytes], None],
    name: str,
    iterations: int,
    seed: int,
    report_every: int,
) -> int:
    seeds = t.seeds_for(name)
    rng = random.Random(seed)
    pool = list(seeds)
    runs = 0
    for data in [*seeds, *(None for _ in range(iterations))]:
        if data is None:
            data = cases.mutate(rng.choice(pool), rng, 1 << 16, seeds=seeds)
            if len(pool) < 4 * len(seeds):
                pool.append(data)
            else:
                pool[rng.randrange(len(seeds), len(pool))] = data
        try:
            target(data)
        except BaseException as e:
            raise t.Finding(
                f"fuzz target {name!r} failed on input {data!r}:"
                f" {type(e).__name__}: {e}"
            ) from e
        runs += 1
        if report_every and runs % report_every == 0:
            print(f"{name}: {runs} inputs", file=sys.stderr, flush=True)
    return runs


def write_seeds(directory: Path, names: list[str]) -> None:
    t = _targets()
    for name in names:
        out = directory / name
        out.mkdir(parents=True, exist_ok=True)
        for data in t.seeds_for(name):
            digest = hashlib.sha1(data).hexdigest()[:16]
            (out / f"seed-{digest}").write_bytes(data)
        print(f"{name}: {len(list(out.iterdir()))} files in {out}")


def fuzz(args: argparse.Namespace) -> None:
    import atheris

    t = _targets()
    from fuzz import cases

    # freight is installed editable (a meta-path finder atheris's import hook
    # does not see), so instrument everything loaded instead: freight, the
    # stdlib's json, pickle and base64, msgpack's fallback, numpy's Python.
    if args.instrument:
        atheris.instrument_all()
    memory = args.memory == "tracemalloc"
    target = _with_checks(t.make_target(args.target), memory, args.target)
    seeds = t.seeds_for(args.target)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.2:
            return atheris.Mutate(data, max_size)
        return cases.mutate(
            data, rng, max_size, seeds=seeds, bytes_mutator=atheris.Mutate
        )[:max_size]

    if args.max_vm_mb:
        # Allocations past this fail (MemoryError) instead of growing the
        # process: for the pickle target, whose known defects allocate whatever
        # a length in the input says (libFuzzer's -rss_limit_mb would stop it).
        import resource

        limit = args.max_vm_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    argv = [sys.argv[0]]
    if args.seconds:
        argv.append(f"-max_total_time={args.seconds}")
    if args.runs:
        argv.append(f"-runs={args.runs}")
    argv += ["-max_len=65536", "-timeout=20", "-rss_limit_mb=3072"]
    argv += ["-report_slow_units=2", *args.libfuzzer]  # saves slow-unit-* files
    if args.corpus:
        argv.append(args.corpus)
    atheris.Setup(argv, target, custom_mutator=custom_mutator)
    atheris.Fuzz()


def replay(name: str, files: list[str]) -> int:
    """Run target ``name`` on each file (``TARGET=FILE`` runs that one with
    TARGET instead); print one line per file; return the number that failed."""
    t = _targets()
    made: dict[str, Callable[[bytes], None]] = {}
    failures = 0
    for file in files:
        which, _, file = file.rpartition("=") if "=" in file else (name, "", file)
        if which not in made:
            made[which] = _with_checks(t.make_target(which), True, which)
        target = made[which]
        data = Path(file).read_bytes()
        start = time.perf_counter()
        try:
            target(data)
        except BaseException as e:
            failures += 1
            print(f"{file}: {type(e).__name__}: {str(e)[:500]}", flush=True)
        else:
            print(f"{file}: ok ({time.perf_counter() - start:.3f} s)", flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    p = sub.add_parser("seeds")
    p.add_argument("directory", type=Path)
    p.add_argument("targets", nargs="*")
    p = sub.add_parser("fuzz")
    p.add_argument("target")
    p.add_argument("--seconds", type=int, default=0)
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--corpus", default="")
    p.add_argument("--memory", choices=["tracemalloc", "off"], default="tracemalloc")
    p.add_argument("--max-vm-mb", type=int, default=0, help="RLIMIT_AS, in MiB")
    p.add_argument(
        "--no-instrument",
        dest="instrument",
        action="store_false",
        help="no Python coverage (a smoke test of the wiring: starts in seconds)",
    )
    p.add_argument("libfuzzer", nargs="*", help="after --: libFuzzer flags")
    p = sub.add_parser("short")
    p.add_argument("target")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("replay")
    p.add_argument("target")
    p.add_argument("files", nargs="+")
    args, extra = parser.parse_known_args(argv)
    if args.command == "fuzz":
        args.libfuzzer = [a for a in [*args.libfuzzer, *extra] if a != "--"]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    names = _targets().TARGET_NAMES
    if args.command == "list":
        print("\n".join(names))
    elif args.command == "seeds":
        write_seeds(args.directory, args.targets or names)
    elif args.command == "fuzz":
        fuzz(args)
    elif args.command == "short":
        start = time.perf_counter()
        runs = short_run(args.target, args.iterations, args.seed, report_every=1000)
        print(f"{args.target}: {runs} inputs, {time.perf_counter() - start:.2f} s")
        print(f"known defects hit: {dict(_targets().KNOWN_HITS)}")
    else:
        return 1 if replay(args.target, args.files) else 0
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
