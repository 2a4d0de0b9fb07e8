// Shared by the pages: API calls that turn every answer into {status, body},
// the page's texts in its language, and the small formatting helpers.
"use strict";

/// The page's language and its texts (static/i18n/<lang>.json), carried by <html>.
const LANG = document.documentElement.lang || "en";
const TEXTS = JSON.parse(document.documentElement.dataset.texts || "{}");

/// The text for `key`, with `{name}` placeholders filled from `values`.
function t(key, values) {
  const text = TEXTS[key] ?? key;
  return values ? text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole)) : text;
}

/// How far into the line's log the last answer was read: sent back with every
/// request, so that the next instance behind a balancer never answers from
/// less (a position never goes up).
let logPosition = null;

/// `extra`: more request headers (such as `If-None-Match`).
async function api(method, path, body, bearer, extra) {
  const headers = { ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers["Authorization"] = "Bearer " + bearer;
  if (logPosition) headers["Anteroom-Log-Position"] = logPosition;
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    logPosition = res.headers.get("Anteroom-Log-Position") || logPosition;
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = null; }
    return {
      status: res.status, body: parsed, retryAfter: Number(res.headers.get("Retry-After")) || 1,
      // The server's clock, for countdowns to the server's instants on a visitor's clock that is off.
      serverDate: Date.parse(res.headers.get("Date")) || null,
    };
  } catch (_) {
    return { status: 0, body: null, retryAfter: 2 };
  }
}

function show(el, visible) { el.hidden = !visible; }

function money(cents, currency) {
  return (cents / 100).toLocaleString(LANG, { style: "currency", currency: currency || "EUR" });
}

function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return t("common.seconds", { n: seconds });
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return t("common.minutes", { m, s: String(s).padStart(2, "0") });
  return t("common.hours", { h: Math.floor(m / 60), m: m % 60 });
}

function problem(el, text) {
  el.textContent = text || "";
  show(el, Boolean(text));
}
