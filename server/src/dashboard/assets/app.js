// lobster-relay dashboard: confirmations, live overview figures, live tail.
// Served as a file so the Content-Security-Policy can forbid inline script.
// Text from events is only ever set with textContent, never as HTML.
"use strict";

document.addEventListener("submit", (e) => {
  const message = e.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) e.preventDefault();
});

function setStat(name, value) {
  const el = document.querySelector(`[data-stat="${name}"]`);
  if (el) el.textContent = value;
}

function followOverview(section) {
  const url = section.getAttribute("data-stats");
  let last = null;
  const rate = (now, key) =>
    last ? Math.max(0, (now[key] - last[key]) / ((now.at_ms - last.at_ms) / 1000)).toFixed(1) : "…";
  const tick = async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (answer.redirected || !answer.ok) return;
      const now = await answer.json();
      setStat("ingest_rate", rate(now, "ingested_total"));
      setStat("delivery_rate", rate(now, "acked_total"));
      for (const key of ["queue_depth", "sessions_online", "failed_last_hour", "agents",
        "ingested_total", "delivered_total", "nacked_total"]) {
        setStat(key, String(now[key]));
      }
      last = now;
    } catch (_) {
      // The next tick tries again.
    }
  };
  // A second reading soon after the first gives the rates at once.
  tick().then(() => setTimeout(tick, 1000));
  setInterval(tick, 3000);
}

function cell(label, text) {
  const td = document.createElement("td");
  td.setAttribute("data-label", label);
  td.textContent = text;
  return td;
}

function followTail(body) {
  const state = document.getElementById("tail-state");
  const source = new EventSource(body.getAttribute("data-stream"));
  source.addEventListener("ready", () => { state.textContent = "Live: following new events."; });
  source.addEventListener("event", (message) => {
    const e = JSON.parse(message.data);
    const row = document.createElement("tr");
    row.className = "tail-row";
    row.appendChild(cell("Received", e.received_at));
    const id = cell("Id", "");
    const link = document.createElement("a");
    link.href = "/dashboard/events/" + encodeURIComponent(e.id);
    link.textContent = e.id;
    id.appendChild(link);
    row.appendChild(id);
    row.appendChild(cell("Agent", e.agent));
    row.appendChild(cell("Type", e.type));
    const status = cell("Status", "");
    const badge = document.createElement("span");
    badge.className = "status " + String(e.status).replace(/[^a-z]/g, "");
    badge.textContent = e.status;
    status.appendChild(badge);
    row.appendChild(status);
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  });
  source.onerror = () => { state.textContent = "Disconnected: retrying…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  const overview = document.getElementById("overview");
  if (overview) followOverview(overview);
  const tail = document.getElementById("tail");
  if (tail) followTail(tail);
});
