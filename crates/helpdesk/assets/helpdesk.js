// The help desk's dashboard: polls /cases and /dead-letters every second and
// offers a redeliver button on dead letters. No framework, no build step.
"use strict";

const escape = (text) =>
  String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "");
const badge = (value) => `<span class="badge ${escape(value)}">${escape(value)}</span>`;
const short = (id) => `<span class="mono" title="${escape(id)}">${escape(id.slice(0, 8))}</span>`;
const status = document.getElementById("action-status");

function lastAttempt(delivery) {
  const last = delivery.log[delivery.log.length - 1];
  if (!last) return '<span class="muted">—</span>';
  const what = last.error ? escape(last.error) : `HTTP ${escape(last.statusCode)}`;
  return `${what} <span class="muted">(${escape(last.durationMs)} ms, ${escape(clock(last.at))})</span>`;
}

function fill(tbody, empty, rows) {
  tbody.innerHTML = rows.join("");
  empty.hidden = rows.length > 0;
}

async function refresh() {
  try {
    const [cases, dead] = await Promise.all([
      fetch("/cases?limit=50").then((r) => r.json()),
      fetch("/dead-letters?limit=50").then((r) => r.json()),
    ]);
    document.getElementById("cases-total").textContent = `${cases.total} in all`;
    document.getElementById("dead-total").textContent = `${dead.total} in all`;
    fill(document.getElementById("cases"), document.getElementById("cases-empty"), cases.items.map((c) => `
      <tr data-document-id="${escape(c.documentId)}" data-delivery="${escape(c.delivery.state)}">
        <td>${short(c.documentId)}</td>
        <td class="url" title="${escape(c.callbackUrl)}">${escape(c.callbackUrl)}</td>
        <td>${badge(c.status)}</td>
        <td>${badge(c.delivery.state)}</td>
        <td>${escape(c.delivery.attempts)}</td>
        <td>${escape(clock(c.dueAt))}</td>
        <td>${lastAttempt(c.delivery)}</td>
      </tr>`));
    fill(document.getElementById("dead"), document.getElementById("dead-empty"), dead.items.map((c) => `
      <tr data-document-id="${escape(c.documentId)}">
        <td>${short(c.documentId)}</td>
        <td class="url" title="${escape(c.callbackUrl)}">${escape(c.callbackUrl)}</td>
        <td>${badge(c.status)}</td>
        <td>${escape(c.delivery.attempts)}</td>
        <td>${escape(c.delivery.lastError)}</td>
        <td><button class="small" data-redeliver="${escape(c.documentId)}">Redeliver</button></td>
      </tr>`));
  } catch (error) {
    status.className = "status-line error";
    status.textContent = `Cannot reach the help desk: ${error.message}`;
  }
}

document.getElementById("dead").addEventListener("click", async (event) => {
  const id = event.target.dataset.redeliver;
  if (!id) return;
  const response = await fetch(`/document/${encodeURIComponent(id)}/redeliver`, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  status.className = response.ok ? "status-line" : "status-line error";
  status.textContent = response.ok ? `Redelivering ${id.slice(0, 8)}…` : `Not redelivered: ${body.detail || response.status}`;
  refresh();
});

refresh();
setInterval(refresh, 1000);
