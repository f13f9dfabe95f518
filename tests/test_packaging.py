"""What an install of freight contains: the package and nothing of the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    # A copy, so the build's own build/ folder does not land in the checkout.
    source = out / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.so", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    # Without build isolation: the test extra installs the setuptools the build
    # needs, so no download happens here.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (wheel,) = out.glob("freight-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_the_wheel_ships_no_build_script_and_no_source_tree_folders(
    wheel_names: list[str],
) -> None:
    top = {name.split("/")[1] for name in wheel_names if name.startswith("freight/")}
    assert "setup.py" not in top
    assert not top & {"tests", "benchmarks", "examples", ".ci"}
    assert {"serialize", "plugins", "testing", "client", "py.typed"} <= top


def test_the_wheel_ships_the_typing_marker_and_the_accelerator_stub(
    wheel_names: list[str],
) -> None:
    assert "freight/py.typed" in wheel_names
    assert "freight/serialize/_accel.pyi" in wheel_names


@pytest.mark.parametrize("folder", ["tests", "benchmarks", "examples"])
def test_source_tree_folders_do_not_import_as_part_of_the_package(
    folder: str,
) -> None:
    # An editable install maps `freight` onto the repository root, where these
    # folders would otherwise import as namespace packages.
    result = subprocess.run(
        [sys.executable, "-c", f"import freight.{folder}"],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
    )
    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr
    assert "not part of the package" in result.stderr


def test_the_packages_still_import_in_a_source_checkout() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import freight.serialize, freight.plugins, freight.testing, "
            "freight.client, freight.cli",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
