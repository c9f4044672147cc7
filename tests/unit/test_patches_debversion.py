"""Debian version comparison: known orderings and agreement with dpkg itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.patches import debversion


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0", "1.1"),
        ("1.0~rc1", "1.0"),  # tilde sorts before everything, even the end
        ("1.0~~", "1.0~"),
        ("1.0", "1.0+deb12u1"),
        ("2.0", "1:1.0"),  # epoch wins
        ("6.1.0-9", "6.1.0-18"),  # numeric, not lexical
        ("3.0.11-1~deb12u1", "3.0.13-1~deb12u1"),
        ("3.0.13-1~deb12u1", "3.0.14-1~deb12u1"),
        ("5.2.15-2+b2", "5.2.15-2+b13"),
        ("1.0-1", "1.0a-1"),
        ("1.0", "1.0-0.1"),
        ("8:6.9.12.98+dfsg1-5.2build2", "8:6.9.12.98+dfsg1-5.2build2+esm1"),
    ],
)
def test_orders_known_pairs(older: str, newer: str) -> None:
    assert debversion.compare(older, newer) < 0
    assert debversion.compare(newer, older) > 0


def test_equal_forms() -> None:
    assert debversion.compare("0:1.0", "1.0") == 0
    assert debversion.compare("1.0-0", "1.0") == 0
    assert debversion.compare("1.00", "1.0") == 0


def test_newest_picks_by_debian_order() -> None:
    assert debversion.newest(["6.1.0-9", "6.1.0-18", "6.1.0-10"]) == "6.1.0-18"
    assert debversion.newest([]) is None


_part = st.text(alphabet="0123456789abz.+~", min_size=1, max_size=6).filter(lambda s: s[0].isdigit())
_version = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "1:", "2:"]),
    _part,
    st.sampled_from(["", "-1", "-1~deb12u1", "-2+b3", "-0ubuntu1.4"]),
)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to compare against")
@settings(max_examples=60, deadline=None)
@given(_version, _version)
def test_agrees_with_dpkg(a: str, b: str) -> None:
    def dpkg_says(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0

    ours = debversion.compare(a, b)
    assert (ours < 0) == dpkg_says("lt") and (ours == 0) == dpkg_says("eq")
