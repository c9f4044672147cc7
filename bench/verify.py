"""Verification benchmark: what a consumer pays per message on its hot path.

For a 50-point Modbus reading (~2.8 KB envelope): `seal`, the pure `open_envelope`, and the
stateful `Verifier.check` (open + replay guard). Baseline in the same run: a bare Ed25519
verify of the same bytes with `cryptography`, the floor any verifier pays; the ratios show
what parsing and the checks add on top of it.

    .venv/bin/python bench/verify.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent import envelope, keys  # noqa: E402
from agent.verify import Verifier  # noqa: E402

TOPIC = "edge/press-1/modbus/plc1"


def best_us(action: Callable[[], object], rounds: int, per_round: int) -> float:
    """Best mean over `rounds` rounds: the least disturbed by other load on the machine."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            action()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (finishes within 30 s)")
    args = parser.parse_args()
    rounds, per_round = (5, 300) if args.quick else (9, 2000)

    key = Ed25519PrivateKey.generate()
    kid = keys.key_id(key.public_key())
    trust = keys.TrustStore()
    trust.add(key.public_key(), frozenset({"press-1"}))
    body = {"points": {f"p{i}": {"value": i * 1.5, "unit": "degC", "quality": "good"} for i in range(50)}}
    fields = dict(kid=kid, node="press-1", topic=TOPIC, kind="modbus", session="1.abc", ts_ms=0, body=body)
    payload = envelope.seal(key, seq=1, **fields)
    signed = envelope.SIGNING_CONTEXT + envelope.signed_bytes(payload, envelope.parse(payload)["sig"])
    signature = key.sign(signed)
    assert envelope.open_envelope(payload, TOPIC, trust).valid

    payloads = iter([envelope.seal(key, seq=n, **fields) for n in range(rounds * per_round)])
    verifier = Verifier(trust, max_skew_ms=None, max_age_ms=None)

    bare = best_us(lambda: key.public_key().verify(signature, signed), rounds, per_round)
    sealing = best_us(lambda: envelope.seal(key, seq=1, **fields), rounds, per_round)
    opening = best_us(lambda: envelope.open_envelope(payload, TOPIC, trust), rounds, per_round)
    checking = best_us(lambda: verifier.check(next(payloads), TOPIC), 1, rounds * per_round)

    print(f"envelope bytes: {len(payload)}")
    print(f"bare ed25519 verify: {bare:.1f} us")
    print(f"seal: {sealing:.1f} us")
    print(f"open_envelope: {opening:.1f} us")
    print(f"verifier check: {checking:.1f} us")
    print(f"open_envelope / bare verify: {opening / bare:.2f} ratio")
    print(f"verifier check / bare verify: {checking / bare:.2f} ratio")


if __name__ == "__main__":
    main()
