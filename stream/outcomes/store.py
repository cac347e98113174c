"""The join's pending entries on disk: RocksDB (through rocksdict).

One RocksDB per outcome worker holds, for each input partition it has owned, the entries waiting
for their other half (and joined ones, kept as markers until they expire). Memory stays bounded
whatever the retention: a fixed block cache (partitioned index and filter blocks inside it) and
two small memtables. Keys begin with a kind byte and the partition, so that a partition's state is
a few key ranges (:mod:`stream.outcomes.layout`). Each change makes a signed changelog record, and
records read back are checked before they are applied (:mod:`stream.outcomes.changelog`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rocksdict import DbClosedError, Rdict, WriteBatch

from stream.keys import RecordSigner, Signer
from stream.outcomes.changelog import StoreChangelog
from stream.outcomes.entry import Entry, from_local, to_local
from stream.outcomes.layout import MS, PART, db_options

__all__ = ["Entry", "PendingStore"]

Change = tuple[str, Entry | None, Entry | None]  # event_id, before, after
Changed = tuple[bytes, Entry | None]  # key, entry as it is now (None: gone)


class PendingStore(StoreChangelog):
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
        self.db = Rdict(str(path), db_options(cache_mib, memtable_mib))
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
        prefix = b"e" + PART.pack(partition)
        raw = self.db[[prefix + i.encode() for i in event_ids]]
        return [None if r is None else self._local(r) for r in raw]

    def write(self, partition: int, changes: Iterable[Change]) -> list[Changed]:
        """Apply ``changes`` in one atomic write; return the keys changed and their entries now, for
        the changelog (:meth:`changelog_value`)."""
        return self.write_many({partition: changes})[partition]

    def write_many(self, changes: Mapping[int, Iterable[Change]]) -> dict[int, list[Changed]]:
        """:meth:`write` for several partitions in one atomic write."""
        batch = WriteBatch(raw_mode=True)
        put, delete, encode, ms = batch.put, batch.delete, self._encode, MS.pack
        out: dict[int, list[Changed]] = {}
        for partition, changed in changes.items():
            part = PART.pack(partition)
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

    def expire(
        self, partition: int, horizon_ms: int, keep: int, most: int = 10_000
    ) -> list[tuple[str, Entry]]:
        """Take out the oldest entries stored before ``horizon_ms`` or beyond the newest ``keep``.

        Reads the time index from the oldest, at most ``most`` entries a call; returns what it took
        out (the caller writes the tombstones, :meth:`write` with ``after`` None).
        """
        prefix = b"t" + PART.pack(partition)
        over = self.count(partition) - keep
        it = self.db.iter()
        it.seek(prefix + MS.pack(self._expired_to.get(partition, 0)))
        found: list[tuple[bytes, str]] = []  # (index key, event id)
        while it.valid() and len(found) < most:
            key = it.key()
            if not key.startswith(prefix):
                break
            stored_ms = MS.unpack_from(key, 3)[0]
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
            if entry is None or MS.pack(entry.stored_ms) != key[3:11]:
                stale.delete(key)  # an index key whose entry went or moved: dropped alone
            else:
                taken.append((event_id, entry))
        if len(taken) < len(found):
            self.db.write(stale)
        return taken

    def recent_joined(self, partition: int, most: int) -> list[tuple[str, Entry]]:
        """The ``most`` entries of ``partition`` joined last, oldest first."""
        prefix = b"j" + PART.pack(partition)
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

    def drop(self, partition: int) -> None:
        """Forget everything held for ``partition`` (its changelog rebuilds it)."""
        part = PART.pack(partition)
        for kind in (b"e", b"t", b"j"):
            self.db.delete_range(kind + part, kind + PART.pack(partition + 1))
        self._counts[partition], self._offsets[partition] = 0, 0
        self._expired_to.pop(partition, None)
        self.db.put(b"c" + part, self._checkpoint(partition))

    # -- encodings -----------------------------------------------------------------------------

    def _encode(self, e: Entry) -> bytes:
        return to_local(e, self._intern(e.model, e.sha256) if e.model is not None else 0)

    def _local(self, raw: bytes) -> Entry:
        return from_local(raw, self._model_names)

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
