// Starts Anteroom (embedded mode, a fresh database) and Debian's Chromium, and
// keeps a screenshot of any page whose test failed.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { before, after } from "node:test";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ADMIN = "e2e-admin-token-for-the-pages";
export const SCREENSHOTS = join(here, "screenshots");

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export async function startService() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "anteroom-e2e-"));
  const bin = process.env.ANTEROOM_BIN || join(here, "..", "target", "debug", "anteroom");
  const child = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: "sqlite://" + join(dir, "e2e.db"),
      ANTEROOM_ADDR: "127.0.0.1:" + port,
      ANTEROOM_ADMIN_TOKEN: ADMIN,
      ANTEROOM_DEMO: "0",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = "http://127.0.0.1:" + port;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(base + "/healthz")).ok) break;
    } catch (_) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, stop: () => child.kill("SIGTERM") };
}

export async function api(base, method, path, body, bearer) {
  const headers = { "content-type": "application/json" };
  if (bearer) headers.authorization = "Bearer " + bearer;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

export async function createEvent(base, id, overrides = {}) {
  const body = {
    id, name: "E2E " + id, venue: "Test Hall", starts_at: "2030-06-01T19:00:00Z",
    hold_seconds: 120, max_seats_per_user: 4,
    admission: { per_second: 50, max_active: 100, pass_seconds: 600 },
    sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 3, seats_per_row: 8 }],
    ...overrides,
  };
  const res = await api(base, "POST", "/api/admin/events", body, ADMIN);
  if (res.status !== 201) throw new Error("event not created: " + JSON.stringify(res.body));
  return res.body;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/// Runs `body(page)`; on failure keeps a screenshot named after the test.
export async function withPage(browser, name, options, body) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  // 4xx answers are outcomes the page handles; the browser still logs each as an error.
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text()); });
  try {
    await body(page);
    if (problems.length) throw new Error("the page reported errors: " + problems.join("; "));
  } catch (e) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

/// Starts a service and a browser before this file's tests and stops them after;
/// the returned object carries both once they are up.
export function serviceAndBrowser() {
  const shared = {};
  before(async () => {
    shared.service = await startService();
    shared.browser = await launch();
  });
  after(async () => {
    await shared.browser?.close();
    shared.service?.stop();
  });
  return shared;
}
