"""Simulator pieces that need no socket: profiles, process values, fault matching, CLI."""

from __future__ import annotations

import random
import tomllib

import pytest

from agent.collectors.modbus.frames import MalformedReply, check, crc16, expect
from agent.config import validate
from simulators import cli
from simulators.faults import REWRITES, Fault, FaultSet, flood_chunk, rewrite
from simulators.plc import agent_points, list_profiles, load_profile, parse_profile, process_value


def test_builtin_profiles_load_and_agent_points_are_a_valid_config():
    assert {"packaging_line", "energy_meter", "test_pattern"} <= set(list_profiles())
    for name in list_profiles():
        profile = load_profile(name)
        points = tomllib.loads(agent_points(profile))["modbus"]["devices"]["points"]
        cfg = validate({"node": {"id": "n"}, "signing": {"key_file": "k"},
                        "modbus": {"devices": [{"name": "d", "host": "h", "points": points}]}}, name)
        assert len(cfg.modbus.devices[0].points) == len(profile.points)


def test_packaging_line_has_the_process_points():
    names = {p.name for p in load_profile("packaging_line").points}
    assert {"motor_speed", "motor_temperature", "air_pressure", "running", "fault_code", "part_counter"} <= names


def test_values_move_like_a_process():
    profile = load_profile("packaging_line")
    rng = random.Random(1)
    by_name = {p.name: p for p in profile.points}
    speeds = {round(process_value(by_name["motor_speed"], t, rng), 3) for t in range(0, 40, 5)}
    assert len(speeds) > 4 and all(1380 < s < 1520 for s in speeds)
    counter = [process_value(by_name["part_counter"], t, rng) for t in (0, 10, 100)]
    assert counter == sorted(counter) and counter[0] < counter[-1]
    codes = {process_value(by_name["fault_code"], t, rng) for t in range(0, 120, 15)}
    assert codes == {0, 3, 7}


def test_profile_errors_name_the_point():
    with pytest.raises(ValueError, match=r"points\[0\]: give exactly one of"):
        parse_profile({"name": "x", "points": [{"name": "a", "table": "holding", "address": 0}]}, "x.toml")
    with pytest.raises(ValueError, match="no profile 'nope'"):
        load_profile("nope")


def test_fault_matching_by_unit_table_and_range():
    faults = FaultSet()
    hole = faults.add(Fault("hole", unit=2, table="holding", start=10, end=19))
    assert faults.match(2, 3, 5, 5) is None  # 5..9
    assert faults.match(2, 3, 5, 6) is hole  # 5..10 touches the hole
    assert faults.match(1, 3, 10, 1) is None  # other unit
    assert faults.match(2, 4, 10, 1) is None  # input registers
    assert faults.match(2, 43, 0, 1) is None  # identification is not address-based
    every = faults.add(Fault("no_reply"))
    assert faults.match(7, 43, 0, 1) is every
    faults.clear()
    assert faults.match(2, 3, 10, 1) is None
    with pytest.raises(ValueError):
        Fault("explode")


TCP_REQUEST = bytes.fromhex("000100000006010300000002")  # transaction 1, unit 1: read 2 holding registers at 0
TCP_REPLY = bytes.fromhex("000100000007010304000a000b")
RTU_REQUEST = bytes.fromhex("010300000002") + crc16(bytes.fromhex("010300000002"))
RTU_REPLY = bytes.fromhex("010304000a000b") + crc16(bytes.fromhex("010304000a000b"))


def test_corrupted_frames_differ_from_the_original():
    assert rewrite(TCP_REPLY, "truncated", rtu=False) == TCP_REPLY[:-3]
    bad = rewrite(TCP_REPLY, "malformed", rtu=False)
    assert len(bad) == len(TCP_REPLY) and bad != TCP_REPLY
    bad = rewrite(RTU_REPLY, "malformed", rtu=True)
    assert bad[:-2] == RTU_REPLY[:-2] and bad != RTU_REPLY


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu"])
def test_each_hostile_reply_is_refused_by_the_agents_check_for_its_reason(rtu):
    """The simulator's rewrites are what they claim: the strict check names the fault."""
    request, reply = (RTU_REQUEST, RTU_REPLY) if rtu else (TCP_REQUEST, TCP_REPLY)
    expected = expect(request, "rtu" if rtu else "socket")
    assert check(expected, reply) == "complete"
    reasons = {"wrong_function": "function code 4", "wrong_unit": "unit id 2", "byte_count": "byte count 6",
               "oversize": "byte count 255" if rtu else "MBAP length field 65535",
               "malformed": "CRC" if rtu else "function code 67"}
    for kind, reason in reasons.items():
        with pytest.raises(MalformedReply, match=reason):
            check(expected, rewrite(reply, kind, rtu))
    assert check(expected, rewrite(reply, "truncated", rtu)) == "partial"  # the rest never comes: a timeout
    assert set(reasons) | {"truncated"} == set(REWRITES)
    with pytest.raises(MalformedReply):
        check(expected, flood_chunk(reply, rtu))


def test_cli_lists_profiles_and_parses_faults(capsys):
    assert cli.main(["--list-profiles"]) == 0
    assert "energy_meter" in capsys.readouterr().out
    fault = cli._fault_spec("hole:table=input,start=4,end=5,unit=2")
    assert fault == Fault("hole", unit=2, table="input", start=4, end=5)
    assert cli._fault_spec("slow:delay=1.5").delay == 1.5
    assert cli._unit_spec("2=energy_meter") == (2, "energy_meter")
    assert cli.main(["--profile", "nope"]) == 2
