"""The embedded default: a service core and a local endpoint in this process.

``embedded_service()`` returns the process-wide ``ServiceCore`` for a home
directory, starting it on first use, the way ``dask.distributed.Client()`` starts
a ``LocalCluster``: state in ``HOME/freight.db`` (SQLite), one local endpoint
running tasks in a pool of worker processes (one per core unless ``workers``
says otherwise).  The endpoint's id is generated once per home and kept, so it is
stable for a user.  Everything stops at interpreter exit.

The home is ``home``, else ``$FREIGHT_HOME``, else the user's data directory
(``platformdirs.user_data_dir("freight")``).
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from pathlib import Path

from freight.service.core import ServiceCore
from freight.service.store import SQLiteStore

__all__ = ["default_home", "embedded_service", "shutdown_embedded"]

_LOCK = threading.Lock()
_SERVICES: dict[Path, ServiceCore] = {}


def default_home() -> Path:
    """``$FREIGHT_HOME``, else the user's data directory for freight."""
    env = os.environ.get("FREIGHT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("freight"))


def embedded_service(
    home: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    engine: str | None = None,
) -> ServiceCore:
    """The embedded service of ``home`` (started on first call; later calls
    return the same one and ignore ``workers`` and ``engine``).

    ``engine`` names an engine plugin (default ``$FREIGHT_ENGINE`` or
    ``process``); ``workers`` its size (default ``$FREIGHT_WORKERS`` or the CPU
    count).
    """
    path = Path(home).expanduser() if home is not None else default_home()
    path = path.resolve()
    with _LOCK:
        found = _SERVICES.get(path)
        if found is not None and not found.closed:
            return found
        from freight.endpoint.endpoint import LocalEndpoint
        from freight.endpoint.engines import load_engine

        store = SQLiteStore(path / "freight.db")
        core = ServiceCore(store)
        endpoint_id = store.setdefault_meta("local_endpoint_id", str(uuid.uuid4()))
        if workers is None and os.environ.get("FREIGHT_WORKERS"):
            workers = int(os.environ["FREIGHT_WORKERS"])
        name = engine or os.environ.get("FREIGHT_ENGINE") or "process"
        link = LocalEndpoint(
            load_engine(name, workers=workers),
            endpoint_id=endpoint_id,
            name="local",
        )
        core.add_endpoint(link)
        _SERVICES[path] = core
        return core


def shutdown_embedded() -> None:
    """Stop every embedded service of this process (also run at exit)."""
    with _LOCK:
        services = list(_SERVICES.values())
        _SERVICES.clear()
    for core in services:
        core.shutdown()


atexit.register(shutdown_embedded)
