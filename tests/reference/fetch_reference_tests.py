"""Get the reference SDK's serialization unit tests into freight's cache.

The file is ``compute_sdk/tests/unit/test_serialization.py`` of the public
repository globus/globus-compute, at the commit pinned below (the last change to
that file before 4.19.0's serialization code, which it matches line for line).  It
is the reference's code, so freight does not commit it: this script puts it in
a cache directory, and ``test_reference_suite.py`` runs it from there.  The
``globus-compute-sdk`` 4.19.0 sdist on PyPI holds no tests (checked), so the file
cannot come from PyPI.

Usage::

    python tests/reference/fetch_reference_tests.py            # download from GitHub
    python tests/reference/fetch_reference_tests.py --from-git ~/src/globus-compute
    python tests/reference/fetch_reference_tests.py --from-file test_serialization.py

Every source is checked against the pinned SHA-256 before it is stored.  The cache
directory is ``$FREIGHT_REFERENCE_CACHE`` or ``~/.cache/freight/reference-tests``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

REPOSITORY = "globus/globus-compute"
COMMIT = "b851b7ad88393f3b860579bc694ea81f0ea2eb71"
PATH = "compute_sdk/tests/unit/test_serialization.py"
SHA256 = "d3ac5ee56733e5d3b841ccebb3be04a4a011be2ce30edaf9754625997f34fb8f"
URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{PATH}"
FILENAME = "test_serialization.py"


def cache_dir() -> Path:
    """Where the fetched file is kept."""
    env = os.environ.get("FREIGHT_REFERENCE_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "freight" / "reference-tests"
    return base / COMMIT[:12]


def cached_file() -> Path:
    return cache_dir() / FILENAME


def verified(data: bytes) -> bytes:
    """``data`` if its SHA-256 is the pinned one; ``ValueError`` otherwise."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(
            f"the reference test file's SHA-256 is {digest}, expected {SHA256}"
            f" ({REPOSITORY}@{COMMIT[:12]}:{PATH})"
        )
    return data


def store(data: bytes) -> Path:
    """Verify ``data`` and write it to the cache; return its path."""
    target = cached_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(verified(data))
    tmp.replace(target)
    return target


def download(timeout: float = 20.0) -> bytes:
    with urllib.request.urlopen(URL, timeout=timeout) as response:
        data: bytes = response.read()
    return data


def from_git(repo: Path) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{COMMIT}:{PATH}"],
        check=True,
        capture_output=True,
    ).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-git", type=Path, help="a clone of globus-compute")
    source.add_argument("--from-file", type=Path, help="a copy of the file")
    args = parser.parse_args(argv)
    if args.from_git:
        data = from_git(args.from_git)
    elif args.from_file:
        data = args.from_file.read_bytes()
    else:
        data = download()
    print(store(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
