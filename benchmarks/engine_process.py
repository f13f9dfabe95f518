"""The ``process`` engine on its own: per-task overhead and an 80 MB array.

``python benchmarks/engine_process.py [--workers 2] [--tasks 20000]`` (needs
numpy).  The engine runs small targets defined here (this folder goes on the
workers' ``PYTHONPATH`` through ``extra_path``), so what is measured is the
engine: the packet's trip to a worker subprocess and the result's trip back, not
freight's task encoding (``freight.endpoint.execute``).

* round trip: one no-op task at a time, p50 and p99 of ``submit`` to result;
* throughput: ``--tasks`` no-op tasks submitted at once, tasks/s to the last
  result; beside it ``concurrent.futures.ProcessPoolExecutor`` (one submit per
  task) with the same number of workers;
* 80 MB: a task taking a 10-million-element float64 array and returning its sum,
  through the engine (the array copied once into shared memory in ``submit``,
  mapped by the worker) and through ``ProcessPoolExecutor`` (the array pickled);
  median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def noop(packet: list[Any]) -> bytes:
    """The engine's no-op target."""
    return b""


def array_sum(packet: list[Any]) -> bytes:
    """The engine's 80 MB target: the sum of a float64 frame."""
    import numpy as np

    return repr(float(np.frombuffer(packet[0], dtype=np.float64).sum())).encode()


def pool_noop() -> None:
    """``ProcessPoolExecutor`` 's no-op."""


def pool_sum(array: Any) -> float:
    """``ProcessPoolExecutor`` 's 80 MB task."""
    return float(array.sum())


def _engine(target: str, workers: int) -> Any:
    from freight.endpoint.process import ProcessEngine

    engine = ProcessEngine(
        workers, target=f"engine_process:{target}", extra_path=[HERE]
    )
    engine.start()
    return engine


def main() -> None:
    import numpy as np

    from freight.endpoint.engine import ResourceLimits, WorkItem

    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    limits = ResourceLimits()
    ids = iter(range(10**9))

    def item(*frames: Any) -> WorkItem:
        return WorkItem(str(next(ids)), list(frames), limits)

    engine = _engine("noop", args.workers)
    for _ in range(200):  # warm up (and wait for both workers)
        engine.submit(item(b"x")).result()
    samples = []
    for _ in range(2000):
        t = time.perf_counter()
        engine.submit(item(b"x")).result()
        samples.append(time.perf_counter() - t)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e3
    p99 = samples[int(len(samples) * 0.99)] * 1e3
    t = time.perf_counter()
    futures = [engine.submit(item(b"x")) for _ in range(args.tasks)]
    wait(futures)
    engine_rate = args.tasks / (time.perf_counter() - t)
    engine.shutdown()

    with ProcessPoolExecutor(args.workers) as pool:
        wait([pool.submit(pool_noop) for _ in range(200)])
        psamples = []
        for _ in range(2000):
            t = time.perf_counter()
            pool.submit(pool_noop).result()
            psamples.append(time.perf_counter() - t)
        psamples.sort()
        pool_p50 = psamples[len(psamples) // 2] * 1e3
        t = time.perf_counter()
        wait([pool.submit(pool_noop) for _ in range(args.tasks)])
        pool_rate = args.tasks / (time.perf_counter() - t)

        array = np.random.default_rng(0).random(10_000_000)
        pool.submit(pool_sum, array).result()
        pool_big = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            pool.submit(pool_sum, array).result()
            pool_big.append(time.perf_counter() - t)

    engine = _engine("array_sum", 1)
    engine.submit(item(array)).result()
    engine_big = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        result = engine.submit(item(array)).result()
        engine_big.append(time.perf_counter() - t)
    assert float(result) == float(array.sum())
    engine.shutdown()

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"{args.workers} workers"
    )
    print(f"{'':34} {'process engine':>15} {'ProcessPoolExecutor':>20}")
    print(f"{'no-op round trip p50 (ms)':34} {p50:15.3f} {pool_p50:20.3f}")
    print(f"{'no-op round trip p99 (ms)':34} {p99:15.3f} {'':>20}")
    print(
        f"{'no-op tasks/s (submit all, wait)':34} {engine_rate:15,.0f} "
        f"{pool_rate:20,.0f}"
    )
    print(
        f"{'80 MB float64 sum, median (s)':34} "
        f"{statistics.median(engine_big):15.3f} "
        f"{statistics.median(pool_big):20.3f}"
    )


if __name__ == "__main__":
    main()
