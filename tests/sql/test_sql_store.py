"""``SqlStore`` on SQLite and PostgreSQL: the ``SQLiteStore`` interface's
behaviour, batches in one transaction, liveness by heartbeat across processes,
and Alembic upgrades that keep the data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from freight.service.sql_store import (
    HEAD_SCHEMA_VERSION,
    SqlStore,
    make_engine,
    upgrade,
)
from freight.service.store import SchemaTooNew, SQLiteStore, StoreClosed

TG = "tg-1"
EP = "ep-1"


def _outcome(tid: str, status: str, result: str | bytes | None) -> tuple:  # type: ignore[type-arg]
    return (tid, status, result, None, None, None, 1.0, None)


def test_tasks_round_trip_and_finish_once(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        assert store.schema_version() == HEAD_SCHEMA_VERSION
        ids = [f"t{i}" for i in range(1200)]  # more than one IN-chunk of 500
        before = store.transactions
        store.add_tasks(TG, EP, [(t, "f1") for t in ids], "waiting-for-launch")
        assert store.transactions - before == 1
        store.set_status(ids[:2], "running")
        store.set_status(ids[:1], "waiting-for-launch")  # never backwards
        assert store.get_tasks(ids[:1])["t0"].status == "running"

        before = store.transactions
        outcomes = [_outcome(t, "success", f"r{t}") for t in ids[:-1]]
        outcomes.append(_outcome(ids[-1], "failed", b"\x00\xffbytes"))
        outcomes.append(_outcome("t0", "failed", "second outcome"))  # ignored
        outcomes.append(_outcome("nope", "success", "unknown task"))  # ignored
        done = store.finish(outcomes)
        assert store.transactions - before == 1
        assert done == [(t, TG) for t in ids]
        assert store.finish([_outcome("t1", "failed", "late")]) == []

        rows = store.get_tasks(ids)
        assert rows["t0"].result == "rt0" and rows["t0"].status == "success"
        assert rows[ids[-1]].result == b"\x00\xffbytes"
        assert rows[ids[-1]].status == "failed"
        assert store.group_task_ids(TG) == ids  # insertion order
        assert store.count_tasks() == len(ids)
        listed = store.list_tasks(3)
        assert [r.task_id for r, _ in listed] == ids[::-1][:3]
        assert all(r.result is None and name is None for r, name in listed)
        with pytest.raises(ValueError, match="success or failed"):
            store.finish([_outcome("t0", "running", None)])
        with pytest.raises(ValueError, match="cannot be"):
            store.add_tasks(TG, EP, [("x", "f")], "success")
    finally:
        store.close()


def test_functions_containers_meta_and_retention(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        store.add_container("c1", "docker", "img", "n", None)
        for i in range(3):
            store.add_function(
                f"f{i}",
                f"fn{i}",
                "code",
                description=None,
                metadata='{"a": 1}',
                public=True,
                group_id=None,
                container_id="c1",
            )
        assert store.get_function("f1") is not None
        assert store.get_function("f1")["metadata"] == {"a": 1}  # type: ignore[index]
        assert store.get_container("c1")["type"] == "docker"  # type: ignore[index]
        assert [f["function_uuid"] for f in store.list_functions(2)] == ["f2", "f1"]
        assert store.delete_function("f1") and not store.delete_function("f1")
        assert store.setdefault_meta("k", "v") == "v"
        assert store.setdefault_meta("k", "w") == "v"

        store.add_tasks(TG, EP, [("a", "f0"), ("b", "f0")], "waiting-for-launch")
        assert store.list_tasks(5, task_group_id=TG)[0][1] == "fn0"
        store.finish([_outcome("a", "success", "x"), _outcome("b", "success", "y")])
        store.mark_retrieved(["a"], 100.0)
        store.mark_retrieved(["a", "b"], 500.0)  # a keeps its first time
        store.unmark_retrieved(["b"])
        assert store.purge_retrieved(200.0) == 1
        assert store.task_group_exists(TG) and list(store.get_tasks(["a", "b"])) == [
            "b"
        ]
        store.remove_tasks(["b"])
        assert not store.task_group_exists(TG)
    finally:
        store.close()
    with pytest.raises(StoreClosed):
        store.get_meta("k")
    store.close()  # idempotent


_CHILD = """
import sys
from freight.service.sql_store import SqlStore
s = SqlStore(sys.argv[1], heartbeat_s=0.2, dead_after_s=3.0)
s.add_tasks("g", "e", [("child-task", "f")], "running")
print(s.instance_id, flush=True)
sys.stdin.read()
"""


def test_a_killed_instance_s_tasks_become_orphans(database_url: str) -> None:
    store = SqlStore(database_url, heartbeat_s=0.2, dead_after_s=3.0)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        other = child.stdout.readline().strip()
        assert other
        # Alive: its heartbeat is fresh, so its task is not an orphan.
        assert store.instance_alive(other)
        assert store.orphaned_tasks() == []
        assert {i["instance_id"] for i in store.live_instances()} == {
            store.instance_id,
            other,
        }
        child.kill()
        child.wait(30)
        deadline = time.monotonic() + 60
        while store.orphaned_tasks() == [] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.orphaned_tasks() == ["child-task"]
        assert not store.instance_alive(other)
        store.forget_dead_instances()  # it still owns an unfinished task
        store.finish([_outcome("child-task", "failed", None)])
        store.forget_dead_instances()
        assert [i["instance_id"] for i in store.live_instances()] == [store.instance_id]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        store.close()


def test_an_initial_revision_database_keeps_its_data(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO tasks (task_id, task_group_id, function_id,"
                    " endpoint_id, instance_id, status, created, completed)"
                    " VALUES ('old', 'g', 'f', 'e', 'gone', 'success', 1.0, 2.0)"
                )
            )
            conn.execute(sa.text("INSERT INTO task_groups VALUES ('g', 1.0)"))
            assert (
                conn.execute(
                    sa.text("SELECT value FROM meta WHERE key='schema_version'")
                ).scalar()
                == "1"
            )
    finally:
        engine.dispose()
    store = SqlStore(database_url)
    try:
        assert store.schema_version() == HEAD_SCHEMA_VERSION
        assert store.get_tasks(["old"])["old"].status == "success"
        assert store.group_task_ids("g") == ["old"]
    finally:
        store.close()


def test_a_sqlite_store_file_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "freight.db"
    old = SQLiteStore(path)
    old.add_tasks(TG, EP, [("t1", "f"), ("t2", "f")], "waiting-for-launch")
    old.finish([_outcome("t1", "success", "kept")])
    old.setdefault_meta("local_endpoint_id", "ep-kept")
    old.close()
    store = SqlStore(f"sqlite:///{path}")
    try:
        assert store.schema_version() == HEAD_SCHEMA_VERSION
        assert store.get_tasks(["t1"])["t1"].result == "kept"
        assert store.group_task_ids(TG) == ["t1", "t2"]
        assert store.get_meta("local_endpoint_id") == "ep-kept"
        assert store.orphaned_tasks() == ["t2"]  # its instance is gone
    finally:
        store.close()
    # The older store now refuses the upgraded file instead of misreading it.
    with pytest.raises(SchemaTooNew):
        SQLiteStore(path)


def test_an_unknown_revision_is_refused_untouched(database_url: str) -> None:
    SqlStore(database_url).close()
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num='9999'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaTooNew, match="newer freight"):
        SqlStore(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
                == "9999"
            )
            assert conn.execute(sa.text("SELECT COUNT(*) FROM instances")).scalar() == 0
    finally:
        engine.dispose()


def test_an_unusable_database_is_a_storage_error(tmp_path: Path) -> None:
    from freight.service.store import StorageError

    bad = tmp_path / "not-a-db"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(StorageError):
        SqlStore(f"sqlite:///{bad}")
