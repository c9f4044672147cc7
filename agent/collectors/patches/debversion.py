"""Debian version comparison (deb-version(7)) in pure Python: epochs, revisions, tildes.

Naive string or tuple comparison gets `1:1.0 > 2.0`, `1.0~rc1 < 1.0` and `6.1.0-10 > 6.1.0-9`
wrong; this follows dpkg's `verrevcmp` exactly so kernel and security checks raise no false alarms.
"""

from __future__ import annotations

from functools import cmp_to_key


def split(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) of a Debian version string."""
    version = version.strip()
    epoch = 0
    if ":" in version:
        head, version = version.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream, _, revision = version.rpartition("-") if "-" in version else (version, "", "")
    return epoch, upstream, revision


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare(a: str, b: str) -> int:
    """<0, 0 or >0 as Debian version `a` sorts before, equal to or after `b`."""
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def newest(versions: list[str]) -> str | None:
    return max(versions, key=cmp_to_key(compare)) if versions else None
