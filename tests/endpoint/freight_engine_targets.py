"""Targets for the engine tests, imported by the workers (not through freight).

The engine tests put this directory on the workers' PYTHONPATH (``extra_path``)
and name targets as ``"freight_engine_targets:NAME"``.  A packet's first frame is
a command (``b"echo"``, ``b"sleep 0.5"`` ...), the rest its data.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Any


def echo(packet: list[Any]) -> bytes:
    """The frames joined."""
    return b"".join(bytes(f) for f in packet)


def noop(packet: list[Any]) -> bytes:
    return b""


def info(packet: list[Any]) -> bytes:
    """The worker's interpreter and prefix, and pid."""
    return f"{sys.executable}\n{sys.prefix}\n{os.getpid()}".encode()


def freight_file(packet: list[Any]) -> bytes:
    """Where the worker imported freight from."""
    import freight

    return freight.__file__.encode()


def nbytes(packet: list[Any]) -> bytes:
    """Sizes and kinds of the frames, and the sum of a float64 array frame."""
    out = []
    for f in packet:
        out.append(f"{type(f).__name__}:{memoryview(f).nbytes}")
    return ",".join(out).encode()


def array_sum(packet: list[Any]) -> bytes:
    import numpy as np

    return repr(float(np.frombuffer(packet[0], dtype=np.float64).sum())).encode()


def command(packet: list[Any]) -> bytes:
    """Run the command in the first frame: ``sleep S``, ``segfault``, ``exit N``,
    ``sigkill``, ``alloc MB [S]`` (touch MB MiB and hold them S seconds), ``raise``,
    ``print``, ``wait PATH`` (until PATH exists), ``pid``."""
    cmd, _, arg = bytes(packet[0]).decode().partition(" ")
    if cmd == "sleep":
        time.sleep(float(arg))
        return b"slept"
    if cmd == "segfault":
        ctypes.string_at(0)
    if cmd == "exit":
        os._exit(int(arg))
    if cmd == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if cmd == "alloc":
        mb, _, hold = arg.partition(" ")
        block = bytearray(int(mb) << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(float(hold or 30))
        return str(len(block) >> 20).encode()
    if cmd == "raise":
        raise KeyError(arg)
    if cmd == "print":
        print("hello from a task")  # must not corrupt the protocol
        return b"printed"
    if cmd == "wait":
        # Touch a file to say it started, then wait for the test's go.
        with open(arg + ".started", "w"):
            pass
        while not os.path.exists(arg):
            time.sleep(0.005)
        return b"waited"
    if cmd == "pid":
        return str(os.getpid()).encode()
    raise ValueError(f"unknown command {cmd!r}")


def not_bytes(packet: list[Any]) -> Any:
    return 42
