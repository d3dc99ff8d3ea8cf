// The consumer's dashboard: lists reviews and updates them live from the
// server-sent events of /events. No framework, no build step.
"use strict";

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
  const response = await fetch("/documents?limit=50");
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
    const response = await fetch("/documents", {
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

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    live.textContent = "● live";
    live.classList.add("on");
    load();
  });
  events.addEventListener("review", (event) => render(JSON.parse(event.data)));
  events.addEventListener("resync", load);
  events.addEventListener("error", () => {
    live.textContent = "○ reconnecting";
    live.classList.remove("on");
  });
}

load();
connect();
