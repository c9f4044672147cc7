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

    assert spread_phases([1.0, 1.0, 1.0, 1.0, 30.0]) == [0.0, 0.25, 0.5, 0.75, 0.0]
    assert spread_phases([]) == []


@given(st.lists(st.sampled_from([0.5, 1.0, 5.0, 30.0]), max_size=50))
def test_phases_lie_within_their_interval_and_never_coincide(intervals):
    from agent.core.schedule import spread_phases

    phases = spread_phases(intervals)
    assert all(0.0 <= phase < interval for phase, interval in zip(phases, intervals))
    pairs = list(zip(intervals, phases))
    assert len(set(pairs)) == len(pairs)
