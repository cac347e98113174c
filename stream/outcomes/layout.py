"""The pending store's RocksDB: its keys, and options that bound its memory.

Keys begin with a kind byte and the partition (2 bytes), so that a partition's state is a few key
ranges:

- ``e`` p event_id: the entry, 29 bytes (:mod:`stream.outcomes.entry`): flags, stored and joined
  times (ms), score, model number;
- ``t`` p stored_ms event_id: the time index, read from the oldest to expire in batches, never a scan;
- ``j`` p joined_ms event_id: joined entries, read from the newest to rebuild the rolling figures;
- ``c`` p: the changelog checkpoint (next offset), the partition's entry count, when written;
- ``m`` number: a model's ``name/version`` and sha256, stored once.
"""

from __future__ import annotations

import struct

from rocksdict import BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, Options

CHECKPOINT = struct.Struct(">qqd")  # next changelog offset, entries, written at (s)
PART, MS = struct.Struct(">H"), struct.Struct(">q")


def db_options(cache_mib: int, memtable_mib: int) -> Options:
    """Bounded memory: partitioned index and filter blocks live in the block cache (only their top
    level is pinned), two memtables at most. 10 million entries: under 160 MiB RSS (docs: the results
    page, Outcome worker)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(cache_mib * 2**20))
    table.set_cache_index_and_filter_blocks(True)
    table.set_index_type(BlockBasedIndexType.two_level_index_search())
    table.set_partition_filters(True)
    table.set_pin_top_level_index_and_filter(True)
    table.set_metadata_block_size(4096)
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(memtable_mib * 2**20)
    options.set_max_write_buffer_number(2)
    options.set_max_open_files(256)
    options.set_compression_type(DBCompressionType.none())
    options.set_bottommost_compression_type(DBCompressionType.lz4())
    options.set_max_background_jobs(2)
    return options
