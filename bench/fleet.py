"""How far the fleet board goes: ingest throughput for 1 and N ingest processes on one store,
the fleet API's latency at 5,000 nodes, and what the store costs per node per day.

1. Throughput: simulated nodes (each its own Ed25519 key) publish signed messages, sealed
   beforehand in a separate process, through a private Mosquitto to real `edge-agent ingest`
   processes sharing one subscription group and one store (SQLite file or a throwaway
   PostgreSQL database). Sustained rate: messages stored per second from the first to the last,
   counted in the store. Run once with 1 process and once with N; the ratio is the scale-out.
2. Latency: a store filled with 5,000 nodes (status, host, readiness each, every node judged),
   served by a real `edge-agent board --no-ingest`; 4 client threads request /api/fleet and
   /api/nodes/<id> over keep-alive connections; p50 and p99.
3. Bytes: the store's size growth per stored message, times the messages a node with the
   agent's default intervals and two Modbus devices sends a day (~42,000).

    python bench/fleet.py [--quick] [--db sqlite|postgresql] [--instances N]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.core.reading import Reading  # noqa: E402
from agent.fleet.store import open_store  # noqa: E402
from agent.fleet.store.assess import Assessor  # noqa: E402
from agent.fleet.store.writes import Arrival, StoreWriter  # noqa: E402
from agent.readiness.policy import Asset, Policy  # noqa: E402
from agent.trust import envelope, keys  # noqa: E402
from simulators.localnet import wait_for_port  # noqa: E402
from simulators.mosquitto import PrivateMosquitto  # noqa: E402
from simulators.signed_node import SimNode, Wire  # noqa: E402

POLICY = Policy(devices={"plc-1": Asset("critical", "Line", 900.0), "meter-1": Asset("supporting", "Energy", 3600.0)})
# Defaults: host 30 s, readiness 30 s, status 60 s, patches 5 min, posture 1 h, two devices at 5 s.
MESSAGES_PER_NODE_PER_DAY = 86400 * (1 / 30 + 1 / 30 + 1 / 60 + 1 / 300 + 1 / 3600 + 2 / 5)
POSTGRES_ADMIN = os.environ.get("EDGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


@contextlib.contextmanager
def store(kind: str, folder: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or a throwaway PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield str(folder / f"fleet-{secrets.token_hex(3)}.sqlite")
        return
    import psycopg

    name = f"edge_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_bytes(url: str) -> int:
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    import sqlite3

    with contextlib.closing(sqlite3.connect(url)) as conn:  # fold the write-ahead log in: count pages, not log
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(url).stat().st_size


def stored(url: str) -> int:
    db = open_store(url)
    try:
        with db.transaction(write=False) as tx:
            return int(tx.rows("SELECT COUNT(*) FROM messages")[0][0])
    finally:
        db.close()


# ----------------------------------------------------------------------------- 1. throughput


def sealed_stream(key_bytes: list[bytes], per_node: int) -> list[tuple[str, bytes, bool]]:
    """`per_node` host/modbus messages per node, interleaved across nodes like a real fleet."""
    nodes = [SimNode(f"node-{i:05d}", Ed25519PrivateKey.from_private_bytes(b), policy=POLICY)
             for i, b in enumerate(key_bytes)]
    out = []
    for node in nodes:
        node.devices["plc-1"].poll(node.now_ms())  # online, as most devices are most of the time
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
    go.wait(120)
    for info in wire.send(messages):
        info.wait_for_publish(300)
    done.set()
    wire.close()


def ingest_rate(kind: str, instances: int, folder: Path, key_bytes: list[bytes], per_node: int) -> tuple[float, int]:
    """Messages stored per second by `instances` ingest processes; and the store's bytes per message."""
    expected = len(key_bytes) * per_node
    broker = PrivateMosquitto.in_folder(folder / f"broker-{instances}",
                                        "max_queued_messages 0\nmax_inflight_messages 0\n").start()
    processes: list[subprocess.Popen] = []
    context = multiprocessing.get_context("fork")
    ready, go, done = context.Event(), context.Event(), context.Event()
    sender = context.Process(target=publisher, args=(broker.port, key_bytes, per_node, ready, go, done))
    sender.start()
    try:
        with store(kind, folder) as url:
            db = open_store(url)  # migrated once, before the processes race to do it
            db.close()
            for n in range(instances):
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "agent.cli", "ingest", "--broker", broker.url, "--trust",
                     str(folder / "trust"), "--db", url, "--group", "bench", "--log-level", "ERROR"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            for process in processes:
                process.stdout.readline()  # "ingest: ..." once it runs
            if not (ready.wait(120) and connected(url, instances)):
                raise RuntimeError("publisher or ingest did not get ready")
            empty = store_bytes(url)
            go.set()
            first = last = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                count, now = stored(url), time.perf_counter()
                if count and first is None:
                    first = (now, count)
                if count >= expected:
                    last = (now, count)
                    break
                time.sleep(0.05)
            if first is None or last is None:
                raise RuntimeError(f"stored {count} of {expected} messages before the deadline")
            per_message = (store_bytes(url) - empty) / expected
            for process in processes:
                process.terminate()
                process.wait(30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        sender.join(60)
        broker.kill()
    return (last[1] - first[1]) / max(1e-9, last[0] - first[0]), int(per_message)


def connected(url: str, instances: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = open_store(url)
        try:
            with db.transaction(write=False) as tx:
                if tx.rows("SELECT COUNT(*) FROM ingest_instances WHERE connected = 1")[0][0] >= instances:
                    return True
        finally:
            db.close()
        time.sleep(0.2)
    return False


# ----------------------------------------------------------------------------- 2. latency


def fill(url: str, nodes: int) -> None:
    """`nodes` nodes, each with a status, a host reading and its own verdict, all judged."""
    key = Ed25519PrivateKey.generate()  # the fill is not about verification: one key signs for all
    db = open_store(url)
    try:
        writer, now = StoreWriter(db, started_ms=int(time.time() * 1000)), int(time.time() * 1000)
        batch: list[Arrival] = []
        for i in range(nodes):
            node = SimNode(f"node-{i:05d}", key, policy=POLICY, area=f"hall-{i % 12}")
            for topic, payload, _ in [node.status("online"), node.seal(Reading("host", node.host)),
                                      node.seal(Reading("readiness", {"verdict": {"level": "ready", "security": "ready",
                                                                                  "operations": "ready"},
                                                                      "policy": POLICY.to_body()}))]:
                batch.append(Arrival(topic, payload, envelope.Verdict(True, fields=envelope.parse(payload)), now))
            if len(batch) >= 600:
                writer.admit(batch, now)
                batch = []
        writer.admit(batch, now)
        Assessor(db).assess(None, int(time.time() * 1000))
    finally:
        db.close()


def judge_time(url: str) -> float:
    """Seconds to re-judge the whole fleet once (what the lease holder does every --tick)."""
    db = open_store(url)
    try:
        started = time.perf_counter()
        Assessor(db).assess(None, int(time.time() * 1000) + 1000)
        return time.perf_counter() - started
    finally:
        db.close()


def latencies(url: str, requests: int) -> dict[str, list[float]]:
    web = subprocess.Popen([sys.executable, "-m", "agent.cli", "board", "--no-ingest", "--db", url, "--listen",
                            "127.0.0.1:0", "--log-level", "ERROR"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        line = web.stdout.readline()
        host, port = line.split()[1].removeprefix("http://").rstrip("/").rsplit(":", 1)
        wait_for_port(int(port))
        times: dict[str, list[float]] = {"fleet": [], "node": []}
        lock = threading.Lock()

        def client(n: int) -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            for i in range(n):
                path, which = ("/api/fleet", "fleet") if i % 2 == 0 else (f"/api/nodes/node-{i * 7 % 5000:05d}", "node")
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status == 200, (path, response.status, body[:200])
                with lock:
                    times[which].append(elapsed)
            conn.close()

        warm = http.client.HTTPConnection(host, int(port), timeout=60)
        warm.request("GET", "/api/fleet")
        assert len(json.loads(warm.getresponse().read())["nodes"]) > 0
        warm.close()
        threads = [threading.Thread(target=client, args=(requests // 4,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return times
    finally:
        web.terminate()
        web.wait(30)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run, under 30 s")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--instances", type=int, default=2, help="ingest processes compared with one (default 2)")
    parser.add_argument("--nodes", type=int, default=0, help="publishing nodes for the throughput runs")
    parser.add_argument("--messages", type=int, default=0, help="messages per throughput run")
    parser.add_argument("--fleet", type=int, default=5000, help="nodes in the store for the latency run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    nodes = args.nodes or (100 if args.quick else 500)
    total = args.messages or (2000 if args.quick else 30000)
    per_node = max(1, total // nodes)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        private = [Ed25519PrivateKey.generate() for _ in range(nodes)]
        (folder / "trust").mkdir()
        for i, key in enumerate(private):
            (folder / "trust" / f"node-{i:05d}.pub").write_bytes(keys.public_pem(key.public_key()))
        key_bytes = [raw(k) for k in private]
        one, per_message = ingest_rate(args.db, 1, folder, key_bytes, per_node)
        many, _ = ingest_rate(args.db, args.instances, folder, key_bytes, per_node)
        with store(args.db, folder) as url:
            started = time.perf_counter()
            fill(url, args.fleet)
            fill_s = time.perf_counter() - started
            judge_s = judge_time(url)
            times = latencies(url, 80 if args.quick else 400)
        shutil.rmtree(folder / "trust", ignore_errors=True)
    print(f"fleet: {args.db} store; {nodes} nodes x {per_node} signed messages via Mosquitto per run; "
          f"latency over a {args.fleet}-node store (filled and judged in {fill_s:.1f} s); "
          f"{os.cpu_count()} CPUs shared by broker, publisher, store and ingest")
    print(f"ingest_rate_1: {one:.0f} msg/s")
    print(f"ingest_rate_{args.instances}: {many:.0f} msg/s")
    print(f"ingest_scale_{args.instances}_over_1: {many / one:.2f} ratio")
    print(f"fleet_api_p50_at_{args.fleet}_nodes: {percentile(times['fleet'], 50):.1f} ms")
    print(f"fleet_api_p99_at_{args.fleet}_nodes: {percentile(times['fleet'], 99):.1f} ms")
    print(f"node_api_p99_at_{args.fleet}_nodes: {percentile(times['node'], 99):.1f} ms")
    print(f"fleet_judge_time_at_{args.fleet}_nodes: {judge_s * 1000:.0f} ms")
    print(f"store_bytes_per_message: {per_message} bytes")
    print(f"store_bytes_per_node_per_day: {per_message * MESSAGES_PER_NODE_PER_DAY / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
