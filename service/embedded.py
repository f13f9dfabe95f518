"""The embedded default: a service core and a local endpoint in this process.

``embedded_service()`` returns the process-wide ``ServiceCore`` for a home
directory, starting it on first use, the way ``dask.distributed.Client()`` starts
a ``LocalCluster``: state in ``HOME/freight.db`` (SQLite), one local endpoint
running tasks through an engine (``process`` by default: a pool of worker
processes, one per core unless ``workers`` says otherwise).  The endpoint's id is
generated once per home and kept in the database, so it is the same in every
process and every session that uses that home.  Everything stops at interpreter
exit; a service that was shut down is replaced by a new one on the next call.

The home is ``home``, else ``$FREIGHT_HOME``, else the user's data directory
(``platformdirs.user_data_dir("freight")``).  The service's limits come from the
environment (``FREIGHT_MAX_PAYLOAD_BYTES``, ``FREIGHT_RESULT_RETENTION_S``; see
``freight.service.core``), its database from ``FREIGHT_DATABASE_URL`` (a
SQLAlchemy URL such as ``postgresql+psycopg://host/db``: ``SqlStore``, Alembic
migrations run on open; unset: ``HOME/freight.db``); the engine from ``engine`` or
``$FREIGHT_ENGINE``, its size from ``workers`` or ``$FREIGHT_WORKERS``.
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from freight.service.core import ServiceCore
from freight.service.store import SQLiteStore

if TYPE_CHECKING:
    from freight.service.sql_store import SqlStore

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_ENGINE",
    "LOCAL_ENDPOINT_KEY",
    "database_path",
    "default_home",
    "embedded_service",
    "shutdown_embedded",
]

#: The engine of the local endpoint when neither ``engine`` nor
#: ``$FREIGHT_ENGINE`` names one.
DEFAULT_ENGINE = "process"
#: The database of the service, as a SQLAlchemy URL (``SqlStore``); unset: the
#: SQLite file ``HOME/freight.db`` (``SQLiteStore``).
DATABASE_URL_ENV = "FREIGHT_DATABASE_URL"
#: Where the database keeps the local endpoint's id (``meta`` table).
LOCAL_ENDPOINT_KEY = "local_endpoint_id"

_LOCK = threading.Lock()
_SERVICES: dict[Path, ServiceCore] = {}


def _forget_in_child() -> None:
    # A forked child must neither use nor shut down its parent's services (their
    # threads are not there, and shutting them down would fail the parent's tasks).
    global _LOCK
    _LOCK = threading.Lock()
    _SERVICES.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def default_home() -> Path:
    """``$FREIGHT_HOME``, else the user's data directory for freight."""
    env = os.environ.get("FREIGHT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("freight"))


def database_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file of ``home`` (default: ``default_home()``)."""
    base = Path(home).expanduser() if home is not None else default_home()
    return base / "freight.db"


def _open_store(home: Path) -> SQLiteStore | SqlStore:
    """``$FREIGHT_DATABASE_URL`` (any SQLAlchemy URL: ``postgresql+psycopg://``,
    ``sqlite:///``) through ``SqlStore``, else ``HOME/freight.db`` through
    ``SQLiteStore``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        return SQLiteStore(home / "freight.db")
    from freight.service.sql_store import SqlStore

    return SqlStore(url)


def _workers(workers: int | None) -> int | None:
    if workers is None:
        raw = os.environ.get("FREIGHT_WORKERS")
        if not raw:
            return None
        try:
            workers = int(raw)
        except ValueError:
            raise ValueError(
                f"$FREIGHT_WORKERS must be a positive integer, got {raw!r}"
            ) from None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers: expected an int, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


def embedded_service(
    home: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    engine: str | None = None,
) -> ServiceCore:
    """The embedded service of ``home`` (started on first call; later calls
    return the same one while it runs, and ignore ``workers`` and ``engine``).

    Thread-safe.  Raises ``TypeError``/``ValueError`` for a bad argument or
    environment variable, ``LookupError`` for an unknown engine, and
    ``freight.service.store.StorageError`` for a database it cannot use;
    nothing is left running then.
    """
    if home is not None and not isinstance(home, str | os.PathLike):
        raise TypeError(f"home: expected a path, got {type(home).__name__}")
    if engine is not None and not isinstance(engine, str):
        raise TypeError(f"engine: expected a str, got {type(engine).__name__}")
    path = database_path(home).parent.resolve()
    with _LOCK:
        found = _SERVICES.get(path)
        if found is not None and not found.closed:
            return found
        size = _workers(workers)
        name = engine or os.environ.get("FREIGHT_ENGINE") or DEFAULT_ENGINE
        from freight.endpoint.endpoint import LocalEndpoint
        from freight.endpoint.engines import load_engine

        chosen = load_engine(name, workers=size)
        store = _open_store(path)
        try:
            core = ServiceCore(store)
        except BaseException:
            store.close()
            raise
        try:
            endpoint_id = store.setdefault_meta(LOCAL_ENDPOINT_KEY, str(uuid.uuid4()))
            core.add_endpoint(
                LocalEndpoint(chosen, endpoint_id=endpoint_id, name="local")
            )
        except BaseException:
            core.shutdown()
            raise
        core.start_sweeper()
        _SERVICES[path] = core
        return core


def shutdown_embedded() -> None:
    """Stop every embedded service of this process (also run at exit); the next
    ``embedded_service()`` starts a new one."""
    with _LOCK:
        services = list(_SERVICES.values())
        _SERVICES.clear()
    for core in services:
        core.shutdown()


atexit.register(shutdown_embedded)
