"""The weekly review (agent.fleet.report's document) rendered as one HTML page or Markdown text.

HTML: both lenses side by side, charts as SVG drawn here (agent.web.charts), no script. The
board serves it with its stylesheet linked (/report.css: a CSP without inline style holds);
`edge-agent report` writes a standalone file with the same stylesheet embedded, so the file
reads the same when mailed or opened from a share.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from agent.readiness.model import human
from agent.web import charts

CSS = resources.files("agent.web").joinpath("static").joinpath("report.css")
FORMATS = ("html", "md", "json")
NAV = (' · <a href="/">board</a> · <a href="/assets">asset register</a> · <a href="/report?format=md">Markdown</a>'
       ' · <a href="/report?format=json">JSON</a>')
LENS_TITLES = {"security": "Security (CISO)", "operations": "Operations (COO)"}


class Words:
    """Times in the review's time zone, durations and percentages as people read them."""

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)

    def when(self, ms: int | None) -> str:
        if ms is None:
            return "—"
        return datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(self.zone).strftime("%a %d %b %H:%M")

    @staticmethod
    def window(window: dict[str, Any] | None) -> str:
        if not window:
            return "none agreed"
        start = datetime.fromisoformat(window["start_local"])
        hours = human((window["end_ms"] - window["start_ms"]) / 1000)
        return f"{start.strftime('%a %d %b %H:%M')} for {hours}" + (" (now)" if window.get("ongoing") else "")

    @staticmethod
    def percent(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} %"

    @staticmethod
    def duration(ms: int | None) -> str:
        return "—" if ms is None else human(ms / 1000)


def render(doc: dict[str, Any], fmt: str, *, standalone: bool = True) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if fmt == "md":
        return markdown(doc)
    return html(doc, standalone=standalone)


# ----------------------------------------------------------------------------- HTML


def _badge(level: str | None) -> str:
    level = level or "none"
    return f'<span class="badge {escape(level)}">{escape(level.replace("_", " "))}</span>'


def _list(items: list[str], empty: str) -> str:
    if not items:
        return f'<p class="mute">{escape(empty)}</p>'
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def html(doc: dict[str, Any], *, standalone: bool) -> str:
    words = Words(doc["time_zone"])
    style = f"<style>{CSS.read_text()}</style>" if standalone else '<link rel="stylesheet" href="/report.css">'
    title = f"Edge readiness review, {words.when(doc['since_ms'])} to {words.when(doc['now_ms'])}"
    decisions = "".join(f'<li class="{escape(d["lens"])}"><span class="lens">{escape(d["lens"])}</span> '
                        f'{escape(d["text"])}</li>' for d in doc["decisions"])
    more = f'<p class="mute">and {doc["more_decisions"]} more in the sections per node</p>' \
        if doc["more_decisions"] else ""
    counts = " ".join(f'<span class="count {lv}">{n} {lv.replace("_", " ")}</span>' for lv, n in doc["counts"].items())
    bands = charts.verdict_bands([(n["node"], n["timeline"]) for n in doc["nodes"]], doc["since_ms"], doc["now_ms"],
                                 words.when, label="verdict per node over the window, security and operations")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{style}</head>
<body class="report"><header><h1>{escape(title)}</h1>
<p>{len(doc["nodes"])} nodes now: {counts} · times in {escape(doc["time_zone"])}{"" if standalone else NAV}</p></header>
<main>
<section class="decisions"><h2>Decisions needed</h2>
{f"<ol>{decisions}</ol>{more}" if decisions else '<p>None: everything stayed within the agreed tolerances and SLAs.</p>'}
</section>
<section class="lenses">{_security(doc, words)}{_operations(doc, words)}</section>
<section><h2>Verdicts over the window</h2>{bands}</section>
<section><h2>Per node</h2>{"".join(_node(n, words) for n in doc["nodes"])}</section>
<section><h2>What was agreed</h2>{_agreed(doc, words)}</section>
</main></body></html>
"""


def _figures(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def _security(doc: dict[str, Any], words: Words) -> str:
    sec = doc["security"]
    compliance = sec["compliance"]
    closed_ms = [c["time_to_patch_ms"] for n in doc["nodes"] for c in n["patches"]["closed"]]
    median = sorted(closed_ms)[len(closed_ms) // 2] if closed_ms else None
    rejected = ", ".join(f"{r.replace('_', ' ')} ×{c}" for r, c in sec["rejected"].items()) or "none"
    chart = charts.step_chart(sec["backlog"], doc["since_ms"], doc["now_ms"], words.when,
                              label="security updates pending and past their SLA, whole fleet")
    return f"""<div class="lens security"><h2>{LENS_TITLES["security"]}</h2>{_figures([
        ("security updates pending now", str(sec["pending"])), ("of them past their SLA", str(sec["past_sla"])),
        ("patch-SLA compliance", f"{words.percent(compliance['percent'])} ({compliance['closed_within_sla']} of "
                                 f"{compliance['closed'] + compliance['open_past_sla']} in time)"),
        ("median time to patch", words.duration(median)),
        ("messages that failed verification", rejected),
        ("hardening checks that changed", str(sec["posture_flips"]))])}
<h3>Security backlog</h3>{chart}</div>"""


def _operations(doc: dict[str, Any], words: Words) -> str:
    ops = doc["operations"]
    rows = [(f"{n['node']} {d['device']}", d["availability_pct"], d["breaches"] > 0)
            for n in doc["nodes"] for d in n["devices"]]
    chart = charts.availability_bars(rows, label="availability of each device over the window")
    return f"""<div class="lens operations"><h2>{LENS_TITLES["operations"]}</h2>{_figures([
        ("devices", str(ops["devices"])), ("outages", str(ops["outages"])),
        ("outages past their tolerated downtime", str(ops["breaches"])), ("devices down now", str(ops["down_now"])),
        ("messages lost between nodes and board", str(ops["gaps"]))])}
<h3>Device availability</h3>{chart}</div>"""


def plan(m: dict[str, Any], words: Words) -> str:
    """What the node's next window will do: the updates due in it (skip it and they breach), the
    pending ones that could wait for the window after, the reboot."""
    if not m["next_window"]:
        waiting = m["planned"] + m["can_wait"]
        return "none agreed" + (f"; pending: {', '.join(waiting)}" if waiting else "")
    parts = [f"install {', '.join(m['planned'])} (due)" if m["planned"] else "no update due"]
    if m["can_wait"]:
        parts.append(f"could also install {', '.join(m['can_wait'])}")
    if m["reboot_required"]:
        parts.append("reboot")
    return f"{words.window(m['next_window'])}: {'; '.join(parts)}"


def _node(n: dict[str, Any], words: Words) -> str:
    m = n["maintenance"]
    devices = "".join(
        f"<tr><td>{escape(d['device'])}</td><td>{escape(d['criticality'])}</td><td>{escape(d['process'])}</td>"
        f"<td>{words.percent(d['availability_pct'])}</td><td>{d['outages']}</td>"
        f"<td>{words.duration(d['longest_ms'] if d['outages'] else None)}</td>"
        f"<td>{human(d['max_downtime_s'])}</td><td>{d['breaches']}</td></tr>" for d in n["devices"])
    patches = [f"{u['package']} ({u['severity']}) pending {words.duration(u['age_ms'])}"
               + (", past its SLA" if u["past_sla"] else "") for u in n["patches"]["open"]]
    patched = [f"{u['package']} patched after {words.duration(u['time_to_patch_ms'])}"
               + ("" if u["within_sla"] else ", past its SLA") for u in n["patches"]["closed"]]
    flips = [f"{words.when(f['ms'])}: {f['check_id']} {f['was']} → {f['now']}" for f in n["posture_flips"]]
    rejected = [f"{r.replace('_', ' ')} ×{c}" for r, c in n["rejected"].items()]
    return f"""<article class="node" id="node-{escape(n['node'])}">
<h3>{escape(n['node'])} {_badge(n['level'])} <span class="lens">security</span> {_badge(n['security'])}
<span class="lens">operations</span> {_badge(n['operations'])}</h3>
<p class="mute">{escape(" · ".join(filter(None, [n['site'], n['area'], n['process'], n['criticality']])))}</p>
<p class="plan"><b>Next window:</b> {escape(plan(m, words))}</p>
<div class="breaches"><b>Breached:</b>{_list(n['breaches'], 'nothing')}</div>
<div class="lenses"><div class="lens security"><h4>Security</h4>
<b>Pending</b>{_list(patches, 'no security update pending')}<b>Patched in the window</b>{_list(patched, 'none')}
<b>Hardening checks that changed</b>{_list(flips, 'none')}<b>Failed verification</b>{_list(rejected, 'none')}</div>
<div class="lens operations"><h4>Operations</h4><table><thead><tr><th>Device</th><th>Criticality</th>
<th>Process</th><th>Available</th><th>Outages</th><th>Longest</th><th>Tolerated</th><th>Breaches</th></tr></thead>
<tbody>{devices or '<tr><td colspan="8" class="mute">no devices</td></tr>'}</tbody></table>
<p class="mute">{n['gaps']} messages lost between node and board</p></div></div></article>"""


def _agreed(doc: dict[str, Any], words: Words) -> str:
    rows = []
    for n in doc["nodes"]:
        devices = "; ".join(f"{d['device']}: {d['criticality']}, {human(d['max_downtime_s'])}" for d in n["devices"])
        sla = ", ".join(f"{k} {human(v)}" for k, v in n["patches"]["sla_s"].items())
        m = n["maintenance"]
        rows.append(f"<tr><td>{escape(n['node'])}</td><td>{escape(n['criticality'])}, "
                    f"{human(n['max_downtime_s'])}</td><td>{escape(devices or '—')}</td><td>{escape(sla)}</td>"
                    f"<td>{escape(words.window(m['next_window']))}; then {escape(words.window(m['following_window']))}"
                    f" ({escape(m['time_zone'] or '?')})</td></tr>")
    return ("<table><thead><tr><th>Node</th><th>Node tolerance</th><th>Device tolerances</th><th>Patch SLA</th>"
            f"<th>Maintenance windows</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


# ----------------------------------------------------------------------------- Markdown


def markdown(doc: dict[str, Any]) -> str:
    words = Words(doc["time_zone"])
    out = [f"# Edge readiness review, {words.when(doc['since_ms'])} to {words.when(doc['now_ms'])}", "",
           f"Times in {doc['time_zone']}. Nodes now: " + ", ".join(f"{n} {lv.replace('_', ' ')}"
                                                                    for lv, n in doc["counts"].items()), "",
           "## Decisions needed", ""]
    out += [f"{i}. **{d['lens']}**: {d['text']}" for i, d in enumerate(doc["decisions"], 1)] or [
        "None: everything stayed within the agreed tolerances and SLAs."]
    sec, ops = doc["security"], doc["operations"]
    out += ["", "## Both lenses", "", "| Security (CISO) | | Operations (COO) | |", "|---|---|---|---|",
            f"| updates pending | {sec['pending']} | devices | {ops['devices']} |",
            f"| past their SLA | {sec['past_sla']} | outages | {ops['outages']} |",
            f"| SLA compliance | {words.percent(sec['compliance']['percent'])} | past tolerance | {ops['breaches']} |",
            f"| failed verification | {sum(sec['rejected'].values())} | down now | {ops['down_now']} |", ""]
    for n in doc["nodes"]:
        m = n["maintenance"]
        out += [f"## {n['node']}: {n['level']} (security {n['security']}, operations {n['operations']})", "",
                f"- Next window: {plan(m, words)}",
                f"- Breached: {'; '.join(n['breaches']) or 'nothing'}", "",
                "| Device | Criticality | Available | Outages | Longest | Tolerated |", "|---|---|---|---|---|---|"]
        out += [f"| {d['device']} | {d['criticality']} | {words.percent(d['availability_pct'])} | {d['outages']} | "
                f"{words.duration(d['longest_ms'] if d['outages'] else None)} | {human(d['max_downtime_s'])} |"
                for d in n["devices"]]
        out.append("")
    return "\n".join(out) + "\n"
