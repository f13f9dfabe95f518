"""A process engine's worker: ``python -m freight.endpoint.worker --target MOD:FUNC``.

The worker talks to its engine over its stdin and stdout in length-prefixed
messages; everything the task prints goes to stderr (the worker moves its
protocol pipes off file descriptors 0 and 1 first, so a stray ``print`` cannot
corrupt the stream).  A message is ``<II`` (header length, body length), a
msgpack header, then the body.

* worker -> engine, once at start: ``{"hello": 1, "pid", "executable",
  "prefix", "version"}``.
* engine -> worker, per task: ``{"t": task_id, "f": frames}``, each frame
  ``[0, size]`` (its bytes are in the body, one after the other) or
  ``[1, size, name]`` (a POSIX shared-memory segment the engine made and will
  unlink; the worker maps it and hands the target a zero-copy ``memoryview``).
* worker -> engine, per task: ``{"ok": True}`` with the target's bytes as the
  body, or ``{"ok": False, "e": freight.exception/1 record}`` if the target
  raised (then the body is empty).

End of input makes the worker exit 0.  The target is called as
``target(frames) -> bytes`` with the frames as ``memoryview`` s valid only during
the call: shared-memory frames are writable, frames from the message are
read-only unless the message was large.
"""

from __future__ import annotations

import argparse
import importlib
import mmap
import os
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

__all__ = ["DEFAULT_TARGET", "Reader", "Target", "load_target", "main"]

#: What a production worker calls.
DEFAULT_TARGET = "freight.endpoint.execute:run_packet"

Target = Callable[[list[Any]], Any]

PREFIX = struct.Struct("<II")


def load_target(spec: str) -> Target:
    """The function ``"module:function"`` names (``"module:obj.attr"`` works too).

    Raises ``ValueError`` for a malformed spec, ``ImportError`` or
    ``AttributeError`` if it does not resolve, ``TypeError`` if not callable.
    """
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"target {spec!r} is not 'module:function'")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"target {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def write_all(fd: int, parts: Sequence[Any]) -> None:
    """Write every buffer of ``parts`` to ``fd`` (``writev``, resuming partial
    writes)."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:1024])
        while n:
            first = views[0]
            if n >= len(first):
                n -= len(first)
                views.pop(0)
            else:
                views[0] = first[n:]
                n = 0


def pack(header: dict[str, Any], body_size: int = 0) -> bytes:
    """The prefix and header of a message whose body is ``body_size`` bytes."""
    head: bytes = msgpack.packb(header)
    return PREFIX.pack(len(head), body_size) + head


class Reader:
    """Reads messages from a pipe, usually in one ``read`` call each."""

    CHUNK = 1 << 16

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.rest = b""

    def pending(self) -> bool:
        """Whether bytes of a next message are already buffered."""
        return bool(self.rest)

    def read_message(self) -> tuple[dict[str, Any], memoryview] | None:
        """The next message's header and body; ``None`` at end of input."""
        data = self.rest or os.read(self.fd, self.CHUNK)
        self.rest = b""
        while 0 < len(data) < PREFIX.size:
            more = os.read(self.fd, self.CHUNK)
            if not more:
                return None
            data += more
        if not data:
            return None
        head_len, body_len = PREFIX.unpack_from(data)
        need = PREFIX.size + head_len + body_len
        if len(data) < need:
            if need - len(data) >= self.CHUNK:
                # A large body: read the rest straight into the message's buffer.
                whole = bytearray(need)
                whole[: len(data)] = data
                if not read_exact_into(self.fd, memoryview(whole)[len(data) :]):
                    return None
                data = whole  # type: ignore[assignment]
            else:
                while len(data) < need:
                    more = os.read(self.fd, max(self.CHUNK, need - len(data)))
                    if not more:
                        return None
                    data += more
        view = memoryview(data)
        if len(data) > need:
            self.rest = bytes(view[need:])
        header = msgpack.unpackb(view[PREFIX.size : PREFIX.size + head_len])
        return header, view[PREFIX.size + head_len : need]


def read_exact_into(fd: int, view: memoryview) -> bool:
    """Fill ``view`` from ``fd``; false at end of file first."""
    got = 0
    while got < len(view):
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return False
        got += k
    return True


def _attach(name: str, size: int) -> mmap.mmap:
    """Map the shared-memory segment ``name`` (no resource tracker: the engine
    that made it unlinks it)."""
    import _posixshmem  # type: ignore[import-not-found]

    fd = _posixshmem.shm_open("/" + name.lstrip("/"), os.O_RDWR, 0o600)
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _run(target: Target, header: dict[str, Any], view: memoryview) -> list[Any]:
    """Run one task; the parts of the reply."""
    frames: list[Any] = []
    maps: list[mmap.mmap] = []
    offset = 0
    try:
        for spec in header["f"]:
            if spec[0] == 0:
                frames.append(view[offset : offset + spec[1]])
                offset += spec[1]
            elif spec[1] == 0:
                frames.append(b"")
            else:
                m = _attach(spec[2], spec[1])
                maps.append(m)
                frames.append(memoryview(m))
        try:
            result = target(frames)
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(
                    f"the target returned {type(result).__name__}, not bytes"
                )
            out = memoryview(result).cast("B")
            return [pack({"ok": True}, out.nbytes), out]
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            from freight.serialize import exception_to_dict

            return [pack({"ok": False, "e": exception_to_dict(exc)})]
    finally:
        for f in frames:
            if isinstance(f, memoryview):
                try:
                    f.release()
                except BufferError:  # the task kept an export of it
                    pass
        del frames
        for m in maps:
            try:
                m.close()
            except BufferError:  # the task kept a view; the mapping goes with it
                pass


def serve(target: Target, fd_in: int, fd_out: int) -> None:
    """Answer task messages on ``fd_in`` until end of input."""
    reader = Reader(fd_in)
    while True:
        msg = reader.read_message()
        if msg is None:
            return
        header, body = msg
        write_all(fd_out, _run(target, header, body))
        del msg, body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freight.endpoint.worker")
    parser.add_argument("--target", default=DEFAULT_TARGET)
    args = parser.parse_args(argv)
    # The protocol moves off fds 0 and 1: the task's prints go to stderr and its
    # reads see an empty stdin.
    fd_in = os.dup(0)
    fd_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    target = load_target(args.target)
    hello = {
        "hello": 1,
        "pid": os.getpid(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": sys.version.split()[0],
    }
    write_all(fd_out, [pack(hello)])
    try:
        serve(target, fd_in, fd_out)
    except BrokenPipeError:
        pass
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
