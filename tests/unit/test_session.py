"""Sequence numbers never repeat across restarts; every start is a new session."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

from waiting import wait_until

from agent.delivery.session import FILENAME, Session, read_state


def test_numbers_increase_within_and_across_runs(tmp_path: Path) -> None:
    first = Session(tmp_path, block=10, boot_id="boot-a")
    seen = [first.next_seq() for _ in range(25)]
    second = Session(tmp_path, block=10, boot_id="boot-a")
    later = [second.next_seq() for _ in range(5)]
    assert seen == sorted(set(seen))
    assert min(later) > max(seen)
    assert first.session != second.session
    assert (first.identity.run, second.identity.run) == (1, 2)
    assert second.last_seq == later[-1]


def test_the_reservation_is_on_disk_before_a_number_is_used(tmp_path: Path) -> None:
    session = Session(tmp_path, block=10, boot_id="b")
    for _ in range(11):
        seq = session.next_seq()
        assert read_state(tmp_path)["next_seq"] > seq


def _count_forever(state_dir: str, out: str) -> None:
    session = Session(Path(state_dir), block=7, boot_id="b")
    with open(out, "a", buffering=1) as handle:
        while True:
            handle.write(f"{session.next_seq()}\n")


def test_kill_9_never_leads_to_a_reused_number(tmp_path: Path) -> None:
    out = tmp_path / "used.txt"
    for _ in range(3):
        process = multiprocessing.get_context("fork").Process(target=_count_forever, args=(str(tmp_path), str(out)))
        process.start()
        wait_until(lambda: out.exists() and out.read_text().count("\n") >= 50, "50 numbers handed out", interval=0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    numbers = [int(line) for line in out.read_text().split("\n")[:-1] if line]
    assert len(numbers) == len(set(numbers))


def test_reboot_is_noticed_and_session_ids_are_unique_after_a_wipe(tmp_path: Path) -> None:
    assert not Session(tmp_path, boot_id="boot-a").identity.rebooted
    assert not Session(tmp_path, boot_id="boot-a").identity.rebooted
    assert Session(tmp_path, boot_id="boot-b").identity.rebooted
    tokens = iter(["aaaa", "bbbb"])
    wiped = tmp_path / "wiped"
    one = Session(wiped, token=lambda: next(tokens))
    (wiped / FILENAME).unlink()
    two = Session(wiped, token=lambda: next(tokens))
    assert one.session != two.session


def test_a_corrupt_state_file_restarts_above_any_plausible_count(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text("{not json")
    session = Session(tmp_path, clock_ms=lambda: 1_800_000_000_000)
    assert session.next_seq() == 1_800_000_000_000
    assert json.loads((tmp_path / FILENAME).read_text())["next_seq"] > 1_800_000_000_000


def test_numbers_start_at_the_clock_so_a_wiped_state_dir_reuses_none(tmp_path: Path) -> None:
    first = Session(tmp_path, clock_ms=lambda: 1_000_000)
    used = [first.next_seq() for _ in range(5)]
    assert used == list(range(1_000_000, 1_000_005))
    (tmp_path / FILENAME).unlink()
    again = Session(tmp_path, clock_ms=lambda: 1_002_000)  # two seconds later
    assert again.next_seq() > used[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_unwritable_state_file_never_blocks_or_reuses_a_number(tmp_path: Path) -> None:
    monotonic = Clock()
    session = Session(tmp_path, block=10, clock_ms=lambda: 5_000, monotonic=monotonic)
    (tmp_path / f".{FILENAME}.tmp").mkdir()  # the atomic write now fails: EISDIR, even for root
    used = [session.next_seq() for _ in range(35)]  # three blocks past the reservation on disk
    assert used == list(range(5_000, 5_035))
    assert not session.persisted and "Is a directory" in session.write_error
    assert read_state(tmp_path)["next_seq"] == 5_010  # the file still says the old reservation
    # A restart now begins at its clock, which lies ahead of every number used (1 ms each here).
    assert Session(tmp_path, clock_ms=lambda: 5_000 + 36, monotonic=monotonic, block=10).next_seq() > used[-1]
    (tmp_path / f".{FILENAME}.tmp").rmdir()
    session.next_seq()  # within the retry interval: not tried yet
    assert not session.persisted
    monotonic.now += 1.0
    more = session.next_seq()
    assert session.persisted and session.write_error == "" and read_state(tmp_path)["next_seq"] > more
