"""The repository's promises about itself: ruff-clean, mypy --strict on serialize/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:  # pragma: no cover - the test extra installs both
        pytest.fail(f"{name} is not installed next to {sys.executable}")
    return path


def test_ruff_reports_nothing() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_serialize(tmp_path: Path) -> None:
    # The repository root is the package `freight`; mypy finds it by that name
    # through a link, whatever the checkout's directory is called.
    (tmp_path / "freight").symlink_to(ROOT, target_is_directory=True)
    result = subprocess.run(
        [
            _tool("mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "freight.serialize",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
