// Shared by the pages: API calls that turn every answer into {status, body},
// and the small formatting helpers.
"use strict";

async function api(method, path, body, bearer) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers["Authorization"] = "Bearer " + bearer;
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = null; }
    return { status: res.status, body: parsed, retryAfter: Number(res.headers.get("Retry-After")) || 1 };
  } catch (_) {
    return { status: 0, body: null, retryAfter: 2 };
  }
}

function show(el, visible) { el.hidden = !visible; }

function money(cents) { return (cents / 100).toLocaleString(undefined, { style: "currency", currency: "EUR" }); }

function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + " s";
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function problem(el, text) {
  el.textContent = text || "";
  show(el, Boolean(text));
}
