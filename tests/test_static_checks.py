"""The repository's promises about itself: ruff-clean, and mypy --strict clean on
the whole package ``freight`` (``serialize/``, ``plugins/``, ``testing/``,
``client/``, ``cli.py``, ``__init__.py`` and any package added later).

The repository root is the package, so ``-p freight`` would also walk the folders
that are not part of it: ``tests/``, ``benchmarks/``, ``examples/`` (separate
distributions) and the build script ``setup.py``.  Those are excluded by name and
nothing else is: a new subpackage is checked without touching this file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Top-level entries of the repository that are not part of the package.
NOT_THE_PACKAGE = ("tests", "benchmarks", "examples", "build", "dist", "setup.py")


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:  # pragma: no cover - the test extra installs both
        pytest.fail(f"{name} is not installed next to {sys.executable}")
    return path


def package_sources(root: Path = ROOT) -> list[Path]:
    """The package's Python sources: every ``.py`` and ``.pyi`` under ``root``
    except in the entries of ``NOT_THE_PACKAGE`` and hidden folders (``.venv``)."""
    found = []
    for path in [*root.rglob("*.py"), *root.rglob("*.pyi")]:
        parts = path.relative_to(root).parts
        if parts[0] in NOT_THE_PACKAGE or any(p.startswith(".") for p in parts):
            continue
        if "__pycache__" in parts:
            continue
        found.append(path)
    return sorted(found)


def mypy_command(tmp_path: Path) -> list[str]:
    excluded = "|".join(re.escape(name) for name in NOT_THE_PACKAGE)
    return [
        _tool("mypy"),
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(tmp_path / ".mypy_cache"),
        "--exclude",
        rf"^freight/({excluded})(/|$)",
        "--exclude",
        r"^freight/(.*/)?\.",
        "-p",
        "freight",
    ]


def test_ruff_reports_nothing() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_sources_include_every_part() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in package_sources()}
    for expected in (
        "__init__.py",
        "cli.py",
        "serialize/facade.py",
        "plugins/pickle_strategies.py",
        "testing/assertions.py",
        "client/__init__.py",
    ):
        assert expected in names
    assert not any(n.startswith(("tests/", "benchmarks/", "examples/")) for n in names)
    assert "setup.py" not in names


def test_mypy_strict_is_clean_on_the_whole_package(tmp_path: Path) -> None:
    # The repository root is the package `freight`; mypy finds it by that name
    # through a link, whatever the checkout's directory is called.
    (tmp_path / "freight").symlink_to(ROOT, target_is_directory=True)
    result = subprocess.run(
        mypy_command(tmp_path),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every source of the package was checked, and nothing else.
    checked = re.search(r"no issues found in (\d+) source files", output)
    assert checked is not None, output
    assert int(checked.group(1)) == len(package_sources()), (
        output,
        [p.relative_to(ROOT).as_posix() for p in package_sources()],
    )
