"""One million no-op tasks through ``Executor.map`` on the embedded default, and
the client's peak memory (the service runs in the same process, so it is counted
too).  Usage: ``python benchmarks/map_million.py [N] [--chunksize K]``.

Warm path (workers started before the clock starts); a fresh temporary
``FREIGHT_HOME``; every task persisted.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time


def noop(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--chunksize", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    os.environ["FREIGHT_HOME"] = tempfile.mkdtemp(prefix="freight-map-")
    from freight.client import Client, Executor

    with Executor(client=Client(workers=opts.workers)) as ex:
        ex.submit(noop, 0).result()
        start = time.perf_counter()
        count = sum(1 for _ in ex.map(noop, range(opts.n), chunksize=opts.chunksize))
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{count:,} tasks through map(chunksize={opts.chunksize}) in {elapsed:.1f} s"
        f" ({count / elapsed:,.0f} tasks/s); client+service peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
