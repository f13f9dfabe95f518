"""Round trips over real transports: freight against pickle 5 on the same wire.

``python benchmarks/transports.py [--quick] [--rounds N]`` (needs ``pyzmq``:
``pip install -e '.[test]'`` or ``'.[bench]'``).

For each transport, an echo server runs in its own process per codec: it decodes
each request and encodes the decoded object back, as an RPC server would.  The
client, in this process, encodes, sends, receives and decodes; a sample is the
mean of a batch of round trips, the contenders' batches interleaved round by round
so that drift on a shared machine hits them alike.  The table shows the median
sample per round trip and its ratio to pickle 5 over the same transport.

Transports: pyzmq ``REQ``/``REP`` over ``tcp://127.0.0.1`` (multipart messages:
each frame one part), and ``multiprocessing.connection`` over TCP (each frame one
``send_bytes``).  Codecs:

* ``pickle 5``: ``pickle.dumps(obj, protocol=5, buffer_callback=...)``, the body
  and the out-of-band buffers as frames (one frame over ``multiprocessing``, where
  buffers stay in band);
* ``freight frames``: ``dumps_frames`` / ``loads_frames``, 2 frames and more;
* ``freight coalesced``: ``ComputeSerializer(coalesce_below=4096)``: small frames
  joined, so a small message is one frame;
* ``freight blob``: ``dumps`` / ``loads``, always one frame;
* over ``multiprocessing`` also ``Connection.send`` (its own pickling), and
  ``freight frames`` without ``TCP_NODELAY``: the Nagle pitfall (a few rounds).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import platform
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

import numpy as np

from freight.serialize import ComputeSerializer, read_layout

Frames = list[Any]
Codec = tuple[Callable[[Any], Frames], Callable[[Frames], Any]]

PAYLOADS: dict[str, Callable[[], Any]] = {
    "small_dict": lambda: {
        "id": 4242,
        "name": "alice",
        "score": 3.25,
        "tags": ["a", "b"],
        "active": True,
    },
    "task_args": lambda: ((1, 2.5, "x"), {"retries": 3, "tag": "t"}),
    "array_1mb": lambda: np.arange(131_072, dtype=np.float64),
}


def _pickle5() -> Codec:
    def encode(obj: Any) -> Frames:
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        return [body, *(b.raw() for b in buffers)]

    def decode(frames: Frames) -> Any:
        return pickle.loads(frames[0], buffers=frames[1:])

    return encode, decode


def _pickle5_inband() -> Codec:
    return (
        lambda obj: [pickle.dumps(obj, protocol=5)],
        lambda frames: pickle.loads(frames[0]),
    )


def _freight(kind: str) -> Codec:
    if kind == "blob":
        serde = ComputeSerializer()
        return (lambda obj: [serde.dumps(obj)]), (lambda f: serde.loads(f[0]))
    serde = ComputeSerializer(coalesce_below=4096 if kind == "coalesced" else 0)
    return serde.dumps_frames, serde.loads_frames


def make_codec(name: str) -> Codec:
    if name == "pickle 5":
        return _pickle5()
    if name == "pickle 5 (one frame)":
        return _pickle5_inband()
    return _freight(name.removeprefix("freight "))


# -- pyzmq ---------------------------------------------------------------------------
#
# One server process serves every codec, one socket each, so that all contenders
# share its scheduling (with a process per codec, where the scheduler placed each
# one dominated the differences on a loaded machine).


def _zmq_server(codec_names: list[str], ports_out: Any, copy: bool) -> None:
    import zmq

    context = zmq.Context()
    poller = zmq.Poller()
    codecs: dict[Any, Codec] = {}
    ports = []
    for name in codec_names:
        sock = context.socket(zmq.REP)
        ports.append(sock.bind_to_random_port("tcp://127.0.0.1"))
        poller.register(sock, zmq.POLLIN)
        codecs[sock] = make_codec(name)
    ports_out.send(ports)
    while True:
        for sock, _ in poller.poll():
            frames = sock.recv_multipart(copy=copy)
            if len(frames) == 1 and bytes(frames[0]) == b"STOP":
                context.destroy(linger=0)
                return
            encode, decode = codecs[sock]
            sock.send_multipart(encode(decode(frames)), copy=copy)


class ZmqClients:
    """A REQ socket per codec, against one server process."""

    def __init__(self, codec_names: list[str], copy: bool) -> None:
        import zmq

        parent, child = mp.Pipe()
        self.process = mp.Process(
            target=_zmq_server, args=(codec_names, child, copy), daemon=True
        )
        self.process.start()
        ports = parent.recv()
        self.context = zmq.Context()
        self.clients: dict[str, ZmqClient] = {}
        for name, port in zip(codec_names, ports, strict=True):
            sock = self.context.socket(zmq.REQ)
            sock.connect(f"tcp://127.0.0.1:{port}")
            self.clients[name] = ZmqClient(make_codec(name), sock, copy)

    def close(self) -> None:
        next(iter(self.clients.values())).sock.send_multipart([b"STOP"])
        self.process.join(5)
        self.context.destroy(linger=0)


class ZmqClient:
    def __init__(self, codec: Codec, sock: Any, copy: bool) -> None:
        self.encode, self.decode = codec
        self.sock = sock
        self.copy = copy

    def round_trip(self, obj: Any) -> Any:
        self.sock.send_multipart(self.encode(obj), copy=self.copy)
        return self.decode(self.sock.recv_multipart(copy=self.copy))


# -- multiprocessing.connection --------------------------------------------------------


def _nodelay(conn: Connection) -> None:
    sock = socket.socket(fileno=conn.fileno())
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        sock.detach()


def _send_frames(conn: Connection, frames: Frames) -> None:
    for frame in frames:
        conn.send_bytes(frame)


def _recv_frames(conn: Connection, framed: bool) -> Frames:
    """One frame, or (``framed``: a freight frame list) as many as the header
    frame says, learnt with ``read_layout``."""
    first = conn.recv_bytes()
    if not framed or first == b"STOP":
        return [first]
    layout = read_layout(first)
    assert layout.frame_lengths is not None
    count = len(layout.frame_lengths) - 1 if layout.total != len(first) else 0
    return [first, *(conn.recv_bytes() for _ in range(count))]


class _Peer:
    """One codec's end of a ``multiprocessing.connection`` link."""

    def __init__(self, codec_name: str, conn: Connection) -> None:
        self.framed = codec_name.startswith("freight frames")
        self.use_send = codec_name == "Connection.send"
        self.encode, self.decode = make_codec(
            "freight frames" if self.framed or self.use_send else codec_name
        )
        self.conn = conn

    def send(self, obj: Any) -> None:
        if self.use_send:
            self.conn.send(obj)
        else:
            _send_frames(self.conn, self.encode(obj))

    def recv(self) -> Any:
        if self.use_send:
            return self.conn.recv()
        frames = _recv_frames(self.conn, self.framed)
        if frames[0] == b"STOP":
            return _STOP
        return self.decode(frames)

    def round_trip(self, obj: Any) -> Any:
        self.send(obj)
        return self.recv()


_STOP = object()


def _mp_server(codecs: list[tuple[str, bool]], addresses_out: Any) -> None:
    from multiprocessing.connection import wait

    listeners = [Listener(("127.0.0.1", 0)) for _ in codecs]
    addresses_out.send([listener.address for listener in listeners])
    peers = {}
    for listener, (name, nodelay) in zip(listeners, codecs, strict=True):
        conn = listener.accept()
        if nodelay:
            _nodelay(conn)
        peers[conn] = _Peer(name, conn)
    while True:
        for conn in wait(list(peers)):
            peer = peers[conn]
            try:
                obj = peer.recv()
            except EOFError:
                return
            if obj is _STOP or (isinstance(obj, str) and obj == "STOP"):
                return
            peer.send(obj)


class MpClients:
    """A connection per codec (``(name, nodelay)``), against one server process."""

    def __init__(self, codecs: list[tuple[str, bool]]) -> None:
        parent, child = mp.Pipe()
        self.process = mp.Process(target=_mp_server, args=(codecs, child), daemon=True)
        self.process.start()
        addresses = parent.recv()
        self.clients: dict[str, _Peer] = {}
        for (name, nodelay), address in zip(codecs, addresses, strict=True):
            conn = Client(address)
            if nodelay:
                _nodelay(conn)
            label = name if nodelay else f"{name}, no TCP_NODELAY"
            self.clients[label] = _Peer(name, conn)

    def close(self) -> None:
        next(iter(self.clients.values())).conn.send_bytes(b"STOP")
        self.process.join(5)
        for client in self.clients.values():
            client.conn.close()


# -- measuring -----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return bool(a == b)


def measure(
    clients: dict[str, Any], obj: Any, rounds: int, batch: int
) -> dict[str, float]:
    """Median seconds per round trip of each client, batches interleaved."""
    for name, client in clients.items():
        if not _same(client.round_trip(obj), obj):
            raise SystemExit(f"{name}: the round trip changed the payload")
        for _ in range(max(batch // 4, 1)):  # warm up
            client.round_trip(obj)
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            start = time.perf_counter()
            for _ in range(batch):
                client.round_trip(obj)
            samples[name].append((time.perf_counter() - start) / batch)
    return {name: statistics.median(s) for name, s in samples.items()}


def _batch_for(obj: Any, quick: bool) -> int:
    base = 20 if isinstance(obj, np.ndarray) else 100
    return base // 4 if quick else base


def run(rounds: int, quick: bool, payloads: list[str]) -> list[str]:
    lines = [
        "| transport | payload | codec | frames | round trip | vs pickle 5 |",
        "|---|---|---|---:|---:|---:|",
    ]

    def emit(
        transport: str,
        payload: str,
        results: dict[str, float],
        base: str,
        frames: dict[str, int],
    ) -> None:
        for name, seconds in results.items():
            ratio = seconds / results[base]
            lines.append(
                f"| {transport} | {payload} | {name} | {frames.get(name, 1)} |"
                f" {seconds * 1e3:.3f} ms | {ratio:.2f}x |"
            )

    def count(name: str, obj: Any) -> int:
        return len(make_codec(name)[0](obj))

    for payload in payloads:
        obj = PAYLOADS[payload]()
        big = isinstance(obj, np.ndarray)
        batch = _batch_for(obj, quick)
        names = ["pickle 5", "freight frames", "freight coalesced", "freight blob"]
        zmq_clients = ZmqClients(names, copy=not big)
        try:
            results = measure(dict(zmq_clients.clients), obj, rounds, batch)
        finally:
            zmq_clients.close()
        frames = {n: count(n, obj) for n in names}
        emit("pyzmq REQ/REP tcp", payload, results, "pickle 5", frames)

        names = ["pickle 5 (one frame)", "Connection.send", "freight blob"]
        names.append("freight frames")
        codecs = [(name, True) for name in names]
        if not big:  # the pitfall: several writes per message with Nagle on
            codecs.append(("freight frames", False))
        mp_clients = MpClients(codecs)
        pitfall = "freight frames, no TCP_NODELAY"
        try:
            clients = dict(mp_clients.clients)
            slow = clients.pop(pitfall, None)
            results = measure(clients, obj, rounds, batch)
            if slow is not None:
                results.update(measure({pitfall: slow}, obj, 3, 5))
        finally:
            mp_clients.close()
        frames = {n: count(n, obj) for n in names if n != "Connection.send"}
        frames[pitfall] = count("freight frames", obj)
        emit(
            "multiprocessing.connection tcp",
            payload,
            results,
            "pickle 5 (one frame)",
            frames,
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/transports.py")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="samples per contender (default 31, quick 3)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(PAYLOADS),
        help="payloads to measure (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 31)
    command = "python benchmarks/transports.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    lines = run(rounds, args.quick, args.only or list(PAYLOADS))
    print(
        f"`{command.strip()}` on {platform.python_implementation()}"
        f" {platform.python_version()}, {mp.cpu_count()} cores,"
        f" {rounds} samples per contender\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
