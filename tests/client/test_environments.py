"""Execution environments end to end: ``Client.register_container`` and
``register_function(..., container_uuid=...)`` run the function in workers started
from another interpreter (a venv this test creates)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from engine_helpers import make_venv

from freight.client import Client
from freight.client.errors import UnknownContainer
from freight.endpoint.errors import EnvironmentUnavailable
from freight.service.embedded import embedded_service


def where() -> tuple[str, str]:
    import sys

    return sys.executable, sys.prefix


@pytest.fixture(scope="module")
def process_client(freight_home: Path) -> Client:
    home = freight_home / "environments"
    embedded_service(home, workers=1, engine="process")
    return Client(home=home)


def test_a_python_environment_runs_the_function_in_its_interpreter(
    process_client: Client, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv", with_freight=True)
    c = process_client
    cid = c.register_container(str(python), "python")
    fid = c.register_function(where, container_uuid=cid)
    plain = c.register_function(where)
    ep = c.local_endpoint_id
    executable, prefix = _result(c, c.run(endpoint_id=ep, function_id=fid))
    assert Path(prefix).resolve() == (tmp_path / "venv").resolve()
    assert Path(executable).parent.parent.resolve() == (tmp_path / "venv").resolve()
    # A function registered without the environment runs where the service does.
    _, home_prefix = _result(c, c.run(endpoint_id=ep, function_id=plain))
    assert Path(home_prefix).resolve() == Path(sys.prefix).resolve()
    assert c.get_function(fid)["container_uuid"] == cid


def test_an_environment_that_cannot_start_fails_its_task_with_the_reason(
    process_client: Client, tmp_path: Path
) -> None:
    c = process_client
    cid = c.register_container(str(tmp_path / "no" / "python"), "python")
    fid = c.register_function(where, container_uuid=cid)
    task = c.run(endpoint_id=c.local_endpoint_id, function_id=fid)
    with pytest.raises(EnvironmentUnavailable):
        _result(c, task)


def test_an_unknown_container_is_refused_at_registration(
    process_client: Client,
) -> None:
    with pytest.raises(UnknownContainer):
        process_client.register_function(
            where, container_uuid="00000000-0000-4000-8000-000000000000"
        )


def _result(c: Client, task_id: str) -> tuple[str, str]:
    import time

    deadline = time.monotonic() + 120
    while True:
        task = c.get_task(task_id)
        if not task["pending"]:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} did not finish: {task}")
        time.sleep(0.05)
    value: tuple[str, str] = c.get_result(task_id)
    return value
