"""The pending store's changelog: signed record values, records read back, checkpoints.

The changelog (a compacted topic, one partition per input partition) gets one record per change,
keyed by ``event_id``: the entry with its model spelled out, signed over the topic, the partition
and the key with keyed BLAKE2b under a key derived from the state key
(:class:`~stream.keys.RecordSigner`; records signed with HMAC-SHA256 before it still verify), or a
tombstone. Records read back are checked before anything is built from them; one that is not
signed by the current or a previous secret, or is malformed, reads as absent and is reported.
With its entries the store saves the next changelog offset it has applied: its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rocksdict import Rdict, WriteBatch

from stream.errors import StateRejected
from stream.keys import RecordSigner, Signer
from stream.outcomes.entry import Entry, from_wire, to_wire
from stream.outcomes.layout import CHECKPOINT, MS, PART

ChangelogRecord = tuple[bytes, bytes | None]  # key, signed value or None (a tombstone)
_MAX_KEY = 256


class StoreChangelog:
    """The changelog side of :class:`~stream.outcomes.store.PendingStore`, which sets up the
    database, the signers and the counts declared here."""

    db: Rdict
    signer: Signer
    records: RecordSigner
    changelog: str
    rejected: Callable[[str], None]
    _heads: dict[int, bytes]  # partition -> the start of its records' MAC context
    _counts: dict[int, int]
    _offsets: dict[int, int]
    _expired_to: dict[int, int]  # partition -> ms below which the time index is empty
    count: Callable[[int], int]
    _encode: Callable[[Entry], bytes]
    _local: Callable[[bytes], Entry]

    def changelog_value(self, partition: int, key: bytes, entry: Entry | None) -> bytes | None:
        """The changelog record's value for ``entry`` (signed), or None (a tombstone)."""
        if entry is None:
            return None
        return self.records.sign(self._head(partition) + len(key).to_bytes(4, "big") + key, to_wire(entry))

    def checkpoint(self, partition: int) -> tuple[int, float] | None:
        """The next changelog offset this store has applied for ``partition``, and when it was saved."""
        raw = self.db.get(b"c" + PART.pack(partition))
        if raw is None:
            return None
        offset, _, written = CHECKPOINT.unpack(raw)
        return offset, written

    def set_checkpoint(self, partition: int, offset: int) -> None:
        """Every changelog record of ``partition`` below ``offset`` is in the store."""
        self.count(partition)  # loads what is saved first
        self._offsets[partition] = offset
        self.db.put(b"c" + PART.pack(partition), self._checkpoint(partition))

    def restore(self, partition: int, records: Iterable[ChangelogRecord]) -> set[bytes]:
        """Apply changelog records read back; return the keys left refused (worth a tombstone)."""
        refused: set[bytes] = set()
        part, count = PART.pack(partition), self.count(partition)
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

    def _stage(
        self, batch: WriteBatch, part: bytes, key: bytes, before: Entry | None, after: Entry | None
    ) -> int:
        """Put one change into ``batch`` with its index keys; the change of the entry count."""
        if before is not None and (after is None or after.stored_ms != before.stored_ms):
            batch.delete(b"t" + part + MS.pack(before.stored_ms) + key)
        if before is not None and before.joined and (after is None or after.joined_ms != before.joined_ms):
            batch.delete(b"j" + part + MS.pack(before.joined_ms) + key)
        if after is None:
            batch.delete(b"e" + part + key)
            return -1 if before is not None else 0
        batch.put(b"e" + part + key, self._encode(after))
        batch.put(b"t" + part + MS.pack(after.stored_ms) + key, b"")
        if after.joined:
            batch.put(b"j" + part + MS.pack(after.joined_ms) + key, b"")
        return 1 if before is None else 0

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

    def _checkpoint(self, partition: int) -> bytes:
        return CHECKPOINT.pack(self._offsets.get(partition, 0), self._counts.get(partition, 0), time.time())

    def _load_checkpoint(self, partition: int) -> None:
        raw = self.db.get(b"c" + PART.pack(partition))
        offset, count, _ = CHECKPOINT.unpack(raw) if raw is not None else (0, 0, 0.0)
        self._offsets[partition], self._counts[partition] = offset, count
