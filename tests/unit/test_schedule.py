from hypothesis import given
from hypothesis import strategies as st

from agent.core.schedule import missed_ticks, next_tick


def test_next_tick_stays_on_grid_after_long_runs():
    # A cycle that took 0.3 s after the 1000th tick must not push later ticks off the grid.
    assert next_tick(100.0, 1.0, 1100.3) == 1101.0


def test_overrun_skips_missed_ticks_instead_of_bursting():
    assert next_tick(0.0, 1.0, 3.5) == 4.0
    assert missed_ticks(0.0, 1.0, scheduled=1.0, now=3.5) == 2


def test_before_start_waits_for_start():
    assert next_tick(10.0, 5.0, 7.0) == 10.0


@given(start=st.floats(0, 1e6), interval=st.floats(0.01, 3600), elapsed=st.floats(0, 1e6))
def test_next_tick_is_the_first_grid_point_after_now(start, interval, elapsed):
    now = start + elapsed
    tick = next_tick(start, interval, now)
    k = round((tick - start) / interval)
    assert abs(tick - (start + k * interval)) <= 1e-6 * max(1.0, tick)
    assert tick > now - 1e-6 * max(1.0, now)
    assert tick - interval <= now + 1e-6 * max(1.0, now)


def test_collectors_sharing_an_interval_are_spread_across_it():
    from agent.core.schedule import spread_phases

    assert spread_phases([(1.0, "a"), (1.0, "b"), (1.0, "c"), (1.0, "d"), (30.0, "e")]) == [0.0, 0.25, 0.5, 0.75, 0.0]
    assert spread_phases([]) == []


def test_devices_of_one_line_start_together_and_lines_are_spread():
    from agent.core.schedule import spread_phases

    line_a, line_b, host = (1.0, "tcp:10.0.0.1:502"), (1.0, "tcp:10.0.0.2:502"), (1.0, "host")
    assert spread_phases([line_a, line_b, line_a, host, line_a]) == [0.0, 1 / 3, 0.0, 2 / 3, 0.0]


@given(st.lists(st.tuples(st.sampled_from([0.5, 1.0, 5.0, 30.0]), st.sampled_from("abcdefgh")), max_size=50))
def test_phases_lie_within_their_interval_and_only_one_group_shares_one(slots):
    from agent.core.schedule import spread_phases

    phases = spread_phases(slots)
    assert all(0.0 <= phase < interval for phase, (interval, _) in zip(phases, slots))
    groups_at: dict[tuple[float, float], set[str]] = {}
    for phase, (interval, group) in zip(phases, slots):
        groups_at.setdefault((interval, phase), set()).add(group)
    assert all(len(groups) == 1 for groups in groups_at.values())
    assert all(phase == phases[slots.index(slot)] for phase, slot in zip(phases, slots))


def test_first_cycles_are_spread_within_each_group_so_no_two_coincide():
    from agent.core.schedule import lead_ins, spread_phases

    line, other, host = (1.0, "tcp:10.0.0.1:502"), (1.0, "tcp:10.0.0.2:502"), (1.0, "host")
    assert lead_ins([line, line, line, line]) == [0.0, 0.25, 0.5, 0.75]  # one group: the whole interval
    slots = [line, other, line, host]
    assert [p + lead for p, lead in zip(spread_phases(slots), lead_ins(slots))] == [0.0, 1 / 3, 1 / 6, 2 / 3]


@given(st.lists(st.tuples(st.sampled_from([0.5, 1.0, 5.0, 30.0]), st.sampled_from("abcdefgh")), max_size=50))
def test_first_cycles_lie_within_the_interval_and_never_coincide(slots):
    from agent.core.schedule import lead_ins, spread_phases

    firsts = [(interval, round(p + lead, 9)) for p, lead, (interval, _) in zip(spread_phases(slots), lead_ins(slots),
                                                                                 slots)]
    assert all(0.0 <= first < interval for interval, first in firsts)
    assert len(set(firsts)) == len(firsts)
