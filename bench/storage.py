"""Storage-fault benchmark: what the agent's fallbacks cost and save.

  - space freed -> spooling again: the real daemon (`edge-agent run`, broker down) on a 4 MiB
    tmpfs; a filler takes the rest of the disk, new messages go to memory; timed from deleting
    the filler to the first new row in spool.db. Compared with the report interval, the bound
    the agent promises (needs root to mount the tmpfs; skipped otherwise);
  - salvage: a spool of 1,000 signed messages, damaged three ways (random bytes over its second
    half; cut to half its length; four random pages a third of the way in), opened by
    agent.delivery.store: messages salvaged (each signature checked), and the time it took.
    Baseline: the rows a plain scan in id order reads before the first error (a naive dump);
  - memory queue: the default [spool] memory_bytes filled three times over with a realistic
    mix (90 % Modbus telemetry, 10 % node status): messages held, what it keeps, and the memory
    it really takes (tracemalloc) against what it counts.

N is the number of messages pushed through the memory queue: 3 x its capacity; --quick uses
one pass over the damage cases and a single freed-space run (within 30 s).

    .venv/bin/python bench/storage.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.core.reading import Priority  # noqa: E402
from agent.daemon.runtime import read_runtime  # noqa: E402
from agent.delivery import spool  # noqa: E402
from agent.delivery.config import SpoolConfig  # noqa: E402
from agent.delivery.memqueue import Item, MemoryQueue  # noqa: E402
from agent.delivery.message import Message  # noqa: E402
from agent.delivery.store import Store, StoreOptions  # noqa: E402
from agent.trust import envelope, keys  # noqa: E402
from simulators.localnet import free_port  # noqa: E402


def sealed(private_key, kid: str, n: int, stream: str, priority: Priority) -> Message:
    topic = f"edge/bench/{stream}"
    body = {"points": {f"p{i}": n * 0.5 + i for i in range(20)}, "status": "ok"}
    payload = envelope.seal(private_key, kid=kid, node="bench", topic=topic, kind=stream.split("/")[0],
                            session="1.bench", seq=n + 1, ts_ms=1_700_000_000_000 + n, body=body)
    return Message(topic, payload, stream, priority)


# -- space freed ---------------------------------------------------------------------------------


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (result := condition()):
            return result
        time.sleep(0.01)
    raise RuntimeError(f"timed out waiting for {what}")


def _max_id(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()[0]
    finally:
        conn.close()


def _fill(path: Path) -> None:
    with path.open("wb") as handle:
        try:
            while True:
                handle.write(b"\x7f" * 65536)
                handle.flush()
        except OSError:
            pass


def space_freed_to_spooled(directory: Path, key_path: Path, report_s: float) -> float | None:
    """Seconds from deleting the filler of a full disk to the first message spooled again."""
    if os.geteuid() != 0:
        return None
    disk = directory / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode:
        return None
    config = directory / "agent.toml"
    config.write_text(
        f'state_dir = "{disk / "state"}"\n[node]\nid = "bench"\n[mqtt]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        f'[signing]\nkey_file = "{key_path}"\n[collectors.host]\ninterval = "100ms"\n'
        f'[spool]\nmin_free = "0"\nreport_interval = "{report_s}s"\n')
    log = (directory / "agent.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    db = disk / "state" / spool.FILENAME
    try:
        _wait(lambda: db.exists() and _max_id(db) >= 5, 20, "a backlog")
        _fill(disk / "filler")
        _wait(lambda: (r := read_runtime(disk / "state")) and r.get("storage", {}).get("memory_depth", 0) >= 5,
              20, "messages held in memory")
        before = _max_id(db)
        start = time.perf_counter()
        os.unlink(disk / "filler")
        _wait(lambda: _max_id(db) > before, 30, "the first message spooled again")
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(30)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- salvage -------------------------------------------------------------------------------------


def _plain_scan(path: Path) -> int:
    """Rows a naive dump reads (every table in id order) before its first error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    read = 0
    try:
        for row in conn.execute("SELECT id FROM message ORDER BY id"):
            read += 1
    except sqlite3.DatabaseError:
        pass
    finally:
        conn.close()
    return read


def salvage_case(directory: Path, private_key, kid: str, how: str) -> tuple[int, int, float]:
    """(salvaged, read by a plain scan, seconds to open and salvage) for 1,000 messages damaged `how`."""
    folder = directory / how.replace(" ", "-")
    path = folder / spool.FILENAME
    store = spool.Spool(path, max_bytes=64 * 1024**2, max_age_s=86400)
    store.put_many([sealed(private_key, kid, n, f"modbus/dev{n % 10}", Priority.BULK) for n in range(1000)])
    store.close()
    data = bytearray(path.read_bytes())
    half = len(data) // 2 // 4096 * 4096
    if how == "cut to half":
        path.write_bytes(bytes(data[:half]))
    elif how == "random half":
        data[half:] = os.urandom(len(data) - half)
        path.write_bytes(bytes(data))
    else:  # four bad pages at a third
        third = len(data) // 3 // 4096 * 4096
        data[third:third + 4 * 4096] = os.urandom(4 * 4096)
        path.write_bytes(bytes(data))
    plain = _plain_scan(path)
    trust = keys.TrustStore()
    trust.add(private_key.public_key())
    start = time.perf_counter()
    opened = Store(path, StoreOptions(max_bytes=64 * 1024**2, max_age_s=86400),
                   accept=lambda topic, payload: envelope.open_envelope(payload, topic, trust).valid)
    seconds = time.perf_counter() - start
    salvaged = opened.quarantines[0].salvaged if opened.quarantines else opened.depth
    opened.close()
    return salvaged, plain, seconds


# -- memory queue --------------------------------------------------------------------------------


def memory_queue(private_key, kid: str) -> dict[str, float]:
    budget = SpoolConfig().memory_bytes
    templates = [sealed(private_key, kid, n, f"modbus/dev{n % 10}", Priority.BULK) for n in range(90)]
    templates += [sealed(private_key, kid, n, "status", Priority.SECURITY) for n in range(10)]
    capacity = budget // templates[0].size + 1
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    queue = MemoryQueue(budget)
    pushed = 3 * capacity
    for n in range(pushed):
        template = templates[n % len(templates)]
        # a fresh payload object each, as the sealer makes them
        message = Message(template.topic, bytes(bytearray(template.payload)), template.stream, template.priority)
        queue.put(Item(n + 1, message, False, n))
    real = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    kept = queue.oldest(queue.depth)
    security = sum(1 for item in kept if item.message.priority == Priority.SECURITY)
    security_pushed = sum(1 for n in range(pushed) if templates[n % len(templates)].priority == Priority.SECURITY)
    return {"budget": budget, "held": queue.depth, "pushed": pushed, "security_kept": security,
            "security_pushed": security_pushed, "newest_kept": int(kept[-1].id == pushed), "real": real,
            "counted": queue.bytes, "message_bytes": statistics.mean(t.size for t in templates)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one pass, within 30 s")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # the store logs each quarantine; the figures say it
    report_s = 5.0
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        directory = Path(tmp)
        key_path = directory / "node.key"
        private_key, kid = keys.generate(key_path)
        runs = 1 if args.quick else 3
        freed = [s for s in (space_freed_to_spooled(directory / f"freed{n}", key_path, report_s)
                             for n in range(runs) if (directory / f"freed{n}").mkdir() is None) if s is not None]
        salvage = {how: salvage_case(directory, private_key, kid, how)
                   for how in ("random half", "cut to half", "four bad pages")}
        queue = memory_queue(private_key, kid)

    if freed:
        print(f"space freed -> first message spooled again: {', '.join(f'{s:.2f}' for s in freed)} s "
              f"(report interval {report_s:g} s)")
    else:
        print("space freed -> spooled again: skipped (needs root to mount a tmpfs)")
    for how, (salvaged, plain, seconds) in salvage.items():
        print(f"salvage, 1,000 messages, {how}: {salvaged} salvaged in {seconds:.2f} s (a plain scan reads {plain})")
    print(f"memory queue ({queue['budget'] / 1024**2:.0f} MiB, messages of ~{queue['message_bytes']:.0f} bytes): "
          f"holds {queue['held']:,} of {queue['pushed']:,} pushed; kept {queue['security_kept']} of "
          f"{queue['security_pushed']} security and the newest; takes {queue['real'] / 1024**2:.1f} MiB "
          f"(counts {queue['counted'] / 1024**2:.1f} MiB)")
    if freed:
        print(f"space_freed_to_spooled: {max(freed):.2f} s")
        print(f"space_freed_to_spooled_vs_report_interval: {max(freed) / report_s:.3f} ratio")
    for how, (salvaged, plain, seconds) in salvage.items():
        name = how.replace(" ", "_")
        print(f"salvaged_of_1000_{name}: {salvaged} messages")
        print(f"salvaged_vs_plain_scan_{name}: {salvaged / max(1, plain):.2f} ratio")
        print(f"salvage_seconds_{name}: {seconds:.2f} s")
    print(f"memory_queue_messages: {queue['held']} messages")
    print(f"memory_queue_real_vs_counted: {queue['real'] / queue['counted']:.2f} ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
