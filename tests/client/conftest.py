"""Fixtures of the client tests: a temporary ``FREIGHT_HOME`` per test module,
the engine from ``$FREIGHT_ENGINE`` (the embedded default, ``process``, unless
set), the embedded service stopped at teardown, and a transport proxy that counts
calls.

Test modules' own functions are sent by value (``cloudpickle``), so a worker in
another process (the ``process`` engine) runs them without importing the test
module.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from freight.client import Client
from freight.endpoint.engines import available_engines
from freight.service.core import ServiceCore
from freight.service.embedded import embedded_service, shutdown_embedded

#: The engine these tests run on: the embedded default unless ``FREIGHT_ENGINE``
#: names another (``thread`` is quicker to start).
ENGINE = os.environ.get("FREIGHT_ENGINE") or "process"
#: A generous bound for waits on a 2-core CI machine (never asserted on).
WAIT_S = 60.0


@pytest.fixture(scope="module")
def freight_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``FREIGHT_HOME`` for this module, with ``FREIGHT_ENGINE`` set;
    every embedded service is stopped afterwards."""
    home = tmp_path_factory.mktemp("freight-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREIGHT_HOME", str(home))
        mp.setenv("FREIGHT_ENGINE", ENGINE)
        mp.delenv("FREIGHT_SERVICE", raising=False)
        mp.delenv("FREIGHT_DATABASE_URL", raising=False)
        yield home
        shutdown_embedded()


@pytest.fixture(scope="module", autouse=True)
def _by_value(request: pytest.FixtureRequest) -> Iterator[None]:
    module = request.module
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture(scope="module")
def client(freight_home: Path) -> Client:
    """A ``Client()`` on the embedded service of ``freight_home``."""
    return Client()


@pytest.fixture(scope="module")
def service(client: Client) -> ServiceCore:
    """The embedded service ``client`` talks to."""
    core = embedded_service()
    assert client.transport is core
    return core


@pytest.fixture(scope="module")
def endpoint_id(client: Client) -> str:
    return client.local_endpoint_id


def counts(core: ServiceCore) -> tuple[int, int]:
    """(registered functions, stored tasks) of the service."""
    n = 10**9
    return len(core.store.list_functions(n)), len(core.store.list_tasks(n))


class CountingTransport:
    """Delegates every call to ``inner`` and counts them by name (instrumentation
    of the real transport, not a mock)."""

    def __init__(self, inner: Any, *, binary_payloads: bool = True) -> None:
        self._inner = inner
        self.binary_payloads = binary_payloads
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return value(*args, **kwargs)

        return counted


# The Transport protocol is runtime-checkable by attribute presence; the proxy's
# __getattr__ does not count, so declare the methods it forwards.
for _name in (
    "version",
    "register_function",
    "get_function",
    "delete_function",
    "register_container",
    "get_container",
    "submit",
    "get_task",
    "get_batch_status",
    "get_taskgroup",
    "get_endpoint_status",
    "get_endpoint",
    "get_endpoints",
    "get_allowed_functions",
    "cancel",
    "subscribe",
    "close",
):

    def _forward(self: CountingTransport, *a: Any, _n: str = _name, **k: Any) -> Any:
        return self.__getattr__(_n)(*a, **k)

    setattr(CountingTransport, _name, _forward)


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = WAIT_S
) -> None:
    """Poll ``condition`` until true (for state in another component or process,
    where no event is available); fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def process_engine_available() -> bool:
    return "process" in available_engines()


# Test modules cannot import this conftest (``--import-mode=importlib``): its
# helpers reach them as fixtures.


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_until(condition, what, timeout=WAIT_S)``."""
    return wait_until


@pytest.fixture
def service_counts(service: ServiceCore) -> Callable[[], tuple[int, int]]:
    """``() -> (functions, tasks)`` stored by the module's service."""
    return lambda: counts(service)


@pytest.fixture(scope="session")
def counting() -> type[CountingTransport]:
    """The ``CountingTransport`` class."""
    return CountingTransport


@pytest.fixture(scope="session")
def engine_name() -> str:
    return ENGINE
