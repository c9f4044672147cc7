"""Read planner: coverage, limits, gap policy, refused addresses, and minimality."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.collectors.modbus.planner import Limits, Read, Span, gaps, plan


def test_contiguous_points_make_one_read():
    spans = [Span("a", "holding", 0, 2), Span("b", "holding", 2, 1), Span("c", "holding", 3, 2)]
    assert plan(spans) == [Read("holding", 0, 5, ("a", "b", "c"))]


def test_gap_bridged_only_up_to_max_gap():
    spans = [Span("a", "holding", 0), Span("b", "holding", 5), Span("c", "holding", 20)]
    reads = plan(spans, Limits(max_gap=4))
    assert [(r.start, r.count) for r in reads] == [(0, 6), (20, 1)]
    assert gaps(reads[0], spans) == [(1, 4)]


def test_refused_address_splits_a_read_and_learned_holes_too():
    spans = [Span("a", "input", 0), Span("b", "input", 3)]
    assert len(plan(spans)) == 1
    assert len(plan(spans, forbidden={"input": [(2, 2)]})) == 2
    with pytest.raises(ValueError, match="refused"):
        plan(spans, forbidden={"input": [(3, 9)]})


def test_isolated_points_are_read_alone():
    spans = [Span("a", "holding", 0), Span("b", "holding", 1), Span("c", "holding", 2)]
    reads = plan(spans, isolate=frozenset({"b"}))
    assert [r.points for r in reads] == [("a",), ("b",), ("c",)]


def test_bits_and_registers_have_their_own_limits():
    spans = [Span(f"c{i}", "coil", i) for i in range(2500)] + [Span(f"h{i}", "holding", i) for i in range(300)]
    reads = plan(spans)
    assert [(r.table, r.count) for r in reads] == [("coil", 2000), ("coil", 500), ("holding", 125),
                                                   ("holding", 125), ("holding", 50)]


def test_bit_points_in_one_register_share_a_read():
    spans = [Span("run", "holding", 7), Span("alarm", "holding", 7), Span("speed", "holding", 8)]
    assert plan(spans) == [Read("holding", 7, 2, ("alarm", "run", "speed"))]


def _valid(read_range, spans, limit, gap, forbidden):
    lo, hi = read_range
    if hi - lo + 1 > limit or any(a <= hi and lo <= b for a, b in forbidden):
        return False
    used = set()
    for s in spans:
        used.update(range(s.start, s.end + 1))
    run = 0
    for addr in range(lo, hi + 1):
        run = 0 if addr in used else run + 1
        if run > gap:
            return False
    return True


def _brute_force_minimum(spans, limit, gap, forbidden):
    windows = []
    for a, b in itertools.product(spans, spans):
        if a.start <= b.end and _valid((a.start, b.end), spans, limit, gap, forbidden):
            windows.append(frozenset(i for i, s in enumerate(spans) if a.start <= s.start and s.end <= b.end))
    full = frozenset(range(len(spans)))
    frontier, seen, steps = {frozenset()}, {frozenset()}, 0
    while full not in frontier:
        steps += 1
        frontier = {m | w for m in frontier for w in windows} - seen
        seen |= frontier
    return steps


@st.composite
def point_maps(draw):
    count = draw(st.integers(1, 7))
    spans = []
    for i in range(count):
        width = draw(st.integers(1, 4))
        spans.append(Span(f"p{i}", "holding", draw(st.integers(0, 40)), width))
    # Points are disjoint or share identical ranges (bits of one register, one value read twice).
    for a, b in itertools.combinations(spans, 2):
        assume(a.end < b.start or b.end < a.start or (a.start, a.end) == (b.start, b.end))
    limit = draw(st.integers(max(s.width for s in spans), 12))
    gap = draw(st.integers(0, 6))
    forbidden = draw(st.lists(st.tuples(st.integers(0, 45), st.integers(0, 3)).map(lambda t: (t[0], t[0] + t[1])),
                              max_size=3))
    used = {a for s in spans for a in range(s.start, s.end + 1)}
    forbidden = [r for r in forbidden if not used & set(range(r[0], r[1] + 1))]
    return spans, limit, gap, forbidden


@settings(max_examples=300, deadline=None)
@given(point_maps())
def test_plan_covers_all_respects_limits_and_is_minimal(case):
    spans, limit, gap, forbidden = case
    reads = plan(spans, Limits(max_registers=limit, max_gap=gap), {"holding": forbidden})
    by_name = {s.name: s for s in spans}
    covered = [name for r in reads for name in r.points]
    assert sorted(covered) == sorted(by_name)  # every point exactly once
    for r in reads:
        assert r.count <= limit
        assert all(r.start <= by_name[n].start and by_name[n].end <= r.end for n in r.points)
        assert _valid((r.start, r.end), spans, limit, gap, forbidden)
    assert len(reads) == _brute_force_minimum(spans, limit, gap, forbidden)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 4)), min_size=1, max_size=30), st.integers(4, 125),
       st.integers(0, 20))
def test_overlapping_points_are_still_covered_within_limits(raw, limit, gap):
    spans = [Span(f"p{i}", "input", start, width) for i, (start, width) in enumerate(raw)]
    reads = plan(spans, Limits(max_registers=limit, max_gap=gap))
    by_name = {s.name: s for s in spans}
    assert sorted(n for r in reads for n in r.points) == sorted(by_name)
    for r in reads:
        assert r.count <= limit
        assert all(r.start <= by_name[n].start and by_name[n].end <= r.end for n in r.points)
