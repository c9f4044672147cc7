from collections import namedtuple

from agent.collectors.host import collector as host

Times = namedtuple("Times", "user system idle iowait")


def test_cpu_busy_percent_counts_iowait_as_idle():
    before = Times(100.0, 50.0, 800.0, 50.0)
    after = Times(130.0, 60.0, 850.0, 60.0)  # 40 busy of 100
    assert host.cpu_busy_percent(before, after) == 40.0


def test_cpu_busy_percent_unknown_without_elapsed_time():
    sample = Times(1.0, 1.0, 1.0, 1.0)
    assert host.cpu_busy_percent(sample, sample) is None


def test_parse_pressure():
    text = "some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=4\n"
    assert host.parse_pressure(text) == {"some_avg10": 1.5, "some_avg60": 0.2, "some_avg300": 0.0,
                                         "full_avg10": 0.1, "full_avg60": 0.0, "full_avg300": 0.0}


def test_emmc_wear_reads_life_time_files(tmp_path):
    card = tmp_path / "class/mmc_host/mmc0/mmc0:0001"
    card.mkdir(parents=True)
    (card / "life_time").write_text("0x02 0x01\n")
    assert host.emmc_wear(tmp_path) == {"mmc0:0001": "0x02 0x01"}


def test_sample_on_this_host_is_sane():
    collector = host.HostCollector(interval=1.0)
    body = collector.sample()
    assert 0.0 <= body["cpu"]["percent"] <= 100.0  # present from the very first sample
    assert body["memory"]["total_bytes"] >= body["memory"]["available_bytes"] > 0
    assert body["cpu"]["count"] >= 1
    assert body["uptime_s"] >= 0
    for disk in body["disks"]:
        assert disk["total_bytes"] >= disk["used_bytes"] >= 0
        assert disk["fstype"] not in ("tmpfs", "proc")
    # Values the host lacks are absent, never zero placeholders.
    assert body.get("temperatures", {"x": 1}) != {}
    if "clock" in body:
        assert isinstance(body["clock"]["synchronized"], bool)


def test_clock_synchronized_needs_no_unsync_bit_and_no_time_error():
    from agent.collectors.host.clock import STA_UNSYNC, TIME_ERROR, ClockState

    assert ClockState(0, 0, 0.0, 0, 0).synchronized
    assert not ClockState(0, STA_UNSYNC, 0.0, 0, 0).synchronized
    assert not ClockState(TIME_ERROR, 0, 0.0, 0, 0).synchronized


def test_clock_falls_back_to_timedated_where_adjtimex_is_forbidden(monkeypatch, tmp_path):
    from agent.collectors.host import clock

    # The hardened unit's seccomp filter makes adjtimex fail; timedated still knows.
    fake = tmp_path / "timedatectl"
    fake.write_text("#!/bin/sh\necho no\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(clock, "read_adjtimex", lambda: None)
    state = clock.read_clock()
    assert state is not None and state.source == "timedated" and not state.synchronized
    assert host.clock_state() == {"synchronized": False, "source": "timedated"}
