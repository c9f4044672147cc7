"""The consumer-side body models: what the agent really sends passes, what breaks a documented
type is named, and nothing a node signs can make the readiness model raise once it passed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.fleet.bodies import MODELS, problem
from agent.readiness import model as readiness
from agent.readiness.policy import Asset, Policy
from simulators.signed_node import SimNode

ROOTS = Path(__file__).parent.parent / "fixtures" / "roots"
POLICY = Policy(devices={"plc-1": Asset("critical", "Line", 900.0)})


def collected(name: str, *extra: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "agent.cli", "collect", name, "--json", *extra],
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)["body"]


@pytest.mark.parametrize("name, extra", [("host", ()), ("posture", ("--root", str(ROOTS / "debian12"))),
                                         ("patches", ("--root", str(ROOTS / "debian12"))),
                                         ("patches", ("--root", str(ROOTS / "ubuntu2404")))])
def test_what_the_agents_collectors_send_fits(name: str, extra: tuple[str, ...]) -> None:
    assert problem(name, collected(name, *extra)) is None


def test_every_simulated_message_and_the_documented_modbus_example_fit() -> None:
    node = SimNode("panel-1", Ed25519PrivateKey.generate(), policy=POLICY)
    node.devices["plc-1"].online = False
    for _, payload, _ in [node.status("online"), *node.cycle(), *node.cycle()]:
        fields = json.loads(payload)
        assert problem(fields["kind"], fields["body"]) is None, fields["kind"]
    documented = {"device": "energy-meter", "unit": 1,
                  "values": {"voltage_l1": 230.1, "energy_lifetime": "9007199254741993"},
                  "units": {"voltage_l1": "V", "energy_lifetime": "mWh"},
                  "point_errors": {"frequency": {"kind": "device_busy", "message": "Modbus exception 6 (device_busy)"}},
                  "status": {"state": "degraded", "last_success_ms": 1764250000123, "consecutive_failures": 0,
                             "latency_ms": 3.2, "errors": {"device_busy": 1},
                             "last_error": {"kind": "device_busy", "message": "Modbus exception 6 (device_busy)",
                                            "ts_ms": 1764250000120}},
                  "requests": 3, "identity": {"vendor_name": "Simulated Metering", "product_code": "EM-340",
                                              "revision": "1.12"}}
    assert problem("modbus", documented) is None
    offline = {"device": "plc", "unit": 1, "values": {}, "status": {"state": "offline", "last_success_ms": None,
                                                                  "consecutive_failures": 3, "errors": {"timeout": 3}},
               "error": {"kind": "timeout", "message": "no answer", "points": 100}, "requests": 1}
    assert problem("modbus", offline) is None
    assert problem("modbus", {**offline, "error": {"kind": "timeout", "points": "all"}}).startswith("modbus.error.points")


@pytest.mark.parametrize("kind, body, named", [
    ("host", {"disks": 5}, "host.disks: Input should be a valid list"),
    ("host", {"disks": [{"mount": "/", "percent": "97"}]}, "host.disks.0.percent"),
    ("host", {"temperatures": {"cpu": True}}, "host.temperatures.cpu"),
    ("host", {"memory": {"percent": 1e400}}, "host.memory.percent"),
    ("patches", {"status": "ok", "security_updates": 7}, "patches.security_updates: Input should be a valid list"),
    ("patches", {"status": "fine"}, "patches.status"),
    ("patches", {"status": "ok", "security_updates": [{"package": "openssl"}]}, "patches.security_updates.0.first_seen_ms"),
    ("readiness", {"verdict": {"level": 5, "security": "ready", "operations": "ready"}}, "readiness.verdict.level"),
    ("readiness", {"verdict": {"level": "ready", "security": "ready", "operations": "ready",
                               "reasons": [{"lens": "x"}]}}, "readiness.verdict.reasons.0.lens"),
    ("modbus", {"values": {}}, "modbus.status: Field required"),
    ("modbus", {"status": {"state": "online", "consecutive_failures": "2"}}, "modbus.status.consecutive_failures"),
    ("modbus", {"status": {"state": "online"}, "values": {"speed": [1, 2]}}, "modbus.values.speed"),
    ("posture", {"checks": [{"id": "firewall", "status": "broken"}]}, "posture.checks.0.status"),
    ("status", {"state": "online", "site": 3}, "status.site"),
    ("status", [], "status: Input should be a valid dictionary"),
    ("key", {"action": "rotate"}, "key.alg: Field required"),
])
def test_a_body_that_breaks_its_model_is_named_by_field(kind: str, body: object, named: str) -> None:
    found = problem(kind, body)
    assert found is not None and found.startswith(named), found


def test_kinds_without_a_model_and_extra_fields_pass() -> None:
    assert problem("weather", {"anything": [1, "x"]}) is None
    assert problem("status", {"state": "online", "added_by_a_newer_agent": {"x": 1}}) is None


def nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False)
                    | st.text(max_size=8), nested, max_leaves=20)
KEYS = {"host": ["cpu", "memory", "disks", "temperatures", "clock", "failed_units"],
        "modbus": ["status", "values", "units", "identity"],
        "patches": ["status", "status_reasons", "security_updates", "reboot_required", "reboot"],
        "posture": ["checks"], "status": ["state", "site", "area", "will_seq"],
        "readiness": ["verdict", "policy", "inputs"]}


def real_bodies() -> dict[str, dict]:
    node = SimNode("n", Ed25519PrivateKey.generate(), policy=POLICY)
    return {json.loads(p)["kind"]: json.loads(p)["body"] for _, p, _ in node.cycle()}


REAL = real_bodies()  # made once: a strategy must draw its randomness from Hypothesis


@st.composite
def near_miss(draw, kind: str) -> dict:
    """Bodies shaped like the real ones, with any JSON in the fields the readiness model reads."""
    body = dict(REAL.get(kind, {}))
    for key in draw(st.lists(st.sampled_from(KEYS[kind]), max_size=3)):
        body[key] = draw(JSON)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_body_that_passes_its_model_is_safe_for_the_readiness_model(data) -> None:
    kind = data.draw(st.sampled_from(sorted(KEYS)))
    body = data.draw(near_miss(kind))
    if problem(kind, body) is not None:
        return
    stream = "modbus/plc-1" if kind == "modbus" else kind
    latest = {stream: {"ts": 1_800_000_000_000, "seq": 1, "body": body}}
    policy = Policy.from_body(body.get("policy")) if kind == "readiness" else POLICY
    verdict = readiness.evaluate(latest, policy, 1_800_000_060_000, last_heard_ms=1_800_000_000_000,
                                 silent_after_ms=120_000, rejected={"bad_signature": 1})
    json.dumps(verdict.as_body())
    assert verdict.level in readiness.LEVELS


def test_every_kind_the_agent_publishes_has_a_model() -> None:
    assert set(MODELS) == {"host", "modbus", "patches", "posture", "status", "readiness", "key"}
