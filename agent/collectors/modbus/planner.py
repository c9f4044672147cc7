"""Plan the fewest reads that cover a device's points (pure).

A read is valid when it stays within the count limit of its table, contains no address
the device refuses (configured, or learned at run time), and bridges no run of addresses
belonging to no point longer than the allowed gap. Validity is hereditary (every
sub-range of a valid read is valid), so for points that are disjoint or share identical
ranges, taking clusters in address order and extending each read as far as it stays valid
is optimal: every read covers a consecutive run of clusters, and greedy maximal runs give
the fewest runs. Points that partly overlap are merged into one cluster read together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

BIT_TABLES = ("coil", "discrete")
TABLE_ORDER = ("coil", "discrete", "input", "holding")
PROTOCOL_MAX_REGISTERS = 125
PROTOCOL_MAX_BITS = 2000

Range = tuple[int, int]  # inclusive (first, last) address


@dataclass(frozen=True)
class Span:
    """The addresses one point occupies: `width` registers (or bits) from `start`."""

    name: str
    table: str
    start: int
    width: int = 1

    @property
    def end(self) -> int:
        return self.start + self.width - 1


@dataclass(frozen=True)
class Limits:
    max_registers: int = PROTOCOL_MAX_REGISTERS
    max_bits: int = PROTOCOL_MAX_BITS
    max_gap: int = 16  # unread registers a read may bridge
    max_gap_bits: int = 128  # unread bits a read may bridge

    def count_limit(self, table: str) -> int:
        return self.max_bits if table in BIT_TABLES else self.max_registers

    def gap_limit(self, table: str) -> int:
        return self.max_gap_bits if table in BIT_TABLES else self.max_gap


@dataclass(frozen=True)
class Read:
    table: str
    start: int
    count: int
    points: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.start + self.count - 1


def function_code(table: str) -> int:
    return {"coil": 1, "discrete": 2, "holding": 3, "input": 4}[table]


def _hits(first: int, last: int, forbidden: Sequence[Range]) -> bool:
    return any(lo <= last and first <= hi for lo, hi in forbidden)


def _clusters(spans: list[Span]) -> list[list[Span]]:
    """Group spans whose addresses overlap; the result is in address order."""
    out: list[list[Span]] = []
    end = -1
    for span in sorted(spans, key=lambda s: (s.start, s.end, s.name)):
        if out and span.start <= end:
            out[-1].append(span)
            end = max(end, span.end)
        else:
            out.append([span])
            end = span.end
    return out


def _read(table: str, spans: list[Span]) -> Read:
    start = min(s.start for s in spans)
    end = max(s.end for s in spans)
    return Read(table, start, end - start + 1, tuple(s.name for s in spans))


def _plan_table(table: str, spans: list[Span], limits: Limits, forbidden: Sequence[Range],
                isolate: frozenset[str]) -> list[Read]:
    limit, gap_limit = limits.count_limit(table), limits.gap_limit(table)
    reads: list[Read] = []
    current: list[Span] = []
    for cluster in _clusters(spans):
        first, last = cluster[0].start, max(s.end for s in cluster)
        if last - first + 1 > limit:
            # Partly overlapping points too wide to read together: read them one by one.
            reads.extend(_read(table, [s]) for s in cluster)
            continue
        alone = any(s.name in isolate for s in cluster)
        if current and not alone and not any(s.name in isolate for s in current):
            start, end = current[0].start, max(s.end for s in current)
            gap = first - end - 1
            if (last - start + 1 <= limit and gap <= gap_limit
                    and (gap <= 0 or not _hits(end + 1, first - 1, forbidden))):
                current.extend(cluster)
                continue
        if current:
            reads.append(_read(table, current))
        current = list(cluster)
    if current:
        reads.append(_read(table, current))
    return reads


def plan(spans: Iterable[Span], limits: Limits = Limits(),
         forbidden: Mapping[str, Sequence[Range]] | None = None,
         isolate: frozenset[str] = frozenset()) -> list[Read]:
    """Reads covering every span, fewest first by table then address.

    `forbidden` maps a table to address ranges no read may include; a span that itself
    lies on one raises ValueError (the point can never be read). Spans named in `isolate`
    are read alone (learned at run time when a gap-free read is still refused).
    """
    forbidden = forbidden or {}
    by_table: dict[str, list[Span]] = {}
    for span in spans:
        if span.width > limits.count_limit(span.table):
            raise ValueError(f"point {span.name} spans {span.width} addresses, more than one read may hold")
        if _hits(span.start, span.end, forbidden.get(span.table, ())):
            raise ValueError(f"point {span.name} lies on a refused address")
        by_table.setdefault(span.table, []).append(span)
    reads: list[Read] = []
    for table in TABLE_ORDER:
        if table in by_table:
            reads += _plan_table(table, by_table[table], limits, forbidden.get(table, ()), isolate)
    return reads


def gaps(read: Read, spans: Iterable[Span]) -> list[Range]:
    """Addresses inside `read` that belong to none of `spans` (the bridged gaps)."""
    used = sorted((s.start, s.end) for s in spans if s.table == read.table)
    out: list[Range] = []
    cursor = read.start
    for lo, hi in used:
        if hi < cursor or lo > read.end:
            continue
        if lo > cursor:
            out.append((cursor, lo - 1))
        cursor = max(cursor, hi + 1)
    if cursor <= read.end:
        out.append((cursor, read.end))
    return out

