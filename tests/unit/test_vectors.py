"""docs/test-vectors/: the committed files are what scripts/make_test_vectors.py writes, and the
reference verifier gives every vector its expected verdict (so a verifier in any language
can test itself against the same files)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agent.trust import envelope, keys
from agent.trust.bridge import Bridges
from agent.trust.verify import Verifier

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "test-vectors"
DOCUMENT = json.loads((VECTORS / "vectors.json").read_text())
BRIDGES = Bridges.parse(DOCUMENT["bridge_prefixes"])


def test_the_committed_vectors_are_what_the_script_writes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_test_vectors.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def run_reference(trust_dir: Path) -> list[tuple[int, bool, str | None, str]]:
    """Every vector through one Verifier, in order: (id, valid, reason, detail)."""
    verifier = Verifier(keys.TrustStore.load(trust_dir), max_skew_ms=DOCUMENT["max_skew_ms"],
                        max_age_ms=DOCUMENT["max_age_ms"], recent_messages=DOCUMENT["recent"],
                        clock=lambda: DOCUMENT["now_ms"] / 1000, bridges=BRIDGES)
    out = []
    for vector in DOCUMENT["vectors"]:
        verdict = verifier.check(base64.b64decode(vector["payload_base64"]), vector["topic"])
        out.append((vector["id"], verdict.valid, verdict.reason, verdict.detail))
    return out


def test_the_reference_verifier_gives_every_vector_its_verdict(tmp_path: Path) -> None:
    trust_dir = tmp_path / "trust"
    shutil.copytree(VECTORS / "trust", trust_dir)  # a verifier may write learned keys there
    expected = [(v["id"], v["valid"], v["reason"]) for v in DOCUMENT["vectors"]]
    got = run_reference(trust_dir)
    assert [g[:3] for g in got] == expected
    assert all(detail for _, valid, _, detail in got if not valid)  # every refusal explains itself


def test_the_vectors_cover_every_reason_and_both_verdicts() -> None:
    reasons = Counter(v["reason"] for v in DOCUMENT["vectors"])
    assert set(reasons) == set(envelope.REASONS) | {None}
    assert reasons[envelope.NON_CANONICAL] >= 25 and reasons[envelope.MALFORMED] >= 20
    assert all(v["valid"] == (v["reason"] is None) for v in DOCUMENT["vectors"])


@pytest.mark.parametrize("vector", [v for v in DOCUMENT["vectors"] if not v["stateful"]], ids=lambda v: v["name"])
def test_a_vector_not_marked_stateful_gets_its_verdict_from_the_stateless_check_alone(vector: dict) -> None:
    """open_envelope alone (no replay guard, no rotations) agrees on every stateless vector, with
    the one addition the Verifier makes without state: a rotation notice's body is checked."""
    verdict = envelope.open_envelope(base64.b64decode(vector["payload_base64"]), vector["topic"],
                                     keys.TrustStore.load(VECTORS / "trust"), now_ms=DOCUMENT["now_ms"],
                                     max_skew_ms=DOCUMENT["max_skew_ms"], max_age_ms=DOCUMENT["max_age_ms"],
                                     bridges=BRIDGES)
    if vector["name"].startswith("malformed: rotation notice"):
        assert verdict.valid and verdict.fields["kind"] == "key"
        return
    assert (verdict.valid, verdict.reason) == (vector["valid"], vector["reason"])


def test_the_public_key_beside_the_vectors_is_press_1s() -> None:
    public = keys.load_public(VECTORS / "press-1.pub")
    assert keys.key_id(public) == DOCUMENT["keys"]["press-1"]["kid"]
    assert keys.TrustStore.load(VECTORS / "trust").keys[keys.key_id(public)].nodes == {"press-1"}
