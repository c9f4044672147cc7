"""Sites bridged to one central broker: what one central consumer sustains, what a link outage
queues at the sites, and how long the centre takes to catch up.

N site brokers (Mosquitto, config/mosquitto/site-bridge.conf as shipped but without TLS: its
bridge block, queue limits and in-flight window) bridge M simulated nodes each
(simulators/signed_node.py: genuinely signed messages) into one central Mosquitto (the
queue limits of central.conf), read by one central consumer: `edge-agent verify`'s
subscription and Verifier with --bridge-prefix site-<i>/=site-<i>-* (every message verified,
replay guard, prefix binding), then the central board. A separate process seals every
message before the clock starts and publishes it to the site brokers, so the figures are the
centre's.

Phases, in one run:
1. broker path: a burst through the bridges to a consumer that only counts (what Mosquitto
   and the bridges carry, the ceiling for several consumers on a shared subscription), and
   the central broker's share of a core meanwhile;
2. baseline: a burst published straight to the central broker under the bridged topics;
3. bridged: the same burst through the site brokers and their bridges (ratio to 2);
4. outage: the nodes publish at a steady rate; the central broker is stopped, then started
   again on its port: the sites' bridge queue depth (their $SYS store counts), the
   reconnect, catch-up and current-again times after the restart, and the sequence gaps
   counted centrally over the whole run;
5. the central board (`edge-agent board`'s ingest, --bridge-prefix, on SQLite): a burst
   through the bridges, stored messages per second and the gaps the board counts.
Then, on a fresh site broker whose link is down: its memory per queued message.

    python bench/bridge.py [--quick] [--sites N] [--nodes M] [--outage S] [--rate R]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.collectors.host.config import HostConfig  # noqa: E402
from agent.collectors.modbus.config import DeviceConfig  # noqa: E402
from agent.collectors.patches.config import PatchesConfig  # noqa: E402
from agent.collectors.posture.config import PostureConfig  # noqa: E402
from agent.core.reading import Reading  # noqa: E402
from agent.delivery.config import SpoolConfig  # noqa: E402
from agent.fleet.subscription import Subscription  # noqa: E402
from agent.readiness.policy import ReadinessConfig  # noqa: E402
from agent.trust import keys  # noqa: E402
from agent.trust.bridge import Bridges  # noqa: E402
from agent.trust.verify import Verifier  # noqa: E402
from simulators.localnet import free_port  # noqa: E402
from simulators.mosquitto import PrivateMosquitto  # noqa: E402
from simulators.signed_node import SimNode, Wire  # noqa: E402

SHIPPED = ROOT / "config" / "mosquitto"
DEVICES_PER_NODE = 2  # a panel PC watching two Modbus devices
QUEUE_SETTINGS = ("max_queued_messages", "max_queued_bytes", "max_inflight_messages")
TLS_SETTINGS = ("bridge_cafile", "bridge_certfile", "bridge_keyfile", "bridge_tls_version", "bridge_insecure")
DEADLINE_S = 300.0
CURRENT_LAG_S = 1.0  # a live message verified centrally within this of its publication: caught up


def node_rate(devices: int = DEVICES_PER_NODE) -> float:
    """Messages per second of one node on the agent's default intervals (host, readiness,
    status, patches, posture) with `devices` Modbus devices at their default interval."""
    def every(model, name: str = "interval") -> float:
        return 1.0 / model.model_fields[name].default

    return (every(HostConfig) + every(ReadinessConfig) + every(SpoolConfig, "report_interval")
            + every(PatchesConfig) + every(PostureConfig) + devices * every(DeviceConfig))


def site_config(site: int, central_port: int) -> str:
    """The shipped site-bridge.conf for site `site`, without TLS, reconnecting after 1-2 s."""
    lines = []
    for line in (SHIPPED / "site-bridge.conf").read_text().splitlines():
        if line.startswith(TLS_SETTINGS):
            continue
        line = line.replace("central.example.net:8883", f"127.0.0.1:{central_port}")
        lines.append(line.replace("restart_timeout 5 60", "restart_timeout 1 2").replace("site-a", f"site-{site}"))
    return "sys_interval 1\n" + "\n".join(lines) + "\n"


def central_config() -> str:
    """central.conf's queue limits (no TLS, no ACL)."""
    text = (SHIPPED / "central.conf").read_text().splitlines()
    return "".join(line + "\n" for line in text if line.startswith(QUEUE_SETTINGS + ("autosave_interval",)))


# ---------------------------------------------------------------- the nodes (a child process)

def raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


Sealed = tuple[int, str, bytes, str, int]  # site, topic, payload, node, seq


def seal_rounds(nodes: list[tuple[int, SimNode]], count: int) -> list[Sealed]:
    """`count` messages, round-robin over the nodes like a real fleet."""
    out: list[Sealed] = []
    while len(out) < count:
        for site, node in nodes:
            stream = len(out) // len(nodes) % 3
            reading = Reading("host", node.host) if stream == 0 else Reading(
                "modbus", node.devices[f"dev-{stream}"].body(), subject=f"dev-{stream}")
            topic, payload, _ = node.seal(reading)
            out.append((site, topic, payload, node.node, node.seq - 1))
            if len(out) == count:
                break
    return out


def nodes_process(site_ports: list[int], central_port: int, key_bytes: list[list[bytes]], commands) -> None:
    """The simulated nodes. Each command (kind, count, rate): seal `count` messages, say
    "sealed", wait for "go", publish them (kind "direct": straight to the centre under the
    bridged topic; "sites": to the site brokers), at `rate` msg/s or as fast as acknowledged,
    and answer [(node, seq, when published)] once every one is acknowledged."""
    from agent.readiness.policy import Asset, Policy

    policy = Policy(devices={f"dev-{i}": Asset("supporting", "Line", 3600.0) for i in (1, 2)})
    nodes = [(site, SimNode(f"site-{site}-{i:04d}", Ed25519PrivateKey.from_private_bytes(b), policy=policy))
             for site, keys_ in enumerate(key_bytes) for i, b in enumerate(keys_)]
    sites = [Wire("127.0.0.1", port, client_id=f"nodes-site-{i}") for i, port in enumerate(site_ports)]
    central = Wire("127.0.0.1", central_port, client_id="nodes-direct")
    for wire in [*sites, central]:
        wire.connected.wait(30)
    while (command := commands.recv()) is not None:
        kind, count, rate = command
        messages = seal_rounds(nodes, count)
        commands.send("sealed")
        commands.recv()
        infos, sent = [], []
        started = time.monotonic()
        for n, (site, topic, payload, node, seq) in enumerate(messages):
            if rate and n % 10 == 0:
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
            wire, where = (central, f"site-{site}/{topic}") if kind == "direct" else (sites[site], topic)
            infos.append(wire.client.publish(where, payload, qos=1))
            sent.append((node, seq, time.monotonic()))
        for info in infos:
            info.wait_for_publish(DEADLINE_S)
        commands.send(sent)
    for wire in [*sites, central]:
        wire.close()


# ---------------------------------------------------------------- the centre

@dataclass
class Arrivals:
    """What the central consumer received: arrival time per (node, seq), and refusals."""

    times: dict[tuple[str, int], float] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.times)

    def gaps(self) -> int:
        seqs: dict[str, list[int]] = {}
        with self.lock:
            for node, seq in self.times:
                seqs.setdefault(node, []).append(seq)
        return sum(max(s) - min(s) + 1 - len(s) for s in seqs.values())


def consume(subscription: Subscription, arrivals: Arrivals, stop: threading.Event) -> None:
    while not stop.is_set():
        for received in subscription.messages(time.monotonic() + 0.2):
            fields = received.verdict.fields or {}
            with arrivals.lock:
                if received.verdict.valid:
                    arrivals.times[(fields["node"], fields["seq"])] = time.monotonic()
                elif received.verdict.reason != "duplicate":
                    arrivals.invalid[received.verdict.reason] = arrivals.invalid.get(received.verdict.reason, 0) + 1


class Counter:
    """A consumer that only counts what the broker delivers (the broker path's ceiling)."""

    def __init__(self, port: int) -> None:
        self.times: list[float] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-counter")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("+/edge/#", qos=1)
        self.client.on_message = lambda c, u, m: self.times.append(time.monotonic())
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_count(count, target: int, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while count() < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"bridge: {what}: {count()} of {target} before the deadline")
        time.sleep(0.02)


class SiteWatch:
    """Each site broker's bridge queue: its $SYS store count less its retained messages (one
    message in store per queued message here: the bridge is the sites' only subscriber), and
    the brokers' resident memory."""

    def __init__(self, sites: list[PrivateMosquitto]) -> None:
        self.sites = sites
        self.values: list[dict[str, int]] = [{} for _ in sites]
        self.clients = []
        for index, site in enumerate(sites):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{index}")
            client.on_connect = lambda c, u, f, rc, p: c.subscribe(
                [("$SYS/broker/store/messages/count", 0), ("$SYS/broker/retained messages/count", 0)])
            client.on_message = lambda c, u, m, i=index: self.values[i].__setitem__(m.topic, int(m.payload))
            client.connect("127.0.0.1", site.port)
            client.loop_start()
            self.clients.append(client)

    def depth(self) -> int:
        return sum(v.get("$SYS/broker/store/messages/count", 0) - v.get("$SYS/broker/retained messages/count", 0)
                   for v in self.values)

    def rss_bytes(self) -> int:
        total = 0
        for site in self.sites:
            assert site.process is not None
            status = Path(f"/proc/{site.process.pid}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
        return total

    def close(self) -> None:
        for client in self.clients:
            client.loop_stop()
            client.disconnect()


@dataclass
class Run:
    central: PrivateMosquitto
    sites: list[PrivateMosquitto]
    commands: object  # the nodes process's end of a multiprocessing Pipe

    def publish(self, kind: str, count: int, rate: float = 0.0) -> float:
        """Have the nodes seal `count` messages, then start publishing them; the start time."""
        self.commands.send((kind, count, rate))
        assert self.commands.recv() == "sealed"
        started = time.monotonic()
        self.commands.send("go")
        return started

    def published(self) -> list[tuple[str, int, float]]:
        return self.commands.recv()


def burst_rate(times: list[float]) -> float:
    """Messages per second between the first and the last arrival."""
    return (len(times) - 1) / max(1e-9, max(times) - min(times))


def cpu_seconds(broker: PrivateMosquitto) -> float:
    assert broker.process is not None
    fields = Path(f"/proc/{broker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def broker_path(run: Run, count: int) -> tuple[float, float]:
    """(msg/s a counting consumer receives through the bridges, the central broker's share of
    one core meanwhile)."""
    counter = Counter(run.central.port)
    try:
        time.sleep(0.5)
        cpu_before = cpu_seconds(run.central)
        started = run.publish("sites", count)
        run.published()
        wait_count(lambda: len(counter.times), count, "the counting consumer")
        share = (cpu_seconds(run.central) - cpu_before) / (max(counter.times) - started)
        return burst_rate(counter.times), share
    finally:
        counter.close()


def verified_burst(run: Run, arrivals: Arrivals, kind: str, count: int) -> float:
    before = arrivals.count()
    started = run.publish(kind, count)
    run.published()
    wait_count(arrivals.count, before + count, f"the verifying consumer ({kind})")
    with arrivals.lock:
        return burst_rate([t for t in arrivals.times.values() if t >= started])


@dataclass
class Outage:
    seconds: float
    rate: float
    messages: int = 0  # published while the centre was down
    peak_depth: int = 0  # the sites' bridge queues together, from $SYS (updated every second)
    reconnect_s: float = 0.0  # from the centre's restart to the first message verified there
    catch_up_s: float = 0.0  # from the centre's restart to the last of the outage's messages verified
    current_s: float | None = None  # ... to live messages verified within CURRENT_LAG_S again (None: not in the run)


def outage(run: Run, arrivals: Arrivals, seconds: float, rate: float, lead_s: float, tail_s: float) -> Outage:
    """Nodes publish at `rate` for lead + outage + tail seconds; the centre is down in between."""
    result = Outage(seconds, rate)
    watch = SiteWatch(run.sites)
    try:
        before = arrivals.count()
        run.publish("sites", int(rate * (lead_s + seconds + tail_s)), rate)
        time.sleep(lead_s)
        run.central.stop()
        cut = time.monotonic()
        while time.monotonic() < cut + seconds:
            time.sleep(0.25)
            result.peak_depth = max(result.peak_depth, watch.depth())
        run.central.start()
        restarted = time.monotonic()
        sent = run.published()
    finally:
        watch.close()
    wait_count(arrivals.count, before + len(sent), "every message of the outage phase at the centre")
    backlog = [(node, seq) for node, seq, when in sent if cut <= when < restarted]
    with arrivals.lock:
        result.catch_up_s = max(arrivals.times[key] for key in backlog) - restarted
        result.reconnect_s = min(t for t in arrivals.times.values() if t >= restarted) - restarted
        live = [(when, arrivals.times[(node, seq)]) for node, seq, when in sent if when >= restarted]
    result.messages = len(backlog)
    result.current_s = current_again(live, restarted)
    return result


def current_again(live: list[tuple[float, float]], restarted: float) -> float | None:
    """Seconds from the restart until every later message arrives within CURRENT_LAG_S of its
    publication: the arrival of the first message of the run's last stretch of such messages."""
    first = None
    for published, arrived in sorted(live, reverse=True):
        if arrived - published >= CURRENT_LAG_S:
            break
        first = arrived
    return None if first is None else first - restarted


def queue_memory(tmp: Path, count: int) -> tuple[float, float]:
    """(resident bytes per queued message, payload bytes per message) of a site broker whose
    link is down from the start, holding `count` messages of the simulated nodes for its bridge."""
    from agent.readiness.policy import Asset, Policy

    node = SimNode("site-9-0000", Ed25519PrivateKey.generate(),
                   policy=Policy(devices={f"dev-{i}": Asset("supporting", "Line", 3600.0) for i in (1, 2)}))
    payloads = [payload for _, _, payload, _, _ in seal_rounds([(0, node)], 300)]
    site = PrivateMosquitto.in_folder(tmp / "site-memory", site_config(9, free_port())).start()
    watch = SiteWatch([site])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="memory-nodes")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", site.port)
    client.loop_start()
    try:
        time.sleep(1.5)
        rss_before = watch.rss_bytes()
        infos = [client.publish(f"edge/{node.node}/host", payloads[n % len(payloads)], qos=1) for n in range(count)]
        for info in infos:
            info.wait_for_publish(DEADLINE_S)
        wait_count(watch.depth, count, "the site's bridge queue")
        grown = watch.rss_bytes() - rss_before
    finally:
        client.loop_stop()
        client.disconnect()
        watch.close()
        site.kill()
    return grown / count, sum(map(len, payloads)) / len(payloads)


def wait_for_bridges(port: int, sites: int) -> None:
    """Until every site's bridge says it is connected (its retained state on the central broker)."""
    states: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bridge-watch")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("bridges/+/state", qos=1)
    client.on_message = lambda c, u, m: states.__setitem__(m.topic, m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_count(lambda: sum(value == b"1" for value in states.values()), sites, "bridges connected")
    finally:
        client.loop_stop()
        client.disconnect()


def start_brokers(tmp: Path, sites: int) -> tuple[PrivateMosquitto, list[PrivateMosquitto]]:
    central = PrivateMosquitto.in_folder(tmp / "central", central_config()).start()
    site_brokers = [PrivateMosquitto.in_folder(tmp / f"site-{i}", site_config(i, central.port)).start()
                    for i in range(sites)]
    wait_for_bridges(central.port, sites)
    return central, site_brokers


def board_burst(run: Run, trust: keys.TrustStore, bridges: Bridges, count: int, store: Path) -> tuple[float, int]:
    """(messages/s the central board's ingest stores from a burst through the bridges, the
    sequence gaps the board counts): the board in one process, on SQLite."""
    from agent.fleet.ingest import IngestSettings
    from agent.web.board import Board

    with Board(run.central.url, trust, db=str(store), serve_http=False,
               settings=IngestSettings(bridges=bridges)) as board:
        assert board.ingest is not None
        board.ingest.subscribed.wait(30)
        run.publish("sites", count)
        first: list[tuple[float, int]] = []

        def stored() -> int:
            if not first and board.ingest.stored:
                first.append((time.monotonic(), board.ingest.stored))
            return board.ingest.stored

        wait_count(stored, count, "the central board's store")
        done = time.monotonic()
        run.published()
        gaps = sum(row["loss"]["gaps"] for row in board.fleet()["nodes"])
    return (count - first[0][1]) / max(1e-9, done - first[0][0]), gaps


def measure(run: Run, trust: keys.TrustStore, bridges: Bridges, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    figures["broker_path_rate"], figures["central_cpu_share"] = broker_path(run, args.burst)
    arrivals, stop = Arrivals(), threading.Event()
    verifier = Verifier(trust, bridges=bridges)
    filters = [f"{root}/#" for root in bridges.roots("edge")]
    with Subscription(run.central.url, verifier, topic_filter=filters, client_id="central-consumer",
                      persistent=True) as subscription:
        subscription.subscribed.wait(30)
        thread = threading.Thread(target=consume, args=(subscription, arrivals, stop), daemon=True)
        thread.start()
        try:
            figures["central_verified_direct"] = verified_burst(run, arrivals, "direct", args.burst)
            figures["central_verified_bridged"] = verified_burst(run, arrivals, "sites", args.burst)
            cut = outage(run, arrivals, args.outage, args.rate, lead_s=1.0, tail_s=args.outage)
        finally:
            stop.set()
            thread.join(5)
    figures.update(outage_messages=cut.messages, queue_depth_peak=cut.peak_depth, reconnect_s=cut.reconnect_s,
                   catch_up_s=cut.catch_up_s, current_s=cut.current_s, gaps=arrivals.gaps(),
                   invalid=sum(arrivals.invalid.values()))
    figures["central_board_bridged"], figures["board_gaps"] = board_burst(
        run, trust, bridges, args.burst, run.central.config.parent / "fleet.sqlite")
    return figures


def report(figures: dict[str, float], args: argparse.Namespace) -> None:
    per_node = node_rate()
    rows = [
        ("sites", args.sites, "count"), ("nodes", args.sites * args.nodes, "count"),
        ("broker_path_rate", figures["broker_path_rate"], "msg/s"),
        ("central_broker_cpu_share", figures["central_cpu_share"], "cores"),
        ("central_broker_one_core_estimate", figures["broker_path_rate"] / figures["central_cpu_share"], "msg/s"),
        ("central_verified_direct", figures["central_verified_direct"], "msg/s"),
        ("central_verified_bridged", figures["central_verified_bridged"], "msg/s"),
        ("bridged_over_direct", figures["central_verified_bridged"] / figures["central_verified_direct"], "ratio"),
        ("outage", args.outage, "s"), ("outage_offered_rate", args.rate, "msg/s"),
        ("outage_messages", figures["outage_messages"], "count"),
        ("bridge_queue_depth_peak", figures["queue_depth_peak"], "messages"),
        ("site_memory_per_queued_message", figures["bytes_per_queued"], "bytes"),
        ("payload_per_message", figures["payload_bytes"], "bytes"),
        ("reconnect_time", figures["reconnect_s"], "s"),
        ("catch_up_time", figures["catch_up_s"], "s"),
        ("drain_rate", figures["outage_messages"] / max(1e-9, figures["catch_up_s"] - figures["reconnect_s"]),
         "msg/s"),
        ("current_again_time", figures["current_s"] if figures["current_s"] is not None else float("nan"), "s"),
        ("sequence_gaps", figures["gaps"], "count"), ("invalid_messages", figures["invalid"], "count"),
        ("central_board_bridged", figures["central_board_bridged"], "msg/s"),
        ("board_sequence_gaps", figures["board_gaps"], "count"),
        ("node_rate_on_defaults", per_node, "msg/s"),
        ("nodes_per_central_consumer", figures["central_verified_bridged"] / per_node, "nodes"),
        ("nodes_per_central_board", figures["central_board_bridged"] / per_node, "nodes"),
        ("nodes_per_central_broker", figures["broker_path_rate"] / per_node, "nodes"),
    ]
    for name, value, unit in rows:
        print(f"{name}: {value:.2f} {unit}" if isinstance(value, float) else f"{name}: {value} {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run, under 30 s")
    parser.add_argument("--sites", type=int, default=0, help="site brokers (default 4, quick 2)")
    parser.add_argument("--nodes", type=int, default=0, help="nodes per site (default 250, quick 25)")
    parser.add_argument("--burst", type=int, default=0, help="messages per burst (default 30000, quick 3000)")
    parser.add_argument("--outage", type=float, default=0, help="seconds the centre is down (default 30, quick 4)")
    parser.add_argument("--rate", type=float, default=0, help="msg/s the nodes publish meanwhile (default 1000, "
                                                             "quick 300)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args.sites = args.sites or (2 if args.quick else 4)
    args.nodes = args.nodes or (25 if args.quick else 250)
    args.burst = args.burst or (3000 if args.quick else 30000)
    args.outage = args.outage or (4.0 if args.quick else 30.0)
    args.rate = args.rate or (300.0 if args.quick else 1000.0)
    private = [[Ed25519PrivateKey.generate() for _ in range(args.nodes)] for _ in range(args.sites)]
    trust = keys.TrustStore()
    for site, site_keys in enumerate(private):
        for i, key in enumerate(site_keys):
            trust.add(key.public_key(), frozenset({f"site-{site}-{i:04d}"}))
    bridges = Bridges.parse([f"site-{site}/=site-{site}-*" for site in range(args.sites)])
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        central, sites = start_brokers(Path(tmp), args.sites)
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        process = context.Process(target=nodes_process, args=(
            [site.port for site in sites], central.port, [[raw(k) for k in ks] for ks in private], theirs))
        process.start()
        try:
            figures = measure(Run(central, sites, ours), trust, bridges, args)
        finally:
            ours.send(None)
            process.join(30)
            for broker in (*sites, central):
                broker.kill()
        figures["bytes_per_queued"], figures["payload_bytes"] = queue_memory(Path(tmp), args.burst)
    print(f"bridge: {args.sites} sites x {args.nodes} nodes bridged into one central broker and one verifying "
          f"consumer; a {args.outage:g} s outage of the centre at {args.rate:g} msg/s")
    report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
