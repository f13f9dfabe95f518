"""The service's storage: one interface, SQLite behind it.

``SQLiteStore`` keeps functions, containers, endpoints, task groups, tasks and
results in one SQLite database (WAL, ``synchronous=NORMAL``: a crashed process
loses nothing committed; a power cut may lose the last transactions).  Writes come
in batches, one transaction each (``add_tasks`` per submitted batch, ``finish`` per
outcome batch), so thousands of tasks a second cost a few commits.  Task
arguments are not stored: a task that has not finished when its service stops is
failed, never re-run.

**Which tasks are orphans.**  Every store (one per service instance) records the
tasks it submits under its ``instance_id`` and holds a lock on its own file
``instances/<instance_id>.lock`` next to the database while it lives.  A task is an
orphan when it is unfinished and its instance's lock is free: that instance closed
or its process died.  ``orphaned_tasks`` never returns tasks of a live instance,
so several processes can share one home.  The lock is a POSIX record lock
(``fcntl.lockf``), not ``flock``: a record lock belongs to the process, so a child
made by ``fork`` does not keep a dead parent's instance looking alive.  Its one
trap, that closing *any* descriptor of the file drops the process's lock, is
avoided by never opening the lock file of an instance of this process
(``_LIVE_HERE``).  A lock file is created under a temporary name, locked, then
renamed into place, so a file under its final name is locked from the moment it
can be seen.

**Schema.**  ``meta.schema_version`` says which schema wrote the file.  A file
from a newer freight is refused (``SchemaTooNew``) before anything in it is
touched; an older or equal one is opened and keeps its data.  Issue 12 moves
storage to SQLAlchemy + Alembic (SQLite and PostgreSQL); this version number is
where its migrations start.
"""

from __future__ import annotations

import errno
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

__all__ = [
    "FINAL",
    "SCHEMA_VERSION",
    "STATUSES",
    "SQLiteStore",
    "SchemaTooNew",
    "StorageError",
    "StoreClosed",
    "TaskRow",
]

#: The schema this freight writes (``meta.schema_version``).
SCHEMA_VERSION = 1

#: The reference's task statuses, in the order a task moves through them.
STATUSES = (
    "received",
    "waiting-for-ep",
    "waiting-for-nodes",
    "waiting-for-launch",
    "running",
    "success",
    "failed",
)
#: Statuses after which a task never changes.
FINAL = ("success", "failed")
_RANK = {s: i for i, s in enumerate(STATUSES)}
_UNFINISHED_SQL = "status NOT IN ('success', 'failed')"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS functions (
        function_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        code TEXT NOT NULL,
        description TEXT,
        metadata TEXT,
        public INTEGER NOT NULL DEFAULT 0,
        group_id TEXT,
        container_id TEXT,
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS containers (
        container_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        location TEXT NOT NULL,
        name TEXT,
        description TEXT,
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS task_groups (
        task_group_id TEXT PRIMARY KEY,
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS instances (
        instance_id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        started REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tasks (
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
    )""",
    "CREATE INDEX IF NOT EXISTS tasks_by_group ON tasks (task_group_id)",
    # Partial indexes: a task enters the first when submitted and leaves it when
    # it finishes; it enters the second when retrieved.  Both stay small.
    "CREATE INDEX IF NOT EXISTS tasks_unfinished_by_instance ON tasks (instance_id)"
    f" WHERE {_UNFINISHED_SQL}",
    "CREATE INDEX IF NOT EXISTS tasks_retrieved ON tasks (retrieved)"
    " WHERE retrieved IS NOT NULL",
    # The first schema's full indexes, replaced by the partial ones above.
    "DROP INDEX IF EXISTS tasks_by_instance_status",
    "DROP INDEX IF EXISTS tasks_by_retrieved",
)

#: Instance ids whose store is open in this process (see the module docstring).
_LIVE_HERE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _forget_live_in_child() -> None:
    # A forked child holds none of its parent's record locks.
    _LIVE_HERE.clear()


os.register_at_fork(after_in_child=_forget_live_in_child)


class StorageError(RuntimeError):
    """The database cannot be used: not a freight database, unreadable, closed."""


class SchemaTooNew(StorageError):
    """The database was written by a newer freight; nothing in it was changed."""


class StoreClosed(StorageError):
    """The store was closed."""


@dataclass(slots=True)
class TaskRow:
    """One task as stored.  ``result`` is ``str`` (text envelope) or ``bytes``."""

    task_id: str
    task_group_id: str
    function_id: str
    endpoint_id: str
    instance_id: str
    status: str
    created: float
    completed: float | None
    result: str | bytes | None
    exception: dict[str, Any] | None
    exception_text: str | None
    details: dict[str, Any] | None
    retrieved: float | None


_TASK_COLUMNS = (
    "task_id, task_group_id, function_id, endpoint_id, instance_id, status, created,"
    " completed, result, exception, exception_text, details, retrieved"
)

#: One outcome for ``finish``: ``(task_id, status, result, exception record,
#: exception text, details, completion time, retrieved time or None)``.
FinishRow = tuple[
    str,
    str,
    str | bytes | None,
    dict[str, Any] | None,
    str | None,
    dict[str, Any] | None,
    float,
    float | None,
]


def _row(values: Sequence[Any]) -> TaskRow:
    (tid, tg, fid, ep, inst, status, created, completed, result, exc, exc_text) = (
        values[:11]
    )
    det, ret = values[11], values[12]
    return TaskRow(
        tid,
        tg,
        fid,
        ep,
        inst,
        status,
        created,
        completed,
        result,
        json.loads(exc) if exc else None,
        exc_text,
        json.loads(det) if det else None,
        ret,
    )


def _lower_than(status: str) -> tuple[str, ...]:
    return STATUSES[: _RANK[status]]


def function_record(values: Sequence[Any]) -> dict[str, Any]:
    """A ``functions`` row (id, name, code, description, metadata, public,
    group, container, created) as ``GET /v2/functions/{id}`` answers it; both
    stores read rows through this."""
    fid, name, code, desc, meta, public, group, container, created = values
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


def function_summary(values: Sequence[Any]) -> dict[str, Any]:
    """A ``functions`` listing row (id, name, description, public, group,
    container, created): no code."""
    fid, name, desc, public, group, container, created = values
    return {
        "function_uuid": fid,
        "function_name": name,
        "description": desc,
        "public": bool(public),
        "group": group,
        "container_uuid": container,
        "created": created,
    }


def container_record(values: Sequence[Any]) -> dict[str, Any]:
    """A ``containers`` row (id, type, location, name, description)."""
    cid, kind, location, name, desc = values
    return {
        "container_id": cid,
        "type": kind,
        "location": location,
        "name": name,
        "description": desc,
    }


class SQLiteStore:
    """The service's state in the SQLite file ``path`` (``":memory:"`` for a
    private in-memory database).  Thread-safe: one connection behind a lock.

    Raises ``SchemaTooNew`` for a database written by a newer freight and
    ``StorageError`` for a file that is not a usable SQLite database.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:"
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._closed = False
        #: Committed write transactions so far (the hot path's cost, for tests).
        self.transactions = 0
        self.instance_id = uuid.uuid4().hex
        self._lock_fd: int | None = None
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot open {self.path}: {e}") from e
        try:
            self._setup()
            self._hold_instance_lock()
        except BaseException:
            self._db.close()
            raise

    # -- setup ---------------------------------------------------------------------
    def _setup(self) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise StorageError(
                f"freight needs SQLite 3.35 or newer; this Python has"
                f" {sqlite3.sqlite_version}"
            )
        db = self._db
        try:
            self._check_schema()  # before anything, even the journal mode, changes
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                self._check_schema()  # again: another process may have won the race
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as e:
            raise StorageError(
                f"{self.path} is not a usable freight database: {e}"
            ) from e

    def _check_schema(self) -> None:
        """Refuse a database of a newer schema before anything is written."""
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return
        found = self._db.execute(
            "SELECT value FROM meta WHERE key='schema_version'"
        ).fetchone()
        if found is None:
            return
        try:
            version = int(found[0])
        except ValueError:
            raise StorageError(
                f"{self.path}: unreadable schema version {found[0]!r}"
            ) from None
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer freight (database schema"
                f" {version}, this freight reads up to {SCHEMA_VERSION}); upgrade"
                " freight to open it, or point FREIGHT_HOME elsewhere"
            )

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        found = self.get_meta("schema_version")
        return int(found) if found is not None else 0

    @property
    def lock_dir(self) -> Path:
        """Where instances keep their lock files."""
        return Path(self.path).parent / "instances"

    def _lock_path(self, instance_id: str) -> Path:
        return self.lock_dir / f"{instance_id}.lock"

    def _hold_instance_lock(self) -> None:
        if not self._memory:
            final = self._lock_path(self.instance_id)
            final.parent.mkdir(parents=True, exist_ok=True)
            temp = final.with_suffix(".new")
            fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(temp, final)
            except BaseException:
                os.close(fd)
                temp.unlink(missing_ok=True)
                raise
            self._lock_fd = fd
        with _LIVE_LOCK:
            _LIVE_HERE.add(self.instance_id)
        with self._tx() as db:
            db.execute(
                "INSERT INTO instances VALUES (?, ?, ?)",
                (self.instance_id, os.getpid(), time.time()),
            )

    def instance_alive(self, instance_id: str) -> bool:
        """True while the store of ``instance_id`` is open, in any process."""
        with _LIVE_LOCK:
            if instance_id in _LIVE_HERE:
                return True
        if self._memory:
            return False  # a private database: every other instance is gone
        try:
            fd = os.open(self._lock_path(instance_id), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return True
            raise
        finally:
            os.close(fd)  # also drops the lock just taken
        return False

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreClosed(f"the store of {self.path} is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.transactions += 1

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._closed:
                raise StoreClosed(f"the store of {self.path} is closed")
            return self._db.execute(sql, params).fetchall()

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._closed

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
        metadata: str | None,
        public: bool,
        group_id: str | None,
        container_id: str | None,
    ) -> None:
        """Store a function; ``metadata`` is JSON text (or ``None``)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO functions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    function_id,
                    name,
                    code,
                    description,
                    metadata,
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
        return function_record(rows[0])

    def delete_function(self, function_id: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM functions WHERE function_id=?", (function_id,)
            )
            return cur.rowcount > 0

    def list_functions(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently registered functions, newest first."""
        rows = self._query(
            "SELECT function_id, name, description, public, group_id, container_id,"
            " created FROM functions ORDER BY created DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [function_summary(r) for r in rows]

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
        return container_record(rows[0])

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
        if status not in _RANK or status in FINAL:
            raise ValueError(f"a new task cannot be {status!r}")
        now = time.time()
        inst = self.instance_id
        rows = [
            (tid, task_group_id, fid, endpoint_id, inst, status, now)
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

    def remove_tasks(self, task_ids: Sequence[str]) -> None:
        """Delete tasks that were never handed to an endpoint (a failed submit)."""
        with self._tx() as db:
            db.executemany(
                "DELETE FROM tasks WHERE task_id=?", [(t,) for t in task_ids]
            )
            db.execute(
                "DELETE FROM task_groups WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE"
                " tasks.task_group_id = task_groups.task_group_id)"
            )

    def set_status(self, task_ids: Sequence[str], status: str) -> None:
        """Move tasks forward to the unfinished ``status``; a task already there
        or further on keeps its status."""
        if status not in _RANK or status in FINAL:
            raise ValueError(f"set_status takes an unfinished status, not {status!r}")
        lower = _lower_than(status)
        marks = ",".join("?" * len(lower))
        with self._tx() as db:
            db.executemany(
                f"UPDATE tasks SET status=? WHERE task_id=? AND status IN ({marks})",
                [(status, t, *lower) for t in task_ids],
            )

    def finish(self, outcomes: Iterable[FinishRow]) -> list[tuple[str, str]]:
        """Record outcomes (see ``FinishRow``) of unfinished tasks, in one
        transaction; returns ``(task_id, task_group_id)`` of those recorded, in
        order.  A task is finished once: an outcome for a finished or unknown
        task, or a task's second outcome in the same batch, is ignored."""
        batch = list(outcomes)
        for row in batch:
            if row[1] not in FINAL:
                raise ValueError(f"an outcome is success or failed, not {row[1]!r}")
        dumps = json.dumps
        done: list[tuple[str, str]] = []
        with self._tx() as db:
            # Which are still open, then one executemany: a statement per row
            # from Python costs more than the lookup (same transaction: nothing
            # changes in between).
            open_groups: dict[str, str] = {}
            ids = [row[0] for row in batch]
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                open_groups.update(
                    db.execute(
                        "SELECT task_id, task_group_id FROM tasks WHERE task_id IN"
                        f" ({marks}) AND {_UNFINISHED_SQL}",
                        part,
                    ).fetchall()
                )
            updates = []
            for tid, status, result, exc, exc_text, details, completed, ret in batch:
                group = open_groups.pop(tid, None)
                if group is None:
                    continue
                done.append((tid, group))
                updates.append(
                    (
                        status,
                        result,
                        dumps(exc) if exc is not None else None,
                        exc_text,
                        dumps(details) if details else None,
                        completed,
                        ret,
                        tid,
                    )
                )
            db.executemany(
                "UPDATE tasks SET status=?, result=?, exception=?, exception_text=?,"
                " details=?, completed=?, retrieved=? WHERE task_id=?",
                updates,
            )
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

    def count_tasks(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM tasks")[0][0])

    def group_task_ids(self, task_group_id: str) -> list[str]:
        return [
            r[0]
            for r in self._query(
                "SELECT task_id FROM tasks WHERE task_group_id=? ORDER BY rowid",
                (task_group_id,),
            )
        ]

    def list_tasks(
        self,
        limit: int,
        *,
        status: str | None = None,
        task_group_id: str | None = None,
    ) -> list[tuple[TaskRow, str | None]]:
        """The ``limit`` most recent tasks, newest first, each with its
        function's name (``None`` once the function is deleted); optionally only
        those with ``status`` or in ``task_group_id``.  Results are left out."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("t.status=?")
            params.append(status)
        if task_group_id is not None:
            where.append("t.task_group_id=?")
            params.append(task_group_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        columns = ", ".join(
            "NULL" if c == "result" else f"t.{c}" for c in _TASK_COLUMNS.split(", ")
        )
        rows = self._query(
            f"SELECT {columns}, f.name FROM tasks t LEFT JOIN functions f ON"
            f" f.function_id = t.function_id {clause} ORDER BY t.rowid DESC LIMIT ?",
            (*params, limit),
        )
        return [(_row(v), v[13]) for v in rows]

    def mark_retrieved(self, task_ids: Sequence[str], now: float) -> None:
        """Start the retention clock of finished, not yet retrieved tasks."""
        with self._tx() as db:
            db.executemany(
                "UPDATE tasks SET retrieved=? WHERE task_id=? AND retrieved IS NULL"
                " AND status IN ('success', 'failed')",
                [(now, t) for t in task_ids],
            )

    def unmark_retrieved(self, task_ids: Sequence[str]) -> None:
        """Undo ``mark_retrieved`` (a push that reached nobody)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE tasks SET retrieved=NULL WHERE task_id=?",
                [(t,) for t in task_ids],
            )

    def purge_retrieved(self, older_than: float) -> int:
        """Delete tasks retrieved before ``older_than`` (a timestamp), and task
        groups left empty; returns the number of tasks deleted."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM tasks WHERE retrieved IS NOT NULL AND retrieved < ?",
                (older_than,),
            )
            count = cur.rowcount
            if count:
                db.execute(
                    "DELETE FROM task_groups WHERE NOT EXISTS (SELECT 1 FROM tasks"
                    " WHERE tasks.task_group_id = task_groups.task_group_id)"
                )
            return count

    # -- instances -------------------------------------------------------------------
    def orphaned_tasks(self) -> list[str]:
        """Unfinished tasks of instances that are no longer alive."""
        instances = [
            r[0]
            for r in self._query(
                f"SELECT DISTINCT instance_id FROM tasks WHERE {_UNFINISHED_SQL}"
            )
        ]
        return self._unfinished_of(i for i in instances if not self.instance_alive(i))

    def orphans_among(self, rows: Iterable[TaskRow]) -> list[str]:
        """Of these rows, the unfinished tasks of instances no longer alive (so a
        read that meets one can fail it without waiting for a restart)."""
        alive: dict[str, bool] = {}
        found: list[str] = []
        for row in rows:
            if row.status in FINAL:
                continue
            inst = row.instance_id
            if inst not in alive:
                alive[inst] = self.instance_alive(inst)
            if not alive[inst]:
                found.append(row.task_id)
        return found

    def _unfinished_of(self, instances: Iterable[str]) -> list[str]:
        ids: list[str] = []
        for inst in instances:
            ids.extend(
                r[0]
                for r in self._query(
                    "SELECT task_id FROM tasks WHERE instance_id=? AND"
                    f" {_UNFINISHED_SQL}",
                    (inst,),
                )
            )
        return ids

    def unfinished_of_this_instance(self) -> list[str]:
        return self._unfinished_of([self.instance_id])

    def forget_dead_instances(self) -> None:
        """Drop the records and lock files of dead instances that own no
        unfinished task."""
        busy = {
            r[0]
            for r in self._query(
                f"SELECT DISTINCT instance_id FROM tasks WHERE {_UNFINISHED_SQL}"
            )
        }
        recorded = {r[0] for r in self._query("SELECT instance_id FROM instances")}
        on_disk: set[str] = set()
        if not self._memory and self.lock_dir.is_dir():
            on_disk = {p.stem for p in self.lock_dir.glob("*.lock")}
        dead = [
            i
            for i in (recorded | on_disk) - busy
            if i != self.instance_id and not self.instance_alive(i)
        ]
        if not dead:
            return
        with self._tx() as db:
            db.executemany(
                "DELETE FROM instances WHERE instance_id=?", [(i,) for i in dead]
            )
        if not self._memory:
            for inst in dead:
                self._lock_path(inst).unlink(missing_ok=True)

    def live_instances(self) -> list[dict[str, Any]]:
        """The recorded instances whose store is open: ``instance_id``, ``pid``,
        ``started``."""
        rows = self._query("SELECT instance_id, pid, started FROM instances")
        return [
            {"instance_id": i, "pid": p, "started": s}
            for i, p, s in rows
            if self.instance_alive(i)
        ]

    def close(self) -> None:
        """Close the database and release this instance's lock; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                with self._tx() as db:
                    db.execute(
                        "DELETE FROM instances WHERE instance_id=?",
                        (self.instance_id,),
                    )
            except sqlite3.Error:
                pass  # the next start forgets this instance instead
            self._closed = True
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            if self._lock_fd is not None:
                self._lock_path(self.instance_id).unlink(missing_ok=True)
                os.close(self._lock_fd)
                self._lock_fd = None
            with _LIVE_LOCK:
                _LIVE_HERE.discard(self.instance_id)
