"""Property test: whatever the sequence of puts and acks, the spool keeps exactly what a
simple model of "evict lowest priority, then oldest, until within budget" keeps."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.reading import Priority
from agent.delivery.spool import Message, Spool

TOPIC = "edge/n/s"
BUDGET = 2000

operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(list(Priority)), st.integers(1, 600)),
        st.tuples(st.just("ack"), st.integers(0, 5), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_spool_matches_the_eviction_model(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.db", max_bytes=BUDGET, max_age_s=3600)
        model: list[tuple[int, int, int]] = []  # (id, priority, size)
        dropped = 0
        for op, a, b in ops:
            if op == "put":
                size = len(TOPIC) + b
                new_id = spool.put(Message(TOPIC, b"x" * b, "s", a))
                model.append((new_id, int(a), size))
                while sum(m[2] for m in model) > BUDGET:
                    victim = min(model, key=lambda m: (m[1], m[0]))
                    model.remove(victim)
                    dropped += 1
            elif model:
                victim = model[a % len(model)]
                spool.ack([victim[0]])
                model.remove(victim)
            assert [item.id for item in spool.next_batch({}, 1000)] == [m[0] for m in model]
            assert spool.bytes == sum(m[2] for m in model) <= BUDGET
        assert spool.stats().dropped_total == dropped
        spool.close()
