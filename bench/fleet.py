"""How far one fleet board goes: sustained verified messages per second and memory per node.

Many simulated nodes (each its own Ed25519 key) publish signed messages through a private
Mosquitto to one board (`agent.web.board.Board`, shared subscription, full verification with
replay guard). The publisher is a separate process that seals everything before the clock
starts, so the figure is the board's, not the sealer's. Baseline in the same run: the pure
verifier (`Verifier.check`) in a tight loop, without MQTT; the ratio shows what the MQTT
shell and the fleet state cost on top of the signature check.

Memory per node: tracemalloc over a board state holding one full cycle per node (status,
host, two devices, patches, posture, readiness), including the verifier's replay windows.

    python bench/fleet.py [--quick] [--nodes N] [--messages M]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.core.reading import Reading  # noqa: E402
from agent.fleet.state import FleetState  # noqa: E402
from agent.readiness.policy import Asset, Policy  # noqa: E402
from agent.trust import keys  # noqa: E402
from agent.trust.verify import Verifier  # noqa: E402
from agent.web.board import Board  # noqa: E402
from simulators.mosquitto import PrivateMosquitto  # noqa: E402
from simulators.signed_node import SimNode, Wire  # noqa: E402

POLICY = Policy(devices={"plc-1": Asset("critical", "Line", 900.0), "meter-1": Asset("supporting", "Energy", 3600.0)})
MSGS_PER_NODE_PER_S = 0.5  # host every 30 s, two devices every 5 s, patches/posture/readiness rarely


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def sealed_stream(key_bytes: list[bytes], per_node: int) -> list[tuple[str, bytes, bool]]:
    """`per_node` host/modbus messages per node, interleaved across nodes like a real fleet."""
    nodes = [SimNode(f"node-{i:05d}", Ed25519PrivateKey.from_private_bytes(b), policy=POLICY)
             for i, b in enumerate(key_bytes)]
    out = []
    for round_ in range(per_node):
        for node in nodes:
            reading = Reading("host", node.host) if round_ % 3 == 0 else Reading(
                "modbus", node.devices["plc-1"].body(), subject="plc-1")
            out.append(node.seal(reading))
    return out


def publisher(port: int, key_bytes: list[bytes], per_node: int, ready, go, done) -> None:
    messages = sealed_stream(key_bytes, per_node)
    wire = Wire("127.0.0.1", port)
    wire.connected.wait(30)
    ready.set()
    go.wait(60)
    infos = wire.send(messages)
    for info in infos:
        info.wait_for_publish(120)
    done.set()
    wire.close()


def verify_only_rate(key_bytes: list[bytes], trust: keys.TrustStore, count: int) -> float:
    messages = sealed_stream(key_bytes[:50], max(1, count // 50))
    verifier = Verifier(trust)
    started = time.perf_counter()
    for topic, payload, _ in messages:
        assert verifier.check(payload, topic).valid
    return len(messages) / (time.perf_counter() - started)


def memory_per_node(nodes: int) -> float:
    trust = keys.TrustStore()
    sims = []
    for i in range(nodes):
        key = Ed25519PrivateKey.generate()
        trust.add(key.public_key(), frozenset({f"node-{i:05d}"}))
        sims.append(SimNode(f"node-{i:05d}", key, policy=POLICY))
    batches = [[s.status("online"), *s.cycle()] for s in sims]
    verifier = Verifier(trust)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    state = FleetState(started_ms=int(time.time() * 1000))
    for batch in batches:
        for topic, payload, _ in batch:
            state.ingest(topic, verifier.check(payload, topic), int(time.time() * 1000))
    state.tick(int(time.time() * 1000))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(state.nodes) == nodes
    return grown / nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run, under 30 s")
    parser.add_argument("--nodes", type=int, default=0)
    parser.add_argument("--messages", type=int, default=0, help="total messages published")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    nodes = args.nodes or (100 if args.quick else 1000)
    total = args.messages or (8000 if args.quick else 60000)
    per_node = max(1, total // nodes)

    private = [Ed25519PrivateKey.generate() for _ in range(nodes)]
    trust = keys.TrustStore()
    for i, key in enumerate(private):
        trust.add(key.public_key(), frozenset({f"node-{i:05d}"}))
    key_bytes = [raw(k) for k in private]
    baseline = verify_only_rate(key_bytes, trust, 2000 if args.quick else 10000)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        broker = PrivateMosquitto.in_folder(Path(tmp), "max_queued_messages 0\nmax_inflight_messages 0\n").start()
        board = Board(f"mqtt://127.0.0.1:{broker.port}", trust, serve_http=False, tick_s=5.0,
                      max_skew_s=3600.0).start()
        context = multiprocessing.get_context("fork")
        ready, go, done = context.Event(), context.Event(), context.Event()
        process = context.Process(target=publisher, args=(broker.port, key_bytes, per_node, ready, go, done))
        process.start()
        try:
            if not (ready.wait(120) and board.feed.subscribed.wait(30)):
                print("publisher or board did not get ready", file=sys.stderr)
                return 1
            expected = nodes * per_node
            go.set()
            first = last = None
            seen = 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                with board.lock:
                    seen = board.state.accepted
                now = time.perf_counter()
                if seen and first is None:
                    first = (now, seen)
                if seen >= expected:
                    last = (now, seen)
                    break
                time.sleep(0.01)
            start = time.perf_counter()
            fleet = board.fleet()
            snapshot_ms = (time.perf_counter() - start) * 1000
        finally:
            board.stop()
            process.join(60)
            broker.kill()
    if first is None or last is None:
        print(f"board verified {seen} of {nodes * per_node} messages before the deadline", file=sys.stderr)
        return 1
    rate = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
    per_node_bytes = memory_per_node(min(nodes, 300))
    print(f"fleet: {nodes} nodes, {nodes * per_node} signed messages via Mosquitto; "
          f"{len(fleet['nodes'])} nodes on the board, {fleet['messages']['rejected']} rejected")
    print(f"nodes: {nodes} count")
    print(f"verify_only_rate: {baseline:.0f} msg/s")
    print(f"board_verified_rate: {rate:.0f} msg/s")
    print(f"board_over_verify_only: {rate / baseline:.2f} ratio")
    print(f"board_memory_per_node: {per_node_bytes / 1024:.1f} KiB")
    print(f"fleet_snapshot_time: {snapshot_ms:.1f} ms")
    print(f"nodes_per_board_at_{MSGS_PER_NODE_PER_S}_msg_s: {rate / MSGS_PER_NODE_PER_S:.0f} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
