"""Fixtures of the HTTP tests: a real uvicorn server on a free port of 127.0.0.1,
in a thread of this process, serving the embedded service of a temporary home
(the engine from ``$FREIGHT_ENGINE``, default ``process``, 2 workers); clients
talk to it through ``HttpTransport``.

Test modules' own functions are sent by value (``cloudpickle``), so a worker in
another process runs them without importing the test module.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from freight.client import Client  # noqa: E402
from freight.client.http import HttpTransport  # noqa: E402
from freight.service.core import ServiceCore  # noqa: E402
from freight.service.embedded import embedded_service, shutdown_embedded  # noqa: E402
from freight.service.http import create_app  # noqa: E402

ENGINE = os.environ.get("FREIGHT_ENGINE") or "process"
#: The service's payload limit in these tests (small, to exercise 413).
MAX_PAYLOAD = 256 * 1024
WAIT_S = 60.0


class Server:
    """A uvicorn server in a daemon thread; ``url`` once started."""

    def __init__(self, core: ServiceCore, port: int = 0) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(core, heartbeat_s=1.0),
            log_level="warning",
            timeout_graceful_shutdown=2,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_S)
        self.sock.close()


@pytest.fixture(scope="session")
def server_class() -> type[Server]:
    """The ``Server`` class (test modules cannot import this conftest)."""
    return Server


@pytest.fixture(scope="module")
def http_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("freight-http-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREIGHT_HOME", str(home))
        mp.setenv("FREIGHT_ENGINE", ENGINE)
        mp.setenv("FREIGHT_MAX_PAYLOAD_BYTES", str(MAX_PAYLOAD))
        mp.delenv("FREIGHT_SERVICE", raising=False)
        yield home
        shutdown_embedded()


@pytest.fixture(scope="module")
def core(http_home: Path) -> ServiceCore:
    """The embedded service the server serves."""
    return embedded_service(http_home, workers=2)


@pytest.fixture(scope="module")
def server(core: ServiceCore) -> Iterator[Server]:
    srv = Server(core)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def url(server: Server) -> str:
    return server.url


@pytest.fixture(scope="module", autouse=True)
def _by_value(request: pytest.FixtureRequest) -> Iterator[None]:
    module = request.module
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


class CountingHttp(HttpTransport):
    """``HttpTransport`` counting the calls made through it (instrumentation of
    the real transport, not a mock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._count_lock:
            self.calls[f"{method} {path.split('/')[1]}/{path.split('/')[2]}"] += 1
        return super()._call(method, path, **kwargs)


@pytest.fixture
def transport(url: str) -> Iterator[CountingHttp]:
    t = CountingHttp(url, timeout=WAIT_S)
    yield t
    t.close()


@pytest.fixture
def client(transport: CountingHttp) -> Client:
    """A ``Client`` talking to the server over HTTP."""
    return Client(transport=transport)


@pytest.fixture
def endpoint_id(client: Client) -> str:
    return client.local_endpoint_id
