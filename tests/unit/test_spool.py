"""The spool keeps order per stream, honours its budget by priority then age, and counts drops."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.core.reading import Priority
from agent.delivery.config import MIN_SPOOL_BYTES
from agent.delivery.spool import FILENAME, Message, Spool, read_stats_file


class Clock:
    def __init__(self, now_ms: int = 1_000_000):
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def message(stream: str, n: int, priority: Priority = Priority.BULK, size: int = 100) -> Message:
    payload = f"{stream}:{n}:".encode().ljust(size, b".")
    return Message(topic=f"edge/n1/{stream}", payload=payload, stream=stream, priority=priority)


def open_spool(tmp_path: Path, clock: Clock | None = None, **kwargs) -> Spool:
    options = {"max_bytes": 10_000_000, "max_age_s": 3600.0, **kwargs}
    return Spool(tmp_path / FILENAME, clock_ms=clock or Clock(), **options)


def payloads(batch) -> list[bytes]:
    return [item.payload for item in batch]


def test_messages_come_back_oldest_first_and_leave_only_when_acked(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.put_many([message("a", n) for n in range(5)])
    cursors: dict[str, int] = {}
    first = spool.next_batch(cursors, 3)
    assert [p.split(b":")[1] for p in payloads(first)] == [b"0", b"1", b"2"]
    rest = spool.next_batch(cursors, 10)
    assert [p.split(b":")[1] for p in payloads(rest)] == [b"3", b"4"]
    assert spool.next_batch(cursors, 10) == []
    assert spool.ack([item.id for item in first]) == 3
    assert spool.depth == 2
    # A new connection starts with fresh cursors: the unacked ones come again, in order.
    assert [p.split(b":")[1] for p in payloads(spool.next_batch({}, 10))] == [b"3", b"4"]


def test_contents_survive_reopening(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    ids = spool.put_many([message("a", n) for n in range(3)])
    spool.ack(ids[:1])
    spool.close()
    again = open_spool(tmp_path)
    assert again.depth == 2
    assert [item.id for item in again.next_batch({}, 10)] == ids[1:]
    assert again.bytes == 2 * (len("edge/n1/a") + 100)


def test_streams_share_the_window_most_important_first(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.put_many([message("bulk", n) for n in range(50)])
    spool.put(message("sec", 0, Priority.SECURITY))
    spool.put(message("state", 0, Priority.STATE))
    batch = spool.next_batch({}, 6)
    streams = [item.stream for item in batch]
    assert streams[:2] == ["sec", "state"]
    assert streams.count("bulk") == 4  # leftover room goes to the backlogged stream
    by_stream: dict[str, list[int]] = {}
    for item in batch:
        by_stream.setdefault(item.stream, []).append(item.id)
    assert all(ids == sorted(ids) for ids in by_stream.values())


def test_equal_streams_take_turns_when_slots_free_up_one_at_a_time(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.put_many([message(f"dev{n % 3}", n) for n in range(30)])
    cursors: dict[str, int] = {}
    served = [spool.next_batch(cursors, 1)[0].stream for _ in range(9)]
    assert sorted(served) == ["dev0"] * 3 + ["dev1"] * 3 + ["dev2"] * 3
    assert spool.next_batch({}, 1)[0].stream != spool.next_batch({}, 1)[0].stream


def kept(spool: Spool) -> list[tuple[int, int]]:
    """(priority, n) of every queued message, in id order."""
    return [(int(p.split(b":")[0][1:]), int(p.split(b":")[1])) for p in payloads(spool.next_batch({}, 10_000))]


def numbered(priority: Priority, n: int, size: int = 1000) -> Message:
    return Message(f"edge/n1/p{int(priority)}", f"p{int(priority)}:{n}:".encode().ljust(size, b"."), f"p{int(priority)}",
                   priority)


def on_disk(spool: Spool) -> int:
    """The spool's footprint: database, WAL and shared-memory files."""
    return sum(spool.path.with_name(spool.path.name + s).stat().st_size for s in ("", "-wal", "-shm")
               if spool.path.with_name(spool.path.name + s).exists())


def test_full_spool_drops_least_important_then_oldest_and_counts_it(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=MIN_SPOOL_BYTES)
    spool.put_many([numbered(Priority.SECURITY, n) for n in range(10)])
    for n in range(300):
        spool.put(numbered(Priority.BULK, n))
    first = kept(spool)
    bulk = [n for p, n in first if p == Priority.BULK]
    assert [n for p, n in first if p == Priority.SECURITY] == list(range(10))
    assert 0 < len(bulk) < 300 and bulk == list(range(300 - len(bulk), 300))  # the newest bulk, oldest gone
    assert spool.stats().dropped == {"full.bulk": 300 - len(bulk)}
    for n in range(300):
        spool.put(numbered(Priority.STATE, n))
    second = kept(spool)
    state = [n for p, n in second if p == Priority.STATE]
    assert [n for p, n in second if p == Priority.SECURITY] == list(range(10))
    assert not [n for p, n in second if p == Priority.BULK]
    assert state == list(range(300 - len(state), 300))
    assert spool.stats().dropped == {"full.bulk": 300, "full.state": 300 - len(state)}
    assert spool.stats().dropped_total == 600 - len(state)
    assert on_disk(spool) <= MIN_SPOOL_BYTES


def test_bulk_arriving_at_a_spool_full_of_security_never_displaces_it(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=MIN_SPOOL_BYTES)
    for n in range(300):
        spool.put(numbered(Priority.SECURITY, n))
    security = [n for p, n in kept(spool) if p == Priority.SECURITY]
    for n in range(100):
        spool.put(numbered(Priority.BULK, n))
    after = kept(spool)
    assert [n for p, n in after if p == Priority.SECURITY] == security
    bulk = [n for p, n in after if p == Priority.BULK]
    # What fits in the pages the spool already has stays (the newest); the rest is dropped.
    assert bulk == list(range(100 - len(bulk), 100)) and len(bulk) < 100
    assert spool.stats().dropped["full.bulk"] == 100 - len(bulk)


def test_the_footprint_with_wal_stays_within_budget_under_churn(tmp_path: Path) -> None:
    budget = 1024 * 1024
    spool = open_spool(tmp_path, max_bytes=budget)
    for n in range(3000):
        ids = spool.put_many([numbered(Priority(n % 3), n, size=200 + (n * 37) % 2500) for _ in range(3)])
        if n % 5 == 0:
            spool.ack(ids[:1])
        assert on_disk(spool) <= budget
    assert spool.stats().dropped_total > 1000  # it was full most of the time
    assert spool.bytes == spool.stats().bytes


def test_expire_drops_old_messages_and_counts_them(tmp_path: Path) -> None:
    clock = Clock()
    spool = open_spool(tmp_path, clock, max_age_s=60.0)
    spool.put(message("a", 0, Priority.SECURITY))
    clock.now_ms += 30_000
    spool.put(message("a", 1, Priority.BULK))
    clock.now_ms += 40_000
    assert spool.expire() == 1
    assert [int(p.split(b":")[1]) for p in payloads(spool.next_batch({}, 10))] == [1]
    assert spool.stats().dropped == {"age.security": 1}


def test_held_messages_wait_until_released_and_keep_their_place(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    will = spool.put(message("status", 0, Priority.SECURITY), held=True)
    birth = spool.put(message("status", 1, Priority.SECURITY))
    assert [item.id for item in spool.next_batch({}, 10)] == [birth]
    assert spool.release_held() == 1
    assert [item.id for item in spool.next_batch({}, 10)] == [will, birth]


def test_ack_of_unknown_ids_is_harmless_and_stats_track_acks(tmp_path: Path) -> None:
    clock = Clock(5_000)
    spool = open_spool(tmp_path, clock)
    ids = spool.put_many([message("a", n) for n in range(3)])
    assert spool.ack([ids[0], ids[0], 999]) == 1
    stats = spool.stats()
    assert (stats.depth, stats.acked, stats.last_ack_ms) == (2, 1, 5_000)
    assert stats.depth_by_priority == {"bulk": 2, "state": 0, "security": 0, "trust": 0}


def test_stats_can_be_read_without_the_daemon(tmp_path: Path) -> None:
    assert read_stats_file(tmp_path / FILENAME) is None
    spool = open_spool(tmp_path)
    spool.put_many([message("a", n) for n in range(4)])
    stats = read_stats_file(tmp_path / FILENAME)
    assert stats is not None and stats.depth == 4
    spool.close()


def test_spool_is_sqlite_in_wal_mode_with_the_chosen_sync(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, sync="full")
    spool.put(message("a", 0))
    conn = sqlite3.connect(tmp_path / FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.parametrize("sizes", [[300, 50, 700, 20], [100_000] * 5, [3000] * 300])
def test_byte_total_matches_the_database(tmp_path: Path, sizes: list[int]) -> None:
    spool = open_spool(tmp_path, max_bytes=MIN_SPOOL_BYTES)
    for n, size in enumerate(sizes):
        spool.put(message("a", n, Priority(n % 3), size=size))
    assert spool.bytes == spool.stats().bytes < MIN_SPOOL_BYTES


def test_a_rotation_notice_leads_the_batch_whatever_the_stream_turn(tmp_path):
    # Consumers must see the notice before any message signed with the new key.
    spool = Spool(tmp_path / "spool.db", max_bytes=10**6, max_age_s=3600)
    for _ in range(3):
        spool.next_batch({}, 10)  # advance the equal-priority turn
    spool.put_many([Message("edge/n/status", b"birth", "status", Priority.SECURITY, True),
                    Message("edge/n/key", b"notice", "key", Priority.TRUST, True)])
    for _ in range(3):
        assert spool.next_batch({}, 10)[0].payload == b"notice"
