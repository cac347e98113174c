"""glibc's malloc told to keep two arenas (the outcome store's RocksDB threads)."""

from __future__ import annotations

import platform

import pytest

from stream.malloc import limit_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_glibc_takes_the_arena_limit():
    assert limit_arenas() is True
    assert limit_arenas() is True, "once per process, the same answer after"
