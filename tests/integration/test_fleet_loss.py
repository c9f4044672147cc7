"""Loss between agent and board is visible: a burst that overruns the broker's queue for the
board shows as sequence gaps, exactly as many as were dropped; with the queue limits shipped in
config/mosquitto/edge.conf the same burst arrives whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from waiting import wait_until

from agent.core.reading import Reading
from agent.fleet.ingest import IngestSettings
from agent.trust import keys
from agent.web.board import Board
from simulators.signed_node import SimNode, Wire

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "edge.conf"
BURST = 3000


def queue_settings() -> str:
    lines = [line for line in SHIPPED.read_text().splitlines()
             if re.match(r"(max_queued_messages|max_queued_bytes|max_inflight_messages) ", line)]
    assert len(lines) == 3, lines
    return "\n".join(lines) + "\n"


def burst(broker, tmp_path: Path) -> dict:
    key = Ed25519PrivateKey.generate()
    trust = keys.TrustStore()
    trust.add(key.public_key(), frozenset({"panel-1"}))
    node = SimNode("panel-1", key)
    messages = [node.status("online")] + [node.seal(Reading("host", {**node.host, "uptime_s": i})) for i in range(BURST)]
    with Board(broker.url, trust, db=str(tmp_path / "fleet.sqlite"), serve_http=False,
               settings=IngestSettings(tick_s=1.0)) as board:
        wire = Wire("127.0.0.1", broker.port)
        try:
            wait_until(lambda: board.ingest.subscribed.is_set() and wire.connected.is_set(), "connections")
            for info in wire.send(messages):  # as fast as the broker takes them: an agent flushing its spool
                info.wait_for_publish(60)
            # Loss shows once a later message arrives: nothing can tell a dropped last message from
            # one not sent yet. The node's next reading, once the burst has drained:
            wait_until(lambda: board.ingest.inbox.empty() and board.fleet()["nodes"], "the burst to drain",
                       timeout=60)
            later = node.seal(Reading("host", node.host))
            wire.send([later])[0].wait_for_publish(10)
        finally:
            wire.close()
        stored = {"count": -1}

        def settled() -> dict | None:  # the store stops growing: whatever was dropped is gone
            row = {r["node"]: r for r in board.fleet()["nodes"]}.get("panel-1")
            if row is None or row["loss"]["messages"] != stored["count"]:
                stored["count"] = row["loss"]["messages"] if row else -1
                return None
            return row

        return wait_until(settled, "the burst to be stored", timeout=120, interval=1.0)


def test_a_burst_the_broker_drops_shows_as_exactly_that_many_gaps(make_broker, tmp_path: Path) -> None:
    broker = make_broker("max_queued_messages 10\nmax_inflight_messages 2\n")  # Mosquitto's limits, made tiny
    row = burst(broker, tmp_path)
    lost = BURST + 2 - row["loss"]["messages"]
    assert lost > 0, "the burst was meant to overrun the queue"
    assert row["loss"]["gaps"] == lost


def test_with_the_shipped_queue_limits_the_burst_arrives_whole(make_broker, tmp_path: Path) -> None:
    row = burst(make_broker(queue_settings()), tmp_path)
    assert row["loss"] == {"gaps": 0, "duplicates": row["loss"]["duplicates"], "messages": BURST + 2,
                           "ignored_streams": 0}
