"""The in-memory fallback queue keeps the newest messages by the spool's rule (priority, then age)."""

from __future__ import annotations

import pytest

from agent.core.reading import Priority
from agent.delivery.memqueue import ITEM_OVERHEAD, Item, MemoryQueue
from agent.delivery.message import Message


def item(id_: int, priority: Priority = Priority.BULK, stream: str = "s", size: int = 100, held: bool = False,
         created_ms: int = 0) -> Item:
    return Item(id_, Message(f"edge/n/{stream}", b"x" * size, stream, priority), held, created_ms)


def ids(items: list[Item]) -> list[int]:
    return [i.id for i in items]


def test_over_budget_the_least_important_then_the_oldest_go() -> None:
    one = item(0).size
    queue = MemoryQueue(max_bytes=5 * one)
    for n, priority in enumerate([Priority.SECURITY, Priority.BULK, Priority.STATE, Priority.BULK, Priority.STATE]):
        assert queue.put(item(n + 1, priority)) == {}
    assert queue.put(item(6, Priority.STATE)) == {int(Priority.BULK): 1}  # id 2, the oldest bulk
    assert queue.put(item(7, Priority.SECURITY)) == {int(Priority.BULK): 1}  # id 4
    assert queue.put(item(8, Priority.BULK)) == {int(Priority.BULK): 1}  # itself: nothing ranks lower
    assert ids(queue.batch("s", 0, 100)) == [1, 3, 5, 6, 7]
    assert queue.put(item(9, Priority.SECURITY)) == {int(Priority.STATE): 1}  # id 3, the oldest state
    assert ids(queue.oldest(10)) == [1, 5, 6, 7, 9]
    assert queue.bytes == 5 * one and queue.message_bytes == 5 * (one - ITEM_OVERHEAD)


def test_batches_follow_the_cursor_skip_held_items_and_acks_remove() -> None:
    queue = MemoryQueue(max_bytes=10**6)
    for n in range(1, 7):
        queue.put(item(n, stream="a" if n % 2 else "b", held=n == 3))
    assert ids(queue.batch("a", 0, 10)) == [1, 5]
    assert ids(queue.batch("a", 1, 1)) == [5]
    assert queue.streams() == {"a": int(Priority.BULK), "b": int(Priority.BULK)}
    assert queue.release_held() == 1 and ids(queue.batch("a", 0, 10)) == [1, 3, 5]
    assert queue.ack([3, 99, 4]) == [3, 4]
    assert ids(queue.batch("a", 0, 10)) == [1, 5] and ids(queue.batch("b", 0, 10)) == [2, 6]
    assert queue.depth == 4 and queue.held() == 0


def test_ids_must_grow_except_through_add_all() -> None:
    queue = MemoryQueue(max_bytes=10**6)
    queue.put(item(10))
    with pytest.raises(ValueError):
        queue.put(item(5))
    assert queue.add_all([item(5), item(7, stream="t")]) == {}
    assert ids(queue.oldest(10)) == [5, 7, 10]
    assert ids(queue.batch("s", 0, 10)) == [5, 10]
    queue.put(item(11))


def test_expire_counts_by_priority() -> None:
    queue = MemoryQueue(max_bytes=10**6)
    queue.put(item(1, Priority.SECURITY, created_ms=100))
    queue.put(item(2, Priority.BULK, created_ms=100))
    queue.put(item(3, Priority.BULK, created_ms=500))
    assert queue.expire(cutoff_ms=200) == {int(Priority.SECURITY): 1, int(Priority.BULK): 1}
    assert ids(queue.oldest(10)) == [3] and queue.oldest_ms() == 500


def test_many_evictions_stay_cheap_and_consistent() -> None:
    queue = MemoryQueue(max_bytes=200 * item(0, stream="s0").size)
    dropped = 0
    for n in range(1, 20_001):
        dropped += sum(queue.put(item(n, Priority(n % 3), stream=f"s{n % 7}")).values())
    assert queue.depth == 200 and dropped == 19_800
    kept = queue.oldest(200)
    assert ids(kept) == [n for n in range(1, 20_001) if n % 3 == Priority.SECURITY][-200:]  # the newest security
    assert sum(len(queue.batch(f"s{k}", 0, 10_000)) for k in range(7)) == 200
