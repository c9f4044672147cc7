"""Simulated edge nodes that publish genuinely signed messages, for drills and the fleet bench.

Where a real panel PC's state cannot be produced on demand (pending security updates, a hot
CPU, a failed hardening check), a `SimNode` holds that state as plain message bodies and
seals them with its own Ed25519 key exactly as the agent does. Its Modbus devices can poll a
real PLC simulator (`endpoint`), so "the PLC stops answering" is a real Modbus failure.
The node's own retained verdict comes from the agent's `agent.readiness.model.policy_reading`.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timezone
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.core.reading import Reading
from agent.readiness.maintenance import MaintenanceConfig, schedule
from agent.readiness.model import policy_reading
from agent.readiness.policy import Policy
from agent.trust import envelope, keys

Message = tuple[str, bytes, bool]  # topic, payload, retain


def healthy_host() -> dict[str, Any]:
    return {"cpu": {"count": 4, "percent": 12.0, "load1": 0.4}, "memory": {"percent": 41.0},
            "disks": [{"mount": "/", "percent": 38.0}, {"mount": "/var", "percent": 52.0}],
            "temperatures": {"coretemp/Package id 0": 51.0},
            "clock": {"synchronized": True, "offset_us": 150}, "failed_units": [], "uptime_s": 86400}


def clean_patches() -> dict[str, Any]:
    return {"status": "ok", "status_reasons": [], "security_pending": 0, "security_updates": [],
            "reboot_required": False, "reboot": {"required": False, "flag_packages": [], "kernel_pending": False},
            "sla_breaches": []}


def passing_posture() -> dict[str, Any]:
    return {"checks": [
        {"id": "firewall", "title": "Firewall active", "status": "pass", "evidence": "nftables active"},
        {"id": "ssh_root_login", "title": "SSH root login disabled", "status": "pass", "evidence": "PermitRootLogin no"},
        {"id": "time_sync", "title": "Time synchronised", "status": "pass", "evidence": "adjtimex: synchronised"},
    ]}


SYNTHETIC_IDENTITY = {"vendor_name": "Simulated Controls", "product_code": "SIM-PLC", "revision": "1.0"}


@dataclass
class SimDevice:
    name: str
    endpoint: str | None = None  # "host:port" of a PLC simulator; None = synthetic state below
    online: bool = True
    last_success_ms: int | None = None
    failures: int = 0
    last_error: dict[str, Any] | None = None  # docs/modbus.md: {kind, message, ts_ms}
    values: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, str] | None = None  # FC 43/14, once known (docs/modbus.md)

    def poll(self, now_ms: int) -> None:
        if self.endpoint is None:
            ok, error, values = self.online, None if self.online else "timeout", {"speed": 1450.0}
            identity = SYNTHETIC_IDENTITY if ok else None
        else:
            ok, error, values, identity = _read_plc(self.endpoint, self.identity is None)
        self.identity = self.identity or identity
        if ok:
            self.last_success_ms, self.failures, self.last_error, self.values = now_ms, 0, None, values
        else:
            self.failures += 1
            self.last_error = {"kind": "timeout" if error == "timeout" else "connect_failed",
                               "message": error or "no reply", "ts_ms": now_ms}

    def body(self) -> dict[str, Any]:
        state = "online" if self.failures == 0 and self.last_success_ms is not None else "offline"
        body = {"device": self.name, "unit": 1, "line": f"tcp:{self.endpoint}" if self.endpoint else f"sim:{self.name}",
                "values": self.values if state == "online" else {}, "units": {},
                "status": {"state": state, "last_success_ms": self.last_success_ms,
                           "consecutive_failures": self.failures, "latency_ms": 2.0 if state == "online" else None,
                           "errors": {}, "last_error": self.last_error}}
        if self.identity:
            body["identity"] = dict(self.identity)
        return body


IDENTITY_OBJECTS = {0: "vendor_name", 1: "product_code", 2: "revision"}  # FC 43/14 basic objects


def _read_plc(endpoint: str, identify: bool) -> tuple[bool, str | None, dict[str, Any], dict[str, str] | None]:
    from pymodbus.client import ModbusTcpClient
    from pymodbus.exceptions import ModbusException

    host, _, port = endpoint.rpartition(":")
    client = ModbusTcpClient(host, port=int(port), timeout=0.5, retries=0)
    try:
        if not client.connect():
            return False, "connection refused", {}, None
        reply = client.read_holding_registers(0, count=4, device_id=1)
        if reply.isError():
            return False, f"exception {getattr(reply, 'exception_code', '?')}", {}, None
        identity = None
        if identify:  # once, like the agent (once per connection)
            info = client.read_device_information(read_code=1, device_id=1)
            if not info.isError():
                identity = {name: info.information[code].decode() for code, name in IDENTITY_OBJECTS.items()
                            if code in info.information}
        return True, None, {f"holding_{i}": v for i, v in enumerate(reply.registers)}, identity
    except (ModbusException, OSError) as exc:
        return False, f"no reply ({type(exc).__name__})", {}, None
    finally:
        client.close()


class SimNode:
    """One simulated panel PC: its key, its sequence, its messages' bodies and its policy."""

    def __init__(self, node: str, private_key, *, policy: Policy | None = None, prefix: str = "edge",
                 site: str = "sim-plant", area: str = "", clock: Callable[[], float] = time.time,
                 maintenance: MaintenanceConfig | None = None) -> None:
        self.node, self.private_key, self.prefix = node, private_key, prefix
        self.kid = keys.key_id(private_key.public_key())
        self.policy = policy or Policy()
        self.site, self.area, self.clock = site, area, clock
        self.maintenance = maintenance  # windows and SLAs: its patches bodies carry the schedule, as the agent's do
        self.session = secrets.token_hex(8)
        self.seq = 1
        self.devices: dict[str, SimDevice] = {name: SimDevice(name) for name in self.policy.devices}
        self.host, self.patches, self.posture = healthy_host(), clean_patches(), passing_posture()
        self.latest: dict[str, dict[str, Any]] = {}  # what the daemon would remember: stream -> seq, ts, body
        self.sent: list[Message] = []  # everything sealed, for forgery drills that replay or tamper

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def seal(self, reading: Reading) -> Message:
        topic = f"{self.prefix}/{self.node}/{reading.stream}"
        ts = reading.ts_ms or self.now_ms()
        payload = envelope.seal(self.private_key, kid=self.kid, node=self.node, topic=topic, kind=reading.kind,
                                session=self.session, seq=self.seq, ts_ms=ts, body=reading.body)
        self.latest[reading.stream] = {"seq": self.seq, "ts": ts, "body": reading.body}
        self.seq += 1
        message = (topic, payload, reading.retain)
        self.sent.append(message)
        del self.sent[:-50]
        return message

    def status(self, state: str) -> Message:
        return self.seal(Reading("status", {"state": state, "site": self.site, "area": self.area,
                                            "key_id": self.kid, "devices": sorted(self.devices)}, retain=True))

    def patches_body(self, now_ms: int) -> dict[str, Any]:
        body = dict(self.patches)
        if self.maintenance is not None:
            moment = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
            body.update(schedule(self.maintenance, body.get("security_updates") or [], moment))
        return body

    def cycle(self) -> list[Message]:
        """One collection round: host, every device, patches, posture, then the node's own verdict."""
        now = self.now_ms()
        out = [self.seal(Reading("host", dict(self.host)))]
        for device in self.devices.values():
            device.poll(now)
            out.append(self.seal(Reading("modbus", device.body(), subject=device.name)))
        out.append(self.seal(Reading("patches", self.patches_body(now), retain=True)))
        out.append(self.seal(Reading("posture", dict(self.posture), retain=True)))
        out.append(self.seal(policy_reading(self.latest, self.policy, self.now_ms())))
        return out


class Wire:
    """One MQTT connection publishing for any number of simulated nodes (QoS 1)."""

    def __init__(self, host: str, port: int, *, client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sim-{secrets.token_hex(4)}")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def send(self, messages: list[Message]) -> list[mqtt.MQTTMessageInfo]:
        return [self.client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
