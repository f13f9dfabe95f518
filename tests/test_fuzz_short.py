"""A short run of every fuzz target (``tests/fuzz/``), and the saved reproducers.

Each target decodes its seeds (valid messages of the suite's payload kinds) and
then ``ITERATIONS`` structure-aware mutants of them, made with a fixed random
seed, so the run is the same every time; any finding fails the test with the
input that caused it.  The property, per input: the decode returns or raises a
``SerdeError`` (no other exception, no unraisable one, no ``MemoryError`` or
``SystemError`` under it), and its traced peak memory stays under
``targets.memory_bound``.  The long, coverage-guided run uses atheris
(``tests/fuzz/README.md``); ``FREIGHT_FUZZ_ITERATIONS`` lengthens this one.

Reproducers in ``tests/fuzz/regressions/`` run in a subprocess each (one of them
may crash the interpreter); ``REGRESSIONS`` says which target reads each and
whether the defect it shows is fixed on this branch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")

from fuzz import run, targets

ITERATIONS = int(os.environ.get("FREIGHT_FUZZ_ITERATIONS", "200"))
FUZZ_DIR = Path(__file__).parent / "fuzz"

#: reproducer file -> (target, the defect; "" once fixed).  Files whose defect is
#: listed are expected to fail the property (strict xfail: when the fix lands,
#: the test fails until the entry is cleared).
REGRESSIONS: dict[str, tuple[str, str]] = {
    # Fixed in issue 10: one out-of-band buffer referenced many times was copied
    # each time; max_depth skipped map keys; a RecursionError escaped
    # _describe_producer; BUILD could act on a class.
    "msgpack-oob-buffer-copied-per-reference": ("msgpack", ""),
    "msgpack-max-depth-map-key": ("msgpack", ""),
    # The harness's own false positive (a bundle's list of three values counted
    # as one more level): values exactly max_depth deep are fine.
    "msgpack-depth-32-in-packed-text": ("msgpack", ""),
    "describe-producer-deep-metadata": ("json", ""),
    "pickle-build-on-class": ("pickle", ""),
    "pickle-bytearray8-length-allocation": (
        "pickle",
        "restricted pickle allocates what a BYTEARRAY8 length says",
    ),
    "pickle-binbytes-length-allocation": (
        "pickle",
        "restricted pickle allocates what a BINBYTES length says",
    ),
}


@pytest.mark.parametrize("name", targets.TARGET_NAMES)
def test_fuzz_target_short_run(name: str) -> None:
    if name == "fastpath":
        pytest.importorskip("freight.serialize._accel", reason="no C accelerator")
    runs = run.short_run(name, ITERATIONS, seed=0)
    assert runs > ITERATIONS


def test_every_saved_reproducer_is_listed() -> None:
    saved = {p.name for p in (FUZZ_DIR / "regressions").iterdir()}
    assert saved == set(REGRESSIONS)


@pytest.fixture(scope="module")
def replayed() -> dict[str, str]:
    """Every saved reproducer replayed in one subprocess, strictly (known
    defects not skipped): ``{file: "ok" or what failed}``."""
    regressions = FUZZ_DIR / "regressions"
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ_DIR / "run.py"),
            "replay",
            "binary",
            *(f"{t}={regressions / f}" for f, (t, _) in sorted(REGRESSIONS.items())),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "FREIGHT_FUZZ_STRICT": "1"},
        timeout=300,
    )
    lines = [line.partition(": ") for line in result.stdout.splitlines()]
    outcomes = {Path(f).name: rest for f, _, rest in lines}
    crash = f"no result (exit {result.returncode}): {result.stderr[-1500:]}"
    return {f: outcomes.get(f, crash) for f in REGRESSIONS}


@pytest.mark.parametrize(
    "file",
    [
        pytest.param(
            file,
            marks=[pytest.mark.xfail(strict=True, reason=defect)] if defect else [],
        )
        for file, (_, defect) in sorted(REGRESSIONS.items())
    ],
)
def test_saved_reproducer_keeps_the_property(
    file: str, replayed: dict[str, str]
) -> None:
    assert replayed[file].startswith("ok"), replayed[file]


def test_the_mutator_reaches_the_decoders() -> None:
    # A fuzzer that only ever produced framing errors would pass every run:
    # the short run must decode some mutants successfully and refuse others.
    import random

    from fuzz import cases

    serde = targets.serializers("msgpack")[1]
    seeds = targets.seeds_for("msgpack")
    rng = random.Random(1)
    outcomes = set()
    for _ in range(200):
        _, frames = cases.read_case(cases.mutate(rng.choice(seeds), rng, 1 << 16))
        outcomes.add(targets.decode_message(serde, 0, frames)[0])
    assert outcomes == {"ok", "error"}


def test_the_atheris_runner_runs_a_target(tmp_path: Path) -> None:
    # The long run's wiring (libFuzzer, the custom mutator's size contract, the
    # checks), without coverage instrumentation so that it starts in seconds.
    pytest.importorskip("atheris")
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ_DIR / "run.py"),
            "fuzz",
            "binary",
            "--runs",
            "300",
            "--no-instrument",
            "--",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 300 runs" in result.stderr
