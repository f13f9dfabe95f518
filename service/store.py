"""The service's storage: one interface, SQLite behind it.

``SQLiteStore`` keeps functions, containers, endpoints, task groups, tasks and
results in one SQLite database (WAL, ``synchronous=NORMAL``: a crashed process
loses nothing committed; a power cut may lose the last transactions).  Writes come
in batches, one transaction each, so thousands of tasks a second cost a few
commits.  Task arguments are not stored: a task that has not finished when its
service stops is failed on the next start, never re-run (``fail_orphans``).

Every service instance registers itself and holds an exclusive ``flock`` on its
own lock file while it lives; ``fail_orphans`` only fails tasks of instances
whose lock is free, so two processes can share one home.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "TaskRow"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS functions (
    function_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    metadata TEXT,
    public INTEGER NOT NULL DEFAULT 0,
    group_id TEXT,
    container_id TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    container_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    location TEXT NOT NULL,
    name TEXT,
    description TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS task_groups (
    task_group_id TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    task_group_id TEXT NOT NULL,
    function_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    completed REAL,
    result BLOB,
    exception TEXT,
    exception_text TEXT,
    details TEXT,
    retrieved REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_group ON tasks (task_group_id);
CREATE INDEX IF NOT EXISTS tasks_by_instance_status ON tasks (instance_id, status);
CREATE INDEX IF NOT EXISTS tasks_by_retrieved ON tasks (retrieved);
"""

#: Statuses after which a task never changes.
FINAL = ("success", "failed")


@dataclass(slots=True)
class TaskRow:
    """One task as stored.  ``result`` is ``str`` (text envelope) or ``bytes``."""

    task_id: str
    task_group_id: str
    function_id: str
    endpoint_id: str
    status: str
    created: float
    completed: float | None
    result: str | bytes | None
    exception: dict[str, Any] | None
    exception_text: str | None
    details: dict[str, Any] | None
    retrieved: float | None


_TASK_COLUMNS = (
    "task_id, task_group_id, function_id, endpoint_id, status, created, completed,"
    " result, exception, exception_text, details, retrieved"
)


def _row(values: Sequence[Any]) -> TaskRow:
    (tid, tg, fid, ep, status, created, completed, result, exc, exc_text, det, ret) = (
        values
    )
    return TaskRow(
        tid,
        tg,
        fid,
        ep,
        status,
        created,
        completed,
        result,
        json.loads(exc) if exc else None,
        exc_text,
        json.loads(det) if det else None,
        ret,
    )


class SQLiteStore:
    """The service's state in the SQLite file ``path`` (``":memory:"`` for a
    private in-memory database).  Thread-safe: one connection behind a lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        memory = self.path == ":memory:"
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
        self.instance_id = uuid.uuid4().hex
        self._lock_file: int | None = None
        self._hold_instance_lock(memory)

    # -- setup ---------------------------------------------------------------------
    def _migrate(self) -> None:
        found = self._db.execute(
            "SELECT value FROM meta WHERE key='schema_version'"
        ).fetchone()
        if found is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(found[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer freight (schema"
                f" {found[0]} > {SCHEMA_VERSION}); upgrade freight to open it"
            )

    def _lock_path(self, instance_id: str) -> Path:
        return Path(self.path).parent / "instances" / f"{instance_id}.lock"

    def _hold_instance_lock(self, memory: bool) -> None:
        if not memory:
            path = self._lock_path(self.instance_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_file = fd
        with self._tx() as db:
            db.execute(
                "INSERT INTO instances VALUES (?, ?, ?)",
                (self.instance_id, os.getpid(), time.time()),
            )

    def _instance_alive(self, instance_id: str) -> bool:
        if instance_id == self.instance_id:
            return True
        path = self._lock_path(instance_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- meta ----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def setdefault_meta(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first if there is none."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            return str(
                db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]
            )

    # -- functions and containers ---------------------------------------------------
    def add_function(
        self,
        function_id: str,
        name: str,
        code: str,
        *,
        description: str | None,
        metadata: dict[str, Any] | None,
        public: bool,
        group_id: str | None,
        container_id: str | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO functions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    function_id,
                    name,
                    code,
                    description,
                    json.dumps(metadata) if metadata is not None else None,
                    int(public),
                    group_id,
                    container_id,
                    time.time(),
                ),
            )

    def get_function(self, function_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT function_id, name, code, description, metadata, public, group_id,"
            " container_id, created FROM functions WHERE function_id=?",
            (function_id,),
        )
        if not rows:
            return None
        fid, name, code, desc, meta, public, group, container, created = rows[0]
        return {
            "function_uuid": fid,
            "function_name": name,
            "function_code": code,
            "description": desc,
            "metadata": json.loads(meta) if meta else None,
            "public": bool(public),
            "group": group,
            "container_uuid": container,
            "created": created,
        }

    def delete_function(self, function_id: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM functions WHERE function_id=?", (function_id,)
            )
            return cur.rowcount > 0

    def add_container(
        self,
        container_id: str,
        kind: str,
        location: str,
        name: str | None,
        description: str | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO containers VALUES (?, ?, ?, ?, ?, ?)",
                (container_id, kind, location, name, description, time.time()),
            )

    def get_container(self, container_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT container_id, type, location, name, description FROM containers"
            " WHERE container_id=?",
            (container_id,),
        )
        if not rows:
            return None
        cid, kind, location, name, desc = rows[0]
        return {
            "container_id": cid,
            "type": kind,
            "location": location,
            "name": name,
            "description": desc,
        }

    # -- tasks ---------------------------------------------------------------------
    def task_group_exists(self, task_group_id: str) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM task_groups WHERE task_group_id=?", (task_group_id,)
            )
        )

    def add_tasks(
        self,
        task_group_id: str,
        endpoint_id: str,
        tasks: Iterable[tuple[str, str]],
        status: str,
    ) -> None:
        """Record ``(task_id, function_id)`` pairs, and their group if new, in one
        transaction."""
        now = time.time()
        rows = [
            (tid, task_group_id, fid, endpoint_id, self.instance_id, status, now)
            for tid, fid in tasks
        ]
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO task_groups VALUES (?, ?)", (task_group_id, now)
            )
            db.executemany(
                "INSERT INTO tasks (task_id, task_group_id, function_id, endpoint_id,"
                " instance_id, status, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def set_status(self, task_ids: Sequence[str], status: str) -> None:
        """Move unfinished tasks to ``status``; finished ones keep theirs."""
        with self._tx() as db:
            db.executemany(
                "UPDATE tasks SET status=? WHERE task_id=? AND status NOT IN"
                " ('success', 'failed')",
                [(status, t) for t in task_ids],
            )

    def finish(
        self,
        outcomes: Iterable[
            tuple[
                str,
                str,
                str | bytes | None,
                dict[str, Any] | None,
                str | None,
                dict[str, Any] | None,
                float,
            ]
        ],
    ) -> list[str]:
        """Record ``(task_id, status, result, exception, exception_text, details,
        completion_t)`` for unfinished tasks, in one transaction; returns the ids
        recorded (a task is finished once: later outcomes are ignored)."""
        done: list[str] = []
        with self._tx() as db:
            for tid, status, result, exc, exc_text, details, completed in outcomes:
                cur = db.execute(
                    "UPDATE tasks SET status=?, result=?, exception=?,"
                    " exception_text=?, details=?, completed=? WHERE task_id=? AND"
                    " status NOT IN ('success', 'failed')",
                    (
                        status,
                        result,
                        json.dumps(exc) if exc is not None else None,
                        exc_text,
                        json.dumps(details) if details else None,
                        completed,
                        tid,
                    ),
                )
                if cur.rowcount:
                    done.append(tid)
        return done

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRow]:
        found: dict[str, TaskRow] = {}
        ids = list(task_ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for values in self._query(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id IN ({marks})", part
            ):
                row = _row(values)
                found[row.task_id] = row
        return found

    def group_task_ids(self, task_group_id: str) -> list[str]:
        return [
            r[0]
            for r in self._query(
                "SELECT task_id FROM tasks WHERE task_group_id=? ORDER BY rowid",
                (task_group_id,),
            )
        ]

    def list_tasks(self, limit: int = 50) -> list[TaskRow]:
        """The most recent tasks, newest first."""
        return [
            _row(v)
            for v in self._query(
                f"SELECT {_TASK_COLUMNS} FROM tasks ORDER BY rowid DESC LIMIT ?",
                (limit,),
            )
        ]

    def list_functions(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT function_id, name, description, created FROM functions"
            " ORDER BY created DESC LIMIT ?",
            (limit,),
        )
        return [
            {"function_uuid": f, "function_name": n, "description": d, "created": c}
            for f, n, d, c in rows
        ]

    def mark_retrieved(self, task_ids: Sequence[str]) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "UPDATE tasks SET retrieved=? WHERE task_id=? AND retrieved IS NULL"
                " AND status IN ('success', 'failed')",
                [(now, t) for t in task_ids],
            )

    def purge_retrieved(self, older_than: float) -> int:
        """Delete tasks retrieved before ``older_than`` (a timestamp)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM tasks WHERE retrieved IS NOT NULL AND retrieved < ?",
                (older_than,),
            )
            return cur.rowcount

    def orphaned_tasks(self) -> list[str]:
        """Unfinished tasks of instances that are no longer alive."""
        instances = [r[0] for r in self._query("SELECT instance_id FROM instances")]
        dead = [i for i in instances if not self._instance_alive(i)]
        ids: list[str] = []
        for inst in dead:
            ids.extend(
                r[0]
                for r in self._query(
                    "SELECT task_id FROM tasks WHERE instance_id=? AND status NOT IN"
                    " ('success', 'failed')",
                    (inst,),
                )
            )
        return ids

    def forget_dead_instances(self) -> None:
        """Drop the records of dead instances that own no unfinished task."""
        instances = [r[0] for r in self._query("SELECT instance_id FROM instances")]
        for inst in instances:
            if self._instance_alive(inst):
                continue
            busy = self._query(
                "SELECT 1 FROM tasks WHERE instance_id=? AND status NOT IN"
                " ('success', 'failed') LIMIT 1",
                (inst,),
            )
            if not busy:
                with self._tx() as db:
                    db.execute("DELETE FROM instances WHERE instance_id=?", (inst,))
                self._lock_path(inst).unlink(missing_ok=True)

    def unfinished_of_this_instance(self) -> list[str]:
        return [
            r[0]
            for r in self._query(
                "SELECT task_id FROM tasks WHERE instance_id=? AND status NOT IN"
                " ('success', 'failed')",
                (self.instance_id,),
            )
        ]

    def close(self) -> None:
        """Close the database and release this instance's lock; idempotent."""
        with self._lock:
            if self._lock_file is not None:
                os.close(self._lock_file)
                self._lock_file = None
                self._lock_path(self.instance_id).unlink(missing_ok=True)
                with self._tx() as db:
                    db.execute(
                        "DELETE FROM instances WHERE instance_id=?", (self.instance_id,)
                    )
            try:
                self._db.close()
            except sqlite3.ProgrammingError:
                pass
