"""The fleet store's write and read sides on one database, driven directly (no broker), on a
pinned clock: what ingest and the web do, minus MQTT and HTTP."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.fleet.ingest import check
from agent.fleet.store import open_store
from agent.fleet.store.assess import Assessor
from agent.fleet.store.writes import StoreWriter
from agent.readiness.policy import Asset, Policy
from agent.trust import keys
from agent.trust.bridge import Bridges
from agent.trust.envelope import NO_BRIDGES
from agent.trust.verify import Verifier
from agent.web.view import FleetView
from simulators.signed_node import Message, SimNode

T0 = 1_800_000_000.0
POLICY = Policy(node=Asset("critical", "Packaging line 2", 1800.0),
                devices={"plc-line2": Asset("critical", "Line 2 filling", 900.0)})


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)


def make_nodes(clock: Clock, *names: str) -> tuple[keys.TrustStore, dict[str, SimNode]]:
    trust = keys.TrustStore()
    nodes = {}
    for name in names:
        key = Ed25519PrivateKey.generate()
        trust.add(key.public_key(), frozenset({name}))
        nodes[name] = SimNode(name, key, policy=POLICY, clock=clock)
    return trust, nodes


class Fleet:
    """One process's writer, assessor and web view over the store at `url`."""

    def __init__(self, url: str, trust: keys.TrustStore, clock: Clock, bridges: Bridges = NO_BRIDGES) -> None:
        self.clock, self.db = clock, open_store(url)
        self.verifier = Verifier(trust, clock=clock, check_replays=False, bridges=bridges)
        self.writer = StoreWriter(self.db, started_ms=clock.ms())
        self.assessor = Assessor(self.db, silent_after_ms=120_000)
        self.view = FleetView(self.db, clock=clock)

    def feed(self, messages: list[Message], retained: bool = False) -> list[str]:
        arrivals = [check(self.verifier, topic, payload, retained, self.clock.ms()) for topic, payload, _ in messages]
        admitted = self.writer.admit(arrivals, self.clock.ms())
        self.assessor.assess(admitted.dirty, self.clock.ms())
        return admitted.outcomes

    def tick(self) -> None:
        self.assessor.assess(None, self.clock.ms())

    def fleet(self) -> dict:
        self.view.refresh()
        return self.view.snapshot()

    def rows(self) -> dict[str, dict]:
        return {r["node"]: r for r in self.fleet()["nodes"]}

    def close(self) -> None:
        self.db.close()
