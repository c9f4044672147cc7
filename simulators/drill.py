"""`edge-sim drill SCENARIO`: play a scripted incident on a simulated plant and the fleet board.

A scenario (simulators/drills/*.toml) names simulated nodes with their criticality and
tolerances, their devices (a `profile` makes a real PLC simulator the node polls over Modbus
TCP), and timed steps: what happens (`do`), what the facilitator says (`say`) and what the
board must show (`expect`). The drill starts a private Mosquitto, the PLC simulators, the
signed simulated nodes and a board, all on one simulated clock: between steps every node
publishes a cycle per simulated `cycle` (default one minute), so a 20-minute incident plays
in seconds. It prints a timeline of what happened and what the board showed; exit 0 when
every expectation held.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.core.reading import Reading
from agent.core.settings import parse_duration
from agent.readiness.model import human
from agent.readiness.policy import Asset, Policy
from agent.fleet.ingest import IngestSettings
from agent.fleet.defaults import SILENT_AFTER_S
from agent.readiness.maintenance import MaintenanceConfig
from agent.trust import keys
from agent.web.board import Board
from simulators.faults import Fault
from simulators.mosquitto import PrivateMosquitto
from simulators.plc import Simulator, load_profile
from simulators.signed_node import SimNode, Wire, clean_patches

DRILL_DIR = Path(__file__).parent / "drills"
WAIT_S = 30.0  # generous: the machine may be busy


def list_drills() -> list[str]:
    return sorted(p.stem for p in DRILL_DIR.glob("*.toml"))


# ----------------------------------------------------------------------------- scenario data


@dataclass(frozen=True)
class Step:
    at_s: float
    say: str
    do: list[dict[str, Any]]
    expect: list[dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    cycle_s: float
    nodes: list[dict[str, Any]]
    steps: list[Step]
    # A drill with long cycles (hours of plant time) raises both, so the board never judges a
    # node silent or its readings stale between two cycles that are simply far apart.
    silent_after_s: float = SILENT_AFTER_S
    stale_after_s: float = Policy().stale_after_s
    settle: bool = False  # wait for the board after every cycle: verdict changes stamped at their plant time

    @property
    def length_s(self) -> float:
        return self.steps[-1].at_s if self.steps else 0.0


def load_scenario(name: str) -> Scenario:
    path = Path(name) if name.endswith(".toml") else DRILL_DIR / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"no drill {name!r}: choose one of {', '.join(list_drills())} or give a .toml file")
    data = tomllib.loads(path.read_text())
    steps = [Step(parse_duration(s.get("at", 0)), s.get("say", ""), list(s.get("do", [])), list(s.get("expect", [])))
             for s in data.get("steps", [])]
    if [s.at_s for s in steps] != sorted(s.at_s for s in steps):
        raise ValueError(f"{path}: steps must be in time order")
    return Scenario(path.stem, data.get("title", path.stem), data.get("description", ""),
                    parse_duration(data.get("cycle", "1m")), list(data.get("nodes", [])), steps,
                    parse_duration(data.get("silent_after", SILENT_AFTER_S)),
                    parse_duration(data.get("stale_after", Policy().stale_after_s)), bool(data.get("settle", False)))


def policy_of(node: dict[str, Any], stale_after_s: float = Policy().stale_after_s) -> Policy:
    def asset(d: dict[str, Any], default_downtime: float) -> Asset:
        return Asset(d.get("criticality", "important"), d.get("process", ""),
                     parse_duration(d.get("max_downtime", default_downtime)))

    return Policy(node=asset(node, 1800.0), devices={d["name"]: asset(d, 900.0) for d in node.get("devices", [])},
                  stale_after_s=stale_after_s)


def maintenance_of(node: dict[str, Any]) -> MaintenanceConfig | None:
    """A node's `maintenance` table (the agent's [maintenance] section), if it has one."""
    return MaintenanceConfig.model_validate(node["maintenance"]) if "maintenance" in node else None


# ----------------------------------------------------------------------------- the plant


class DrillClock:
    """Simulated wall clock: set to the start plus a scenario offset; real time creeps on
    between sets so successive messages still carry increasing timestamps. The drill is played
    as the `length_s` that just passed, so it ends about now: a store it leaves behind reads
    as recent history (`edge-agent report --since 7d` right after covers it)."""

    def __init__(self, length_s: float = 0.0) -> None:
        self.start = time.time() - length_s
        self._offset = 0.0
        self._mark = time.monotonic()
        self._lock = threading.Lock()

    def set(self, offset_s: float) -> None:
        with self._lock:
            self._offset, self._mark = offset_s, time.monotonic()

    def __call__(self) -> float:
        with self._lock:
            return self.start + self._offset + (time.monotonic() - self._mark)


@dataclass
class Outcome:
    passed: bool = True
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    shown: list[dict[str, Any]] = field(default_factory=list)  # the board's fleet snapshot after each step


class Drill:
    def __init__(self, scenario: Scenario, workdir: Path, *, listen: tuple[str, int] = ("127.0.0.1", 0),
                 out: Callable[[str], None] = print, db: str | None = None) -> None:
        self.scenario, self.workdir, self.out = scenario, workdir, out
        self.clock = DrillClock(scenario.length_s)
        self.broker = PrivateMosquitto.in_folder(workdir)
        self.trust = keys.TrustStore()
        self.nodes: dict[str, SimNode] = {}
        self.alive: set[str] = set()
        self.plcs: dict[tuple[str, str], Simulator] = {}
        self.faults: dict[tuple[str, str], Fault] = {}
        for spec in scenario.nodes:
            key = Ed25519PrivateKey.generate()
            self.trust.add(key.public_key(), frozenset({spec["id"]}))
            node = SimNode(spec["id"], key, policy=policy_of(spec, scenario.stale_after_s), area=spec.get("area", ""),
                           clock=self.clock, maintenance=maintenance_of(spec))
            for device in spec.get("devices", []):
                if device.get("profile"):
                    plc = Simulator({1: load_profile(device["profile"])}, seed=1)
                    node.devices[device["name"]].endpoint = plc.start("tcp", port=0)
                    self.plcs[(spec["id"], device["name"])] = plc
            self.nodes[spec["id"]] = node
            self.alive.add(spec["id"])
        self.broker.start()
        self.wire = Wire("127.0.0.1", self.broker.port)
        self.board = Board(f"mqtt://127.0.0.1:{self.broker.port}", self.trust, listen=listen, clock=self.clock,
                           settings=IngestSettings(tick_s=0.5, silent_after_ms=int(scenario.silent_after_s * 1000)),
                           refresh_s=0.5, db=db)
        self.ingest = self.board.ingest
        assert self.ingest is not None

    def close(self) -> None:
        self.board.stop()
        self.wire.close()
        self.broker.kill()
        for plc in self.plcs.values():
            plc.stop()

    # -- actions

    def act(self, action: dict[str, Any]) -> str:
        kind = action["action"]
        node = self.nodes.get(action.get("node", ""))
        now_ms = int(self.clock() * 1000)
        if kind in ("plc_offline", "plc_online"):
            where = (action["node"], action["device"])
            if where in self.plcs:
                if kind == "plc_offline":
                    self.faults[where] = self.plcs[where].faults.add(Fault("drop"))
                elif where in self.faults:
                    self.plcs[where].faults.remove(self.faults.pop(where))
            else:
                node.devices[action["device"]].online = kind == "plc_online"
            return f"{action['device']} on {action['node']} {'stops answering' if kind == 'plc_offline' else 'answers again'}"
        if kind == "security_updates":
            updates = [{"package": u["package"], "installed": u.get("installed", "1.0"), "fixed": u.get("fixed", "1.1"),
                        "severity": u.get("severity", "unspecified"),
                        "first_seen_ms": now_ms - int(parse_duration(u["age"]) * 1000)} for u in action["updates"]]
            node.patches = {**node.patches, "security_updates": updates, "security_pending": len(updates)}
            return f"{len(updates)} security updates pending on {node.node}"
        if kind == "reboot_required":
            packages = list(action.get("packages", []))
            node.patches = {**node.patches, "reboot_required": True,
                            "reboot": {"required": True, "flag_packages": packages, "kernel_pending": False}}
            return f"{node.node} needs a reboot ({', '.join(packages)})"
        if kind == "check":
            node.posture = {"checks": [{**c, "status": action["status"]} if c["id"] == action["id"] else c
                                       for c in node.posture["checks"]]}
            return f"{node.node}: hardening check {action['id']} now {action['status']}"
        if kind == "patches_installed":
            node.patches = clean_patches()
            return f"{node.node} patched and rebooted in the maintenance window"
        if kind == "forge":
            return self.forge(node, action.get("kinds", ["tampered", "unknown_key", "wrong_topic"]))
        if kind == "broker_down":
            self.broker.kill()
            self._until(lambda: not self.ingest.connected, "the board noticing the broker outage")
            return "the broker crashes (SIGKILL)"
        if kind == "broker_up":
            self.broker.start()
            self._until(lambda: self.ingest.subscribed.is_set() and self.wire.connected.is_set(),
                        "the board and the nodes reconnecting")
            return "the broker is back; the board and the nodes reconnect"
        raise ValueError(f"unknown drill action {kind!r}")

    def forge(self, victim: SimNode, kinds: list[str]) -> str:
        messages = []
        for kind in kinds:
            if kind == "tampered":  # a genuine message with the content changed: bad signature
                topic, payload, _ = next(m for m in reversed(victim.sent) if "/modbus/" in m[0] or "/readiness" in m[0])
                payload = payload.replace(b'"state":"offline"', b'"state":"online"').replace(b'"level":"', b'"level":"x', 1)
                messages.append((topic, payload, False))
            elif kind == "unknown_key":  # an attacker's own key claiming the victim is fine
                impostor = SimNode(victim.node, Ed25519PrivateKey.generate(), policy=victim.policy, clock=self.clock)
                messages.append(impostor.seal(Reading("readiness", {"verdict": {"level": "ready"}})))
            elif kind == "wrong_topic":  # a neighbour's genuine message replayed under the victim's name
                other = next((n for n in self.nodes.values() if n is not victim and n.sent), victim)
                topic, payload, _ = other.sent[0]
                kind_topic = f"{victim.prefix}/{victim.node}/host" if other is not victim else topic + "x"
                messages.append((kind_topic, payload, False))
        self.wire.send(messages)
        self.expected_rejections[victim.node] = self.expected_rejections.get(victim.node, 0) + len(messages)
        return f"{len(messages)} forged messages injected for {victim.node} ({', '.join(kinds)})"

    # -- playing

    def _until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        self.out(f"           (gave up waiting for {what})")
        return False

    def publish_cycle(self) -> None:
        for name in sorted(self.alive):
            self.wire.send(self.nodes[name].cycle())

    def _board_caught_up(self) -> bool:
        """The store holds every live node's latest verdict and every rejection this drill caused,
        and an ingest heartbeat as recent as the drill's clock (it jumps a cycle at a time)."""
        if not self.board.fleet()["broker"]["connected"]:
            return False
        for name in self.alive:
            detail = self.board.node(name)
            if detail is None or detail["streams"].get("readiness", {}).get("seq") != \
                    self.nodes[name].latest["readiness"]["seq"]:
                return False
            if len(detail["rejections"]) < self.expected_rejections.get(name, 0):
                return False
        return True

    def check(self, expect: dict[str, Any], fleet: dict[str, Any]) -> str | None:
        """None when the board shows what `expect` asks, else what it showed instead."""
        if "broker" in expect:
            shown = "connected" if fleet["broker"]["connected"] else "disconnected"
            if shown != expect["broker"]:
                return f"broker {shown}"
        if "node" not in expect:
            return None
        row = next((r for r in fleet["nodes"] if r["node"] == expect["node"]), None)
        if row is None:
            return "node not on the board"
        for key in ("level", "security", "operations", "online"):
            if key in expect and row[key] != expect[key]:
                return f"{key} {row[key]}"
        texts = [r["text"] for r in row["reasons"]]
        if "reason" in expect and not any(expect["reason"] in t for t in texts):
            return f"reasons {texts}"
        if "no_reason" in expect and any(expect["no_reason"] in t for t in texts):
            return f"reasons {texts}"
        if "unverified" in expect and row["unverified"]["count"] < expect["unverified"]:
            return f"unverified {row['unverified']['count']}"
        if expect.get("verified_only") and row["unverified"]["count"]:
            return f"unverified {row['unverified']['count']}"
        if "agreement" in expect and (row["agent"] or {}).get("agreement") != expect["agreement"]:
            return f"agreement {(row['agent'] or {}).get('agreement')}"
        return None

    def describe(self, fleet: dict[str, Any], names: set[str]) -> list[str]:
        lines = [] if fleet["broker"]["connected"] else ["           board: BROKER CONNECTION LOST, data is stale"]
        for row in fleet["nodes"]:
            if row["node"] not in names:
                continue
            agent = row["agent"] or {}
            claim = f"agent says {agent['verdict'].get('level')} ({agent['agreement']})" if agent else "no agent verdict"
            mark = f"  ⚠ UNVERIFIED ×{row['unverified']['count']}" if row["unverified"]["count"] else ""
            lines.append(f"           board: {row['node']:<10} {row['level'].upper():<9} security {row['security']}, "
                         f"operations {row['operations']}; {claim}{mark}")
            lines += [f"                  - {r['text']}" for r in row["reasons"]]
        return lines

    def play(self) -> Outcome:
        outcome = Outcome()
        self.expected_rejections: dict[str, int] = {}

        def say(line: str) -> None:
            outcome.lines.append(line)
            self.out(line)

        self.board.start()
        say(f"== drill: {self.scenario.title} ==")
        if self.board.http:
            say(f"   board: {self.board.url}")
        self._until(lambda: self.ingest.subscribed.is_set() and self.wire.connected.is_set(), "the broker connections")
        for name in sorted(self.nodes):
            self.wire.send([self.nodes[name].status("online")])
        previous = None
        for step in self.scenario.steps:
            if previous is not None:  # the nodes keep publishing between steps
                t = previous + self.scenario.cycle_s
                while t < step.at_s:
                    self.clock.set(t)
                    self.publish_cycle()
                    if self.scenario.settle:
                        self._until(self._board_caught_up, "the board to receive this cycle")
                    t += self.scenario.cycle_s
            self.clock.set(step.at_s)
            previous = step.at_s
            say(f"+{human(step.at_s):>7}  {step.say}".rstrip())
            later = [a for a in step.do if a["action"] == "forge"]
            for action in [a for a in step.do if a["action"] != "forge"]:
                say(f"           ▶ {self.act(action)}")
            self.publish_cycle()
            for action in later:
                say(f"           ▶ {self.act(action)}")
            if self.ingest.connected:
                self._until(self._board_caught_up, "the board to receive this cycle")
            problems: list[str | None] = []
            deadline = time.monotonic() + WAIT_S
            while True:  # the board may still be settling: poll until it shows what is expected
                fleet = self.board.fleet()
                problems = [self.check(e, fleet) for e in step.expect]
                if not any(problems) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            outcome.shown.append(fleet)
            names = {e["node"] for e in step.expect if "node" in e} or set(self.nodes)
            for line in self.describe(fleet, names):
                say(line)
            for expect, problem in zip(step.expect, problems):
                wanted = ", ".join(f"{k}={v}" for k, v in expect.items())
                if problem:
                    outcome.passed = False
                    outcome.failures.append(f"+{human(step.at_s)}: expected {wanted}; board showed {problem}")
                    say(f"           ✖ expected {wanted}; board showed {problem}")
                else:
                    say(f"           ✔ {wanted}")
        say(f"== {'PASSED' if outcome.passed else 'FAILED'}: {self.scenario.title} ==")
        return outcome


def run_drill(name: str, *, listen: tuple[str, int] = ("127.0.0.1", 0), out: Callable[[str], None] = print,
              hold_s: float = 0.0, db: str | None = None) -> Outcome:
    """Play a scenario; with `db` (a fleet store URL) the board keeps what it saw there."""
    scenario = load_scenario(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"drill-{scenario.name}-"))
    drill = Drill(scenario, workdir, listen=listen, out=out, db=db)
    try:
        outcome = drill.play()
        if hold_s:
            out(f"   holding the board open for {hold_s:.0f} s at {drill.board.url}")
            time.sleep(hold_s)
        return outcome
    finally:
        drill.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from agent.fleet.store import StoreError
    from agent.web.server import parse_listen

    parser = argparse.ArgumentParser(prog="edge-sim drill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", help=f"one of: {', '.join(list_drills())}, or a .toml file")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--listen", default="127.0.0.1:0", help="where the drill's board serves (default: a free port)")
    parser.add_argument("--hold", type=float, default=0.0, help="keep the board up S seconds after the drill")
    parser.add_argument("--db", default=None, metavar="URL",
                        help="keep the board's fleet store here (a SQLite file or postgresql://...), e.g. for "
                             "`edge-agent report --db URL` after the drill; default: a throwaway store")
    args = parser.parse_args(argv)
    if args.list or not args.scenario:
        for name in list_drills():
            print(f"{name:28} {load_scenario(name).title}")
        return 0
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if shutil.which("mosquitto") is None:
        print("edge-sim drill: mosquitto is not installed (apt-get install -y mosquitto)", file=sys.stderr)
        return 2
    try:
        outcome = run_drill(args.scenario, listen=parse_listen(args.listen), hold_s=args.hold, db=args.db)
    except (ValueError, StoreError) as exc:
        print(f"edge-sim drill: {exc}", file=sys.stderr)
        return 2
    return 0 if outcome.passed else 1
