// The help desk's dashboard: polls /cases, /webhooks, /endpoints, /chaos and
// /dead-letters every second, offers a redeliver button on dead letters and a
// test-event button on subscriptions (an enable button on a disabled one).
// No framework, no build step.
"use strict";

// Why the help desk (or the tenant) disabled a subscription.
const disabledWhy = { gone: "410 Gone", failing: "kept failing", manual: "by hand" };

// With HELPDESK_API_KEYS set, the data routes answer 401 without a key: the
// page asks for one once, keeps it for this tab (sessionStorage, gone when
// the tab closes), and asks again only if the help desk refuses it.
const KEY_ITEM = "hookline-helpdesk-api-key";
let declined = false;

// Asks for the key (prompt blocks the page, so only one question is ever
// open); false if the user cancels, and then the page stops asking.
function askForKey(refused) {
  if (declined) return false;
  const key = window.prompt(
    refused
      ? "That API key was refused. API key (one of the help desk's HELPDESK_API_KEYS):"
      : "This help desk needs an API key (one of its HELPDESK_API_KEYS):",
  );
  declined = !key;
  if (key) sessionStorage.setItem(KEY_ITEM, key.trim());
  return Boolean(key);
}

// fetch with the key; on a 401, ask (unless another request just got a new
// key) and send once more.
async function api(path, options = {}) {
  const send = (key) => fetch(path, { ...options, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const used = sessionStorage.getItem(KEY_ITEM);
  const response = await send(used);
  if (response.status !== 401) return response;
  if (sessionStorage.getItem(KEY_ITEM) === used && !askForKey(Boolean(used))) return response;
  return send(sessionStorage.getItem(KEY_ITEM));
}

// GET path as JSON; an error answer throws with the help desk's own words.
async function getJson(path) {
  const response = await api(path);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

const escape = (text) =>
  String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "");
const badge = (value) => `<span class="badge ${escape(value)}">${escape(value)}</span>`;
const short = (id) => `<span class="mono" title="${escape(id)}">${escape(id.slice(0, 8))}</span>`;
const status = document.getElementById("action-status");

// The faults chaos sent around a case's delivery, one badge each: red when
// the receiver answered unlike a correct one.
function faultsOf(delivery) {
  const faults = delivery.log.filter((entry) => entry.chaos);
  if (faults.length === 0) return '<span class="muted">—</span>';
  return faults.map((f) => `<span class="badge ${f.error ? "DEAD" : "chaos"}" title="${escape(f.error || f.note)}">${escape(f.chaos)}</span>`).join(" ");
}

function lastAttempt(delivery) {
  const log = delivery.log.filter((entry) => !entry.chaos);
  const last = log[log.length - 1];
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
    const [cases, dead, endpoints, subscriptions, chaos] = await Promise.all([
      getJson("/cases?limit=50"),
      getJson("/dead-letters?limit=50"),
      getJson("/endpoints?limit=20"),
      getJson("/webhooks"),
      getJson("/chaos"),
    ]);
    document.getElementById("chaos-profile").textContent = chaos.profile === "none" ? "CHAOS off" : `CHAOS ${chaos.profile}`;
    fill(document.getElementById("chaos"), document.getElementById("chaos-empty"), chaos.faults.map((f) => `
      <tr data-fault="${escape(f.fault)}">
        <td class="mono">${escape(f.fault)}</td>
        <td>${escape(f.injected)}</td>
        <td>${Object.entries(f.answers).map(([answer, n]) => `${escape(answer)}: ${escape(n)}`).join(", ")}</td>
        <td class="${f.unexpected ? "error" : "delivered"}">${escape(f.unexpected)}</td>
      </tr>`));
    document.getElementById("subscriptions-total").textContent = `${subscriptions.total} in all`;
    fill(document.getElementById("subscriptions"), document.getElementById("subscriptions-empty"), subscriptions.items.map((s) => `
      <tr data-subscription="${escape(s.id)}">
        <td>${short(s.id.replace(/^sub_/, ""))}${s.description ? ` <span class="muted">${escape(s.description)}</span>` : ""}</td>
        <td class="url" title="${escape(s.url)}">${escape(s.url)}</td>
        <td>${s.events.map((e) => `<span class="mono">${escape(e)}</span>`).join("<br>")}${s.ordered ? '<br><span class="muted" title="one at a time, in order">ordered</span>' : ""}</td>
        <td>${badge(s.disabled ? "DISABLED" : "ENABLED")}${s.disablement ? ` <span class="muted" title="${escape(s.disablement.lastError || "")}">${escape(disabledWhy[s.disablement.reason] || s.disablement.reason)} since ${escape(clock(s.disablement.at))}</span>` : ""}</td>
        <td class="delivered">${escape(s.stats.delivered)}</td>
        <td>${escape(s.stats.failedAttempts)}</td>
        <td>${escape(s.stats.dead)}</td>
        <td>${s.stats.lastAttemptAt ? `${escape(s.stats.lastError || "delivered")} <span class="muted">(${escape(clock(s.stats.lastAttemptAt))})</span>` : '<span class="muted">—</span>'}</td>
        <td>${s.disabled
          ? `<button class="small" data-enable="${escape(s.id)}">Enable</button>`
          : `<button class="small" data-test="${escape(s.id)}">Send test event</button>`}</td>
      </tr>`));
    if (status.textContent.startsWith("Cannot")) status.textContent = "";
    document.getElementById("cases-total").textContent = `${cases.total} in all`;
    document.getElementById("endpoints-total").textContent = `${endpoints.total} in all`;
    fill(document.getElementById("endpoints"), document.getElementById("endpoints-empty"), endpoints.items.map((e) => `
      <tr data-endpoint="${escape(e.endpoint)}" data-breaker="${escape(e.breaker)}">
        <td class="url mono">${escape(e.endpoint)}</td>
        <td>${badge(e.breaker)}${e.openUntil ? ` <span class="muted">until ${escape(clock(e.openUntil))}</span>` : ""}</td>
        <td>${escape(e.inFlight ?? "—")} / ${escape(e.concurrency)}</td>
        <td>${escape(e.due ?? "—")}${e.pausedUntil ? ` <span class="muted">paused until ${escape(clock(e.pausedUntil))}</span>` : ""}</td>
        <td>${e.rate ? `${escape(e.rate)}/s${e.rateOverridden ? "" : ' <span class="muted">(default)</span>'}` : '<span class="muted">unlimited</span>'}</td>
        <td>${escape(clock(e.nextAttemptAt))}</td>
        <td>${escape(e.lastError)}${e.lastErrorAt ? ` <span class="muted">(${escape(clock(e.lastErrorAt))})</span>` : ""}</td>
      </tr>`));
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
        <td>${faultsOf(c.delivery)}</td>
      </tr>`));
    // A dead letter is a case's callback or one event for one subscription
    // (redelivered through the subscription).
    fill(document.getElementById("dead"), document.getElementById("dead-empty"), dead.items.map((c) => `
      <tr data-document-id="${escape(c.documentId)}">
        <td>${c.documentId ? short(c.documentId) : '<span class="muted">—</span>'}${c.event ? ` <span class="mono">${escape(c.event)}</span>` : ""}</td>
        <td class="url" title="${escape(c.callbackUrl)}">${escape(c.callbackUrl)}</td>
        <td>${badge(c.status)}</td>
        <td>${escape(c.delivery.attempts)}</td>
        <td>${escape(c.delivery.lastError)}</td>
        <td><button class="small" data-redeliver="${escape(c.event
          ? `/webhooks/${encodeURIComponent(c.subscriptionId)}/redeliver/${encodeURIComponent(c.delivery.webhookId)}`
          : `/document/${encodeURIComponent(c.documentId)}/redeliver`)}" data-label="${escape(c.event ? c.delivery.webhookId : c.documentId)}">Redeliver</button></td>
      </tr>`));
  } catch (error) {
    status.className = "status-line error";
    status.textContent = declined
      ? "Cannot show the data: this help desk needs an API key (reload the page to enter it)"
      : `Cannot reach the help desk: ${error.message}`;
  }
}

// POSTs to `path` and says on the status line how it went.
async function act(path, done, failed) {
  const response = await api(path, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  status.className = response.ok ? "status-line" : "status-line error";
  status.textContent = response.ok ? done(body) : `${failed}: ${body.detail || response.status}`;
  refresh();
}

document.getElementById("dead").addEventListener("click", (event) => {
  const { redeliver, label } = event.target.dataset;
  if (redeliver) act(redeliver, () => `Redelivering ${label.slice(0, 12)}…`, "Not redelivered");
});

document.getElementById("subscriptions").addEventListener("click", (event) => {
  const { test, enable } = event.target.dataset;
  if (test) {
    act(`/webhooks/${encodeURIComponent(test)}/test`, (body) => `Test event ${body.webhookId} queued`, "No test event");
  }
  if (enable) {
    act(`/webhooks/${encodeURIComponent(enable)}/enable`, (body) => `Subscription ${body.id} enabled`, "Not enabled");
  }
});

refresh();
setInterval(refresh, 1000);
