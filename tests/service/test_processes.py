"""State across processes: a result not yet retrieved survives its process; a
process killed mid-batch leaves no task pending; processes sharing a home do not
fail each other's tasks."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ECHO_SRC, decode, register_source, text_payload, wait_until

from freight.service.core import ServiceCore
from freight.service.embedded import default_home, embedded_service
from freight.service.store import FINAL, SQLiteStore

CHILD = Path(__file__).resolve().parents[1] / "service_child.py"
TIMEOUT = 120


class Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self) -> Any:
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline() if ready else ""
        if not text:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TIMEOUT)
            raise AssertionError(f"the child said nothing; stderr:\n{err}")
        return json.loads(text)

    def finish(self) -> None:
        _, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == -signal.SIGKILL


def run_child(*args: str) -> Any:
    child = Child(*args)
    value = child.line()
    child.finish()
    return value


@pytest.fixture
def markers(tmp_path: Path) -> Iterator[Path]:
    """Where blocked tasks say they started; ``release`` lets them finish (also
    at teardown, for workers a killed process left behind)."""
    path = tmp_path / "markers"
    path.mkdir()
    yield path
    (path / "release").touch()


def _failed_because_the_service_stopped(row: Any) -> bool:
    return (
        row.status == "failed"
        and row.exception["type"].endswith("ServiceStopped")
        and "the service stopped" in row.exception_text
    )


def test_an_unretrieved_result_is_there_for_a_new_client_in_a_new_process(
    home: Path,
) -> None:
    tid = run_child("client-run", str(home))
    db = home / "freight.db"
    assert db.is_file()
    assert run_child("client-get", str(home), tid) == {"answer": 41}


def test_state_lives_in_freight_db_under_the_home(home: Path) -> None:
    tid = run_child("client-run", str(home))
    store = SQLiteStore(home / "freight.db")
    try:
        row = store.get_tasks([tid])[tid]
        assert row.status == "success" and row.retrieved is None
        assert decode(row.result) == {"answer": 41}
    finally:
        store.close()


def test_the_local_endpoint_id_is_stable_per_home(home: Path, tmp_path: Path) -> None:
    first = run_child("endpoint", str(home))
    assert run_child("endpoint", str(home)) == first
    assert embedded_service(home).endpoint_ids == [first]
    assert run_child("endpoint", str(tmp_path / "other")) != first


def test_the_home_is_the_argument_then_freight_home_then_the_data_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    assert default_home() == home
    other = tmp_path / "elsewhere"
    core = embedded_service(other)
    assert Path(core.store.path) == other.resolve() / "freight.db"
    assert not (home / "freight.db").exists()
    monkeypatch.delenv("FREIGHT_HOME")
    assert default_home() == Path(platformdirs.user_data_dir("freight"))


def test_a_process_killed_mid_batch_leaves_every_task_finished(
    home: Path, markers: Path
) -> None:
    child = Child("batch", str(home), str(markers), "crash")
    info = child.line()
    child.kill()
    db = home / "freight.db"
    before = {t: s for t, s in _statuses(db).items() if t in info["blocked"]}
    assert set(before.values()) <= {"waiting-for-launch", "running"}
    assert len(list(markers.glob("started-*"))) >= 2  # some were running

    core = ServiceCore(SQLiteStore(db))  # the next start
    try:
        rows = core.store.get_tasks(info["quick"] + info["blocked"])
        assert len(rows) == 8  # none silently dropped
        for t in info["blocked"]:
            assert _failed_because_the_service_stopped(rows[t]), rows[t]
        assert [decode(rows[t].result) for t in info["quick"]] == [0, 1, 2]
        assert not [s for s in _statuses(db).values() if s not in FINAL]
        status = core.get_task(info["blocked"][0])
        assert status["status"] == "failed"
        assert "ServiceStopped" in status["exception"]
    finally:
        core.shutdown()


def test_a_live_process_sharing_the_home_keeps_its_tasks(
    home: Path, markers: Path
) -> None:
    child = Child("batch", str(home), str(markers), "live")
    info = child.line()
    core = ServiceCore(SQLiteStore(home / "freight.db"))  # starts and recovers
    try:
        assert core.sweep()["orphans_failed"] == 0
        statuses = core.get_batch_status(info["blocked"])["results"]
        assert {s["status"] for s in statuses.values()} <= {
            "waiting-for-launch",
            "running",
        }
        assert core.list_tasks(task_group_id=info["group"], status="failed") == []
        (markers / "release").touch()
        assert set(child.line().values()) == {"success"}
        child.finish()
        rows = core.store.get_tasks(info["blocked"])
        assert [decode(rows[t].result) for t in info["blocked"]] == list(range(5))
    finally:
        core.shutdown()


def test_a_read_fails_the_tasks_of_a_process_that_died_meanwhile(
    home: Path, markers: Path
) -> None:
    core = ServiceCore(SQLiteStore(home / "freight.db"))  # alive all along
    try:
        child = Child("batch", str(home), str(markers), "crash")
        info = child.line()
        got: list[str] = []
        core.subscribe(info["group"], lambda m: got.append(m["task_id"]))
        child.kill()
        status = core.get_task(info["blocked"][0])
        assert status["status"] == "failed"
        assert "the service stopped" in status["exception"]
        assert core.sweep()["orphans_failed"] == 4
        assert sorted(got) == sorted(info["blocked"])  # pushed to a re-attached stream
    finally:
        core.shutdown()


def _statuses(db: Path) -> dict[str, str]:
    from service_helpers import statuses

    return statuses(db)


def test_two_stores_in_one_process_do_not_fail_each_others_tasks(
    home: Path,
) -> None:
    from service_helpers import HoldingLink

    a = ServiceCore(SQLiteStore(home / "freight.db"))
    link = HoldingLink()
    a.add_endpoint(link)
    fid = register_source(a, "echo", ECHO_SRC)
    (tid,) = a.submit(link.endpoint_id, {"tasks": {fid: [text_payload(1)]}})["tasks"][
        fid
    ]
    b = ServiceCore(SQLiteStore(home / "freight.db"))
    try:
        assert b.sweep()["orphans_failed"] == 0
        assert b.get_task(tid)["status"] == "waiting-for-launch"
        a.store.close()  # as if a's process had died: its lock is gone
        status = b.get_task(tid)
        assert status["status"] == "failed"
        assert "ServiceStopped" in status["exception"]
    finally:
        a.shutdown()
        b.shutdown()


def test_lock_files_of_dead_instances_are_cleaned_up(home: Path) -> None:
    a = ServiceCore(SQLiteStore(home / "freight.db"))
    lock_dir = a.store.lock_dir
    assert [p.stem for p in lock_dir.glob("*.lock")] == [a.store.instance_id]
    a.shutdown()
    assert list(lock_dir.glob("*.lock")) == []


def test_a_clean_shutdown_fails_the_unfinished_tasks(home: Path) -> None:
    from service_helpers import HoldingLink

    core = ServiceCore(SQLiteStore(home / "freight.db"))
    link = HoldingLink()
    core.add_endpoint(link)
    fid = register_source(core, "echo", ECHO_SRC)
    done, running, queued = core.submit(
        link.endpoint_id, {"tasks": {fid: [text_payload(i) for i in range(3)]}}
    )["tasks"][fid]
    link.start([done, running])
    link.succeed([done], "kept")
    core.shutdown()
    assert link.down
    again = ServiceCore(SQLiteStore(home / "freight.db"))
    try:
        rows = again.store.get_tasks([done, running, queued])
        assert decode(rows[done].result) == "kept"
        for t in (running, queued):
            assert _failed_because_the_service_stopped(rows[t])
            assert "shut down" in rows[t].exception_text
    finally:
        again.shutdown()


def test_a_forked_child_neither_uses_nor_stops_its_parents_service(
    home: Path, markers: Path
) -> None:
    from service_helpers import WAIT_SRC

    from freight.service import embedded, store

    core = embedded_service(workers=1)
    fid = register_source(core, "wait_for", WAIT_SRC)
    (tid,) = core.submit(
        core.endpoint_ids[0], {"tasks": {fid: [text_payload(str(markers), "a", 1)]}}
    )["tasks"][fid]
    pid = os.fork()
    if pid == 0:  # the child: it must start afresh
        code = 1
        try:
            fresh = not embedded._SERVICES and not store._LIVE_HERE
            embedded.shutdown_embedded()
            code = 0 if fresh else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert core.store.get_tasks([tid])[tid].status in ("waiting-for-launch", "running")
    (markers / "release").touch()
    wait_until(lambda: core.store.get_tasks([tid])[tid].status == "success")
