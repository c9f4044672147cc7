"""The bounded in-memory queue that holds messages while the spool cannot be written. Pure.

Same rules as the spool (agent.delivery.spool): order by id within a stream, held messages
(a connection's Last Will) wait for `release_held`, and when a new message takes the queue
over its budget the least important and oldest go first (priority, then id). The budget
counts topic + payload bytes plus `ITEM_OVERHEAD` per message, the Python objects that
carry it, so `max_bytes` is close to the memory the queue really takes.

Ids come from the caller (agent.delivery.store), which numbers the spool and this queue from
one sequence, so a message keeps its id when it moves to the spool and an ack finds it there.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.core.reading import Priority
from agent.delivery.message import Message

ITEM_OVERHEAD = 450  # bytes of Python objects per queued message (measured: bench/storage.py)


@dataclass
class Item:
    id: int
    message: Message
    held: bool
    created_ms: int

    @property
    def size(self) -> int:
        return self.message.size + ITEM_OVERHEAD


class MemoryQueue:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._clear()

    def _clear(self) -> None:
        self._items: dict[int, Item] = {}  # by id, ascending (ids only grow)
        self._bytes = 0
        self._by_stream: dict[str, list[int]] = {}  # ascending ids; dead ids are skipped, then compacted
        self._live_in_stream: dict[str, int] = {}
        self._by_priority: dict[int, deque[int]] = {int(p): deque() for p in Priority}

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """What the queue counts against its budget (messages plus ITEM_OVERHEAD each)."""
        return self._bytes

    @property
    def message_bytes(self) -> int:
        """Topic + payload bytes of the queued messages, as the spool counts them."""
        return self._bytes - ITEM_OVERHEAD * len(self._items)

    def put(self, item: Item) -> dict[int, int]:
        """Queue `item`; evict over budget; return the evicted count per priority (the new
        item itself may be one: a bulk message into a queue full of security messages)."""
        if self._items and item.id <= next(reversed(self._items)):
            raise ValueError(f"ids must grow: {item.id} after {next(reversed(self._items))}")
        self._items[item.id] = item
        self._bytes += item.size
        self._by_stream.setdefault(item.message.stream, []).append(item.id)
        self._live_in_stream[item.message.stream] = self._live_in_stream.get(item.message.stream, 0) + 1
        self._by_priority[int(item.message.priority)].append(item.id)
        dropped: dict[int, int] = {}
        while self._bytes > self.max_bytes and self._items:
            victim = self._lowest()
            self._remove(victim)
            dropped[int(victim.message.priority)] = dropped.get(int(victim.message.priority), 0) + 1
        return dropped

    def add_all(self, items: Iterable[Item]) -> dict[int, int]:
        """Queue items whose ids may lie below those queued (salvage after a fault): the queue
        is rebuilt in id order; return the evicted count per priority."""
        everything = sorted([*self._items.values(), *items], key=lambda item: item.id)
        self._clear()
        dropped: dict[int, int] = {}
        for item in everything:
            for priority, count in self.put(item).items():
                dropped[priority] = dropped.get(priority, 0) + count
        return dropped

    def _lowest(self) -> Item:
        for priority in sorted(self._by_priority):
            ids = self._by_priority[priority]
            while ids and ids[0] not in self._items:
                ids.popleft()
            if ids:
                return self._items[ids[0]]
        raise LookupError("empty queue")

    def _remove(self, item: Item) -> None:
        del self._items[item.id]
        self._bytes -= item.size
        stream = item.message.stream
        live = self._live_in_stream[stream] = self._live_in_stream[stream] - 1
        if live == 0:
            del self._by_stream[stream], self._live_in_stream[stream]
        elif len(self._by_stream[stream]) > 2 * live + 64:
            self._by_stream[stream] = [i for i in self._by_stream[stream] if i in self._items]

    def _live(self, stream: str, after: int) -> Iterator[Item]:
        ids = self._by_stream.get(stream, [])
        for at in range(bisect_right(ids, after), len(ids)):
            item = self._items.get(ids[at])
            if item is not None:
                yield item

    def batch(self, stream: str, after: int, limit: int) -> list[Item]:
        """Up to `limit` publishable (not held) items of `stream` with an id above `after`."""
        out: list[Item] = []
        for item in self._live(stream, after):
            if len(out) >= limit:
                break
            if not item.held:
                out.append(item)
        return out

    def streams(self) -> dict[str, int]:
        """Each stream's highest priority among queued items."""
        out: dict[str, int] = {}
        for stream in self._by_stream:
            out[stream] = max(int(item.message.priority) for item in self._live(stream, 0))
        return out

    def ack(self, ids: Iterable[int]) -> list[int]:
        """Remove the items with these ids; return the ids that were here."""
        found = []
        for i in ids:
            item = self._items.get(i)
            if item is not None:
                self._remove(item)
                found.append(i)
        return found

    def release_held(self, keep: int | None = None) -> int:
        released = 0
        for item in self._items.values():
            if item.held and item.id != keep:
                item.held = False
                released += 1
        return released

    def expire(self, cutoff_ms: int) -> dict[int, int]:
        """Drop items created before `cutoff_ms`; return the count per priority."""
        dropped: dict[int, int] = {}
        for item in [i for i in self._items.values() if i.created_ms < cutoff_ms]:
            self._remove(item)
            dropped[int(item.message.priority)] = dropped.get(int(item.message.priority), 0) + 1
        return dropped

    def oldest(self, limit: int) -> list[Item]:
        """The `limit` items with the lowest ids (the next to move to the spool)."""
        out = []
        for item in self._items.values():
            if len(out) >= limit:
                break
            out.append(item)
        return out

    def depth_by_priority(self) -> dict[int, int]:
        out = {int(p): 0 for p in Priority}
        for item in self._items.values():
            out[int(item.message.priority)] += 1
        return out

    def oldest_ms(self) -> int | None:
        return min((item.created_ms for item in self._items.values()), default=None)

    def held(self) -> int:
        return sum(item.held for item in self._items.values())
