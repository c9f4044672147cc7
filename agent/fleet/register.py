"""The asset register: every node and every Modbus device the fleet store knows, one row each,
with identity (FC 43/14: vendor, product code, revision), what was agreed about it
(criticality, business process, tolerated downtime), where it is (node, line and unit) and when
it was first and last seen. Pure: rows in, rows out (agent.fleet.store.history.assets reads them).
"""

from __future__ import annotations

from typing import Any

from agent.readiness.policy import Policy

COLUMNS = ("kind", "node", "device", "vendor", "product_code", "revision", "criticality", "process",
           "max_downtime_s", "address", "site", "area", "state", "first_seen_ms", "last_seen_ms", "last_success_ms")


def _address(body: dict[str, Any]) -> str:
    line, unit = body.get("line"), body.get("unit")
    parts = [str(line) if line else "", f"unit {unit}" if isinstance(unit, int) else ""]
    return " ".join(p for p in parts if p)


def register(nodes: list[dict[str, Any]], devices: list[dict[str, Any]],
             bodies: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per node, each followed by its devices (from the device register and the node's
    policy, so a configured device that never reported is listed too)."""
    reported: dict[str, dict[str, dict[str, Any]]] = {}
    for device in devices:
        reported.setdefault(device["node"], {})[device["device"]] = device
    rows = []
    for node in nodes:
        name, policy = node["node"], Policy.from_body(node["policy"])
        online = not any(r.get("code") in ("node_offline", "node_silent") for r in node["reasons"])
        rows.append({"kind": "node", "node": name, "device": "", "vendor": "", "product_code": "", "revision": "",
                     "criticality": policy.node.criticality, "process": policy.node.process,
                     "max_downtime_s": policy.node.max_downtime_s, "address": "", "site": node["site"],
                     "area": node["area"], "state": "online" if online else "offline",
                     "first_seen_ms": node["first_ms"], "last_seen_ms": node["last_heard_ms"], "last_success_ms": None})
        mine = reported.get(name, {})
        for device in sorted(set(mine) | set(policy.devices)):
            body = bodies.get((name, f"modbus/{device}"), {})
            identity = body.get("identity") if isinstance(body.get("identity"), dict) else {}
            status = body.get("status") if isinstance(body.get("status"), dict) else {}
            asset, seen = policy.device(device), mine.get(device, {})
            rows.append({"kind": "device", "node": name, "device": device,
                         "vendor": identity.get("vendor_name") or "", "product_code": identity.get("product_code") or "",
                         "revision": identity.get("revision") or "", "criticality": asset.criticality,
                         "process": asset.process, "max_downtime_s": asset.max_downtime_s, "address": _address(body),
                         "site": node["site"], "area": node["area"], "state": status.get("state") or "never reported",
                         "first_seen_ms": seen.get("first_ms"), "last_seen_ms": seen.get("last_ms"),
                         "last_success_ms": status.get("last_success_ms")})
    return rows
