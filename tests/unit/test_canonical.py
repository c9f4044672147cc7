"""One byte string per message: only the exact RFC 8785 form of a value is accepted, every
other spelling of it is `non_canonical` (before the signature is looked at), and text that
is not strict I-JSON (lone surrogates, NaN, duplicate names, ...) is `malformed`."""

from __future__ import annotations

import json

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.trust import canonical, envelope, keys

# (case, bytes that parse to a value but are not its canonical form)
NON_CANONICAL = [
    ("space after a colon", b'{"a": 1}'),
    ("space after a comma", b'{"a":1, "b":2}'),
    ("leading space", b' {"a":1}'),
    ("trailing newline", b'{"a":1}\n'),
    ("trailing CRLF", b'{"a":1}\r\n'),
    ("tab between tokens", b'{"a":\t1}'),
    ("indented", b'{\n  "a": 1\n}'),
    ("byte order mark", b'\xef\xbb\xbf{"a":1}'),
    ("escaped letter", b'{"a":"\\u0041"}'),
    ("escaped solidus", b'{"a":"\\/"}'),
    ("escaped non-ASCII letter", b'{"a":"\\u00fc"}'),
    ("escaped surrogate pair", b'{"a":"\\ud83d\\ude00"}'),
    ("upper-case hex in an escape", b'{"a":"\\u001F"}'),
    ("\\u000a where \\n is due", b'{"a":"\\u000a"}'),
    ("members out of order", b'{"b":1,"a":2}'),
    ("code-point order instead of UTF-16 order", '{"\ue000":1,"\U0001f600":2}'.encode()),
    ("integral number with a fraction", b'{"a":5.0}'),
    ("exponent where digits are due", b'{"a":1e2}'),
    ("upper-case exponent", b'{"a":1E+21}'),
    ("exponent without sign", b'{"a":1e21}'),
    ("two-digit exponent (Python's spelling)", b'{"a":1e-07}'),
    ("exponent 16 (Python's spelling)", b'{"a":1e+16}'),
    ("small number in exponent form", b'{"a":1e-5}'),
    ("digits where an exponent is due", b'{"a":1000000000000000000000}'),
    ("trailing zero in a fraction", b'{"a":1.50}'),
    ("more digits than the shortest", b'{"a":0.10000000000000001}'),
    ("negative zero", b'{"a":-0}'),
    ("negative zero with a fraction", b'{"a":-0.0}'),
    ("integer beyond 2^53 that no double spells so", b'{"a":9007199254740993}'),
]

CANONICAL = [
    b'{"a":1}', b'{"a":-1.5,"b":[true,false,null],"c":{},"d":[]}', b'{"a":1e-7}', b'{"a":1e+21}',
    b'{"a":0.00001}', b'{"a":120000000000000000}', b'{"a":9007199254740992}', b'{"a":1.5e-10}',
    b'{"a":"\\n\\t\\b\\f\\r\\u001f\\u0000\\"\\\\"}', '{"\U0001f600":2,"\ue000":1}'.encode(),
    '{"a":"\u00fc\u2028\x7f\U0001f600"}'.encode(), b'{"":0,"a":{"":[]}}', b'"x"', b"[]",
]

# (case, bytes that are not strict I-JSON)
MALFORMED = [
    ("lone high surrogate", b'{"a":"\\ud800"}'),
    ("lone low surrogate", b'{"a":"\\udc00"}'),
    ("lone surrogate in a name", b'{"\\ud800":1}'),
    ("high surrogate before a letter", b'{"a":"\\ud800x"}'),
    ("two high surrogates", b'{"a":"\\ud800\\ud800"}'),
    ("surrogate encoded in UTF-8", b'{"a":"\xed\xa0\x80"}'),
    ("UTF-16", '{"a":1}'.encode("utf-16")),
    ("Latin-1 byte", b'{"a":"\xfc"}'),
    ("NaN", b'{"a":NaN}'),
    ("Infinity", b'{"a":-Infinity}'),
    ("number beyond a double", b'{"a":1e400}'),
    ("duplicate name", b'{"a":1,"a":1}'),
    ("duplicate name, nested", b'{"a":{"b":1,"b":2}}'),
    ("raw control character in a string", b'{"a":"\n"}'),
    ("text after the value", b'{"a":1}x'),
    ("empty", b""),
]


@pytest.mark.parametrize("payload", [c[1] for c in NON_CANONICAL], ids=[c[0] for c in NON_CANONICAL])
def test_other_spellings_of_a_value_are_not_canonical(payload: bytes) -> None:
    value, difference = canonical.read(payload)
    assert difference, payload
    assert canonical.canonical(canonical._as_doubles(value)) != payload  # the reference agrees


@pytest.mark.parametrize("payload", CANONICAL)
def test_canonical_bytes_are_accepted(payload: bytes) -> None:
    value, difference = canonical.read(payload)
    assert difference is None
    assert rfc8785.dumps(canonical._as_doubles(value)) == payload


@pytest.mark.parametrize("payload", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_text_that_is_not_strict_json_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        canonical.read(payload)


def test_the_detail_says_where_the_bytes_differ() -> None:
    assert "at byte 5 it reads b' 1}'" in canonical.read(b'{"a": 1}')[1]
    assert "byte order mark" in canonical.read(b'\xef\xbb\xbf{"a":1}')[1]
    with pytest.raises(ValueError, match=r"lone surrogate \\ud800"):
        canonical.read(b'{"a":"\\ud800"}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from([
    dict(sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    dict(sort_keys=False, separators=(",", ":"), ensure_ascii=False),
    dict(sort_keys=True, separators=(",", ":"), ensure_ascii=True),
    dict(sort_keys=True, ensure_ascii=False),
]))
def test_the_fast_check_agrees_with_the_reference_encoder(value, style: dict) -> None:
    """Whatever Python writes, `read` calls it canonical exactly when it equals RFC 8785's bytes."""
    try:
        payload = json.dumps(value, **style).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate from st.text: not UTF-8, refused before any of this
    try:
        parsed, difference = canonical.read(payload)
    except ValueError as exc:
        assert "surrogate" in str(exc)
        return
    assert (difference is None) == (payload == rfc8785.dumps(canonical._as_doubles(parsed)))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_what_the_sealer_writes_is_read_back_as_canonical(value) -> None:
    try:
        payload = canonical.canonical(value)
    except (ValueError, UnicodeEncodeError):
        return  # beyond 2^53 or a lone surrogate: the sealer refuses it
    assert canonical.read(payload)[1] is None


# What the sealer writes is RFC 8785's bytes, for every value it accepts: the fast path (the C
# encoder plus the spelling checks) and the slower ones. Strings hold what looks like Python's
# number spellings ("127.0.0.1", "5.0,", "1e-05"), escapes and text beyond U+E000.
tricky_text = st.text(alphabet=st.sampled_from(list('0123456789.,e+-]}"\\/ \n\t\x00\x1f\x7f\u00fc\u2028\ue000'
                                                    '\U0001f600ab')), max_size=10)
wide_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 5.0, 1e-4, 1e-5, 1e-6, 1e-7, 1e15, 1e16, 1e20, 1e21, 1e22, 123456789012345.6, 0.1 + 0.2])
sealer_values = st.recursive(
    st.none() | st.booleans() | st.integers(1 - 2**53, 2**53 - 1) | wide_floats | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(tricky_text, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=600, deadline=None)
@given(sealer_values)
def test_the_sealer_writes_exactly_what_the_reference_encoder_writes(value) -> None:
    try:
        expected = rfc8785.dumps(value)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            canonical.canonical(value)
        return
    assert canonical.canonical(value) == expected


@pytest.mark.parametrize("value", [
    {"line": "tcp:127.0.0.1:502", "a": 1}, {"a": "5.0,"}, {"a": "1e-05"}, {"a": "x" + "1" * 16},
    {"\u00fc": 1, "u": 2}, {"a": [1.0, 2.5, -0.0]}, {"a": 1e16}, {"a": 1e-7},
])
def test_the_sealer_writes_the_reference_bytes_for_spellings_that_look_alike(value) -> None:
    assert canonical.canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(("value", "error"), [
    ({"a": 2**53 + 1}, ValueError), ({"a": float("nan")}, ValueError), ({"a": float("inf")}, ValueError),
    ({1: "a"}, ValueError), ({"a": {None: 1}}, ValueError), ({"a": object()}, TypeError),
])
def test_the_sealer_refuses_what_json_cannot_carry(value, error) -> None:
    with pytest.raises(error):
        canonical.canonical(value)


# Envelope level: each other spelling of a genuine message, signed over exactly those bytes
# (as a careless or hostile signer would), is `non_canonical`, never valid: the rule runs
# before the signature check, so a valid signature cannot rescue it.
KEY = Ed25519PrivateKey.generate()
TRUST = keys.TrustStore()
TRUST.add(KEY.public_key(), frozenset({"n1"}))
TOPIC = "edge/n1/host"
FIELDS = {"v": 1, "alg": "Ed25519", "kid": keys.key_id(KEY.public_key()), "node": "n1", "topic": TOPIC,
          "kind": "host", "session": "1.ab", "seq": 5, "ts": 1_700_000_000_000,
          "body": {"cpu": 12.5, "load": 2, "note": "ok"}}

RESPELLINGS = {
    "space after colons": lambda f: json.dumps(f, sort_keys=True, separators=(",", ": ")),
    "indented": lambda f: json.dumps(f, sort_keys=True, indent=2),
    "trailing newline": lambda f: json.dumps(f, sort_keys=True, separators=(",", ":")) + "\n",
    "byte order mark": lambda f: "\ufeff" + json.dumps(f, sort_keys=True, separators=(",", ":")),
    "escaped character": lambda f: json.dumps(f, sort_keys=True, separators=(",", ":")).replace("ok", "\\u006fk"),
    "key order": lambda f: json.dumps(dict(reversed(f.items())), separators=(",", ":")),
    "integral float": lambda f: json.dumps({**f, "body": {**f["body"], "load": 2.0}}, sort_keys=True,
                                           separators=(",", ":")),
}


def signed_as_written(write) -> bytes:
    unsigned = write(FIELDS).encode()
    sig = envelope._b64(KEY.sign(envelope.SIGNING_CONTEXT + unsigned))
    at = unsigned.rfind(b'"topic"')  # the sig member goes before "topic", as a splicing verifier expects
    return unsigned[:at] + f'"sig":"{sig}",'.encode() + unsigned[at:]


@pytest.mark.parametrize("write", list(RESPELLINGS.values()), ids=list(RESPELLINGS))
def test_a_respelled_envelope_is_not_canonical_even_when_signed_so(write) -> None:
    verdict = envelope.open_envelope(signed_as_written(write), TOPIC, TRUST)
    assert (verdict.valid, verdict.reason) == (False, envelope.NON_CANONICAL), verdict.detail
    assert verdict.fields is not None and verdict.fields["seq"] == 5  # the shape was fine


def test_the_canonical_spelling_signed_so_is_valid() -> None:
    """The helper is honest: with JCS as the writer, the same construction verifies."""
    payload = signed_as_written(lambda f: canonical.canonical(f).decode())
    assert payload == envelope.seal(KEY, **{**{k: v for k, v in FIELDS.items() if k not in ("v", "alg", "ts")},
                                             "ts_ms": FIELDS["ts"]})
    assert envelope.open_envelope(payload, TOPIC, TRUST).valid


@pytest.mark.parametrize("text", ['"\\ud800"', '"\\udfff tail"', '"a\\ud83d"'])
def test_a_lone_surrogate_in_an_envelope_is_malformed(text: str) -> None:
    unsigned = canonical.canonical(FIELDS).replace(b'"ok"', text.encode())
    verdict = envelope.open_envelope(unsigned, TOPIC, TRUST)
    assert verdict.reason == envelope.MALFORMED and "surrogate" in verdict.detail
