"""Kafka's murmur2 partitioner and the stable sample of event ids."""

from __future__ import annotations

import uuid

import pytest

from stream.kafka.partitioning import murmur2, partition_of, sampled


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # the vectors of Kafka's own test of Utils.murmur2 (clients/.../utils/UtilsTest.java)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_kafkas(data, expected):
    assert murmur2(data) == expected


def test_partition_of_is_positive_murmur2_modulo():
    assert partition_of(b"21", 6) == (-973932308 & 0x7FFFFFFF) % 6
    ids = [str(uuid.uuid4()).encode() for _ in range(6_000)]
    spread = [sum(partition_of(i, 6) == p for i in ids) for p in range(6)]
    assert min(spread) > 800, spread


def test_sample_is_stable_and_of_the_rate():
    ids = [str(uuid.UUID(int=i)).encode() for i in range(20_000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    assert kept == [i for i in ids if sampled(i, 0.25)], "the same ids every time"
    assert set(kept) <= {i for i in ids if sampled(i, 0.5)}, "a larger sample contains a smaller one"
    assert all(sampled(i, 1.0) for i in ids[:100]) and not any(sampled(i, 0.0) for i in ids[:100])
