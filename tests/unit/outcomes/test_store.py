"""The RocksDB store of pending entries: encodings, indexes, checkpoints, signed changelog records."""

from __future__ import annotations

import pytest

from stream.keys import Keys
from stream.outcomes.store import Entry, PendingStore

SHA = "ab" * 32
CHANGELOG = "app-outcomes-pending-changelog"


@pytest.fixture
def open_store(tmp_path):
    opened: list[PendingStore] = []

    def make(name: str = "a", secret: str = "s" * 32, previous: tuple[str, ...] = (), rejected=None):
        signer = Keys.from_secret(secret, previous).state
        store = PendingStore(
            tmp_path / name, signer, CHANGELOG, (rejected if rejected is not None else []).append
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _signed(store: PendingStore, partition: int, changed: list) -> list[tuple[bytes, bytes | None]]:
    """The changelog records of what :meth:`PendingStore.write` changed."""
    return [(k, store.changelog_value(partition, k, e)) for k, e in changed]


def _prediction(ms: int, score: float = 0.5) -> Entry:
    return Entry(ms, "loan-approval/1", SHA, score)


def test_entries_round_trip_compactly_and_changelog_records_rebuild_them_elsewhere(open_store):
    store = open_store()
    entries = {
        "p": _prediction(1_000, 0.25),
        "o": Entry(2_000, positive=False),
        "j": Entry(3_000, "loan-approval/2", SHA, 0.75, True, 4_000),
    }
    records = _signed(store, 0, store.write(0, [(k, None, e) for k, e in entries.items()]))
    assert store.get_many(0, [*list(entries), "absent"]) == [*entries.values(), None]
    assert store.get_many(1, ["p"]) == [None], "a partition's entries are its own"
    assert store.db.get(b"e\x00\x00p") is not None and len(store.db.get(b"e\x00\x00p")) == 29
    assert store.count(0) == 3
    copy = open_store("b")
    assert copy.restore(0, records) == set()
    assert copy.get_many(0, list(entries)) == list(entries.values()) and copy.count(0) == 3
    assert copy.restore(0, [(b"p", None)]) == set() and copy.get_many(0, ["p"]) == [None]
    assert copy.count(0) == 2


def test_changelog_records_not_signed_by_us_or_malformed_read_as_absent(open_store):
    rejected: list[str] = []
    store = open_store(rejected=rejected)
    ((_, genuine),) = _signed(store, 0, store.write(0, [("a", None, _prediction(1_000))]))
    signer = Keys.from_secret("s" * 32).state
    planted = [
        (b"b", genuine),  # a genuine record copied under another key
        (b"c", Keys.from_secret("t" * 32).state.sign(f"{CHANGELOG}[0][c]", genuine[32:])),  # another secret
        (b"d", genuine[32:]),  # unsigned
        (b"e", signer.sign(f"{CHANGELOG}[0][e]", b'{"__faust": {"ns": "@ReqRepRequest"}}')),  # not ours
        (b"f", signer.sign(f"{CHANGELOG}[0][f]", genuine[32:][:20])),  # cut short
        (b"g", signer.sign(f"{CHANGELOG}[0][g]", b"\x01" + genuine[33 : -len(SHA) - 16])),  # no model text
    ]
    other = open_store("b", rejected=rejected)
    assert other.restore(0, planted) == {b"b", b"c", b"d", b"e", b"f", b"g"}
    assert sorted(rejected) == sorted(["signature"] * 3 + ["format"] * 3)
    assert other.get_many(0, list("bcdefg")) == [None] * 6 and other.count(0) == 0
    assert other.restore(1, [(b"a", genuine)]) == {b"a"}, "signed for partition 0, not 1"
    assert other.restore(0, [(b"a", genuine)]) == set() and other.count(0) == 1


def test_rotation_keeps_records_signed_with_the_previous_secret(open_store):
    old = open_store("old", secret="o" * 32)
    records = _signed(old, 0, old.write(0, [("a", None, Entry(5, positive=True))]))
    rotated = open_store("new", secret="n" * 32, previous=("o" * 32,))
    assert rotated.restore(0, records) == set()
    assert rotated.get_many(0, ["a"]) == [Entry(5, positive=True)]


def test_records_signed_with_hmac_before_keyed_blake2b_still_restore(open_store):
    store = open_store()
    ((key, value),) = _signed(store, 0, store.write(0, [("a", None, _prediction(7))]))
    body = value[32:]
    legacy = store.signer.sign(f"{CHANGELOG}[0][a]", body)  # the format of earlier releases
    assert legacy != value
    copy = open_store("b")
    assert copy.restore(0, [(key, legacy)]) == set() and copy.get_many(0, ["a"]) == [_prediction(7)]
    assert copy.restore(1, [(key, legacy)]) == {key}, "still bound to its partition"


def test_a_batch_of_several_partitions_is_written_at_once_and_only_changed_index_keys_move(open_store):
    store = open_store()
    waiting, joined = _prediction(1_000), Entry(1_000, "loan-approval/1", SHA, 0.5, True, 2_000)
    store.write_many({0: [("a", None, waiting)], 1: [("b", None, Entry(3, positive=False))]})
    assert store.count(0) == 1 and store.count(1) == 1
    store.write_many({0: [("a", waiting, joined)]})
    assert store.get_many(0, ["a"]) == [joined] and store.count(0) == 1
    assert [i for i, _ in store.expire(0, horizon_ms=1_001, keep=10)] == ["a"], "its time index kept"
    assert [e for _, e in store.recent_joined(0, 5)] == [joined]


def test_expiry_reads_the_time_index_from_the_oldest_in_batches(open_store):
    store = open_store()
    store.write(2, [(f"e{i}", None, _prediction(10_000 - i)) for i in range(1_000)])  # stored newest first
    first = store.expire(2, horizon_ms=9_500, keep=10_000, most=100)
    assert [e.stored_ms for _, e in first] == list(range(9_001, 9_101))
    store.write(2, [(i, e, None) for i, e in first])
    rest = store.expire(2, horizon_ms=9_500, keep=10_000)
    assert [e.stored_ms for _, e in rest] == list(range(9_101, 9_500))
    store.write(2, [(i, e, None) for i, e in rest])
    assert store.count(2) == 501
    over = store.expire(2, horizon_ms=0, keep=500)
    assert [i for i, _ in over] == ["e500"], "beyond the size bound: the oldest"
    late = _prediction(1)  # an entry older than everything already expired still expires
    store.write(2, [("late", None, late)])
    assert store.expire(2, horizon_ms=2, keep=10_000) == [("late", late)]


def test_recent_joined_gives_the_last_joined_oldest_first(open_store):
    store = open_store()
    store.write(
        0, [(f"e{i}", None, Entry(i, "m/1", SHA, 0.5, True, 1_000 + (i * 7) % 100)) for i in range(100)]
    )
    store.write(0, [("waiting", None, _prediction(5))])
    recent = store.recent_joined(0, 10)
    assert [e.joined_ms for _, e in recent] == list(range(1_090, 1_100))


def test_checkpoints_counts_and_models_survive_a_reopen(open_store, tmp_path):
    store = open_store()
    store.write(3, [("a", None, _prediction(1)), ("b", None, Entry(2, positive=True))])
    store.set_checkpoint(3, 42)
    store.close()
    again = open_store()
    again.set_checkpoint(3, 43)
    assert again.checkpoint(3)[0] == 43 and again.count(3) == 2
    assert again.get_many(3, ["a"]) == [_prediction(1)], "the model table came back"
    again.drop(3)
    assert again.count(3) == 0 and again.get_many(3, ["a", "b"]) == [None, None]
    assert again.checkpoint(3)[0] == 0
