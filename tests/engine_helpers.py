"""Helpers for the engine tests (tests/endpoint/): leak checks, waits, venvs."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

#: Where the workers import ``freight_engine_targets`` from.
TARGETS_DIR = str(Path(__file__).resolve().parent / "endpoint")


def worker_children() -> set[int]:
    """Pids of this process's children that are engine workers."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        if ppid == me and b"freight.endpoint.worker" in cmdline:
            found.add(int(entry))
    return found


def shm_segments() -> set[str]:
    """The POSIX shared-memory segments engines of this process made."""
    from freight.endpoint.process import segment_prefix

    return {n for n in os.listdir("/dev/shm") if n.startswith(segment_prefix())}


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def make_venv(path: Path, *, with_freight: bool) -> Path:
    """A venv at ``path`` (no pip); with ``with_freight`` its site-packages
    imports this interpreter's (freight, editable, and its dependencies)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True
    )
    python = path / "bin" / "python"
    if with_freight:
        purelib = subprocess.run(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ours = {sysconfig.get_path("purelib"), *site.getsitepackages()}
        lines = [f"import site; site.addsitedir({p!r})" for p in sorted(ours)]
        Path(purelib, "freight_host.pth").write_text("\n".join(lines) + "\n")
    return python
