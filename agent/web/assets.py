"""The asset register (agent.fleet.register's rows) as a page, CSV and JSON.

CSV is for spreadsheets and CMDB imports: times as ISO 8601 UTC (columns `*_utc`), durations
in seconds; JSON keeps the rows as they are (times in ms since the epoch)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from html import escape
from typing import Any

from agent.fleet.register import COLUMNS
from agent.readiness.model import human

FORMATS = ("csv", "json")
TIMES = ("first_seen_ms", "last_seen_ms", "last_success_ms")


def utc(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.removesuffix("_ms") + "_utc" if c in TIMES else c for c in COLUMNS])
    for row in rows:
        writer.writerow([utc(row[c]) if c in TIMES else "" if row[c] is None else row[c] for c in COLUMNS])
    return out.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"assets": rows}, indent=1, ensure_ascii=False) + "\n"


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    return to_csv(rows) if fmt == "csv" else to_json(rows)


def page(rows: list[dict[str, Any]]) -> str:
    """The board's asset register page: one table, served with /report.css, no script."""
    body = []
    for r in rows:
        identity = " ".join(filter(None, [r["vendor"], r["product_code"], r["revision"] and f"rev {r['revision']}"]))
        what = f"<b>{escape(r['node'])}</b>" if r["kind"] == "node" else f"&nbsp;&nbsp;{escape(r['device'])}"
        body.append(f'<tr class="{r["kind"]}" data-asset="{escape(r["node"])}/{escape(r["device"])}"><td>{what}</td>'
                    f"<td>{escape(r['kind'])}</td><td>{escape(identity) or '—'}</td><td>{escape(r['criticality'])}</td>"
                    f"<td>{escape(r['process'])}</td><td>{human(r['max_downtime_s'])}</td>"
                    f"<td>{escape(r['address'] or ' · '.join(filter(None, [r['site'], r['area']])))}</td>"
                    f"<td>{escape(r['state'])}</td><td>{utc(r['first_seen_ms'])}</td><td>{utc(r['last_seen_ms'])}</td></tr>")
    devices = sum(r["kind"] == "device" for r in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Asset register</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/report.css"></head>
<body class="report"><header><h1>Asset register</h1>
<p>{len(rows) - devices} nodes, {devices} Modbus devices · <a href="/assets.csv">CSV</a> · <a href="/api/assets">JSON</a>
· <a href="/">board</a> · <a href="/report">weekly review</a></p></header>
<main><section><table><thead><tr><th>Asset</th><th>Kind</th><th>Identity (FC 43)</th><th>Criticality</th>
<th>Business process</th><th>Tolerated downtime</th><th>Address</th><th>State</th><th>First seen (UTC)</th>
<th>Last seen (UTC)</th></tr></thead><tbody>{"".join(body) or '<tr><td colspan="10">no assets yet</td></tr>'}
</tbody></table></section></main></body></html>
"""
