"""The reference SDK's own serialization unit tests, run against freight.

``compute_sdk/tests/unit/test_serialization.py`` of globus/globus-compute (pinned
in ``fetch_reference_tests.py``) runs in a subprocess in which the shim
(``reference_shim.py``) makes ``globus_compute_sdk.serialize`` and
``globus_compute_sdk.errors`` freight's public names.  Every test must pass except
those ``expected.py`` lists, and each listed test must do exactly what the list
says: a listed test that starts passing fails this test too, so the list (and the
README, which repeats it) stays true.

The file is found, in order: at ``$FREIGHT_REFERENCE_TESTS``; in the cache that
``fetch_reference_tests.py`` fills; downloaded from GitHub into that cache (unless
``FREIGHT_REFERENCE_DOWNLOAD=0``).  Without it the test is skipped, saying how to
get it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_freight_reference_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch = _load("fetch_reference_tests")
expected = _load("expected")


def _reference_file() -> Path:
    """The verified reference test file, or skip saying why there is none."""
    env = os.environ.get("FREIGHT_REFERENCE_TESTS")
    if env:
        path = Path(env)
        fetch.verified(path.read_bytes())  # a wrong file is an error, not a skip
        return path
    cached = fetch.cached_file()
    if cached.exists():
        fetch.verified(cached.read_bytes())
        return Path(cached)
    why = "FREIGHT_REFERENCE_DOWNLOAD=0"
    if os.environ.get("FREIGHT_REFERENCE_DOWNLOAD", "1") != "0":
        try:
            return Path(fetch.store(fetch.download(timeout=10)))
        except Exception as e:
            why = f"download failed: {type(e).__name__}: {e}"
    pytest.skip(
        f"the reference's test file is not available ({why}). It is not on PyPI"
        " (the globus-compute-sdk sdist ships no tests); get it with `python"
        " tests/reference/fetch_reference_tests.py` (from GitHub, or --from-git"
        " CLONE / --from-file FILE), or point FREIGHT_REFERENCE_TESTS at a copy"
    )


def _actual(phases: dict[str, str]) -> str:
    if "deselected" in phases:
        return "deselected"
    if "failed" in (phases.get("setup"), phases.get("call")):
        return "failed"
    if phases.get("teardown") == "failed":
        return "teardown"
    return phases.get("call") or phases.get("setup") or "missing"


def test_reference_serialization_tests_pass_through_the_shim(tmp_path: Path) -> None:
    source = _reference_file()
    work = tmp_path / "reference"
    work.mkdir()
    (work / "test_serialization.py").write_bytes(source.read_bytes())
    (work / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.json"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FREIGHT_", "PYTEST_"))
    }
    env.update(
        PYTHONPATH=str(HERE),
        FREIGHT_DISABLE_PLUGIN_AUTOLOAD="1",
        FREIGHT_REFERENCE_REPORT=str(report),
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "reference_shim",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(work),
            str(work / "test_serialization.py"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.exists(), run.stdout[-4000:] + run.stderr[-4000:]
    outcomes: dict[str, dict[str, str]] = json.loads(report.read_text())
    problems: list[str] = []
    used: set[str] = set()
    counts: dict[str, int] = {}
    for nodeid, phases in sorted(outcomes.items()):
        if "collect" in phases:
            problems.append(f"{nodeid}: failed to collect")
            continue
        name = nodeid.split("::", 1)[-1]
        entry = expected.lookup(name)
        actual = _actual(phases)
        counts[actual] = counts.get(actual, 0) + 1
        if entry is None:
            if actual not in ("passed", "skipped"):
                problems.append(
                    f"{name!r} {actual}: {phases.get('message', '')}".rstrip()
                )
            continue
        used.add(entry.pattern)
        if actual != entry.outcome:
            problems.append(
                f"{name!r} is listed as {entry.outcome} ({entry.reason}) but"
                f" {actual}: {phases.get('message', '')}".rstrip()
            )
    problems += [
        f"expected.py entry {e.pattern!r} matches no test"
        for e in expected.EXPECTED
        if e.pattern not in used
    ]
    # The file has ~200 tests; far fewer means the run itself went wrong.
    if sum(counts.values()) < 150:
        problems.append(f"only {sum(counts.values())} tests ran: {counts}")
    assert not problems, (
        f"{len(problems)} discrepancies with tests/reference/expected.py"
        f" (outcomes {counts}):\n" + "\n".join(problems)
    )
