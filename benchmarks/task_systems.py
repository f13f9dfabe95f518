"""One adapter per system the task suite (``tasks.py``) measures.

An adapter starts its system with ``workers`` workers, submits one call
(``submit`` -> a handle), waits for handles (``result``, ``results``), runs a batch
through the system's own map or batch API when it has one (``map``), and stops
(``stop``, which cancels whatever is still queued).  ``missing()`` says why the
system cannot run here (not installed), or ``None``.  Imports of the system
happen in ``start`` so that the cold-start measurement counts them.

Every adapter gets the same worker count; each is configured the way its own
documentation starts a local pool of that size.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

# Long enough for any single wait of the suite (the reference engine's 80 MB task
# takes seconds; a queue of 100,000 tasks drains in minutes), short enough that a
# wedged system ends the run with an error instead of hanging it.
WAIT_S = 900.0

# The chunk size of every map API that takes one (the figure for
# ProcessPoolExecutor was measured with 64).
CHUNKSIZE = 64


class System:
    """The adapter interface; see the module docstring."""

    key: ClassVar[str]
    label: ClassVar[str]
    #: Modules that must be importable, for ``missing()``.
    requires: ClassVar[tuple[str, ...]] = ()
    #: What ``start`` imports (the cold start times these imports on their own).
    modules: ClassVar[tuple[str, ...]] = ()
    #: What ``map`` calls (shown in the report), or "" when the system has none.
    map_api: ClassVar[str] = ""
    #: What the service-memory column counts for this system.
    service_note: ClassVar[str] = "the processes this one started (workers)"

    def missing(self) -> str | None:
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} not installed"
        return None

    def start(self, workers: int) -> None:
        raise NotImplementedError

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        return handle.result(timeout=WAIT_S)

    def results(self, handles: Sequence[Any]) -> list[Any]:
        return [self.result(h) for h in handles]

    def done_count(self, handles: Sequence[Any]) -> int | None:
        return sum(1 for h in handles if h.done())

    def service_roots(self) -> list[int]:
        """Processes of the system that are not this one's descendants (their
        descendants count too); found once, after the system ran a task."""
        return []

    def cancel(self, handles: Sequence[Any]) -> None:
        """Cancel what is still queued of ``handles`` (before ``stop``; untimed)."""

    def prepare_map(self) -> None:
        """Set up what ``map`` needs (untimed)."""

    def map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        raise NotImplementedError(f"{self.label} has no map or batch API")

    def finish_map(self) -> None:
        """Release what ``prepare_map`` set up."""

    def stop(self) -> None:
        raise NotImplementedError


class ProcessPool(System):
    key = "ppe"
    label = "ProcessPoolExecutor"
    map_api = f"Executor.map(chunksize={CHUNKSIZE})"
    modules = ("concurrent.futures",)

    def start(self, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.ex = ProcessPoolExecutor(max_workers=workers)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        return self.ex.submit(fn, arg)

    def map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self.ex.map(fn, args, chunksize=CHUNKSIZE, timeout=WAIT_S))

    def stop(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)


class Dask(System):
    key = "dask"
    label = "Dask LocalCluster"
    requires = ("distributed",)
    map_api = "Client.map + gather (no chunking)"
    service_note = "nanny and worker processes (the scheduler runs in the client)"
    modules = ("distributed",)

    def start(self, workers: int) -> None:
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({"distributed.logging.distributed": "error"})
        self.cluster = LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=40,  # logging.ERROR
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(workers, timeout=WAIT_S)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        # pure=False: the same call twice is two tasks, not one cached key.
        return self.client.submit(fn, arg, pure=False)

    def results(self, handles: Sequence[Any]) -> list[Any]:
        return list(self.client.gather(list(handles)))

    def map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self.client.gather(self.client.map(fn, args, pure=False)))

    def stop(self) -> None:
        # The cluster first: a client holding 100,000 futures loses its
        # connection to a scheduler that is still busy (Connection timed out),
        # and cancelling them first is what keeps it busy.
        self.cluster.close(timeout=WAIT_S)
        self.client.close(timeout=WAIT_S)


class Ray(System):
    key = "ray"
    label = "Ray"
    requires = ("ray",)
    map_api = f"ray.util.multiprocessing.Pool.map(chunksize={CHUNKSIZE})"
    service_note = "gcs_server, raylet, agents and workers"
    modules = ("ray", "ray.util.multiprocessing")

    def start(self, workers: int) -> None:
        import ray

        self.ray = ray
        self.workers = workers
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
        self.remotes: dict[Callable[[Any], Any], Any] = {}

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        remote = self.remotes.get(fn)
        if remote is None:
            remote = self.remotes[fn] = self.ray.remote(fn)
        return remote.remote(arg)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle, timeout=WAIT_S)

    def results(self, handles: Sequence[Any]) -> list[Any]:
        return list(self.ray.get(list(handles), timeout=WAIT_S))

    def done_count(self, handles: Sequence[Any]) -> int | None:
        ready, _ = self.ray.wait(
            list(handles), num_returns=len(handles), timeout=0, fetch_local=False
        )
        return len(ready)

    def prepare_map(self) -> None:
        # The pool's actors hold a CPU each for their lifetime, so they exist only
        # while ``map`` is measured (remote functions could not run beside them).
        from ray.util.multiprocessing import Pool

        self.pool = Pool(processes=self.workers)

    def map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, args, chunksize=CHUNKSIZE))

    def finish_map(self) -> None:
        self.pool.terminate()

    def stop(self) -> None:
        self.ray.shutdown()


class ParslHtex(System):
    key = "parsl"
    label = "Parsl HTEX"
    requires = ("parsl",)
    service_note = "interchange and worker pool processes"
    modules = ("parsl", "parsl.executors")

    def start(self, workers: int) -> None:
        # Parsl starts its interchange and worker pool as commands on PATH, which
        # live beside this interpreter (a virtualenv's bin/).
        bindir = os.path.dirname(sys.executable)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        import parsl
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider

        self.run_dir = tempfile.mkdtemp(prefix="bench-parsl-")
        config = Config(
            executors=[
                HighThroughputExecutor(
                    label="htex",
                    address="127.0.0.1",
                    max_workers_per_node=workers,
                    provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
                )
            ],
            run_dir=self.run_dir,
            strategy="none",
        )
        self.dfk = parsl.load(config)
        self.parsl = parsl
        self.apps: dict[Callable[[Any], Any], Any] = {}

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        app = self.apps.get(fn)
        if app is None:
            app = self.apps[fn] = self.parsl.python_app(fn, executors=["htex"])
        return app(arg)

    def service_roots(self) -> list[int]:
        # The LocalProvider starts the worker pool detached (it is not our
        # descendant); its command line names the run directory.
        import psutil

        roots = []
        for proc in psutil.process_iter(["cmdline"]):
            if any(self.run_dir in part for part in proc.info["cmdline"] or ()):
                roots.append(proc.pid)
        return roots

    def stop(self) -> None:
        # Parsl hands tasks to the executor from a thread pool; shutting down while
        # that is still sending makes ZeroMQ abort the process (signaler.cpp
        # assertion), so wait until every task has left the ``pending`` state.
        from parsl.dataflow.states import States

        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and any(
            record["status"] == States.pending
            for record in list(self.dfk.tasks.values())
        ):
            time.sleep(0.1)
        self.dfk.cleanup()
        self.parsl.clear()


class ReferenceEngine(System):
    """globus-compute-endpoint's ``ProcessPoolEngine``, driven as its endpoint
    drives it: each task a messagepack ``Task`` whose buffer is the SDK's packed
    function, args and kwargs; each result a packed ``Result`` whose data the SDK
    deserializes.  The function is serialized once and reused (the service stores
    a registered function once); the arguments are serialized per task, and the
    packing and unpacking are inside every timing, as a client's would be."""

    key = "reference"
    label = "reference ProcessPoolEngine"
    requires = ("globus_compute_endpoint",)
    modules = ("globus_compute_endpoint.engines", "globus_compute_sdk.serialize")

    def start(self, workers: int) -> None:
        from globus_compute_common import messagepack
        from globus_compute_common.messagepack.message_types import Task
        from globus_compute_endpoint.engines import GCFuture, ProcessPoolEngine
        from globus_compute_sdk.serialize import ComputeSerializer

        self.messagepack = messagepack
        self.Task = Task
        self.GCFuture = GCFuture
        self.serde = ComputeSerializer()
        self.functions: dict[Callable[[Any], Any], str] = {}
        self.run_dir = tempfile.mkdtemp(prefix="bench-reference-")
        self.engine = ProcessPoolEngine(max_workers=workers)
        self.engine.start(endpoint_id=uuid.uuid4(), run_dir=self.run_dir)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        serde = self.serde
        body = self.functions.get(fn)
        if body is None:
            body = self.functions[fn] = serde.serialize(fn)
        buffer = serde.pack_buffers(
            [body, serde.serialize((arg,)), serde.serialize({})]
        )
        task_id = uuid.uuid4()
        packed = self.messagepack.pack(self.Task(task_id=task_id, task_buffer=buffer))
        future = self.GCFuture(task_id)
        self.engine.submit(future, packed, resource_specification={})
        return future

    def result(self, handle: Any) -> Any:
        message = self.messagepack.unpack(handle.result(timeout=WAIT_S))
        if message.is_error:
            raise RuntimeError(f"task failed on the reference engine: {message.data}")
        return self.serde.deserialize(message.data)

    def stop(self) -> None:
        executor = self.engine.executor
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


# --- freight -----------------------------------------------------------------
# How the suite asks freight's embedded default for N workers.  ONE place to fix
# if freight.client spells it differently: the env var is read by the embedded
# endpoint (assumed), and Client(workers=N) is tried first.
FREIGHT_WORKERS_ENV = "FREIGHT_WORKERS"


def freight_executor(workers: int) -> Any:
    """An ``Executor`` on freight's embedded default with ``workers`` workers,
    its state in a fresh ``$FREIGHT_HOME`` (unless one is set): nothing from an
    earlier run, so the cold start starts from nothing and no run reads a
    database grown by the last."""
    os.environ[FREIGHT_WORKERS_ENV] = str(workers)
    if not os.environ.get("FREIGHT_HOME"):
        home = tempfile.mkdtemp(prefix="bench-freight-")
        os.environ["FREIGHT_HOME"] = home
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    from freight.client import Client, Executor

    try:
        client = Client(workers=workers)  # type: ignore[call-arg, unused-ignore]
    except TypeError:  # no such keyword: the environment variable carries it
        client = Client()
    return Executor(client=client)  # type: ignore[call-arg, unused-ignore]


class Freight(System):
    key = "freight"
    label = "freight Executor (embedded)"
    map_api = f"Executor.map(chunksize={CHUNKSIZE})"
    service_note = "the processes the embedded service started (workers)"
    modules = ("freight.client",)

    def missing(self) -> str | None:
        try:
            from freight.client import Client, Executor  # noqa: F401
        except ImportError:
            return "freight.client not available"
        return None

    def start(self, workers: int) -> None:
        self.ex = freight_executor(workers)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        return self.ex.submit(fn, arg)

    def map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        return list(self.ex.map(fn, args, chunksize=CHUNKSIZE))

    def stop(self) -> None:
        try:
            self.ex.shutdown(wait=True, cancel_futures=True)
        except TypeError:
            self.ex.shutdown()


SYSTEMS: dict[str, type[System]] = {
    cls.key: cls
    for cls in (ProcessPool, Freight, Ray, ReferenceEngine, ParslHtex, Dask)
}
