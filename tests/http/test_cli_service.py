"""``freight service``: the CLI serves the embedded service of a home over HTTP, in a
process of its own; a ``Client(service=URL)`` runs a task through it, and SIGINT
stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from freight.client import Client
from freight.client.http import HttpTransport

WAIT_S = 60.0


def square(x: int) -> int:
    return x * x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_freight_service_serves_a_home(tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ)
    env.pop("FREIGHT_SERVICE", None)
    env.setdefault("FREIGHT_ENGINE", "process")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "freight.cli",
            "service",
            "--port",
            str(port),
            "--home",
            str(tmp_path),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                if httpx.get(url + "/v2/version").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"freight service did not come up: {out}")
            time.sleep(0.05)
        client = Client(service=url)
        assert isinstance(client.transport, HttpTransport)
        fid = client.register_function(square, function_name="square")
        tid = client.run(7, endpoint_id=client.local_endpoint_id, function_id=fid)
        deadline = time.monotonic() + WAIT_S
        while client.get_task(tid)["pending"]:
            assert time.monotonic() < deadline, "the task did not finish"
            time.sleep(0.02)
        assert client.get_result(tid) == 49
        client.transport.close()
        assert (tmp_path / "freight.db").exists()  # the home given, not $FREIGHT_HOME
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert rc == 0
