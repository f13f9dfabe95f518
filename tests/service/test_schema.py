"""The database's schema version: newer refused untouched, older reopened with
its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from service_helpers import SER

from freight.service.store import (
    SCHEMA_VERSION,
    SchemaTooNew,
    SQLiteStore,
    StorageError,
)


def _schema_and_meta(db: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with sqlite3.connect(db) as conn:
        master = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name")
        meta = conn.execute("SELECT key, value FROM meta ORDER BY key")
        return master.fetchall(), meta.fetchall()


def test_a_database_of_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "freight.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        conn.execute("DROP INDEX tasks_by_group")  # as a newer schema might
    before = _schema_and_meta(db)
    with pytest.raises(SchemaTooNew, match=r"newer freight.*99.*upgrade"):
        SQLiteStore(db)
    assert _schema_and_meta(db) == before
    assert not list((tmp_path / "instances").glob("*.lock"))


def test_a_reopened_database_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "freight.db"
    store = SQLiteStore(db)
    store.add_function(
        "f1",
        "echo",
        "01\nxx",
        description="d",
        metadata='{"a": 1}',
        public=False,
        group_id=None,
        container_id=None,
    )
    store.add_tasks("g1", "e1", [("t1", "f1"), ("t2", "f1")], "waiting-for-launch")
    store.finish([("t1", "success", SER.serialize(5), None, None, None, 1.0, None)])
    store.close()
    again = SQLiteStore(db)
    try:
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get_function("f1")["metadata"] == {"a": 1}
        rows = again.get_tasks(["t1", "t2"])
        assert SER.deserialize(rows["t1"].result) == 5
        assert rows["t2"].status == "waiting-for-launch"
    finally:
        again.close()


# The first schema (the vertical slice's): full indexes where there are partial
# ones now.
_FIRST_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE functions (function_id TEXT PRIMARY KEY, name TEXT NOT NULL,
    code TEXT NOT NULL, description TEXT, metadata TEXT,
    public INTEGER NOT NULL DEFAULT 0, group_id TEXT, container_id TEXT,
    created REAL NOT NULL);
CREATE TABLE containers (container_id TEXT PRIMARY KEY, type TEXT NOT NULL,
    location TEXT NOT NULL, name TEXT, description TEXT, created REAL NOT NULL);
CREATE TABLE task_groups (task_group_id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE instances (instance_id TEXT PRIMARY KEY, pid INTEGER NOT NULL,
    started REAL NOT NULL);
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, task_group_id TEXT NOT NULL,
    function_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, instance_id TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, completed REAL, result BLOB,
    exception TEXT, exception_text TEXT, details TEXT, retrieved REAL);
CREATE INDEX tasks_by_group ON tasks (task_group_id);
CREATE INDEX tasks_by_instance_status ON tasks (instance_id, status);
CREATE INDEX tasks_by_retrieved ON tasks (retrieved);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO meta VALUES ('local_endpoint_id', 'ep-1');
INSERT INTO task_groups VALUES ('g', 0);
INSERT INTO tasks (task_id, task_group_id, function_id, endpoint_id, instance_id,
    status, created, result) VALUES ('done', 'g', 'f', 'e', 'gone', 'success', 0,
    '00\nx');
INSERT INTO tasks (task_id, task_group_id, function_id, endpoint_id, instance_id,
    status, created) VALUES ('left', 'g', 'f', 'e', 'gone', 'running', 0);
"""


def test_a_database_of_the_first_schema_opens_with_its_data(tmp_path: Path) -> None:
    db = tmp_path / "freight.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(_FIRST_SCHEMA)
    store = SQLiteStore(db)
    try:
        assert store.get_meta("local_endpoint_id") == "ep-1"
        assert store.get_tasks(["done"])["done"].result == "00\nx"
        # Its task left running by an instance that is gone is an orphan.
        assert store.orphaned_tasks() == ["left"]
    finally:
        store.close()


def test_a_file_that_is_not_a_database_gets_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "freight.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable freight database"):
        SQLiteStore(db)
