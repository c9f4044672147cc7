"""Property test: whatever the sequence of puts and acks, the spool evicts by the rule "lowest
priority, then oldest" (every message a put evicts ranks below every message it keeps),
stays within its page budget, and counts exactly what it dropped."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from agent.core.reading import Priority
from agent.delivery.config import MIN_SPOOL_BYTES
from agent.delivery.spool import Message, Spool

TOPIC = "edge/n/s"

put = st.tuples(st.just("put"), st.sampled_from(list(Priority)), st.integers(5000, 20_000))
ack = st.tuples(st.just("ack"), st.integers(0, 50), st.just(0))
operations = st.lists(st.one_of(put, put, put, ack), min_size=60, max_size=120)  # enough to fill the spool


def in_use(spool: Spool) -> int:
    conn = spool._conn
    return conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]


@settings(max_examples=40, deadline=None)
@given(operations)
def test_spool_evicts_by_priority_then_age_within_its_pages(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.db", max_bytes=MIN_SPOOL_BYTES, max_age_s=3600)
        queued: dict[int, tuple[int, int]] = {}  # id -> (priority, size)
        dropped = 0
        for op, a, b in ops:
            if op == "put":
                new_id = spool.put(Message(TOPIC, b"x" * b, "s", a))
                queued[new_id] = (int(a), len(TOPIC) + b)
                survivors = {item.id for item in spool.next_batch({}, 10_000)}
                evicted = set(queued) - survivors
                if evicted and survivors:
                    rank = {i: (queued[i][0], i) for i in queued}
                    assert max(rank[i] for i in evicted) < min(rank[i] for i in survivors)
                dropped += len(evicted)
                queued = {i: queued[i] for i in survivors}
            elif queued:
                victim = sorted(queued)[a % len(queued)]
                spool.ack([victim])
                del queued[victim]
            assert sorted(item.id for item in spool.next_batch({}, 10_000)) == sorted(queued)
            assert spool.bytes == sum(size for _, size in queued.values())
            assert in_use(spool) <= spool.bounds.db_pages
        assert spool.stats().dropped_total == dropped
        event(f"evicted: {'some' if dropped else 'none'}")
        spool.close()
