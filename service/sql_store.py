"""The service's storage on SQLAlchemy 2 Core: SQLite or PostgreSQL (psycopg 3).

``SqlStore(url)`` has the interface of ``freight.service.store.SQLiteStore`` (what
``ServiceCore`` uses) over ``sqlite:///PATH`` or ``postgresql+psycopg://...``.
Writes come in batches, one transaction per call (executemany inserts and
updates), as in ``SQLiteStore``.

**Schema.**  Alembic migrations (``freight/service/migrations``) own the schema;
opening a store runs ``upgrade head`` (under a lock: a PostgreSQL advisory lock,
or a lock file beside a SQLite file), so an older database is upgraded and keeps
its data.  A SQLite file written by ``SQLiteStore`` (schema 1, no Alembic
revision) is stamped with the initial revision first, then upgraded.  A database
at a revision this freight does not know is refused untouched (``SchemaTooNew``).
Revision 0002 adds ``instances.seen`` and records ``meta.schema_version`` 2, so
an older ``SQLiteStore`` refuses an upgraded file instead of misreading it.

**Which tasks are orphans.**  Instances may run on several hosts, so liveness
cannot be a local lock file: each store records itself in ``instances`` and a
daemon thread sets ``instances.seen`` to the *database's* clock every
``heartbeat_s`` seconds (default 5).  An instance is alive while its ``seen`` is
less than ``dead_after_s`` (default 30) old, by the database's clock (no clock
skew between hosts), or while its store is open in this process.  A task is an
orphan when it is unfinished and its instance is not alive.  The price: a
crashed instance's tasks are failed up to ``dead_after_s`` later, not at once.

**Order.**  Insertion order (a group's task list, newest-first listings) is
SQLite's ``rowid``, and on PostgreSQL an identity column ``seq`` that the
migrations add to ``tasks`` and ``functions`` there.

**Results.**  A result is ``str`` or ``bytes``.  SQLite keeps either as is (same
file format as ``SQLiteStore``); on PostgreSQL the ``bytea`` column holds a tag
byte (``t`` text, ``b`` bytes) before the value.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from freight.service.store import (
    _RANK,
    FINAL,
    FinishRow,
    SchemaTooNew,
    StorageError,
    StoreClosed,
    TaskRow,
    _lower_than,
    _row,
    container_record,
    function_record,
    function_summary,
)

__all__ = [
    "DEFAULT_DEAD_AFTER_S",
    "DEFAULT_HEARTBEAT_S",
    "HEAD_SCHEMA_VERSION",
    "SqlStore",
    "make_engine",
    "upgrade",
]

DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_DEAD_AFTER_S = 30.0
#: ``meta.schema_version`` after the newest migration.
HEAD_SCHEMA_VERSION = 2

_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATE_LOCK_KEY = 0x46524549  # pg_advisory_lock key of schema upgrades


class _Result(sa.types.TypeDecorator[str | bytes]):
    """``str | bytes`` as is on SQLite, tagged in ``bytea`` elsewhere."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_Raw())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: str | bytes | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "sqlite":
            return value
        if isinstance(value, str):
            return b"t" + value.encode()
        return b"b" + bytes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | bytes | None:
        if value is None or dialect.name == "sqlite":
            return value  # type: ignore[no-any-return]
        raw = bytes(value)
        return raw[1:].decode() if raw[:1] == b"t" else raw[1:]


class _Raw(sa.types.UserDefinedType[Any]):
    """A SQLite column whose values pass through unconverted."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "BLOB"


_md = sa.MetaData()
_meta = sa.Table(
    "meta",
    _md,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
_functions = sa.Table(
    "functions",
    _md,
    sa.Column("function_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("metadata", sa.Text),
    sa.Column("public", sa.Integer, nullable=False),
    sa.Column("group_id", sa.Text),
    sa.Column("container_id", sa.Text),
    sa.Column("created", sa.Double, nullable=False),
)
_containers = sa.Table(
    "containers",
    _md,
    sa.Column("container_id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("created", sa.Double, nullable=False),
)
_groups = sa.Table(
    "task_groups",
    _md,
    sa.Column("task_group_id", sa.Text, primary_key=True),
    sa.Column("created", sa.Double, nullable=False),
)
_instances = sa.Table(
    "instances",
    _md,
    sa.Column("instance_id", sa.Text, primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", sa.Double, nullable=False),
    sa.Column("seen", sa.Double),
)
_tasks = sa.Table(
    "tasks",
    _md,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("task_group_id", sa.Text, nullable=False),
    sa.Column("function_id", sa.Text, nullable=False),
    sa.Column("endpoint_id", sa.Text, nullable=False),
    sa.Column("instance_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("completed", sa.Double),
    sa.Column("result", _Result),
    sa.Column("exception", sa.Text),
    sa.Column("exception_text", sa.Text),
    sa.Column("details", sa.Text),
    sa.Column("retrieved", sa.Double),
)
_T = _tasks.c
_TASK_COLS = [
    _T.task_id,
    _T.task_group_id,
    _T.function_id,
    _T.endpoint_id,
    _T.instance_id,
    _T.status,
    _T.created,
    _T.completed,
    _T.result,
    _T.exception,
    _T.exception_text,
    _T.details,
    _T.retrieved,
]


def _status_in(statuses: Sequence[str]) -> sa.ColumnElement[bool]:
    """``status IN (...)`` with the (constant) statuses inline, usable in an
    executemany (expanding parameters are not)."""
    return _T.status.in_([sa.literal_column(f"'{s}'") for s in statuses])


_UNFINISHED = sa.not_(_status_in(FINAL))

_LIVE_HERE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _forget_live_in_child() -> None:
    _LIVE_HERE.clear()


os.register_at_fork(after_in_child=_forget_live_in_child)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, ``synchronous=NORMAL`` and
    ``BEGIN IMMEDIATE`` transactions (as ``SQLiteStore``)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = parsed.database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN below
        cur = dbapi_conn.cursor()
        if database != ":memory:":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATE_LOCK_KEY}
            )
            conn.commit()
            try:
                yield
            finally:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATE_LOCK_KEY}
                )
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    fd = os.open(database + ".migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (Alembic); a
    ``SQLiteStore`` file without a revision is stamped ``0001`` first.  Raises
    ``SchemaTooNew`` (nothing changed) for a revision this freight does not
    know."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    with _migration_lock(engine), engine.connect() as conn:
        cfg = _alembic_config(conn)
        script = ScriptDirectory.from_config(cfg)
        current = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
        if current is not None:
            try:
                script.get_revision(current)
            except CommandError:
                raise SchemaTooNew(
                    f"{engine.url.render_as_string()} was written by a newer freight"
                    f" (schema revision {current!r}); upgrade freight to open it"
                ) from None
        else:
            tables = set(sa.inspect(conn).get_table_names())
            conn.rollback()
            if "meta" in tables:
                version = conn.execute(
                    sa.select(_meta.c.value).where(_meta.c.key == "schema_version")
                ).scalar()
                conn.rollback()
                if version is not None and version != "1":
                    raise SchemaTooNew(
                        f"{engine.url.render_as_string()}: schema version"
                        f" {version} without an Alembic revision; this freight"
                        " upgrades only schema 1"
                    )
                command.stamp(cfg, "0001")
                conn.commit()
        command.upgrade(cfg, revision)
        conn.commit()


class SqlStore:
    """The service's state in the database at ``url`` (SQLAlchemy URL).
    Thread-safe.  Raises ``SchemaTooNew`` for a database of a newer freight and
    ``StorageError`` for one it cannot use."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        dead_after_s: float = DEFAULT_DEAD_AFTER_S,
    ) -> None:
        if not heartbeat_s > 0 or not dead_after_s > heartbeat_s:
            raise ValueError("need 0 < heartbeat_s < dead_after_s")
        self.url = url
        self.path = sa.make_url(url).render_as_string(hide_password=True)
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        self.instance_id = uuid.uuid4().hex
        #: Committed write transactions so far (the hot path's cost, for tests).
        self.transactions = 0
        self._closed = False
        self._stop = threading.Event()
        try:
            self._engine = make_engine(url)
        except (sa.exc.SQLAlchemyError, ValueError) as e:
            raise StorageError(f"cannot open {self.path}: {e}") from e
        self._sqlite = self._engine.dialect.name == "sqlite"
        # SQLite has one writer anyway: serialise here rather than in busy waits.
        self._lock: threading.RLock | None = threading.RLock() if self._sqlite else None
        self._order_tasks: sa.ColumnElement[Any] = sa.literal_column(
            "tasks.rowid" if self._sqlite else "tasks.seq"
        )
        self._order_functions: sa.ColumnElement[Any] = sa.literal_column(
            "functions.rowid" if self._sqlite else "functions.seq"
        )
        if self._sqlite:
            self._now: sa.ColumnElement[float] = sa.literal_column(
                "((julianday('now') - 2440587.5) * 86400.0)", sa.Double
            )
        else:
            self._now = sa.cast(
                sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Double
            )
        try:
            upgrade(self._engine)
            with self._tx() as conn:
                conn.execute(
                    _instances.insert().values(
                        instance_id=self.instance_id,
                        pid=os.getpid(),
                        started=time.time(),
                        seen=self._now,
                    )
                )
        except StorageError:
            self._engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as e:
            self._engine.dispose()
            raise StorageError(
                f"{self.path} is not a usable freight database: {e}"
            ) from e
        except BaseException:
            self._engine.dispose()
            raise
        with _LIVE_LOCK:
            _LIVE_HERE.add(self.instance_id)
        self._beat = threading.Thread(
            target=self._heartbeat, name="freight-store-heartbeat", daemon=True
        )
        self._beat.start()

    # -- plumbing --------------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._lock is None:
            if self._closed:
                raise StoreClosed(f"the store of {self.path} is closed")
            yield
            return
        with self._lock:
            if self._closed:
                raise StoreClosed(f"the store of {self.path} is closed")
            yield

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._guard(), self._engine.begin() as conn:
            yield conn
        self.transactions += 1

    def _query(self, stmt: sa.Executable) -> list[Any]:
        with self._guard(), self._engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def _heartbeat(self) -> None:
        beat = (
            _instances.update()
            .where(_instances.c.instance_id == self.instance_id)
            .values(seen=self._now)
        )
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self._guard(), self._engine.begin() as conn:
                    conn.execute(beat)
            except StoreClosed:
                return
            except sa.exc.SQLAlchemyError:
                continue  # the database is away for now; try again next beat

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._closed

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        found = self.get_meta("schema_version")
        return int(found) if found is not None else 0

    # -- meta ----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query(sa.select(_meta.c.value).where(_meta.c.key == key))
        return str(rows[0][0]) if rows else None

    def setdefault_meta(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first if there is none."""
        with self._tx() as conn:
            found = conn.execute(
                sa.select(_meta.c.value).where(_meta.c.key == key)
            ).scalar()
            if found is None:
                conn.execute(_meta.insert().values(key=key, value=value))
                return value
            return str(found)

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
        with self._tx() as conn:
            conn.execute(
                _functions.insert().values(
                    function_id=function_id,
                    name=name,
                    code=code,
                    description=description,
                    metadata=metadata,
                    public=int(public),
                    group_id=group_id,
                    container_id=container_id,
                    created=time.time(),
                )
            )

    def get_function(self, function_id: str) -> dict[str, Any] | None:
        f = _functions.c
        rows = self._query(
            sa.select(
                f.function_id,
                f.name,
                f.code,
                f.description,
                f.metadata,
                f.public,
                f.group_id,
                f.container_id,
                f.created,
            ).where(f.function_id == function_id)
        )
        if not rows:
            return None
        return function_record(rows[0])

    def delete_function(self, function_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                _functions.delete().where(_functions.c.function_id == function_id)
            )
            return cur.rowcount > 0

    def list_functions(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently registered functions, newest first."""
        f = _functions.c
        rows = self._query(
            sa.select(
                f.function_id,
                f.name,
                f.description,
                f.public,
                f.group_id,
                f.container_id,
                f.created,
            )
            .order_by(f.created.desc(), self._order_functions.desc())
            .limit(limit)
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
        with self._tx() as conn:
            conn.execute(
                _containers.insert().values(
                    container_id=container_id,
                    type=kind,
                    location=location,
                    name=name,
                    description=description,
                    created=time.time(),
                )
            )

    def get_container(self, container_id: str) -> dict[str, Any] | None:
        c = _containers.c
        rows = self._query(
            sa.select(c.container_id, c.type, c.location, c.name, c.description).where(
                c.container_id == container_id
            )
        )
        if not rows:
            return None
        return container_record(rows[0])

    # -- tasks ---------------------------------------------------------------------
    def task_group_exists(self, task_group_id: str) -> bool:
        return bool(
            self._query(
                sa.select(sa.literal(1)).where(_groups.c.task_group_id == task_group_id)
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
            {
                "task_id": tid,
                "task_group_id": task_group_id,
                "function_id": fid,
                "endpoint_id": endpoint_id,
                "instance_id": inst,
                "status": status,
                "created": now,
            }
            for tid, fid in tasks
        ]
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(sa.literal(1)).where(_groups.c.task_group_id == task_group_id)
            ).first()
            if exists is None:
                conn.execute(
                    _groups.insert().values(task_group_id=task_group_id, created=now)
                )
            if rows:
                conn.execute(_tasks.insert(), rows)

    def remove_tasks(self, task_ids: Sequence[str]) -> None:
        """Delete tasks that were never handed to an endpoint (a failed submit)."""
        with self._tx() as conn:
            if task_ids:
                conn.execute(
                    _tasks.delete().where(_T.task_id == sa.bindparam("tid")),
                    [{"tid": t} for t in task_ids],
                )
            conn.execute(self._drop_empty_groups())

    def _drop_empty_groups(self) -> sa.Delete:
        return _groups.delete().where(
            ~sa.exists().where(_T.task_group_id == _groups.c.task_group_id)
        )

    def set_status(self, task_ids: Sequence[str], status: str) -> None:
        """Move tasks forward to the unfinished ``status``; a task already there
        or further on keeps its status."""
        if status not in _RANK or status in FINAL:
            raise ValueError(f"set_status takes an unfinished status, not {status!r}")
        lower = _lower_than(status)
        with self._tx() as conn:
            if task_ids:
                conn.execute(
                    _tasks.update()
                    .where(_T.task_id == sa.bindparam("tid"), _status_in(lower))
                    .values(status=status),
                    [{"tid": t} for t in task_ids],
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
        with self._tx() as conn:
            open_groups: dict[str, str] = {}
            ids = [row[0] for row in batch]
            query = sa.select(_T.task_id, _T.task_group_id).where(
                _T.task_id.in_(sa.bindparam("ids", expanding=True)),
                _UNFINISHED,
            )
            if not self._sqlite:
                query = query.with_for_update()
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                for tid, group in conn.execute(query, {"ids": part}):
                    open_groups[tid] = group
            updates = []
            for tid, status, result, exc, exc_text, details, completed, ret in batch:
                group = open_groups.pop(tid, None)
                if group is None:
                    continue
                done.append((tid, group))
                updates.append(
                    {
                        "tid": tid,
                        "status": status,
                        "result": result,
                        "exception": dumps(exc) if exc is not None else None,
                        "exception_text": exc_text,
                        "details": dumps(details) if details else None,
                        "completed": completed,
                        "retrieved": ret,
                    }
                )
            if updates:
                conn.execute(
                    _tasks.update()
                    .where(_T.task_id == sa.bindparam("tid"))
                    .values(
                        status=sa.bindparam("status"),
                        result=sa.bindparam("result", type_=_Result()),
                        exception=sa.bindparam("exception"),
                        exception_text=sa.bindparam("exception_text"),
                        details=sa.bindparam("details"),
                        completed=sa.bindparam("completed"),
                        retrieved=sa.bindparam("retrieved"),
                    ),
                    updates,
                )
        return done

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRow]:
        found: dict[str, TaskRow] = {}
        ids = list(task_ids)
        query = sa.select(*_TASK_COLS).where(
            _T.task_id.in_(sa.bindparam("ids", expanding=True))
        )
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            with self._guard(), self._engine.connect() as conn:
                values_list = conn.execute(query, {"ids": part}).all()
            for values in values_list:
                row = _row(values)
                found[row.task_id] = row
        return found

    def count_tasks(self) -> int:
        return int(self._query(sa.select(sa.func.count()).select_from(_tasks))[0][0])

    def group_task_ids(self, task_group_id: str) -> list[str]:
        return [
            r[0]
            for r in self._query(
                sa.select(_T.task_id)
                .where(_T.task_group_id == task_group_id)
                .order_by(self._order_tasks)
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
        cols = [sa.null().label("result") if c is _T.result else c for c in _TASK_COLS]
        query = sa.select(*cols, _functions.c.name).select_from(
            _tasks.outerjoin(_functions, _functions.c.function_id == _T.function_id)
        )
        if status is not None:
            query = query.where(_T.status == status)
        if task_group_id is not None:
            query = query.where(_T.task_group_id == task_group_id)
        rows = self._query(query.order_by(self._order_tasks.desc()).limit(limit))
        return [(_row(v), v[13]) for v in rows]

    def mark_retrieved(self, task_ids: Sequence[str], now: float) -> None:
        """Start the retention clock of finished, not yet retrieved tasks."""
        with self._tx() as conn:
            if task_ids:
                conn.execute(
                    _tasks.update()
                    .where(
                        _T.task_id == sa.bindparam("tid"),
                        _T.retrieved.is_(None),
                        _status_in(FINAL),
                    )
                    .values(retrieved=now),
                    [{"tid": t} for t in task_ids],
                )

    def unmark_retrieved(self, task_ids: Sequence[str]) -> None:
        """Undo ``mark_retrieved`` (a push that reached nobody)."""
        with self._tx() as conn:
            if task_ids:
                conn.execute(
                    _tasks.update()
                    .where(_T.task_id == sa.bindparam("tid"))
                    .values(retrieved=None),
                    [{"tid": t} for t in task_ids],
                )

    def purge_retrieved(self, older_than: float) -> int:
        """Delete tasks retrieved before ``older_than`` (a timestamp), and task
        groups left empty; returns the number of tasks deleted."""
        with self._tx() as conn:
            cur = conn.execute(
                _tasks.delete().where(
                    _T.retrieved.is_not(None), _T.retrieved < older_than
                )
            )
            count = int(cur.rowcount)
            if count:
                conn.execute(self._drop_empty_groups())
            return count

    # -- instances -------------------------------------------------------------------
    def _alive_clause(self) -> sa.ColumnElement[bool]:
        return _instances.c.seen > self._now - self.dead_after_s

    def _alive_set(self, instance_ids: Iterable[str]) -> set[str]:
        wanted = set(instance_ids)
        with _LIVE_LOCK:
            alive = wanted & _LIVE_HERE
        rest = list(wanted - alive)
        if rest:
            alive.update(
                r[0]
                for r in self._query(
                    sa.select(_instances.c.instance_id).where(
                        _instances.c.instance_id.in_(rest), self._alive_clause()
                    )
                )
            )
        return alive

    def instance_alive(self, instance_id: str) -> bool:
        """True while the store of ``instance_id`` is open here, or its heartbeat
        is younger than ``dead_after_s``."""
        return instance_id in self._alive_set([instance_id])

    def orphaned_tasks(self) -> list[str]:
        """Unfinished tasks of instances that are no longer alive."""
        instances = {
            r[0]
            for r in self._query(
                sa.select(_T.instance_id).where(_UNFINISHED).distinct()
            )
        }
        dead = instances - self._alive_set(instances)
        return self._unfinished_of(dead)

    def orphans_among(self, rows: Iterable[TaskRow]) -> list[str]:
        """Of these rows, the unfinished tasks of instances no longer alive."""
        pending = [r for r in rows if r.status not in FINAL]
        if not pending:
            return []
        alive = self._alive_set(r.instance_id for r in pending)
        return [r.task_id for r in pending if r.instance_id not in alive]

    def _unfinished_of(self, instances: Iterable[str]) -> list[str]:
        ids: list[str] = []
        for inst in instances:
            ids.extend(
                r[0]
                for r in self._query(
                    sa.select(_T.task_id).where(_T.instance_id == inst, _UNFINISHED)
                )
            )
        return ids

    def unfinished_of_this_instance(self) -> list[str]:
        return self._unfinished_of([self.instance_id])

    def forget_dead_instances(self) -> None:
        """Drop the records of dead instances that own no unfinished task."""
        busy = {
            r[0]
            for r in self._query(
                sa.select(_T.instance_id).where(_UNFINISHED).distinct()
            )
        }
        recorded = {r[0] for r in self._query(sa.select(_instances.c.instance_id))}
        candidates = recorded - busy - {self.instance_id}
        dead = candidates - self._alive_set(candidates)
        if not dead:
            return
        with self._tx() as conn:
            conn.execute(
                _instances.delete().where(_instances.c.instance_id.in_(sorted(dead)))
            )

    def live_instances(self) -> list[dict[str, Any]]:
        """The recorded instances that are alive: ``instance_id``, ``pid``,
        ``started``."""
        i = _instances.c
        rows = self._query(sa.select(i.instance_id, i.pid, i.started))
        alive = self._alive_set(r[0] for r in rows)
        return [
            {"instance_id": a, "pid": p, "started": s} for a, p, s in rows if a in alive
        ]

    def close(self) -> None:
        """Remove this instance's record and close the database; idempotent."""
        if self._closed:
            return
        self._stop.set()
        try:
            with self._tx() as conn:
                conn.execute(
                    _instances.delete().where(
                        _instances.c.instance_id == self.instance_id
                    )
                )
        except (sa.exc.SQLAlchemyError, StoreClosed):
            pass  # its heartbeat stops: it is dead after dead_after_s anyway
        if self._lock is not None:
            with self._lock:
                self._closed = True
        else:
            self._closed = True
        with _LIVE_LOCK:
            _LIVE_HERE.discard(self.instance_id)
        if self._beat is not threading.current_thread():
            self._beat.join(timeout=10)
        self._engine.dispose()
