"""The ``freight`` command line: ``strategies`` and ``check``, output and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freight import cli
from freight.cli import main

CHECK_ME = """\
import math


def show(*args, **kwargs):
    return [args, kwargs]


def add(x, y):
    return x + y


def root(x):
    return math.sqrt(x)


NOT_CALLABLE = 3
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "check_me.py"
    path.write_text(CHECK_ME)
    return path


@pytest.fixture
def local_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module importable in this process only."""
    name = f"freight_cli_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(CHECK_ME)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# -- freight strategies -------------------------------------------------------------


def test_strategies_prints_a_table_of_every_registered_strategy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "strategies")

    assert code == 0
    strategies, plugins = out.split("\n\n")[:2]
    header, rule, *rows = strategies.splitlines()
    assert header.split() == [
        "identifier",
        "name",
        "class",
        "kind",
        "plugin",
        "distribution",
        "deprecated",
        "properties",
    ]
    assert set(rule) <= {"-", " "}
    assert any(row.split()[:3] == ["01", "dill-code", "DillCode"] for row in rows)
    json_row = next(row for row in rows if row.startswith("11 "))
    assert json_row.split()[-1] == (
        "safe-for-untrusted,portable,deterministic,cross-language"
    )
    header, rule, *rows = plugins.splitlines()
    assert header.split()[:3] == ["plugin", "distribution", "state"]
    assert any(row.split()[0] == "dill" and "loaded" in row for row in rows)


def test_strategies_shows_plugins_that_were_blocked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from freight.serialize import StrategyRegistry

    monkeypatch.setenv("FREIGHT_BLOCK_PLUGINS", "msgpack")
    monkeypatch.setattr(cli, "default_registry", StrategyRegistry)
    code, out, _ = run(capsys, "strategies", "--json")

    assert code == 0
    plugins = {r["plugin"]: r for r in json_lines(out) if r["record"] == "plugin"}
    assert plugins["msgpack"]["state"] == "blocked"
    assert "FREIGHT_BLOCK_PLUGINS" in plugins["msgpack"]["reason"]
    assert plugins["pickle"]["state"] == "loaded"
    strategies = [r for r in json_lines(out) if r["record"] == "strategy"]
    assert "mp" not in {r["identifier"] for r in strategies}


def test_strategies_json_prints_one_object_per_strategy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "strategies", "--json")

    assert code == 0
    rows = {
        row["identifier"]: row for row in json_lines(out) if row["record"] == "strategy"
    }
    assert rows["01"]["class"] == "DillCode" and rows["01"]["kind"] == "code"
    assert rows["00"]["kind"] == "data"
    assert rows["02"]["deprecated"] == "decode-only"


# -- freight check ---------------------------------------------------------------------


def test_check_module_function_reports_every_code_strategy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "check", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "colorsys.rgb_to_hsv(0.2, 0.4, 0.4) returned (0.5, 0.5, 0.4)"
    assert "in this process" in lines[1]
    assert lines[2].split()[:3] == ["strategy", "id", "round"]
    assert any(line.startswith("dill-code ") and " ok " in line for line in lines)


def test_check_path_function_loads_the_file_as_an_unimportable_module(
    capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, _ = run(capsys, "check", f"{script}:add", "2", "3", "--json")

    assert code == 0
    rows = {row["strategy"]: row for row in json_lines(out)}
    assert rows["dill-code"]["ok"] and rows["dill-code"]["outcome"] == "returned 5"


def test_check_parses_literals_strings_and_keyword_arguments(
    capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, _ = run(
        capsys,
        "check",
        f"{script}:show",
        "1",
        "2.5",
        "'quoted'",
        "bare",
        "[1, 2]",
        "x-y=1",
        "n=3",
        "name='y'",
        "expr=a+b",
        "--strategy",
        "dill-code",
    )

    assert code == 0
    assert out.splitlines()[0] == (
        "__freight_check__.show(1, 2.5, 'quoted', 'bare', [1, 2], 'x-y=1', n=3,"
        " name='y', expr='a+b') returned [(1, 2.5, 'quoted', 'bare', [1, 2],"
        " 'x-y=1'), {'n': 3, 'name': 'y', 'expr': 'a+b'}]"
    )


def test_check_strategy_option_filters_and_repeats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        "check",
        "colorsys:rgb_to_hsv",
        "0",
        "0",
        "0",
        "--strategy",
        "dill-code",
        "--strategy",
        "st",
        "--json",
    )

    assert code == 0
    rows = json_lines(out)
    assert [row["strategy"] for row in rows] == ["dill-code", "source-text-inspect"]
    assert set(rows[0]) >= {
        "strategy",
        "identifier",
        "ok",
        "stage",
        "payload_chars",
        "payload_bytes",
        "encode_seconds",
        "decode_seconds",
        "matched",
        "error",
        "reason",
        "isolated",
    }
    assert all(row["ok"] and not row["isolated"] for row in rows)


def test_check_exits_1_when_no_strategy_works(
    capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, _ = run(
        capsys, "check", f"{script}:root", "4", "--strategy", "source-text-inspect"
    )

    assert code == 1
    assert "FAILED" in out
    assert "name 'math' is not defined" in out


def test_check_isolated_catches_a_module_only_this_process_can_import(
    capsys: pytest.CaptureFixture[str], local_module: str, tmp_path: Path
) -> None:
    target = f"{local_module}:add"
    args = ["check", target, "2", "3", "--isolated", "--strategy", "dill-code"]

    code, out, _ = run(capsys, *args, "--json")
    (row,) = json_lines(out)
    assert code == 1
    assert row["isolated"] and row["stage"] == "deserialize"
    assert local_module in row["reason"]

    code, out, _ = run(capsys, *args, "--pythonpath", str(tmp_path))
    assert code == 0
    assert "fresh `python -I` subprocess" in out.splitlines()[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "no_colon"], "TARGET must be MODULE:FUNCTION"),
        (["check", "no_such_module_xyz:f"], "cannot load 'no_such_module_xyz'"),
        (["check", "colorsys:no_such_function"], "has no attribute"),
        (["check", "SCRIPT:NOT_CALLABLE"], "is not callable"),
        (["check", "missing.py:f"], "cannot load 'missing.py'"),
        (["check", "colorsys:rgb_to_hsv", "--strategy", "nope"], "no registered"),
        (["check", "colorsys:rgb_to_hsv", "--strategy", "dill-data"], "data"),
        (["check", "colorsys:rgb_to_hsv", "--timeout", "0"], "must be positive"),
        (["check"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str],
    script: Path,
    argv: list[str],
    message: str,
) -> None:
    argv = [a.replace("SCRIPT", str(script)) for a in argv]

    code, _, err = run(capsys, *argv)

    assert code == 2
    assert message in err


def test_freight_console_script_runs(tmp_path: Path) -> None:
    exe = shutil.which("freight", path=str(Path(sys.executable).parent))
    assert exe is not None, "the freight console script is not installed"

    argv = ["check", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4"]
    done = subprocess.run(
        [exe, *argv, "--strategy", "dill-code", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    (row,) = json_lines(done.stdout)
    assert row["strategy"] == "dill-code" and row["ok"]
