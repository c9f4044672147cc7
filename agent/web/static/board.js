// The board page: rows from /api/events (Server-Sent Events), drill-down from /api/nodes/<id>.
"use strict";
const LEVELS = ["ready", "degraded", "at_risk", "down"];
let selected = null;
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const badge = level => `<span class="badge ${esc(level || "none")}">${esc((level || "no data").replace("_", " "))}</span>`;
const ago = (ms, now) => ms == null ? "never" : `${Math.max(0, Math.round((now - ms) / 1000))} s ago`;

function timeline(points, now) {
  if (!points.length) return "";
  // From the first verdict the board recorded (at most its history) to now.
  const start = Math.min(points[0].ms, now - 60e3), span = Math.max(1, now - start);
  const label = span < 7200e3 ? `${Math.round(span / 60e3)} min` : `${Math.round(span / 3600e3)} h`;
  // Widths go through data-w and the CSSOM (sized()), not style attributes: a CSP without inline style allows that.
  const gap = points[0].ms > start ? `<span data-w="${(100 * (points[0].ms - start) / span).toFixed(2)}"></span>` : "";
  return `<div class="timeline" title="verdict over the last ${label}">${gap}` +
    points.map((p, i) => {
      const end = i + 1 < points.length ? points[i + 1].ms : now;
      const from = p.ms;
      return `<span class="${esc(p.level)}" data-w="${(100 * (end - from) / span).toFixed(2)}"
               title="${esc(p.level)} since ${new Date(p.ms).toLocaleTimeString()}"></span>`;
    }).join("") + `</div><div class="lens">last ${label}</div>`;
}

function sized(root) {
  for (const el of root.querySelectorAll("[data-w]")) el.style.width = `${el.dataset.w}%`;
}

function signatures(n) {
  const loss = n.loss.gaps ? `<div class="lens" data-gaps="${n.loss.gaps}">⚠ ${n.loss.gaps} lost (sequence gaps)</div>` : "";
  const dups = n.loss.duplicates ? `<div class="lens">${n.loss.duplicates} duplicate(s) dropped</div>` : "";
  if (!n.verified) return `<span class="unverified" data-mark="unverified">⚠ NO VERIFIED DATA · ${n.unverified.count} rejected</span>`;
  if (n.unverified.count) {
    const why = Object.entries(n.unverified.by_reason).map(([r, c]) => `${r.replace("_", " ")} ×${c}`).join(", ");
    return `<span class="unverified" data-mark="unverified" title="${esc(why)}">⚠ UNVERIFIED ×${n.unverified.count}</span>
            <div class="lens">${esc(why)}</div>${loss}${dups}`;
  }
  return `<span class="verified">✔ verified</span>${loss}${dups}`;
}

function agent(n) {
  if (!n.agent) return `<span class="mute">not published</span>`;
  const a = n.agent, cls = a.agreement === "agrees" ? "agree" : a.agreement === "disagrees" ? "disagree" : "unchecked";
  const word = a.agreement === "agrees" ? "✔ board agrees" : a.agreement === "disagrees" ? "✖ DISAGREES" : "not checked yet";
  return `${badge(a.verdict.level)} <span class="${cls}" data-agreement="${esc(a.agreement)}">${word}</span>`;
}

function devices(n) {
  const d = n.device_summary;
  if (!d.count) return `<span class="mute">no devices</span>`;
  if (d.reading === null) return `<span class="mute">${d.count} device${d.count === 1 ? "" : "s"}, state unknown while the node is away</span>`;
  const all = `${d.count} device${d.count === 1 ? "" : "s"}`;
  if (!d.worst) return `<span class="verified" data-devices-reading="${d.reading}">✔ ${all}, all reading</span>`;
  const down = d.count - d.reading;
  return `<div data-devices-reading="${d.reading}"><b>${down} of ${all} not reading</b></div>
    <div class="worst" data-level="${esc(d.worst.level)}" data-worst="${esc(d.worst.name)}">${esc(d.worst.text)}</div>`;
}

function row(n, now) {
  const reasons = n.reasons.length ? `<ul class="reasons">${n.reasons.map(r =>
      `<li data-level="${esc(r.level)}"><span class="lens">${esc(r.lens)}</span> ${esc(r.text)}</li>`).join("")}</ul>`
    : `<span class="mute">${n.level ? "all clear" : "being judged…"}</span>`;
  const place = [n.site, n.area, n.process].filter(Boolean).join(" · ");
  return `<tr class="node${n.node === selected ? " selected" : ""}" data-node="${esc(n.node)}" data-level="${esc(n.level)}"
      data-security="${esc(n.security)}" data-operations="${esc(n.operations)}" data-unverified="${n.unverified.count}"
      data-verified="${n.verified}" data-online="${n.online}">
    <td><b>${esc(n.node)}</b> <span class="lens">${esc(n.criticality)}</span><div class="lens">${esc(place)}</div>
        ${n.online ? "" : `<div class="offline">OFFLINE</div>`}<div class="lens">heard ${ago(n.last_heard_ms, now)}</div>
        <a class="more" href="#${encodeURIComponent(n.node)}">details ›</a></td>
    <td>${n.verified ? badge(n.level) : badge(null)}</td><td>${badge(n.security)}</td><td>${badge(n.operations)}</td>
    <td>${devices(n)}</td><td>${reasons}</td><td>${signatures(n)}</td><td>${agent(n)}</td><td>${timeline(n.timeline, now)}</td></tr>`;
}

function clock(c) {
  // The raw evidence (source, offset, maximum error) belongs here, not in the row's reason.
  const facts = [c.source && `source ${esc(c.source)}`, c.offset_us != null && `offset ${esc(Math.round(c.offset_us / 1000))} ms`,
    c.max_error_us != null && `max error ${esc(Math.round(c.max_error_us / 1000))} ms`].filter(Boolean).join(", ");
  const state = c.synchronized === false ? "<b>not synchronised with a time server</b>"
    : c.synchronized ? "synchronised" : "state unknown";
  return facts ? `${state} (${facts})` : state;
}

function detail(d, now) {
  const devices = d.devices.map(v => {
    const s = v.status || {};
    const values = Object.entries(v.values || {}).slice(0, 8).map(([k, x]) =>
      `${esc(k)}=${esc(typeof x === "number" ? Math.round(x * 100) / 100 : x)}${esc((v.units || {})[k] || "")}`).join(", ");
    const error = s.last_error && typeof s.last_error === "object" ? s.last_error.message || s.last_error.kind : s.last_error;
    return `<tr data-device="${esc(v.name)}"><td><b>${esc(v.name)}</b><div class="lens">${esc(v.process)}</div></td>
      <td>${esc(v.criticality)}</td><td>${esc(s.state)}</td><td>${ago(s.last_success_ms, now)}</td>
      <td>${Math.round(v.max_downtime_s / 60)} min</td><td>${esc(s.latency_ms ?? "")}</td><td>${esc(error ?? "")}</td>
      <td class="lens">${values}</td></tr>`;
  }).join("") || `<tr><td colspan="8" class="mute">no devices reported</td></tr>`;
  const h = d.host || {};
  const disks = (h.disks || []).map(x => `${esc(x.mount)} ${Math.round(x.percent)} %`).join(", ");
  const temps = Object.entries(h.temperatures || {}).map(([k, c]) => `${esc(k)} ${Math.round(c)} °C`).join(", ");
  const p = d.patches || {};
  const checks = ((d.posture || {}).checks || []).filter(c => c.status !== "pass")
    .map(c => `<li>${esc(c.status)}: ${esc(c.title || c.id)} <span class="lens">${esc(c.evidence)}</span></li>`).join("");
  const rejected = d.rejections.slice(0, 10).map(r =>
    `<tr><td>${new Date(r.received_ms).toLocaleTimeString()}</td><td><span class="unverified">${esc(r.reason)}</span></td>
     <td>${esc(r.topic)}</td><td class="lens">${esc(r.detail)}${r.copies > 1 ? ` (×${r.copies})` : ""}</td></tr>`).join("");
  const outages = d.outages.map(o => `<tr><td>${esc(o.device)}</td><td>${new Date(o.start_ms).toLocaleString()}</td>
     <td>${o.end_ms == null ? "<b>ongoing</b>" : new Date(o.end_ms).toLocaleString()}</td>
     <td>${Math.round(((o.end_ms ?? now) - o.start_ms) / 60e3)} min of ${Math.round(o.max_downtime_s / 60)} min</td></tr>`).join("");
  return `<h2>${esc(d.node)} ${badge(d.level)}</h2>
    <h3>Devices</h3><table><thead><tr><th>Device</th><th>Criticality</th><th>State</th><th>Last success</th>
      <th>Tolerated</th><th>Latency ms</th><th>Last error</th><th>Values</th></tr></thead><tbody>${devices}</tbody></table>
    ${outages ? `<h3>Outages</h3><table><tbody>${outages}</tbody></table>` : ""}
    <h3>Host</h3><p>memory ${esc(Math.round((h.memory || {}).percent ?? NaN))} % · disks ${disks || "?"} ·
      temperatures ${temps || "n/a"} · clock ${clock(h.clock || {})}</p>
    ${(h.failed_units || []).length ? `<p>failed systemd units: ${(h.failed_units).map(esc).join(", ")}</p>` : ""}
    <h3>Patches</h3><p>status ${esc(p.status ?? "not reported")} · security pending ${esc(p.security_pending ?? "?")} ·
      reboot required ${esc(p.reboot_required ?? "?")} · SLA breaches ${esc((p.sla_breaches || []).length)}</p>
    <h3>Hardening checks not passing</h3><ul>${checks || "<li class='mute'>none</li>"}</ul>
    <h3>Delivery</h3><p>${d.loss.messages} verified messages · ${d.loss.gaps} lost (sequence gaps) ·
      ${d.loss.duplicates} duplicates dropped</p>
    ${rejected ? `<h3>Rejected messages</h3><table><tbody>${rejected}</tbody></table>` : ""}`;
}

// The fleet as the board last told us: the header and every node's row, kept current by the
// server's events (a snapshot on connect, then the rows that changed).
let header = null;
const nodes = new Map();

function rank(n) { return [-(LEVELS.indexOf(n.level)), n.node]; }

function render() {
  const now = header.now_ms;
  document.getElementById("counts").innerHTML = LEVELS.map(l =>
    `<span class="count ${l}">${header.counts[l]} ${l.replace("_", " ")}</span>`).join(" ");
  const broker = document.getElementById("broker");
  const ingest = header.broker.ingest.length;
  broker.textContent = header.broker.connected ? "broker connected"
    : ingest ? "BROKER CONNECTION LOST: data is stale" : "NO INGEST RUNNING: data is stale";
  broker.className = header.broker.connected ? "" : "down";
  const m = header.messages, rej = header.rejected;
  const strays = rej.unknown_node_count + rej.unattributed.count;
  document.getElementById("updated").innerHTML =
    `${m.verified} verified · ${m.rejected} rejected · ${m.gaps} lost · ${m.duplicates} duplicates · ${new Date(now).toLocaleTimeString()}` +
    (strays ? ` <span class="unverified" title="failed messages naming no fleet node">⚠ ${strays} REJECTED FROM UNKNOWN SENDERS</span>` : "");
  const sorted = [...nodes.values()].sort((a, b) => {
    const x = rank(a), y = rank(b);
    return x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
  });
  if (sorted.length) {
    const body = document.getElementById("nodes");
    body.innerHTML = sorted.map(n => row(n, now)).join("");
    sized(body);
  }
  const unknown = rej.unknown_nodes.map(u =>
    `<tr data-rejected-node="${esc(u.node)}"><td>${esc(u.node)}</td><td>${u.count}</td>
     <td class="lens">${esc(Object.entries(u.by_reason).map(([r, c]) => `${r} ×${c}`).join(", "))}</td></tr>`).join("");
  const box = document.getElementById("rejected");
  box.innerHTML = unknown ? `<h3>Rejected: names that are not fleet nodes (${rej.unknown_node_count})</h3>
    <table><thead><tr><th>Claimed node</th><th>Messages</th><th>Why</th></tr></thead><tbody>${unknown}</tbody></table>` : "";
  document.body.dataset.loaded = "1";
}

async function showDetail() {
  if (!selected || !header) return;
  const response = await fetch(`/api/nodes/${encodeURIComponent(selected)}`, {cache: "no-store"});
  if (response.ok) {
    const box = document.getElementById("detail");
    box.innerHTML = detail(await response.json(), header.now_ms);
    box.style.display = "block";
  }
}

function take(doc, whole) {
  if (whole) nodes.clear();
  for (const n of doc.nodes) nodes.set(n.node, n);
  header = doc;
  render();
  if (selected && (whole || doc.nodes.some(n => n.node === selected))) showDetail();
}

function select(node) {
  selected = node;
  if (header) { render(); showDetail(); }
}

// A click anywhere on a row opens its drill-down (the row's "details ›" link says so, and keeps it in the address).
document.getElementById("nodes").addEventListener("click", event => {
  const tr = event.target.closest("tr.node");
  if (tr && !event.target.closest("a")) { history.replaceState(null, "", `#${encodeURIComponent(tr.dataset.node)}`); select(tr.dataset.node); }
});
window.addEventListener("hashchange", () => select(decodeURIComponent(location.hash.slice(1)) || null));
selected = decodeURIComponent(location.hash.slice(1)) || null;
const events = new EventSource("/api/events");
events.addEventListener("snapshot", event => take(JSON.parse(event.data), true));
events.addEventListener("delta", event => take(JSON.parse(event.data), false));
events.addEventListener("error", () => {
  // A session that has ended (expired, logged out elsewhere): back to the login rather than retrying forever.
  fetch("/api/me", {cache: "no-store"}).then(r => { if (r.status === 401) location.assign("/login"); }, () => {});
  document.getElementById("broker").textContent = "board unreachable: reconnecting…";
  document.getElementById("broker").className = "down";
});

// Who is logged in (none on an open board): their name, the admin link for admins, the logout button.
fetch("/api/me", {cache: "no-store"}).then(r => r.ok ? r.json() : null).then(me => {
  if (!me || !me.user) return;
  document.getElementById("who").textContent = `${me.user} (${me.role})`;
  document.getElementById("logout").hidden = false;
  document.getElementById("admin-link").hidden = me.role !== "admin";
});
