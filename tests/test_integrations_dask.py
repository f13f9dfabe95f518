"""``freight.integrations.dask`` against the real ``dask.distributed``: the
family in ``distributed.protocol``, its fallback signal, and an in-process
cluster over TCP with the module as a worker preload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from distributed.protocol import deserialize, serialize
from distributed.protocol.serialize import families

from freight.integrations import dask as freight_dask
from freight.serialize import ComputeSerializer, Policy

SERIALIZERS = ["freight", "dask", "pickle"]
DESERIALIZERS = ["freight", "dask", "pickle", "error"]


class CountingSerializer(ComputeSerializer):
    """Counts the messages the family encodes and decodes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoded = 0
        self.decoded = 0

    def dumps_frames(self, obj: Any) -> list[Any]:
        self.encoded += 1
        return super().dumps_frames(obj)

    def loads_frames(self, frames: Any) -> Any:
        self.decoded += 1
        return super().loads_frames(frames)


@pytest.fixture
def family() -> Iterator[CountingSerializer]:
    serde = CountingSerializer(writable=True)
    freight_dask.register(serde)
    yield serde
    freight_dask._serializer = None
    families.pop(freight_dask.FAMILY, None)


def test_the_family_round_trips_through_distributed_protocol(
    family: CountingSerializer,
) -> None:
    # (Dask splits lists and dicts into their items itself: send an array.)
    header, frames = serialize(np.arange(10.0), serializers=SERIALIZERS)
    assert header["serializer"] == "freight"
    got = deserialize(header, frames, deserializers=DESERIALIZERS)
    assert np.array_equal(got, np.arange(10.0))
    assert got.flags.writeable  # as Dask's own families give them
    assert family.encoded == 1 and family.decoded == 1


def test_a_refused_object_makes_dask_try_its_next_family() -> None:
    # JSON cannot carry an array: freight refuses it, and must not stop Dask.
    freight_dask.register(ComputeSerializer(strategy_data="json"))
    try:
        with pytest.raises(NotImplementedError, match="does not encode"):
            freight_dask.serialize(np.arange(3.0))
        header, frames = serialize(np.arange(3.0), serializers=SERIALIZERS)
        assert header["serializer"] == "dask"
        assert np.array_equal(deserialize(header, frames), np.arange(3.0))
        header, _ = serialize({"ok": [1, 2]}, serializers=SERIALIZERS)
        assert header["serializer"] == "freight"
    finally:
        freight_dask._serializer = None
        families.pop(freight_dask.FAMILY, None)


class Point:
    """Not JSON: a portable, JSON-only serializer refuses it."""

    def __init__(self, x: int) -> None:
        self.x = x


def test_a_policy_refusal_falls_through_to_the_next_family() -> None:
    serde = ComputeSerializer(strategy_data="json", policy=Policy.portable())
    freight_dask.register(serde)
    try:
        with pytest.raises(NotImplementedError):
            freight_dask.serialize(Point(3))
        header, frames = serialize(Point(3), serializers=SERIALIZERS)
        assert header["serializer"] == "pickle"
        assert deserialize(header, frames, deserializers=DESERIALIZERS).x == 3
    finally:
        freight_dask._serializer = None
        families.pop(freight_dask.FAMILY, None)


def test_dask_setup_registers_the_family() -> None:
    families.pop(freight_dask.FAMILY, None)
    freight_dask.dask_setup(None)
    try:
        assert freight_dask.FAMILY in families
    finally:
        freight_dask._serializer = None
        families.pop(freight_dask.FAMILY, None)


def test_an_in_process_cluster_over_tcp_moves_data_through_the_family(
    family: CountingSerializer,
) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            processes=False,
            threads_per_worker=1,
            protocol="tcp",
            dashboard_address=None,
            preload=["freight.integrations.dask"],
        ) as cluster,
        Client(cluster, serializers=SERIALIZERS, deserializers=DESERIALIZERS) as client,
    ):
        [remote] = client.scatter([np.arange(1000.0)])
        assert client.submit(np.sum, remote).result() == np.arange(1000.0).sum()
        assert np.array_equal(client.gather(remote), np.arange(1000.0))
    assert family.encoded >= 2 and family.decoded >= 2
