"""The daemon seals and spools the readings of one burst together, in one store transaction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import validate
from agent.core.reading import Reading
from agent.daemon.service import BURST_S, Agent


def agent_in(tmp_path: Path) -> Agent:
    config = validate({"state_dir": str(tmp_path), "node": {"id": "n"}, "signing": {"key_file": "k"},
                       "collectors": {name: {"enabled": False} for name in ("host", "patches", "posture")}}, "test")
    return Agent(config, Ed25519PrivateKey.generate())


def reading(device: str) -> Reading:
    return Reading(kind="modbus", subject=device, body={"device": device, "values": {"t": 1}}, ts_ms=1_700_000_000_000)


def test_readings_of_one_burst_are_sealed_in_order_and_spooled_in_one_transaction(tmp_path: Path) -> None:
    agent = agent_in(tmp_path)
    puts: list[int] = []
    put_many = agent.spool.put_many
    agent.spool.put_many = lambda messages, **kw: puts.append(len(messages)) or put_many(messages, **kw)

    async def burst() -> int:
        for device in ("unit1", "unit2", "unit3"):
            agent.emit([reading(device)])
            await asyncio.sleep(0)
        spooled_before_the_end = agent.spool.depth
        await asyncio.sleep(BURST_S * 3)
        return spooled_before_the_end

    assert asyncio.run(burst()) == 0
    assert puts == [3]
    sent = agent.spool.next_batch({}, 10)
    seqs = {json.loads(m.payload)["body"]["device"]: json.loads(m.payload)["seq"] for m in sent}
    assert sorted(seqs.values()) == [seqs["unit1"], seqs["unit2"], seqs["unit3"]] == list(range(seqs["unit1"], seqs["unit1"] + 3))
    assert agent.latest  # the readiness verdict saw them
    agent.spool.close()


def test_flush_spools_a_burst_at_once_and_leaves_nothing_behind(tmp_path: Path) -> None:
    agent = agent_in(tmp_path)

    async def stop_mid_burst() -> None:
        agent.emit([reading("unit1")])
        agent.flush()  # as the daemon does when it stops, before the publisher's last flush

    asyncio.run(stop_mid_burst())
    assert agent.spool.depth == 1 and agent.burst == [] and agent.burst_end is None
    agent.flush()  # nothing pending: no empty transaction, no error
    assert agent.spool.depth == 1
    agent.spool.close()


def test_a_reading_that_cannot_be_sealed_costs_itself_only_and_is_reported(tmp_path: Path, caplog) -> None:
    agent = agent_in(tmp_path)
    broken = Reading(kind="modbus", subject="unit2", body={"device": "unit2", "values": {"t": float("nan")}},
                     ts_ms=1_700_000_000_000)  # JSON has no NaN: a collector's bug

    async def burst() -> None:
        agent.emit([reading("unit1"), broken, reading("unit3")])
        await asyncio.sleep(BURST_S * 3)

    with caplog.at_level("ERROR", logger="agent.daemon.service"):
        asyncio.run(burst())
    sent = agent.spool.next_batch({}, 10)
    assert sorted(json.loads(m.payload)["body"]["device"] for m in sent) == ["unit1", "unit3"]
    assert not agent.stop_event.is_set() and agent.exit_status == 0
    assert agent.runtime_snapshot()["sequence"]["unsealable"] == 1
    assert any("reading could not be sealed, dropped stream=modbus/unit2" in r.getMessage() for r in caplog.records)
    agent.spool.close()
