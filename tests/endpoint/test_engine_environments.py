"""Execution environments of the ``process`` engine: a venv the test creates,
bad environments, and container runtimes where they work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from engine_helpers import TARGETS_DIR, make_venv

from freight.endpoint.engine import ResourceLimits, WorkItem
from freight.endpoint.errors import EnvironmentUnavailable, TaskTimeout, WorkerLost

WAIT = 120.0
NO_LIMITS = ResourceLimits()


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("venvs")
    return {
        "good": make_venv(root / "good", with_freight=True),
        "bare": make_venv(root / "bare", with_freight=False),
    }


def info(engine, task_id: str, environment: dict[str, str] | None) -> list[str]:
    item = WorkItem(task_id, [b""], NO_LIMITS, environment)
    return engine.submit(item).result(WAIT).decode().split("\n")


def test_a_python_environment_runs_its_tasks_in_that_interpreter(process_engine, venvs):
    engine = process_engine("info", workers=1)
    python = str(venvs["good"])
    executable, prefix, pid = info(engine, "v1", {"type": "python", "location": python})
    assert executable == python
    assert Path(prefix).resolve() == venvs["good"].parent.parent.resolve()
    # The default environment is still this interpreter, in its own sub-pool.
    default_exe, default_prefix, default_pid = info(engine, "d1", None)
    assert (default_exe, default_prefix) == (sys.executable, sys.prefix)
    assert default_pid != pid
    # The venv's sub-pool is reused.
    assert info(engine, "v2", {"type": "python", "location": python})[2] == pid
    assert engine.status().capacity == 2


def test_a_missing_interpreter_fails_that_task_only(process_engine, tmp_path):
    engine = process_engine("info", workers=1)
    missing = str(tmp_path / "nope" / "python")
    future = engine.submit(
        WorkItem("m", [b""], NO_LIMITS, {"type": "python", "location": missing})
    )
    exc = future.exception(WAIT)
    assert isinstance(exc, EnvironmentUnavailable)
    assert (exc.task_id, exc.env_type, exc.location) == ("m", "python", missing)
    assert "no Python interpreter" in exc.reason
    assert info(engine, "ok", None)[0] == sys.executable


@pytest.mark.parametrize(
    "environment",
    [
        {"type": "conda", "location": "/opt/env"},
        {"type": "python"},
        {"location": "/usr/bin/python3"},
        "python",
    ],
)
def test_a_malformed_environment_fails_that_task(process_engine, environment):
    engine = process_engine("info", workers=1)
    exc = engine.submit(WorkItem("b", [b""], NO_LIMITS, environment)).exception(WAIT)
    assert isinstance(exc, EnvironmentUnavailable)
    assert exc.task_id == "b"
    if isinstance(environment, dict) and environment.get("type") == "conda":
        assert "unknown environment type 'conda'" in exc.reason
        assert "python" in exc.reason and "docker" in exc.reason
    assert info(engine, "ok", None)[0] == sys.executable


def test_an_interpreter_without_freight_fails_its_tasks_with_the_reason(
    process_engine, venvs
):
    engine = process_engine("info", workers=1)
    env = {"type": "python", "location": str(venvs["bare"])}
    futures = [
        engine.submit(WorkItem(f"x{i}", [b""], NO_LIMITS, env)) for i in range(2)
    ]
    for f in futures:
        exc = f.exception(WAIT)
        assert isinstance(exc, EnvironmentUnavailable)
        assert "before it was ready" in exc.reason
        assert "No module named" in exc.reason
    assert info(engine, "ok", None)[0] == sys.executable


def _runtime_problem(runtime: str) -> str | None:
    """Why ``runtime`` cannot run containers here, or ``None`` if it can."""
    exe = shutil.which(runtime)
    if exe is None:
        return f"{runtime} is not installed"
    if runtime in ("docker", "podman"):
        probe = subprocess.run(
            [exe, "info"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`{runtime} info` fails (is the daemon running?): {last}"
    return None


@pytest.mark.parametrize("runtime", ["docker", "podman", "apptainer"])
def test_a_container_environment_runs_workers_in_the_container(process_engine, runtime):
    problem = _runtime_problem(runtime)
    if problem is not None:
        pytest.skip(f"cannot test {runtime} environments: {problem}")
    image = os.environ.get(
        "FREIGHT_TEST_CONTAINER_IMAGE",
        "docker://python:3.11-slim" if runtime == "apptainer" else "python:3.11-slim",
    )
    # The image has Python 3.11; freight is mounted from this checkout and its
    # dependencies from this interpreter's site-packages (same Python version).
    engine = process_engine(
        "info", workers=1, extra_path=[TARGETS_DIR, sysconfig.get_path("purelib")]
    )
    env = {"type": runtime, "location": image}
    executable, _prefix, _ = info(engine, "c", env)
    assert executable != sys.executable


def test_a_container_runtime_that_does_not_work_fails_the_task_clearly(
    process_engine,
):
    problem = _runtime_problem("docker")
    if problem is None or shutil.which("docker") is None:
        pytest.skip("needs a docker CLI whose daemon is not running")
    engine = process_engine("info", workers=1)
    exc = engine.submit(
        WorkItem("d", [b""], NO_LIMITS, {"type": "docker", "location": "python:3.11"})
    ).exception(WAIT)
    assert isinstance(exc, EnvironmentUnavailable)
    assert exc.env_type == "docker"
    assert "before it was ready" in exc.reason
    assert info(engine, "ok", None)[0] == sys.executable


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A ``docker`` on PATH that runs containers as plain processes
    (``fake_container_runtime.py``); yields its state directory."""
    state = tmp_path / "state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = Path(TARGETS_DIR) / "fake_container_runtime.py"
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RUNTIME_STATE", str(state))
    return state


def test_container_plumbing_with_a_stand_in_runtime(process_engine, fake_docker):
    import freight

    engine = process_engine(workers=1)
    env = {
        "type": "docker",
        "location": "example/image:1",
        "python": sys.executable,
        "options": ["--network=none"],
    }

    def run(task_id: str, *frames: bytes, **limits: float) -> bytes:
        item = WorkItem(task_id, list(frames), ResourceLimits(**limits), env)
        return engine.submit(item).result(WAIT)

    assert run("a", b"pid").isdigit()
    (args,) = [
        json.loads(line) for line in (fake_docker / "runs").read_text().splitlines()
    ]
    source = os.path.dirname(os.path.abspath(freight.__file__))
    assert args[:5] == ["run", "--rm", "-i", "--name", args[4]]
    assert args[4].startswith("freight-worker-")
    assert ["-v", f"{source}:/opt/freight-src/freight:ro"] == args[7:9]
    assert ["-v", f"{TARGETS_DIR}:/opt/freight-extra/0:ro"] == args[5:7]
    assert "PYTHONPATH=/opt/freight-extra/0:/opt/freight-src" in args
    tail = ["--network=none", "example/image:1", sys.executable, "-m"]
    assert args[-7:-3] == tail
    assert args[-3:] == ["freight.endpoint.worker", "--target", engine.target]

    # A time limit kills the container through the runtime.
    with pytest.raises(TaskTimeout):
        run("slow", b"sleep 60", timeout_s=0.2)
    assert args[4] in (fake_docker / "kills").read_text().split()
    # Workers inside die as elsewhere, and are replaced.
    with pytest.raises(WorkerLost) as info:
        run("exit", b"exit 3")
    assert info.value.exitcode == 3
    assert run("b", b"pid").isdigit()


def test_a_stand_in_container_imports_freight_from_the_mount(
    process_engine, fake_docker
):
    engine = process_engine("freight_file", workers=1)
    env = {"type": "docker", "location": "img", "python": sys.executable}
    item = WorkItem("f", [], NO_LIMITS, env)
    where = engine.submit(item).result(WAIT).decode()
    assert where == str(fake_docker / "root/opt/freight-src/freight/__init__.py")
