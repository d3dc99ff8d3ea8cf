// The consumer's dashboard: lists reviews and updates them live from the
// server-sent events of /events. No framework, no build step.
"use strict";

// With CONSUMER_API_KEYS set, the data routes answer 401 without a key: the
// page asks for one once, keeps it for this tab (sessionStorage, gone when
// the tab closes), and asks again only if the consumer refuses it.
const KEY_ITEM = "hookline-consumer-api-key";
let declined = false;

// Asks for the key (prompt blocks the page, so only one question is ever
// open); false if the user cancels, and then the page stops asking.
function askForKey(refused) {
  if (declined) return false;
  const key = window.prompt(
    refused
      ? "That API key was refused. API key (one of the consumer's CONSUMER_API_KEYS):"
      : "This consumer needs an API key (one of its CONSUMER_API_KEYS):",
  );
  declined = !key;
  if (key) sessionStorage.setItem(KEY_ITEM, key.trim());
  return Boolean(key);
}

// fetch with the key; on a 401, ask (unless another request just got a new
// key) and send once more.
async function api(path, options = {}) {
  const send = (key) =>
    fetch(path, { ...options, headers: { ...options.headers, ...(key ? { Authorization: `Bearer ${key}` } : {}) } });
  const used = sessionStorage.getItem(KEY_ITEM);
  const response = await send(used);
  if (response.status !== 401) return response;
  if (sessionStorage.getItem(KEY_ITEM) === used && !askForKey(Boolean(used))) return response;
  return send(sessionStorage.getItem(KEY_ITEM));
}

const tbody = document.getElementById("reviews");
const empty = document.getElementById("empty");
const live = document.getElementById("live");
const form = document.getElementById("request-form");
const input = document.getElementById("document-url");
const formStatus = document.getElementById("form-status");

const escape = (text) =>
  String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);

function tookText(review) {
  if (review.documentStatus === "PENDING_REVIEW") return '<span class="muted">waiting…</span>';
  const ms = new Date(review.updatedAt) - new Date(review.createdAt);
  return `${(ms / 1000).toFixed(1)} s`;
}

// Adds or updates the row of one review; newest first.
function render(review, { highlight = true } = {}) {
  let row = document.getElementById(`review-${review.id}`);
  const isNew = !row;
  if (isNew) {
    row = document.createElement("tr");
    row.id = `review-${review.id}`;
    tbody.prepend(row);
  } else if (row.dataset.status === review.documentStatus && row.dataset.updated === review.updatedAt) {
    return;
  }
  row.dataset.status = review.documentStatus;
  row.dataset.updated = review.updatedAt;
  row.innerHTML = `
    <td class="mono" title="${escape(review.id)}">${escape(review.id.slice(-12))}</td>
    <td class="url" title="${escape(review.documentUrl)}">${escape(review.documentUrl)}</td>
    <td><span class="badge ${escape(review.documentStatus)}">${escape(review.documentStatus)}</span></td>
    <td>${escape(clock(review.createdAt))}</td>
    <td>${tookText(review)}</td>`;
  if (highlight) {
    row.classList.remove("changed");
    void row.offsetWidth; // restart the animation
    row.classList.add("changed");
  }
  empty.hidden = tbody.children.length > 0;
}

async function load() {
  const response = await api("/documents?limit=50");
  if (!response.ok) return;
  const page = await response.json();
  tbody.replaceChildren();
  [...page.items].reverse().forEach((review) => render(review, { highlight: false }));
  empty.hidden = tbody.children.length > 0;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formStatus.className = "status-line";
  formStatus.textContent = "Asking the help desk…";
  try {
    const response = await api("/documents", {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": newKey() },
      body: JSON.stringify({ documentUrl: input.value }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.error || `HTTP ${response.status}`);
    render(body);
    formStatus.textContent = `Review ${body.id.slice(-12)} is pending; the webhook will decide it in a few seconds.`;
  } catch (error) {
    formStatus.className = "status-line error";
    formStatus.textContent = `Not requested: ${error.message}`;
  }
});

function setLive(on) {
  live.textContent = on ? "● live" : "○ reconnecting";
  live.classList.toggle("on", on);
}

// One server-sent event (the lines before a blank line): a review's new
// state, or "resync" when this page fell too far behind.
function dispatch(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (type === "review") render(JSON.parse(data.join("\n")));
  else if (type === "resync") load();
}

// The live updates: /events read through fetch, since EventSource cannot
// send the API key; reconnects after a pause when the stream ends.
async function connect() {
  try {
    const response = await api("/events", { headers: { accept: "text/event-stream" } });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    setLive(true);
    load();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch {
    // Below: shown as reconnecting, tried again.
  }
  setLive(false);
  if (!declined) setTimeout(connect, 2000);
}

load();
connect();
