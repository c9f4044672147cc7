"""Delivery benchmark: spool write rate, backlog drain rate to a local Mosquitto, and the
agent's peak memory while draining a backlog.

  - spool writes: signed ~600-byte messages into agent.delivery.spool.Spool, one transaction per
    message with sync="normal" (the default) and sync="full", and in batches of 100
    (one collector cycle); the ratio full/normal shows what fsync per write costs here;
  - drain: a backlog of N pre-signed messages is written into a state directory, then the
    real daemon (`edge-agent run`, collectors off) is started against a private Mosquitto
    spawned on a free port; timed until no bulk message is left in the spool (timed from the first PUBACK, so start-up is left out). Baseline in the same run: a bare paho client publishing the same N messages
    at QoS 1 with the same in-flight window and no spool; the ratio is spool drain / bare;
  - memory: the agent's peak RSS (VmHWM) while draining, against the same agent started on
    an empty spool.

N is 100,000 (10,000 with --quick, which finishes within 30 s).

    .venv/bin/python bench/delivery.py [--quick]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core.reading import Priority  # noqa: E402
from agent.delivery import spool
from agent.delivery.spool import Message, Spool  # noqa: E402
from agent.trust import envelope, keys  # noqa: E402
from simulators.mosquitto import PrivateMosquitto  # noqa: E402

WINDOW = 64  # the default [spool] inflight


def signed_messages(private_key, kid: str, count: int, distinct: int = 500) -> list[Message]:
    """`count` messages cycling through `distinct` real signed payloads (sealing 100k would
    measure Ed25519, not delivery)."""
    sealed = []
    for n in range(distinct):
        stream = f"modbus/dev{n % 10}"
        topic = f"edge/bench/{stream}"
        body = {"points": {f"p{i}": n * 0.5 + i for i in range(20)}, "status": "ok"}
        payload = envelope.seal(private_key, kid=kid, node="bench", topic=topic, kind="modbus",
                                session="1.bench", seq=n + 1, ts_ms=1_700_000_000_000 + n, body=body)
        sealed.append(Message(topic, payload, stream, Priority.BULK))
    return [sealed[n % distinct] for n in range(count)]


def bench_writes(directory: Path, messages: list[Message]) -> dict[str, float]:
    rates = {}
    for name, sync, batch in (("normal", "normal", 1), ("full", "full", 1), ("normal_batch100", "normal", 100)):
        path = directory / f"write-{name}.db"
        store = Spool(path, max_bytes=10**10, max_age_s=86400, sync=sync)  # type: ignore[arg-type]
        sample = messages[: 300 if sync == "full" else len(messages)]
        start = time.perf_counter()
        for i in range(0, len(sample), batch):
            store.put_many(sample[i:i + batch])
        rates[name] = len(sample) / (time.perf_counter() - start)
        store.close()
    return rates


def bare_paho_rate(port: int, messages: list[Message]) -> float:
    """Publish at QoS 1 with the same window, no spool: the baseline for the drain."""
    acked = 0
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.max_inflight_messages_set(WINDOW)

    def on_publish(c, u, mid, rc, p) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    start = time.perf_counter()
    sent = 0
    while acked < len(messages):
        while sent < len(messages) and sent - acked < WINDOW:
            m = messages[sent]
            client.publish(m.topic, m.payload, qos=1)
            sent += 1
        client.loop(0.05)
    elapsed = time.perf_counter() - start
    client.disconnect()
    return len(messages) / elapsed


def write_agent_config(directory: Path, port: int, key_path: Path) -> Path:
    path = directory / "agent.toml"
    path.write_text(
        f'state_dir = "{directory / "state"}"\n[node]\nid = "bench"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\n[signing]\nkey_file = "{key_path}"\n'
        f'[collectors.host]\nenabled = false\n[spool]\nmax_bytes = "1GiB"\nreport_interval = "1h"\n'
        f'inflight = {WINDOW}\n'
    )
    return path


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def drain_progress(db: Path) -> tuple[bool, int]:
    """Whether bulk messages are left, and messages acked so far (O(log n) lookups: polling
    must not slow the agent it measures)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (left,) = conn.execute("SELECT EXISTS (SELECT 1 FROM message WHERE priority = 0)").fetchone()
        acked = conn.execute("SELECT value FROM counter WHERE name = 'acked'").fetchone()
        return bool(left), acked[0] if acked else 0
    finally:
        conn.close()


def run_agent_drain(directory: Path, port: int, key_path: Path, backlog: list[Message]) -> tuple[float, int]:
    """Seconds to drain `backlog` through the real daemon, and its peak RSS in KiB."""
    config = write_agent_config(directory, port, key_path)
    store = Spool(directory / "state" / spool.FILENAME, max_bytes=10**10, max_age_s=86400)
    for i in range(0, len(backlog), 1000):
        store.put_many(backlog[i:i + 1000])
    store.close()
    process = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config), "--log-level", "WARNING"],
                               cwd=ROOT)
    first_ack = None
    db = directory / "state" / spool.FILENAME
    try:
        while True:
            bulk_left, acked = drain_progress(db)
            if acked and first_ack is None:
                first_ack = time.perf_counter()  # connected: the drain has begun
            if first_ack is not None and not bulk_left:
                break
            if process.poll() is not None:
                raise RuntimeError("the agent exited while draining")
            time.sleep(0.05)
        elapsed = time.perf_counter() - first_ack
        peak = peak_rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    return elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000-message backlog instead of 100,000")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        directory = Path(tmp)
        key_path = directory / "node.key"
        private_key, kid = keys.generate(key_path)
        messages = signed_messages(private_key, kid, count)
        print(f"backlog: {count:,} messages of {len(messages[0].payload)} bytes"
              + (" (--quick: the full run uses 100,000)" if args.quick else ""))

        writes = bench_writes(directory, messages[: min(count, 20_000)])
        broker = PrivateMosquitto.in_folder(directory / "broker", "max_queued_messages 0\n").start()
        port = broker.port
        try:
            bare = bare_paho_rate(port, messages)
            drain_dir, idle_dir = directory / "drain", directory / "idle"
            drain_dir.mkdir()
            idle_dir.mkdir()
            seconds, peak = run_agent_drain(drain_dir, port, key_path, messages)
            _, idle_peak = run_agent_drain(idle_dir, port, key_path, [])
        finally:
            broker.stop()

    drain = count / seconds
    print(f"spool writes, one transaction each: normal {writes['normal']:,.0f}/s, full {writes['full']:,.0f}/s; "
          f"batches of 100: {writes['normal_batch100']:,.0f}/s")
    print(f"drain through the agent: {count:,} in {seconds:.1f} s from its first PUBACK; "
          f"bare paho, no spool: {bare:,.0f}/s")
    print(f"agent peak RSS: {peak / 1024:.1f} MiB draining, {idle_peak / 1024:.1f} MiB on an empty spool")
    print(f"spool_write_rate_normal: {writes['normal']:.0f} msg/s")
    print(f"spool_write_rate_full: {writes['full']:.0f} msg/s")
    print(f"spool_write_full_vs_normal: {writes['full'] / writes['normal']:.3f} ratio")
    print(f"spool_write_rate_batch100: {writes['normal_batch100']:.0f} msg/s")
    print(f"drain_rate: {drain:.0f} msg/s")
    print(f"drain_vs_bare_paho: {drain / bare:.2f} ratio")
    print(f"drain_backlog: {count} messages")
    print(f"agent_peak_rss_draining: {peak / 1024:.1f} MiB")
    print(f"agent_peak_rss_vs_idle: {peak / max(1, idle_peak):.2f} ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
