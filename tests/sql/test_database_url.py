"""``FREIGHT_DATABASE_URL`` selects the embedded service's database: a Client
scenario on each backend (submit, results, a second session that finds the same
endpoint and the finished tasks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from freight.client import Client, Executor
from freight.service.embedded import embedded_service, shutdown_embedded
from freight.service.sql_store import SqlStore

#: The storage is under test, not the engine: ``thread`` unless the environment
#: names another.
ENGINE = os.environ.get("FREIGHT_ENGINE") or "thread"


def square(x: int) -> int:
    return x * x


@pytest.fixture
def env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("FREIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FREIGHT_ENGINE", ENGINE)
    monkeypatch.setenv("FREIGHT_DATABASE_URL", database_url)
    monkeypatch.delenv("FREIGHT_SERVICE", raising=False)
    monkeypatch.delenv("FREIGHT_WORKERS", raising=False)
    cloudpickle.register_pickle_by_value(__import__(__name__))
    try:
        yield database_url
    finally:
        shutdown_embedded()
        cloudpickle.unregister_pickle_by_value(__import__(__name__))


def test_a_client_session_on_the_configured_database(env: str) -> None:
    core = embedded_service()
    assert isinstance(core.store, SqlStore) and core.store.url == env
    client = Client()
    fid = client.register_function(square)
    with Executor(client=client) as ex:
        futures = [ex.submit_to_registered_function(fid, args=(i,)) for i in range(20)]
        assert [f.result(timeout=60) for f in futures] == [i * i for i in range(20)]
    task_id = futures[3].task_id
    endpoint = client.local_endpoint_id
    shutdown_embedded()

    # A new session on the same database: same endpoint, same finished task.
    again = Client()
    assert again.local_endpoint_id == endpoint
    assert again.get_task(task_id)["status"] == "success"
    assert again.get_result(task_id) == 9
    assert again.get_function(fid)["function_name"] == "square"
