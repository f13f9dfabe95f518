"""The client half of the ``freight`` command line: ``run``, ``map``, ``task``,
``tasks``, ``functions`` and ``endpoints`` on the embedded service.

Every test runs on a temporary ``FREIGHT_HOME``; the engine is ``$FREIGHT_ENGINE``
(``process``, the embedded default, unless the environment says otherwise).  The
CLI runs in-process through ``freight.cli.main``, and once as a subprocess, the
README's main job.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freight.cli import main
from freight.service.embedded import shutdown_embedded

SCRIPT = """\
def divide(a, b=1):
    return a / b


def fail_on(x, bad=3):
    if x == bad:
        raise KeyError(f"no {x}")
    return x * 10


class Point:
    def __init__(self, x):
        self.x = x

    def __repr__(self):
        return f"Point({self.x})"


def point(x):
    return Point(x)
"""


@pytest.fixture
def freight_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh embedded service home for this test, stopped afterwards."""
    home = tmp_path / "home"
    monkeypatch.setenv("FREIGHT_HOME", str(home))
    monkeypatch.setenv("FREIGHT_ENGINE", os.environ.get("FREIGHT_ENGINE", "process"))
    monkeypatch.setenv("FREIGHT_WORKERS", "2")
    monkeypatch.delenv("FREIGHT_SERVICE", raising=False)
    shutdown_embedded()
    yield home
    shutdown_embedded()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "cli_tasks.py"
    path.write_text(SCRIPT)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


MAIN_ARGS = ("0.2", "0.4", "0.4")


def a_uuid() -> str:
    return str(uuid.uuid4())


# -- run ------------------------------------------------------------------------------
def test_run_prints_the_result_of_the_guides_round_trip(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4")

    assert code == 0, err
    assert out == "(0.5, 0.5, 0.4)\n"


def test_run_json_names_the_task_function_and_local_endpoint(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "endpoints", "--json")
    assert code == 0
    (endpoint,) = json_lines(out)

    code, out, err = run(
        capsys, "run", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4", "--json"
    )

    assert code == 0, err
    (row,) = json_lines(out)
    assert row["status"] == "success"
    assert row["result"] == [0.5, 0.5, 0.4]
    assert row["result_repr"] == "(0.5, 0.5, 0.4)"
    assert row["endpoint_id"] == endpoint["endpoint_id"]
    uuid.UUID(row["task_id"])
    uuid.UUID(row["function_id"])


def test_run_loads_a_script_and_passes_keyword_arguments(
    freight_home: Path, capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, err = run(capsys, "run", f"{script}:divide", "9", "b=2")

    assert code == 0, err
    assert out == "4.5\n"


def test_run_json_gives_the_repr_of_a_value_json_cannot_hold(
    freight_home: Path, capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, err = run(capsys, "run", f"{script}:point", "3", "--json")

    assert code == 0, err
    (row,) = json_lines(out)
    assert row["result"] == row["result_repr"] == "Point(3)"


def test_run_a_remote_exception_exits_1_with_its_type_and_traceback(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "operator:truediv", "1", "0")

    assert code == 1
    assert out == ""
    assert "failed: ZeroDivisionError: division by zero" in err
    assert "Traceback (most recent call last)" in err


def test_run_json_reports_the_remote_exception(
    freight_home: Path, capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    code, out, _ = run(capsys, "run", f"{script}:fail_on", "3", "--json")

    assert code == 1
    (row,) = json_lines(out)
    assert row["status"] == "failed"
    assert row["exception"]["type"] == "KeyError"
    assert "no 3" in row["exception"]["message"]
    assert "fail_on" in row["exception"]["traceback"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "colorsys"], "TARGET must be MODULE:FUNCTION"),
        (["run", "no_such_module_xyz:f"], "cannot load 'no_such_module_xyz'"),
        (["run", "colorsys:no_such_function"], "has no attribute"),
        (["run", "colorsys:rgb_to_hsv", "1", "--endpoint", "nope"], "not a valid id"),
        (["run", "colorsys:rgb_to_hsv", "1", "--endpoint", "NEW"], "not known"),
        (["run", "colorsys:rgb_to_hsv", "--timeout", "0"], "must be positive"),
    ],
)
def test_run_bad_input_exits_2_with_a_message_and_stores_nothing(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    argv = [a_uuid() if a == "NEW" else a for a in argv]

    code, out, err = run(capsys, *argv)

    assert code == 2
    assert message in err
    assert out == ""
    for listing in ("tasks", "functions"):
        code, out, _ = run(capsys, listing, "--json")
        assert code == 0 and json_lines(out) == []


def test_run_timeout_exits_1_and_says_so(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "time:sleep", "1", "--timeout", "0.05")

    assert code == 1
    assert out == ""
    assert "did not finish within 0.05 s" in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FREIGHT_ENGINE", "no-such-engine", "no engine named 'no-such-engine'"),
        ("FREIGHT_SERVICE", "nowhere", "service: 'nowhere' is not one"),
        ("FREIGHT_WORKERS", "many", "cannot start the service"),
        ("FREIGHT_HOME", "FILE/home", "cannot start the service"),
        ("FREIGHT_HOME", "NOT_A_DB", "cannot start the service"),
    ],
)
def test_a_service_that_cannot_start_exits_2_with_the_reason(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    message: str,
) -> None:
    # FILE/home: a home under a regular file; NOT_A_DB: freight.db is not SQLite.
    (tmp_path / "FILE").write_text("not a directory")
    (tmp_path / "NOT_A_DB").mkdir()
    (tmp_path / "NOT_A_DB" / "freight.db").write_bytes(b"not a database" * 100)
    if value in ("FILE/home", "NOT_A_DB"):
        value = str(tmp_path / value)
    monkeypatch.setenv(variable, value)

    for argv in (["run", "colorsys:rgb_to_hsv", "1", "2", "3"], ["tasks"]):
        code, out, err = run(capsys, *argv)

        assert code == 2
        assert out == ""
        assert err.startswith("freight: cannot start the service: ")
        assert message in err


# -- map ------------------------------------------------------------------------------
def test_map_items_prints_one_result_per_line_in_order(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "map", "math:sqrt", "1", "4", "9", "--no-progress")

    assert code == 0, err
    assert out.splitlines() == ["1.0", "2.0", "3.0"]
    assert err == ""


@pytest.mark.parametrize("chunksize", ["1", "7"])
def test_map_range_with_chunks_keeps_order(
    freight_home: Path, capsys: pytest.CaptureFixture[str], chunksize: str
) -> None:
    code, out, err = run(
        capsys,
        "map",
        "operator:neg",
        "--range",
        "50",
        "--chunksize",
        chunksize,
        "--json",
    )

    assert code == 0, err
    rows = json_lines(out)
    assert [r["index"] for r in rows] == list(range(50))
    assert [r["result"] for r in rows] == [-i for i in range(50)]


def test_map_args_file_json_arrays_are_positional_arguments(
    freight_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = tmp_path / "args.jsonl"
    args.write_text("[2, 10]\n\n[3, 2]\n[10, -1]\n")

    code, out, err = run(capsys, "map", "operator:pow", "--args-file", str(args))

    assert code == 0, err
    assert out.splitlines() == ["1024", "9", "0.1"]


def test_map_reads_stdin_one_argument_per_line(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('"ab"\n"xyz"\n[[1, 2, 3]]\n'))

    code, out, err = run(capsys, "map", "builtins:len", "--args-file", "-")

    assert code == 0, err
    assert out.splitlines() == ["2", "3", "3"]


def test_map_shows_a_progress_bar_when_asked(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "map", "operator:neg", "--range", "20", "--progress", "--json"
    )

    assert code == 0, err
    assert len(json_lines(out)) == 20
    assert "20/20" in err


def test_map_has_no_progress_bar_off_a_terminal(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # capsys's stderr is not a terminal: the default is no bar.
    code, out, err = run(capsys, "map", "operator:neg", "--range", "20")

    assert code == 0
    assert len(out.splitlines()) == 20
    assert err == ""


@pytest.mark.parametrize("chunksize", ["1", "4"])
def test_map_stops_at_a_failed_call_with_exit_1_after_printing_earlier_results(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    script: Path,
    chunksize: str,
) -> None:
    code, out, err = run(
        capsys,
        "map",
        f"{script}:fail_on",
        "--range",
        "6",
        "--chunksize",
        chunksize,
    )

    assert code == 1
    assert out.splitlines() == ["0", "10", "20"]
    assert "input 4 failed: KeyError" in err
    assert "Traceback (most recent call last)" in err


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["map", "math:sqrt"], "", "exactly one of ITEMS, --range N or --args-file"),
        (["map", "math:sqrt", "1", "--range", "3"], "", "exactly one of"),
        (["map", "math:sqrt", "--range", "0"], "", "must be at least 1"),
        (["map", "math:sqrt", "--range", "3", "--chunksize", "0"], "", "at least 1"),
        (["map", "math:sqrt", "--args-file", "/no/such/file"], "", "cannot read"),
        (["map", "math:sqrt", "--args-file", "-"], "4\n{nope\n", "line 2: not JSON"),
        (["map", "operator:pow", "--args-file", "-"], "[2, 3]\n[4]\n", "input 2 has"),
        (["map", "math:sqrt", "--args-file", "-"], "[]\n", "empty argument list"),
        (["map", "math", "1"], "", "TARGET must be"),
    ],
)
def test_map_bad_input_exits_2_with_a_message(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))

    code, _, err = run(capsys, *argv)

    assert code == 2
    assert message in err


def test_map_args_file_that_is_not_text_exits_2(
    freight_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = tmp_path / "args.bin"
    args.write_bytes(b"\xff\xfe\x00\x01" * 8)

    code, out, err = run(capsys, "map", "math:sqrt", "--args-file", str(args))

    assert code == 2
    assert out == ""
    assert "is not UTF-8 text" in err


# -- task, tasks, functions, endpoints -----------------------------------------------
def _task_ids(capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _ = run(capsys, "tasks", "--json")
    assert code == 0
    return [row["task_id"] for row in json_lines(out)]


def test_task_shows_a_finished_tasks_result(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "run", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4")[0] == 0
    (task_id,) = _task_ids(capsys)

    code, out, err = run(capsys, "task", task_id)

    assert code == 0, err
    assert f"task       {task_id}" in out
    assert "status     success" in out
    assert "result     (0.5, 0.5, 0.4)" in out

    code, out, _ = run(capsys, "task", task_id, "--json")
    (row,) = json_lines(out)
    assert code == 0
    assert row["status"] == "success" and row["result"] == [0.5, 0.5, 0.4]


def test_task_shows_a_failed_tasks_exception_with_traceback_and_exits_1(
    freight_home: Path, capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    assert run(capsys, "run", f"{script}:divide", "1", "b=0")[0] == 1
    (task_id,) = _task_ids(capsys)

    code, out, _ = run(capsys, "task", task_id)

    assert code == 1
    assert "status     failed" in out
    assert "exception  ZeroDivisionError: division by zero" in out
    assert "in divide" in out  # the remote traceback

    code, out, _ = run(capsys, "task", task_id, "--json")
    (row,) = json_lines(out)
    assert code == 1
    assert row["exception"]["type"] == "ZeroDivisionError"
    assert "in divide" in row["exception"]["traceback"]


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        ("NEW", "is not known"),
        ("12345", "not a valid id"),
    ],
)
def test_task_unknown_or_malformed_id_exits_2_with_a_clear_message(
    freight_home: Path,
    capsys: pytest.CaptureFixture[str],
    task_id: str,
    message: str,
) -> None:
    task_id = a_uuid() if task_id == "NEW" else task_id

    code, out, err = run(capsys, "task", task_id)

    assert code == 2
    assert out == ""
    assert err.startswith("freight: ") and message in err
    assert "Traceback" not in err


def test_tasks_lists_recent_tasks_newest_first_with_function_names(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "run", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4")[0] == 0
    assert run(capsys, "run", "operator:truediv", "1", "0")[0] == 1

    code, out, _ = run(capsys, "tasks")

    assert code == 0
    header, _, newest, older = out.splitlines()
    assert header.split() == ["task_id", "status", "function", "completed"]
    assert newest.split()[1:3] == ["failed", "truediv"]
    assert older.split()[1:3] == ["success", "rgb_to_hsv"]

    code, out, _ = run(capsys, "tasks", "--json", "--limit", "1")
    (row,) = json_lines(out)
    assert row["function_name"] == "truediv" and row["status"] == "failed"
    assert isinstance(row["completion_t"], float)


def test_tasks_and_functions_on_a_fresh_home_say_none(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "tasks") == (0, "(none)\n", "")
    assert run(capsys, "functions") == (0, "(none)\n", "")


def test_functions_lists_registered_functions_newest_first(
    freight_home: Path, capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    assert run(capsys, "run", "colorsys:rgb_to_hsv", "0.2", "0.4", "0.4")[0] == 0
    assert run(capsys, "run", "time:sleep", "0")[0] == 0

    code, out, _ = run(capsys, "functions")

    assert code == 0
    header, _, newest, older = out.splitlines()
    assert header.split() == ["function_id", "name", "registered", "description"]
    assert newest.split()[1] == "sleep"
    assert older.split()[1] == "rgb_to_hsv"

    code, out, _ = run(capsys, "functions", "--json", "--limit", "1")
    (row,) = json_lines(out)
    assert row["function_name"] == "sleep"
    uuid.UUID(row["function_uuid"])


def test_endpoints_shows_the_local_endpoint_with_its_workers(
    freight_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from freight.client import Client

    local = Client().local_endpoint_id

    code, out, _ = run(capsys, "endpoints")

    assert code == 0
    header, _, line = out.splitlines()
    assert header.split() == [
        "endpoint_id",
        "name",
        "status",
        "engine",
        "workers",
        "capacity",
        "queued",
        "running",
    ]
    assert line.split()[:4] == [local, "local", "online", os.environ["FREIGHT_ENGINE"]]
    assert line.split()[5] == "2"  # FREIGHT_WORKERS

    code, out, _ = run(capsys, "endpoints", "--json")
    (row,) = json_lines(out)
    assert row["endpoint_id"] == local
    assert row["name"] == "local" and row["status"] == "online"
    assert row["engine"] == os.environ["FREIGHT_ENGINE"]
    assert row["capacity"] == 2
    assert 0 <= row["workers"] <= 2  # an engine may start its workers on demand
    assert row["queued"] == row["running"] == 0


# -- the README's main job, as a process ---------------------------------------------
def test_freight_run_as_a_process_and_its_task_is_there_for_the_next_one(
    freight_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "freight.cli", "run", "colorsys:rgb_to_hsv", *MAIN_ARGS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "(0.5, 0.5, 0.4)\n"
    # The task was stored in FREIGHT_HOME and outlives the process that ran it.
    code, out, _ = run(capsys, "tasks", "--json")
    (row,) = json_lines(out)
    assert code == 0
    assert row["status"] == "success" and row["function_name"] == "rgb_to_hsv"
    code, out, _ = run(capsys, "task", row["task_id"])
    assert code == 0 and "result     (0.5, 0.5, 0.4)" in out
