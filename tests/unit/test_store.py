"""The store: the spool while the disk takes writes, the memory queue while it does not, back to
disk when it does again; corrupt spools quarantined and salvaged. Disk faults here come from
the free-space reserve (a pure switch); real full, read-only and corrupt file systems are in
tests/integration/test_storage_faults.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent.core.reading import Priority
from agent.delivery import quarantine
from agent.delivery.message import Message
from agent.delivery.spool import FILENAME, Spool
from agent.delivery.store import Store, StoreOptions

MiB = 1024**2


class Disk:
    """What the store is told the file system has free."""

    def __init__(self, free: int = 10**12) -> None:
        self.free = free

    def __call__(self, directory: Path) -> int:
        return self.free


def message(stream: str, n: int, priority: Priority = Priority.STATE, size: int = 500) -> Message:
    return Message(f"edge/n1/{stream}", f"{stream}:{n}:".encode().ljust(size, b"."), stream, priority)


def open_store(tmp_path: Path, disk: Disk | None = None, clock_ms=None, **options) -> Store:
    settings = {"max_bytes": 16 * MiB, "max_age_s": 3600.0, "min_free": 64 * MiB, "memory_bytes": MiB, **options}
    extra = {"clock_ms": clock_ms} if clock_ms else {}
    return Store(tmp_path / FILENAME, StoreOptions(**settings), disk_free=disk or Disk(), retry_s=0.0, **extra)


def numbers(batch) -> list[int]:
    return [int(item.payload.split(b":")[1]) for item in batch]


def on_disk(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM message").fetchone()[0]
    finally:
        conn.close()


def test_below_the_reserve_new_messages_wait_in_memory_behind_the_spool_and_move_back(tmp_path: Path) -> None:
    disk = Disk()
    store = open_store(tmp_path, disk)
    store.put_many([message("s", n) for n in range(3)])
    disk.free = 60 * MiB  # below the 64 MiB reserve
    ids = store.put_many([message("s", n) for n in range(3, 6)])
    assert not store.writable and store.cause == "disk reserve reached"
    assert (store.depth, store.memory.depth, on_disk(store.path)) == (6, 3, 3)
    cursors: dict[str, int] = {}
    assert numbers(store.next_batch(cursors, 4)) == [0, 1, 2, 3]  # the spool's first, then memory's
    assert numbers(store.next_batch(cursors, 4)) == [4, 5]
    assert store.ack([ids[0]]) == 1  # acked in memory
    disk.free = 10**12
    store.put(message("s", 6))  # the next write finds room again and moves memory to disk first
    assert store.writable and store.memory.depth == 0 and on_disk(store.path) == 6
    assert numbers(store.next_batch({}, 10)) == [0, 1, 2, 4, 5, 6]
    assert store.ack(ids[1:]) == 2  # a late PUBACK finds the moved messages under their ids
    stats = store.stats()
    assert (stats.depth, stats.acked, stats.dropped_total) == (4, 3, 0)  # nothing counted dropped
    store.close()
    assert Spool(store.path, max_bytes=16 * MiB, max_age_s=60).stats().acked == 3


def test_the_memory_queue_keeps_the_newest_by_priority_and_counts_what_it_drops(tmp_path: Path) -> None:
    disk = Disk(free=0)
    store = open_store(tmp_path, disk, memory_bytes=64 * 1024)
    for n in range(200):
        store.put(message("host", n, Priority.STATE))
        if n % 20 == 0:
            store.put(message("status", n, Priority.SECURITY))
    kept = store.next_batch({}, 1000)
    host = [int(m.payload.split(b":")[1]) for m in kept if m.stream == "host"]
    assert len([m for m in kept if m.stream == "status"]) == 10  # every security message
    assert host == list(range(200 - len(host), 200)) and 0 < len(host) < 200  # the newest state
    stats = store.stats()
    assert stats.dropped == {"memory.state": 200 - len(host)}
    assert store.health()["memory_bytes"] <= 64 * 1024
    disk.free = 10**12
    store.maintain()
    assert store.writable and store.stats().dropped == {"memory.state": 200 - len(host)}  # now on disk, once
    assert on_disk(store.path) == len(host) + 10


def test_held_wills_in_memory_wait_for_release(tmp_path: Path) -> None:
    store = open_store(tmp_path, Disk(free=0))
    will = store.put(message("status", 0, Priority.SECURITY), held=True)
    store.put(message("status", 1, Priority.SECURITY))
    assert numbers(store.next_batch({}, 10)) == [1]
    assert store.release_held() == 1
    assert [m.id for m in store.next_batch({}, 10)][0] == will
    assert store.stats().held == 0


def test_a_corrupt_spool_is_quarantined_at_open_and_what_reads_is_salvaged(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    spool = Spool(path, max_bytes=64 * MiB, max_age_s=3600)
    ids = spool.put_many([message(f"s{n % 3}", n, Priority(n % 3), size=600) for n in range(1000)])
    spool.ack(ids[:10])
    spool.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4096 * 3] = b"\x5a" * 4096 * 3
    path.write_bytes(bytes(data))

    store = open_store(tmp_path, clock_ms=lambda: 1_700_000_000_000)
    [record] = store.quarantines
    assert 900 < record.salvaged < 990 and record.lost == 990 - record.salvaged  # 3 bad pages of ~6 rows
    assert store.writable and store.depth == record.salvaged
    kept = numbers(store.next_batch({}, 2000))
    assert len(kept) == record.salvaged and set(kept) <= set(range(10, 1000))
    stats = store.stats()
    assert (stats.dropped, stats.acked) == ({"corrupt.unknown": record.lost}, 10)  # its counts carried over
    moved = Path(record.path)
    assert moved.exists() and moved.name == "spool.db.corrupt-20231114T221320.000Z"
    assert json.loads(moved.with_name(moved.name + ".json").read_text())["salvaged"] == record.salvaged
    assert store.ack([ids[kept[0]]]) == 1  # a salvaged message keeps its id


def test_salvage_publishes_only_what_the_node_vouches_for(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    spool = Spool(path, max_bytes=64 * MiB, max_age_s=3600)
    spool.put_many([message("s", n) for n in range(100)])
    spool.close()
    data = path.read_bytes()
    path.write_bytes(data[:-4096] + b"\x5a" * 4096)  # the last page damaged

    vouched = Store(path, StoreOptions(max_bytes=16 * MiB, max_age_s=3600),
                    accept=lambda topic, payload: int(payload.split(b":")[1]) % 2 == 0)
    [record] = vouched.quarantines
    kept = numbers(vouched.next_batch({}, 100))
    assert kept and all(n % 2 == 0 for n in kept) and record.salvaged == len(kept)
    assert record.lost == 100 - len(kept) >= 50


@pytest.mark.parametrize("damage", ["garbage", "half", "empty-header"])
def test_a_spool_that_is_not_a_database_starts_afresh(tmp_path: Path, damage: str) -> None:
    path = tmp_path / FILENAME
    spool = Spool(path, max_bytes=64 * MiB, max_age_s=3600)
    spool.put_many([message("s", n) for n in range(300)])
    spool.close()
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x5a" * len(data), "half": data[: len(data) // 2],
                      "empty-header": b"\0" * 100 + data[100:]}[damage])
    store = open_store(tmp_path)
    [record] = store.quarantines
    assert store.writable
    store.put(message("s", 999))
    assert numbers(store.next_batch({}, 1000))[-1] == 999
    if damage == "half":
        assert 0 < record.salvaged < 300


def test_only_the_newest_quarantined_copies_are_kept(tmp_path: Path) -> None:
    for at in range(quarantine.KEEP + 2):
        (tmp_path / FILENAME).write_bytes(b"not a database at all" * 300)
        Store(tmp_path / FILENAME, StoreOptions(max_bytes=MiB, max_age_s=60),
              clock_ms=lambda at=at: 1_700_000_000_000 + at * 1000).close()
    copies = quarantine.copies(tmp_path / FILENAME)
    assert len(copies) == quarantine.KEEP
    assert copies[-1].name.endswith("T221324.000Z")  # the newest stayed
    assert [r["salvaged"] for r in quarantine.records(tmp_path / FILENAME)] == [0] * quarantine.KEEP


def test_a_reload_hands_the_memory_queue_to_the_next_store(tmp_path: Path) -> None:
    disk = Disk(free=0)
    old = open_store(tmp_path, disk)
    old.put_many([message("s", n) for n in range(2)])  # the reserve: straight to memory
    ids = old.put_many([message("s", n) for n in range(2, 5)])
    held = old.close(hand_over=True)
    assert [item.id for item in held][-3:] == ids
    new = open_store(tmp_path, disk)
    new.adopt(held)
    assert not new.writable and new.memory.depth == 5
    later = new.put(message("s", 5))
    assert later > ids[-1]  # numbered after what it took over
    disk.free = 10**12
    new.maintain()
    assert new.writable and on_disk(new.path) == 6
    assert numbers(new.next_batch({}, 10)) == [0, 1, 2, 3, 4, 5]
    assert open_store(tmp_path / "other", Disk(free=0)).close() == []  # without hand_over: said lost, none kept
