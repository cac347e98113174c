"""The join's pending entries on disk: RocksDB (through rocksdict), and their changelog records.

One RocksDB per outcome worker holds, for each input partition it has owned, the entries waiting
for their other half (and joined ones, kept as markers until they expire). Memory stays bounded
whatever the retention: a fixed block cache (partitioned index and filter blocks inside it) and
two small memtables. Keys begin with a kind byte and the partition (2 bytes), so that a partition's state is
a few key ranges:

- ``e`` p event_id: the entry, 29 bytes (:mod:`stream.outcomes.entry`): flags, stored and joined
  times (ms), score, model number;
- ``t`` p stored_ms event_id: the time index, read from the oldest to expire in batches, never a scan;
- ``j`` p joined_ms event_id: joined entries, read from the newest to rebuild the rolling figures;
- ``c`` p: the changelog checkpoint (next offset), the partition's entry count, when written;
- ``m`` number: a model's ``name/version`` and sha256, stored once.

The changelog (a compacted topic, one partition per input partition) gets one record per change,
keyed by ``event_id``: the entry with its model spelled out, signed over the topic, the partition
and the key with keyed BLAKE2b under a key derived from the state key
(:class:`~stream.keys.RecordSigner`; records signed with HMAC-SHA256 before it still verify), or a
tombstone. Records read back are checked before anything is built from them; one that is not
signed by the current or a previous secret, or is malformed, reads as absent and is reported.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    DbClosedError,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
)

from stream.errors import StateRejected
from stream.keys import RecordSigner, Signer
from stream.outcomes.entry import Entry, from_local, from_wire, to_local, to_wire

__all__ = ["Entry", "PendingStore"]

_CHECKPOINT = struct.Struct(">qqd")  # next changelog offset, entries, written at (s)
_PART, _MS = struct.Struct(">H"), struct.Struct(">q")
_MAX_KEY = 256
Change = tuple[str, Entry | None, Entry | None]  # event_id, before, after
ChangelogRecord = tuple[bytes, bytes | None]  # key, signed value or None (a tombstone)
Changed = tuple[bytes, Entry | None]  # key, entry as it is now (None: gone)


class PendingStore:
    """Pending entries of the partitions this worker owns or owned, in RocksDB."""

    def __init__(
        self,
        path: Path,
        signer: Signer,
        changelog: str,
        rejected: Callable[[str], None],
        cache_mib: int = 32,
        memtable_mib: int = 16,
    ) -> None:
        self.path, self.signer, self.changelog, self.rejected = path, signer, changelog, rejected
        self.records = RecordSigner(signer, "outcome changelog v2")
        self._heads: dict[int, bytes] = {}  # partition -> the start of its records' MAC context
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path), _options(cache_mib, memtable_mib))
        self._models: dict[tuple[str, str], int] = {}
        self._model_names: dict[int, tuple[str, str]] = {}
        it = self.db.iter()
        it.seek(b"m")
        while it.valid() and it.key().startswith(b"m"):
            name, _, sha = it.value().decode().partition(" ")
            self._intern_known(int.from_bytes(it.key()[1:], "big"), name, sha)
            it.next()
        del it
        self._counts: dict[int, int] = {}
        self._offsets: dict[int, int] = {}
        self._expired_to: dict[int, int] = {}  # partition -> ms below which the time index is empty

    # -- entries -------------------------------------------------------------------------------

    def get_many(self, partition: int, event_ids: list[str]) -> list[Entry | None]:
        """The entries of ``event_ids`` in ``partition``, in one lookup pass."""
        prefix = b"e" + _PART.pack(partition)
        raw = self.db[[prefix + i.encode() for i in event_ids]]
        return [None if r is None else self._local(r) for r in raw]

    def write(self, partition: int, changes: Iterable[Change]) -> list[Changed]:
        """Apply ``changes`` in one atomic write; return the keys changed and their entries now, for
        the changelog (:meth:`changelog_value`)."""
        return self.write_many({partition: changes})[partition]

    def write_many(self, changes: Mapping[int, Iterable[Change]]) -> dict[int, list[Changed]]:
        """:meth:`write` for several partitions in one atomic write."""
        batch = WriteBatch(raw_mode=True)
        put, delete, encode, ms = batch.put, batch.delete, self._encode, _MS.pack
        out: dict[int, list[Changed]] = {}
        for partition, changed in changes.items():
            part = _PART.pack(partition)
            e, t, j = b"e" + part, b"t" + part, b"j" + part
            records: list[Changed] = []
            count = self.count(partition)
            oldest = self._expired_to.get(partition)
            for event_id, before, after in changed:
                key = event_id.encode()
                records.append((key, after))
                if before is None:
                    if after is None:
                        continue
                    count += 1
                else:
                    if after is None or after.stored_ms != before.stored_ms:
                        delete(t + ms(before.stored_ms) + key)
                    if before.joined_ms and (after is None or after.joined_ms != before.joined_ms):
                        delete(j + ms(before.joined_ms) + key)
                    if after is None:
                        delete(e + key)
                        count -= 1
                        continue
                put(e + key, encode(after))
                if before is None or after.stored_ms != before.stored_ms:  # else the index holds it
                    put(t + ms(after.stored_ms) + key, b"")
                    if oldest is not None and after.stored_ms < oldest:
                        oldest = after.stored_ms
                if after.joined_ms and (before is None or after.joined_ms != before.joined_ms):
                    put(j + ms(after.joined_ms) + key, b"")
            if oldest is not None:
                self._expired_to[partition] = oldest
            self._counts[partition] = count
            put(b"c" + part, self._checkpoint(partition))
            out[partition] = records
        self.db.write(batch)
        return out

    def _stage(
        self, batch: WriteBatch, part: bytes, key: bytes, before: Entry | None, after: Entry | None
    ) -> int:
        """Put one change into ``batch`` with its index keys; the change of the entry count."""
        if before is not None and (after is None or after.stored_ms != before.stored_ms):
            batch.delete(b"t" + part + _MS.pack(before.stored_ms) + key)
        if before is not None and before.joined and (after is None or after.joined_ms != before.joined_ms):
            batch.delete(b"j" + part + _MS.pack(before.joined_ms) + key)
        if after is None:
            batch.delete(b"e" + part + key)
            return -1 if before is not None else 0
        batch.put(b"e" + part + key, self._encode(after))
        batch.put(b"t" + part + _MS.pack(after.stored_ms) + key, b"")
        if after.joined:
            batch.put(b"j" + part + _MS.pack(after.joined_ms) + key, b"")
        return 1 if before is None else 0

    def expire(
        self, partition: int, horizon_ms: int, keep: int, most: int = 10_000
    ) -> list[tuple[str, Entry]]:
        """Take out the oldest entries stored before ``horizon_ms`` or beyond the newest ``keep``.

        Reads the time index from the oldest, at most ``most`` entries a call; returns what it took
        out (the caller writes the tombstones, :meth:`write` with ``after`` None).
        """
        prefix = b"t" + _PART.pack(partition)
        over = self.count(partition) - keep
        it = self.db.iter()
        it.seek(prefix + _MS.pack(self._expired_to.get(partition, 0)))
        found: list[tuple[bytes, str]] = []  # (index key, event id)
        while it.valid() and len(found) < most:
            key = it.key()
            if not key.startswith(prefix):
                break
            stored_ms = _MS.unpack_from(key, 3)[0]
            if stored_ms >= horizon_ms and len(found) >= over:
                break
            found.append((key, key[11:].decode()))
            self._expired_to[partition] = stored_ms
            it.next()
        del it
        entries = self.get_many(partition, [i for _, i in found])
        stale = WriteBatch(raw_mode=True)
        taken = []
        for (key, event_id), entry in zip(found, entries, strict=True):
            if entry is None or _MS.pack(entry.stored_ms) != key[3:11]:
                stale.delete(key)  # an index key whose entry went or moved: dropped alone
            else:
                taken.append((event_id, entry))
        if len(taken) < len(found):
            self.db.write(stale)
        return taken

    def recent_joined(self, partition: int, most: int) -> list[tuple[str, Entry]]:
        """The ``most`` entries of ``partition`` joined last, oldest first."""
        prefix = b"j" + _PART.pack(partition)
        it = self.db.iter()
        it.seek_for_prev(prefix + b"\xff" * 9)
        found: list[str] = []
        while it.valid() and len(found) < most and it.key().startswith(prefix):
            found.append(it.key()[11:].decode())
            it.prev()
        del it
        found.reverse()
        entries = self.get_many(partition, found)
        return [(i, e) for i, e in zip(found, entries, strict=True) if e is not None and e.joined]

    def count(self, partition: int) -> int:
        """Entries held for ``partition``."""
        if partition not in self._counts:
            self._load_checkpoint(partition)
        return self._counts[partition]

    # -- the changelog -------------------------------------------------------------------------

    def checkpoint(self, partition: int) -> tuple[int, float] | None:
        """The next changelog offset this store has applied for ``partition``, and when it was saved."""
        raw = self.db.get(b"c" + _PART.pack(partition))
        if raw is None:
            return None
        offset, _, written = _CHECKPOINT.unpack(raw)
        return offset, written

    def set_checkpoint(self, partition: int, offset: int) -> None:
        """Every changelog record of ``partition`` below ``offset`` is in the store."""
        self.count(partition)  # loads what is saved first
        self._offsets[partition] = offset
        self.db.put(b"c" + _PART.pack(partition), self._checkpoint(partition))

    def restore(self, partition: int, records: Iterable[ChangelogRecord]) -> set[bytes]:
        """Apply changelog records read back; return the keys left refused (worth a tombstone)."""
        refused: set[bytes] = set()
        part, count = _PART.pack(partition), self.count(partition)
        batch = WriteBatch(raw_mode=True)
        touched: dict[bytes, Entry | None] = {}  # key -> entry as this batch leaves it
        self._expired_to.pop(partition, None)  # older entries may come in
        for key, value in records:
            after = None if value is None else self._verified(partition, key, value)
            if value is not None and after is None:
                refused.add(key)
            else:
                refused.discard(key)
            if key in touched:
                before = touched[key]
            else:
                raw = self.db.get(b"e" + part + key)
                before = None if raw is None else self._local(raw)
            if after is not None or before is not None:
                count += self._stage(batch, part, key, before, after)
                touched[key] = after
            if len(touched) >= 10_000:
                self.db.write(batch)
                batch, touched = WriteBatch(raw_mode=True), {}
        self._counts[partition] = count
        batch.put(b"c" + part, self._checkpoint(partition))
        self.db.write(batch)
        return refused

    def drop(self, partition: int) -> None:
        """Forget everything held for ``partition`` (its changelog rebuilds it)."""
        part = _PART.pack(partition)
        for kind in (b"e", b"t", b"j"):
            self.db.delete_range(kind + part, kind + _PART.pack(partition + 1))
        self._counts[partition], self._offsets[partition] = 0, 0
        self._expired_to.pop(partition, None)
        self.db.put(b"c" + part, self._checkpoint(partition))

    # -- encodings -----------------------------------------------------------------------------

    def _encode(self, e: Entry) -> bytes:
        return to_local(e, self._intern(e.model, e.sha256) if e.model is not None else 0)

    def _local(self, raw: bytes) -> Entry:
        return from_local(raw, self._model_names)

    def changelog_value(self, partition: int, key: bytes, entry: Entry | None) -> bytes | None:
        """The changelog record's value for ``entry`` (signed), or None (a tombstone)."""
        if entry is None:
            return None
        return self.records.sign(self._head(partition) + len(key).to_bytes(4, "big") + key, to_wire(entry))

    def _verified(self, partition: int, key: bytes, value: bytes) -> Entry | None:
        body = self.records.verify(self._head(partition) + len(key).to_bytes(4, "big") + key, value)
        if body is None:  # signed before keyed BLAKE2b: HMAC-SHA256 over the context as text
            try:
                body = self.signer.verify(self._context(partition, key), value)
            except StateRejected as exc:
                self.rejected(exc.reason)
                return None
        entry = from_wire(body) if len(key) <= _MAX_KEY else None
        if entry is None:
            self.rejected("format")
        return entry

    def _head(self, partition: int) -> bytes:
        """The changelog and the partition: what a record's MAC covers before its key and body."""
        head = self._heads.get(partition)
        if head is None:
            head = self._heads[partition] = self.changelog.encode() + b"\0" + partition.to_bytes(4, "big")
        return head

    def _context(self, partition: int, key: bytes) -> str:
        return f"{self.changelog}[{partition}][{key.decode(errors='replace')}]"

    def _intern(self, model: str, sha256: str) -> int:
        number = self._models.get((model, sha256))
        if number is None:
            number = len(self._models) + 1
            self.db.put(b"m" + number.to_bytes(4, "big"), f"{model} {sha256}".encode())
            self._intern_known(number, model, sha256)
        return number

    def _intern_known(self, number: int, model: str, sha256: str) -> None:
        self._models[(model, sha256)] = number
        self._model_names[number] = (model, sha256)

    def _checkpoint(self, partition: int) -> bytes:
        return _CHECKPOINT.pack(self._offsets.get(partition, 0), self._counts.get(partition, 0), time.time())

    def _load_checkpoint(self, partition: int) -> None:
        raw = self.db.get(b"c" + _PART.pack(partition))
        offset, count, _ = _CHECKPOINT.unpack(raw) if raw is not None else (0, 0, 0.0)
        self._offsets[partition], self._counts[partition] = offset, count

    # -- the store as a whole ------------------------------------------------------------------

    def disk_bytes(self) -> int:
        """Bytes of the store's files on disk (tables, logs)."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def close(self) -> None:
        """Close the database (again: nothing)."""
        with contextlib.suppress(DbClosedError):
            self.db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


def _options(cache_mib: int, memtable_mib: int) -> Options:
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
