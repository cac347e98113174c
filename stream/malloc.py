"""glibc's malloc held to two arenas, so that RocksDB's background threads do not keep memory they freed.

glibc gives each thread that allocates under contention an arena of its own (up to eight per
core) and keeps what is freed there for reuse. RocksDB's flush and compaction threads allocate
and free large blocks at the pace of the writes, so a store filled fast held its memory: 10
million entries written at 115,000/s peaked at 962 MiB of RSS with glibc's default and at 156 MiB
with two arenas (``python -m bench.outcomes memory``, 2026-11-30, minutes apart on a quiet
machine). Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["limit_arenas"]

_M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def limit_arenas(arenas: int = 2) -> bool:
    """Hold glibc's malloc to ``arenas`` arenas from now on (once per process); False where there is no
    glibc to tell. Call it before the threads that allocate start."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
