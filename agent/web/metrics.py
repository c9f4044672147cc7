"""/metrics: the fleet in Prometheus's text format, written by the official client
(prometheus_client) from a collector called on each scrape. Rows come from the web's view (as
of its last read of the store, at most a second old); open outages and pending updates are
read from the store on the scrape. Labels are fleet nodes, devices, lenses, levels and
rejection reasons only: a name seen only in forged messages never becomes a label, so a flood
of made-up names cannot blow up the series count. config/prometheus/ has the scrape config and
the alert rules that read these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.fleet.store import history
from agent.readiness.model import LEVELS, OPERATIONS, SECURITY
from agent.readiness.policy import Policy
from agent.web.view import FleetView

LENSES = ("level", SECURITY, OPERATIONS)


def _gauge(name: str, text: str, labels: list[str], samples: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


class FleetCollector(Collector):
    def __init__(self, view: FleetView) -> None:
        self.view = view

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.view.version == 0:
            self.view.refresh()
        fleet, now_ms = self.view.snapshot(), self.view.now_ms()
        policies = self.view.policies()
        with self.view.db.transaction(write=False) as tx:
            outages, updates = history.open_outages(tx), history.open_updates(tx)
        rows = fleet["nodes"]
        yield from self._nodes(rows)
        yield from self._devices(outages, now_ms)
        yield from self._patches(rows, updates, policies, now_ms)
        yield _gauge("edge_fleet_rejected_messages", "messages that failed verification in the last hour, by reason "
                     "(every claimed sender)", ["reason"],
                     [([reason], n) for reason, n in sorted(self.view.rejected_by_reason().items())])
        yield _gauge("edge_fleet_sequence_gaps", "messages lost between a node and the board (sequence gaps)",
                     ["node"], [([r["node"]], r["loss"]["gaps"]) for r in rows])
        yield _gauge("edge_fleet_broker_connected", "1 while an ingest process with a fresh heartbeat is receiving",
                     [], [([], float(fleet["broker"]["connected"]))])

    @staticmethod
    def _nodes(rows: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
        judged = [r for r in rows if r["level"]]
        yield _gauge("edge_fleet_nodes", "fleet nodes by verdict level, overall and per lens", ["lens", "level"],
                     [([lens, level], sum(r[lens] == level for r in judged)) for lens in LENSES for level in LEVELS])
        yield _gauge("edge_fleet_node_level", "a node's verdict: 0 ready, 1 degraded, 2 at risk, 3 down",
                     ["node", "lens"], [([r["node"], lens], LEVELS.index(r[lens])) for r in judged for lens in LENSES])
        yield _gauge("edge_fleet_node_up", "1 while the node is heard from (not offline, not silent)", ["node"],
                     [([r["node"]], float(r["online"])) for r in rows])
        yield _gauge("edge_fleet_node_last_heard_timestamp_seconds", "when the node was last heard from", ["node"],
                     [([r["node"]], r["last_heard_ms"] / 1000) for r in rows])
        yield _gauge("edge_fleet_node_unverified_messages", "messages claiming the node that failed verification "
                     "in the last hour", ["node"], [([r["node"]], r["unverified"]["count"]) for r in rows])

    @staticmethod
    def _devices(outages: list[dict[str, Any]], now_ms: int) -> Iterator[GaugeMetricFamily]:
        labels = ["node", "device", "criticality"]
        yield _gauge("edge_fleet_devices_offline", "devices in an outage now", [], [([], len(outages))])
        yield _gauge("edge_fleet_device_outage_seconds", "how long a device has been down (its open outage)", labels,
                     [([o["node"], o["device"], o["criticality"]], max(0, now_ms - o["start_ms"]) / 1000)
                      for o in outages])
        yield _gauge("edge_fleet_device_tolerated_downtime_seconds", "the downtime agreed as tolerable for a device "
                     "that is down", labels,
                     [([o["node"], o["device"], o["criticality"]], o["max_downtime_s"]) for o in outages])

    @staticmethod
    def _patches(rows: list[dict[str, Any]], updates: dict[str, list[dict[str, Any]]], policies: dict[str, Policy],
                 now_ms: int) -> Iterator[GaugeMetricFamily]:
        pending, late = [], []
        for row in rows:
            mine, policy = updates.get(row["node"], []), policies.get(row["node"], Policy())
            pending.append(([row["node"]], len(mine)))
            late.append(([row["node"]], sum(now_ms - u["first_seen_ms"] >= policy.sla_s(u["severity"]) * 1000
                                            for u in mine)))
        yield _gauge("edge_fleet_security_updates_pending", "security updates pending on a node", ["node"], pending)
        yield _gauge("edge_fleet_security_updates_past_sla", "security updates pending longer than their patch SLA",
                     ["node"], late)


def registry_for(view: FleetView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(view))
    return registry
