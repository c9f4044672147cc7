"""The demo's live terminal view of verified messages (rendering is a pure function).

A `duplicate` (the same signed bytes again: a QoS 1 redelivery, or the retained copy the broker
sends when the view resubscribes after a reconnect) is nothing new: it is counted apart and the
last verified message stays on screen with its age. Every other failure, `replay` included, is
a loud rejection and makes the demo exit 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from agent.fleet.subscription import Received
from agent.trust.envelope import DUPLICATE

VERIFIED = "✔ signature verified"
REJECTED = "✘ REJECTED"


@dataclass
class Latest:
    body: dict[str, Any]
    seq: int
    valid: bool
    reason: str | None
    at: float


@dataclass
class PlantView:
    broker: str
    live: bool
    board: str = ""
    verified: int = 0
    rejected: int = 0
    duplicates: int = 0
    latest: dict[tuple[str, str], Latest] = field(default_factory=dict)  # (node, stream) -> last message
    _last_print: float = 0.0

    def update(self, received: Received) -> None:
        if received.verdict.reason == DUPLICATE:
            self.duplicates += 1
            return
        fields = received.verdict.fields or {}
        node = str(fields.get("node", "?"))
        stream = received.topic.split("/", 2)[-1] if received.topic.count("/") >= 2 else received.topic
        self.verified += received.verdict.valid
        self.rejected += not received.verdict.valid
        self.latest[(node, stream)] = Latest(fields.get("body") or {}, int(fields.get("seq") or 0),
                                             received.verdict.valid, received.verdict.reason, time.monotonic())

    def show(self, out: TextIO, final: bool = False) -> None:
        now = time.monotonic()
        if not (self.live or final) and now - self._last_print < 5.0:
            return  # piped output: a snapshot every 5 s instead of a redraw every second
        self._last_print = now
        lines = render(self, now)
        if self.board:
            lines.insert(1, f"fleet board (readiness, both lenses; on loopback with no users, so no login): {self.board}")
        out.write(("\x1b[H\x1b[2J" if self.live and not final else "") + "\n".join(lines) + "\n\n")
        out.flush()


def _mark(latest: Latest) -> str:
    return VERIFIED if latest.valid else f"{REJECTED} ({latest.reason})"


def _host_summary(body: dict[str, Any]) -> str:
    parts = []
    if "percent" in body.get("cpu", {}):
        parts.append(f"cpu {body['cpu']['percent']:.0f}%")
    if "memory" in body:
        parts.append(f"mem {body['memory']['percent']:.0f}%")
    parts += [f"disk {d['mount']} {d['percent']:.0f}%" for d in body.get("disks", [])[:2]]
    if "clock" in body:
        parts.append("clock synced" if body["clock"]["synchronized"] else "clock NOT synced")
    if body.get("failed_units"):
        parts.append(f"{len(body['failed_units'])} failed units")
    return "  ".join(parts)


def _patches_summary(body: dict[str, Any]) -> str:
    reboot = {True: "reboot required", False: "no reboot needed", None: "reboot state unknown"}
    return (f"patch data {body.get('status', '?')}  {body.get('security_pending', '?')} security updates pending  "
            f"{body.get('upgradable', '?')} upgradable  {reboot[body.get('reboot_required')]}")


def _posture_summary(body: dict[str, Any]) -> str:
    failed = [c["id"] for c in body.get("checks", []) if c.get("status") == "fail"]
    return (f"hardening {body.get('pass', 0)} pass  {body.get('fail', 0)} fail  {body.get('unknown', 0)} unknown"
            + (f"  (failing: {', '.join(failed)})" if failed else ""))


def _format_value(value: Any) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _device_summary(body: dict[str, Any]) -> tuple[str, str]:
    status = body.get("status", {}).get("state", "?")
    units = body.get("units", {})
    values = "  ".join(f"{name}={_format_value(v)}{(' ' + units[name]) if name in units else ''}"
                       for name, v in body.get("values", {}).items())
    return status, values


def render(view: PlantView, now: float) -> list[str]:
    latest = view.latest
    lines = [f"edge-sim demo  broker {view.broker}  messages verified {view.verified}  rejected {view.rejected}"
             f"  duplicates ignored {view.duplicates}", ""]
    for node in sorted({n for n, _ in latest}):
        status = latest.get((node, "status"))
        state = status.body.get("state", "?") if status else "?"
        lines.append(f"node {node}  [{state}]")
        host = latest.get((node, "host"))
        if host:
            lines.append(f"  host    {_host_summary(host.body)}")
            lines.append(f"          {_mark(host)}  seq {host.seq}  {now - host.at:.0f}s ago")
        for stream, summary in (("patches", _patches_summary), ("posture", _posture_summary)):
            if item := latest.get((node, stream)):
                lines.append(f"  {stream:<7} {summary(item.body)}")
                lines.append(f"          {_mark(item)}  seq {item.seq}  {now - item.at:.0f}s ago")
        for (n, stream), item in sorted(latest.items()):
            if n != node or not stream.startswith("modbus/"):
                continue
            device_state, values = _device_summary(item.body)
            lines.append(f"  device {stream[7:]}  [{device_state}]  {values}")
            lines.append(f"          {_mark(item)}  seq {item.seq}  {now - item.at:.0f}s ago")
        for (n, stream), item in sorted(latest.items()):
            if n == node and not item.valid:
                lines.append(f"  {stream}: {_mark(item)}")
    if not latest:
        lines.append("waiting for the first messages ...")
    return lines
