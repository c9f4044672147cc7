"""Charts for the review, drawn on the server as SVG text: no script, no CDN, readable in any
browser, printable, and allowed by a Content-Security-Policy without inline script or style
(colours are SVG presentation attributes, not style attributes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

COLOURS = {"ready": "#1b8a3a", "degraded": "#c98a00", "at_risk": "#d4570f", "down": "#b3001b", "none": "#d1d5db",
           "pending": "#c98a00", "past_sla": "#b3001b", "ink": "#1d2430", "mute": "#6b7280", "grid": "#e5e7eb"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", colour: str = COLOURS["mute"]) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" {FONT}>{escape(text)}</text>'


def step_chart(points: Sequence[tuple[int, int, int]], since_ms: int, now_ms: int, when: Callable[[int], str], *,
               label: str, width: int = 520, height: int = 180) -> str:
    """(ms, pending, past SLA) steps as two step lines over the window: the security backlog."""
    left, right, top, bottom = 34, 10, 14, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([p for _, p, _ in points] + [1])
    span = max(1, now_ms - since_ms)

    def x(ms: int) -> float:
        return left + plot_w * (min(max(ms, since_ms), now_ms) - since_ms) / span

    def y(value: int) -> float:
        return top + plot_h * (1 - value / peak)

    body = [f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="{COLOURS["grid"]}"/>',
            f'<line x1="{left}" y1="{y(peak):.1f}" x2="{width - right}" y2="{y(peak):.1f}" stroke="{COLOURS["grid"]}"/>',
            _text(left - 4, y(peak) + 4, str(peak), "end"), _text(left - 4, y(0) + 4, "0", "end"),
            _text(left, height - 8, when(since_ms)), _text(width - right, height - 8, when(now_ms), "end")]
    for index, name in ((1, "pending"), (2, "past_sla")):
        path, previous = [], None
        for ms, *values in points:
            value = values[index - 1]
            if previous is not None:
                path.append(f"{x(ms):.1f},{y(previous):.1f}")
            path.append(f"{x(ms):.1f},{y(value):.1f}")
            previous = value
        path.append(f"{x(now_ms):.1f},{y(previous or 0):.1f}")
        body.append(f'<polyline class="{name}" points="{" ".join(path)}" fill="none" stroke="{COLOURS[name]}" '
                    f'stroke-width="2"/>')
    body.append(_text(left + 4, top - 2, "— pending", colour=COLOURS["pending"]))
    body.append(_text(left + 80, top - 2, "— past SLA", colour=COLOURS["past_sla"]))
    return _svg(width, height, label, body)


def availability_bars(rows: Sequence[tuple[str, float | None, bool]], *, label: str, width: int = 520) -> str:
    """One bar per device: its availability over the window (rows: name, percent, breached)."""
    row_h, left, right = 22, 170, 60
    height = max(1, len(rows)) * row_h + 8
    body = []
    for i, (name, percent, breached) in enumerate(rows):
        y = 4 + i * row_h
        plot_w = width - left - right
        body.append(_text(left - 6, y + 14, name[:28], "end", COLOURS["ink"]))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{plot_w}" height="14" fill="{COLOURS["grid"]}"/>')
        if percent is not None:
            colour = COLOURS["down"] if breached else COLOURS["ready"] if percent >= 99.9 else COLOURS["degraded"]
            body.append(f'<rect class="availability" x="{left}" y="{y + 3}" width="{plot_w * percent / 100:.1f}" '
                        f'height="14" fill="{colour}"/>')
        shown = "no data" if percent is None else f"{percent:.1f} %"
        body.append(_text(width - right + 6, y + 14, shown, colour=COLOURS["ink"]))
    if not rows:
        body.append(_text(left, 16, "no devices"))
    return _svg(width, height, label, body)


def verdict_bands(nodes: Sequence[tuple[str, Sequence[dict]]], since_ms: int, now_ms: int,
                  when: Callable[[int], str], *, label: str, width: int = 1040) -> str:
    """Per node two bands over the window, security above operations, coloured by level."""
    left, right, band, gap = 150, 10, 12, 10
    height = len(nodes) * (2 * band + gap) + 30
    span, plot_w = max(1, now_ms - since_ms), width - left - right
    body = []
    for i, (name, segments) in enumerate(nodes):
        y = 6 + i * (2 * band + gap)
        body.append(_text(left - 8, y + band + 4, name[:22], "end", COLOURS["ink"]))
        for row, lens in enumerate(("security", "operations")):
            body.append(f'<rect x="{left}" y="{y + row * band}" width="{plot_w}" height="{band - 1}" '
                        f'fill="{COLOURS["none"]}"/>')
            for s in segments:
                x0 = left + plot_w * (s["start_ms"] - since_ms) / span
                w = max(0.5, plot_w * (s["end_ms"] - s["start_ms"]) / span)
                body.append(f'<rect class="{escape(s[lens])}" x="{x0:.1f}" y="{y + row * band}" width="{w:.1f}" '
                            f'height="{band - 1}" fill="{COLOURS.get(s[lens], COLOURS["none"])}">'
                            f'<title>{escape(f"{name} {lens}: {s[lens]}")}</title></rect>')
    bottom = height - 8
    body += [_text(left, bottom, when(since_ms)), _text(width - right, bottom, when(now_ms), "end"),
             _text(left - 8, bottom, "security / operations", "end")]
    return _svg(width, height, label, body)
