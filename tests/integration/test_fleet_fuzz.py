"""Nothing a node sends can crash ingest or the page: Hypothesis signs arbitrary bodies with a
trusted key (and throws arbitrary bytes), pushes them through ingest's checks into a real store
(SQLite and PostgreSQL), and asks the live API about the node after each one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleet_harness import Clock, Fleet, make_nodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.reading import Reading
from agent.fleet.store.writes import FRESH, INVALID_BODY, QUIET, REJECTED
from agent.web import api
from agent.web.board import Board
from simulators.signed_node import SimNode

pytestmark = pytest.mark.integration

KINDS = ["host", "modbus", "patches", "posture", "status", "readiness", "key", "weather"]
SAFE = 2**53 - 1
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # any code point JSON can carry, NUL included
def nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.floats(allow_nan=False, allow_infinity=False)
                    | TEXT, nested, max_leaves=25)
FIELDS = {"host": ["cpu", "memory", "disks", "temperatures", "clock", "failed_units"],
          "modbus": ["status", "values", "units", "identity", "point_errors"],
          "patches": ["status", "security_updates", "reboot_required", "reboot", "status_reasons"],
          "posture": ["checks"], "status": ["state", "site", "area", "will_seq", "devices"],
          "readiness": ["verdict", "policy", "inputs"], "key": ["action", "public_key"], "weather": ["x"]}


def real_bodies() -> dict[str, dict]:
    node = SimNode("fuzz", Ed25519PrivateKey.generate())
    return {json.loads(p)["kind"]: json.loads(p)["body"] for _, p, _ in [node.status("online"), *node.cycle()]}


REAL = real_bodies()  # made once: a strategy must draw its randomness from Hypothesis


@st.composite
def bodies(draw) -> tuple[str, dict]:
    """A kind and a body: a real one with fields replaced by arbitrary JSON, or arbitrary JSON."""
    kind = draw(st.sampled_from(KINDS))
    body = dict(REAL.get(kind, {}))
    for key in draw(st.lists(st.sampled_from(FIELDS[kind]), max_size=3)):
        body[key] = draw(JSON)
    if draw(st.booleans()):
        body = draw(st.dictionaries(TEXT, JSON, max_size=5))
    return kind, body


@pytest.fixture
def live(store_url):
    clock = Clock()
    trust, nodes = make_nodes(clock, "fuzz", "steady")
    fleet = Fleet(store_url, trust, clock)
    fleet.feed(nodes["steady"].cycle())
    board = Board(None, None, db=store_url, listen=("127.0.0.1", 0), clock=clock).start()
    yield fleet, nodes, board
    board.stop()
    fleet.close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_any_signed_body_or_any_bytes_leave_ingest_and_the_api_standing(live, data) -> None:
    fleet, nodes, board = live
    kind, body = data.draw(bodies())
    subject = data.draw(st.sampled_from(["", "plc-line2", "x" * 40]))
    try:
        message = nodes["fuzz"].seal(Reading(kind, body, subject=subject if kind == "modbus" else ""))
    except (ValueError, TypeError):  # what JCS cannot encode a node cannot send
        return
    junk = data.draw(st.binary(max_size=300))
    fleet.clock.now += 1
    outcomes = fleet.feed([message, ("edge/fuzz/host", junk, False)])
    # (a key notice that announces no usable key fails verification itself: agent.trust.verify)
    assert outcomes[0] in ((FRESH, INVALID_BODY, REJECTED) if kind == "key" else (FRESH, INVALID_BODY))
    assert outcomes[1] in (REJECTED, QUIET)
    status, detail = get(f"{board.url}api/nodes/fuzz")
    assert status == 200, detail
    api.NodeDetail.model_validate(detail)  # what the schema promises
    status, whole = get(f"{board.url}api/fleet")
    assert status == 200
    api.Fleet.model_validate(whole)
    steady = board.node("steady")
    assert steady is not None and steady["level"] == "ready"  # one node's garbage is its own problem


def test_text_the_store_cannot_keep_is_rejected_not_fatal(live) -> None:
    fleet, nodes, board = live
    node = nodes["fuzz"]
    node.session = "run\x00evil"
    assert fleet.feed([node.seal(Reading("host", node.host))]) == [REJECTED]
    node.session = "ok.1"
    assert fleet.feed([node.seal(Reading("host", node.host))]) == [FRESH]
    assert board.node("fuzz")["unverified"]["by_reason"] == {"malformed": 1}
