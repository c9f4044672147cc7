"""A network blip is not an attack: the demo run through a relay that is cut three times.

Delivery must stay whole (an independent subscriber on the broker sees every sequence number
of every session) and the demo's view must show the broker's re-sent retained messages as
ignored duplicates, never as rejections, and exit 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from relay import Relay
from waiting import wait_until

EDGE_SIM = str(Path(sys.executable).parent / "edge-sim")
CUTS, CUT_S = 3, 5.0


def test_broker_reconnects_under_the_demo_lose_nothing_and_reject_nothing(broker, tmp_path: Path) -> None:
    relay = Relay(broker.port).start()
    seen: list[dict] = []
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="independent")
    subscriber.on_connect = lambda c, u, f, rc, p: c.subscribe("edge/#", qos=1)
    subscriber.on_message = lambda c, u, m: seen.append(json.loads(m.payload))
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.loop_start()
    births = lambda: sum(1 for m in seen if m["kind"] == "status" and m["body"]["reason"] == "connected")  # noqa: E731
    demo = subprocess.Popen([EDGE_SIM, "demo", "--broker", f"mqtt://127.0.0.1:{relay.port}", "--duration", "45",
                             "--state-dir", str(tmp_path), "--no-board"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: births() >= 1, "the agent's first connection", timeout=60)
        for cut in range(CUTS):
            time.sleep(2.0)  # let messages flow on this connection
            relay.cut()
            time.sleep(CUT_S)
            relay.restore()
            wait_until(lambda: births() >= cut + 2, f"the agent back after cut {cut + 1}", timeout=60)
        out, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
        subscriber.disconnect()
        subscriber.loop_stop()
        relay.close()
    assert demo.returncode == 0, out[-3000:]
    final = out.rsplit("edge-sim demo  broker", 1)[1]
    assert " rejected 0 " in final + " " and "REJECTED" not in final, final
    duplicates = int(final.split("duplicates ignored ", 1)[1].split()[0])
    assert duplicates >= 1, "the view never resubscribed: the cuts did not reach it"
    by_session: dict[str, set[int]] = {}
    for message in seen:
        by_session.setdefault(message["session"], set()).add(message["seq"])
    assert by_session
    for session, seqs in by_session.items():
        missing = set(range(min(seqs), max(seqs) + 1)) - seqs
        assert not missing, f"session {session}: sequence gap {sorted(missing)[:10]}"
