"""Criticality and tolerances in the config become the Policy the readiness model reads."""

from __future__ import annotations

import json
import tomllib

import pytest

from agent.config import ConfigError, validate
from agent.readiness.model import verdict_reading
from agent.readiness.policy import Asset, Policy, policy_from_config

CONFIG = """
[node]
id = "panel-7"
[signing]
key_file = "node.key"
[readiness]
criticality = "critical"
process = "Packaging line 2"
max_downtime = "30m"
stale_after = "2m"
[readiness.host]
disk_warn_percent = 80
[maintenance.sla]
critical = "3d"
[[modbus.devices]]
name = "plc-line2"
host = "127.0.0.1"
points = [{ name = "speed", table = "holding", address = 0 }]
[modbus.devices.readiness]
criticality = "critical"
process = "Line 2 filling"
max_downtime = "15m"
[[modbus.devices]]
name = "meter"
host = "127.0.0.1"
unit = 2
points = [{ name = "kw", table = "input", address = 0 }]
"""


def test_policy_from_config() -> None:
    policy = policy_from_config(validate(tomllib.loads(CONFIG), "agent.toml"))
    assert policy.node == Asset("critical", "Packaging line 2", 1800.0)
    assert policy.devices == {"plc-line2": Asset("critical", "Line 2 filling", 900.0),
                              "meter": Asset("important", "", 900.0)}
    assert policy.patch_sla_s["critical"] == 3 * 86400
    assert policy.host["disk_warn_percent"] == 80
    assert policy.stale_after_s == 120


def test_unknown_criticality_is_a_config_error() -> None:
    data = tomllib.loads(CONFIG)
    data["modbus"]["devices"][0]["readiness"]["criticality"] = "vital"
    with pytest.raises(ConfigError) as caught:
        validate(data, "agent.toml")
    assert any("modbus.devices[0].readiness.criticality" in p for p in caught.value.problems)


def test_verdict_reading_carries_verdict_policy_and_inputs() -> None:
    config = validate(tomllib.loads(CONFIG), "agent.toml")
    now = 1_800_000_000_000
    latest = {"modbus/plc-line2": {"seq": 7, "ts": now - 1000, "body": {
                  "status": {"state": "offline", "last_success_ms": now - 16 * 60_000}}},
              "readiness": {"seq": 3, "ts": now - 30_000, "body": {}}}
    reading = verdict_reading(latest, config, now)
    assert (reading.kind, reading.retain, reading.ts_ms) == ("readiness", True, now)
    assert reading.body["inputs"] == {"modbus/plc-line2": 7}
    assert reading.body["verdict"]["operations"] == "down"
    assert Policy.from_body(reading.body["policy"]) == policy_from_config(config)


def test_remember_keeps_what_a_verdict_reads_of_each_sealed_message(tmp_path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.core.reading import Reading
    from agent.daemon.sealer import Sealer
    from agent.delivery.session import Session
    from agent.readiness.model import remember

    config = validate({"node": {"id": "n"}, "state_dir": str(tmp_path), "signing": {"key_file": str(tmp_path / "k")}},
                      "agent.toml")
    sealer = Sealer(config, Ed25519PrivateKey.generate(), Session(tmp_path), clock=lambda: 1.5)
    latest: dict = {}
    for kind, subject in (("modbus", "plc-line2"), ("key", ""), ("readiness", "")):
        reading = Reading(kind=kind, subject=subject, body={"x": kind})
        message, seq, ts_ms = sealer.seal_stamped(reading)
        sealed = json.loads(message.payload)
        assert (seq, ts_ms) == (sealed["seq"], sealed["ts"]) == (sealer.session.last_seq, 1500)
        remember(latest, reading.stream, seq, ts_ms, reading.body)
    assert latest == {"modbus/plc-line2": {"seq": sealed["seq"] - 2, "ts": 1500, "body": {"x": "modbus"}}}
