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


def _zmq_server(codec_name: str, port_out: Any, copy: bool) -> None:
    import zmq

    encode, decode = make_codec(codec_name)
    context = zmq.Context()
    sock = context.socket(zmq.REP)
    port_out.send(sock.bind_to_random_port("tcp://127.0.0.1"))
    while True:
        frames = sock.recv_multipart(copy=copy)
        if len(frames) == 1 and bytes(frames[0]) == b"STOP":
            break
        sock.send_multipart(encode(decode(frames)), copy=copy)
    sock.close()
    context.term()


class ZmqClient:
    def __init__(self, codec_name: str, copy: bool) -> None:
        import zmq

        self.encode, self.decode = make_codec(codec_name)
        parent, child = mp.Pipe()
        self.process = mp.Process(
            target=_zmq_server, args=(codec_name, child, copy), daemon=True
        )
        self.process.start()
        port = parent.recv()
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.REQ)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.copy = copy

    def round_trip(self, obj: Any) -> Any:
        self.sock.send_multipart(self.encode(obj), copy=self.copy)
        return self.decode(self.sock.recv_multipart(copy=self.copy))

    def close(self) -> None:
        self.sock.send_multipart([b"STOP"])
        self.process.join(5)
        self.sock.close(linger=0)
        self.context.term()


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


def _mp_server(codec_name: str, address_out: Any, nodelay: bool) -> None:
    framed = codec_name.startswith("freight frames")
    use_send = codec_name == "Connection.send"
    encode, decode = make_codec("freight frames" if framed else codec_name)
    with Listener(("127.0.0.1", 0)) as listener:
        address_out.send(listener.address)
        with listener.accept() as conn:
            if nodelay:
                _nodelay(conn)
            while True:
                if use_send:
                    obj = conn.recv()
                    if isinstance(obj, str) and obj == "STOP":
                        return
                    conn.send(obj)
                    continue
                frames = _recv_frames(conn, framed)
                if frames[0] == b"STOP":
                    return
                _send_frames(conn, encode(decode(frames)))


class MpClient:
    def __init__(self, codec_name: str, nodelay: bool = True) -> None:
        self.framed = codec_name.startswith("freight frames")
        self.use_send = codec_name == "Connection.send"
        if not self.use_send:
            self.encode, self.decode = make_codec(
                "freight frames" if self.framed else codec_name
            )
        parent, child = mp.Pipe()
        self.process = mp.Process(
            target=_mp_server, args=(codec_name, child, nodelay), daemon=True
        )
        self.process.start()
        self.conn = Client(parent.recv())
        if nodelay:
            _nodelay(self.conn)

    def round_trip(self, obj: Any) -> Any:
        if self.use_send:
            self.conn.send(obj)
            return self.conn.recv()
        _send_frames(self.conn, self.encode(obj))
        return self.decode(_recv_frames(self.conn, self.framed))

    def close(self) -> None:
        if self.use_send:
            self.conn.send("STOP")
        else:
            self.conn.send_bytes(b"STOP")
        self.process.join(5)
        self.conn.close()


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
    base = 50 if isinstance(obj, np.ndarray) else 400
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
        clients = {name: ZmqClient(name, copy=not big) for name in names}
        try:
            results = measure(clients, obj, rounds, batch)
        finally:
            for client in clients.values():
                client.close()
        emit(
            "pyzmq REQ/REP tcp",
            payload,
            results,
            "pickle 5",
            {n: count(n, obj) for n in names},
        )

        names = [
            "pickle 5 (one frame)",
            "Connection.send",
            "freight blob",
            "freight frames",
        ]
        mp_clients = {name: MpClient(name) for name in names}
        try:
            results = measure(mp_clients, obj, rounds, batch)
        finally:
            for client in mp_clients.values():
                client.close()
        frames = {n: count(n, obj) for n in names if n != "Connection.send"}
        if not big:  # the pitfall: several writes per message with Nagle on
            pitfall = {
                "freight frames, no TCP_NODELAY": MpClient(
                    "freight frames", nodelay=False
                )
            }
            try:
                results.update(measure(pitfall, obj, 3, 5))
            finally:
                pitfall["freight frames, no TCP_NODELAY"].close()
            frames["freight frames, no TCP_NODELAY"] = count("freight frames", obj)
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
        help="samples per contender (default 15, quick 3)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(PAYLOADS),
        help="payloads to measure (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
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
