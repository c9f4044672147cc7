"""Bridge prefixes: the topic levels a remapping MQTT bridge adds in front of the agents' topics,
and the nodes allowed under each (docs/protocol.md, step 8). Pure.

A site broker bridged to a central one with `topic edge/# out 1 "" site-a/` delivers
`edge/press-1/host` centrally as `site-a/edge/press-1/host`. The signed topic stays
`edge/press-1/host`; a consumer told `site-a/` strips exactly that and applies the unchanged
topic rule to the rest. Configuration, one entry per prefix (`--bridge-prefix`):

    site-a/                    any node not bound to another prefix
    site-a/=press-1,press-2    only these nodes, and these nodes only under site-a/
    site-a/=press-*            node ids as patterns: `*` any run of characters, `?` one

A node named (or matched) under a prefix is *bound* to it: it is accepted under that prefix
only, never under another one nor without one. The binding is the consumer's own knowledge of
where each node lives, so it never depends on what a message claims about itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from agent.core.settings import NAME_PATTERN

# A node id with `*` and `?` allowed: what may stand in a prefix's node list.
_NODE_PATTERN = re.compile(r"[A-Za-z0-9_.*?-]{1,64}")
DIRECT = ""  # the prefix of a message that arrived on exactly the topic it was signed for


@dataclass(frozen=True)
class BridgePrefix:
    prefix: str  # one or more topic levels, each followed by "/": "site-a/", "region-1/site-c/"
    nodes: tuple[str, ...] = ()  # node ids or patterns; empty: any node bound to no prefix

    @classmethod
    def parse(cls, spec: str) -> "BridgePrefix":
        """`PREFIX[=NODE,...]`, or ValueError saying what is wrong and how to write it."""
        prefix, has_nodes, listed = spec.partition("=")
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        levels = prefix[:-1].split("/")
        bad = next((level for level in levels if not NAME_PATTERN.match(level)), None)
        if bad is not None:
            raise ValueError(f"{spec!r}: the prefix {prefix!r} must be topic levels as the bridge's `topic` line adds "
                             f"them, e.g. site-a/ ({bad!r} is not a name: 1-64 letters, digits, '_', '.' or '-')")
        nodes = tuple(listed.split(",")) if has_nodes else ()
        odd = next((node for node in nodes if not _NODE_PATTERN.fullmatch(node)), None)
        if odd is not None:
            raise ValueError(f"{spec!r}: after '=' comes a comma-separated list of node ids, each may use * and ?, "
                             f"e.g. {prefix}=press-1,press-2 ({odd!r} is not one)")
        return cls(prefix, nodes)

    def admits(self, node: str) -> bool:
        return any(fnmatchcase(node, pattern) for pattern in self.nodes)

    def __str__(self) -> str:
        return self.prefix + ("=" + ",".join(self.nodes) if self.nodes else "")


def added_prefix(arrival: str, signed: str) -> str | None:
    """What stands in front of the signed topic in the arrival topic: DIRECT ("") when they are
    equal, the added levels ("site-a/") when the arrival topic ends with "/" + the signed topic,
    None when the arrival topic is not the signed one under any prefix."""
    if arrival == signed:
        return DIRECT
    if arrival.endswith("/" + signed) and signed:
        return arrival[: len(arrival) - len(signed)]
    return None


class Bridges:
    """The bridge prefixes a consumer is configured with (none: only direct arrivals)."""

    def __init__(self, prefixes: Iterable[BridgePrefix] = ()) -> None:
        self.by_prefix: dict[str, BridgePrefix] = {}
        for entry in prefixes:
            if entry.prefix in self.by_prefix:
                raise ValueError(f"bridge prefix {entry.prefix!r} is given twice: list its nodes in one entry, "
                                 f"e.g. {entry.prefix}=press-1,press-2")
            self.by_prefix[entry.prefix] = entry

    @classmethod
    def parse(cls, specs: Iterable[str]) -> "Bridges":
        return cls(BridgePrefix.parse(spec) for spec in specs)

    def __bool__(self) -> bool:
        return bool(self.by_prefix)

    def knows(self, prefix: str) -> bool:
        return prefix == DIRECT or prefix in self.by_prefix

    def bound_to(self, node: str) -> list[str]:
        """The prefixes whose node lists name `node`."""
        return [entry.prefix for entry in self.by_prefix.values() if entry.admits(node)]

    def refusal(self, prefix: str, node: str) -> str | None:
        """Why `node` may not arrive under the known `prefix` (DIRECT: without one), or None."""
        entry = self.by_prefix.get(prefix)
        if entry is not None and entry.nodes:
            if entry.admits(node):
                return None
            return f"node {node!r} arrived under {prefix!r}, which admits only {', '.join(entry.nodes[:5])}"[:300]
        bound = self.bound_to(node)
        if not bound:
            return None
        where = f"under {prefix!r}" if prefix else "without a bridge prefix"
        return f"node {node!r} is bound to {', '.join(bound[:5])} and arrived {where}"[:300]

    def local_topic(self, arrival: str, signed: str | None) -> str:
        """The arrival topic as its site published it, to file a message (or a refusal) under a
        node and stream: the signed topic if the arrival topic ends with it, else the arrival
        topic without the longest configured prefix it starts with."""
        if signed is not None and added_prefix(arrival, signed) is not None:
            return signed
        known = [prefix for prefix in self.by_prefix if arrival.startswith(prefix)]
        return arrival[len(max(known, key=len)):] if known else arrival

    def roots(self, topic_prefix: str) -> list[str]:
        """What a consumer subscribes to (each + "/#"): the direct topics; with bridge prefixes,
        also every one-level prefix (`+/edge`), so that a bridge adding a prefix nobody configured
        shows as `unknown_prefix` instead of not at all, and each longer configured prefix."""
        if not self.by_prefix:
            return [topic_prefix]
        longer = sorted(p + topic_prefix for p in self.by_prefix if p.count("/") > 1)
        return [topic_prefix, f"+/{topic_prefix}", *longer]
