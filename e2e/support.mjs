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

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/// `env`: more settings for the service, given its port (e.g. ANTEROOM_PUBLIC_URL).
export async function startService(env = () => ({})) {
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
      ...env(port),
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

// The seat page's map is one canvas: a seat is aimed at where the page draws it.

/// A seat's centre on the canvas map, in the viewport's coordinates (the map
/// scrolled into the viewport first), and whether it is in sight within the map.
export async function seatCentre(page, id) {
  return page.evaluate((id) => {
    const map = document.getElementById("map");
    map.scrollIntoView({ block: "nearest" });
    const box = map.seatBox(id), frame = map.getBoundingClientRect();
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    return { x, y, size: box.width, inSight: x > frame.left && x < frame.right && y > frame.top && y < frame.bottom };
  }, id);
}

/// Clicks (or taps) a seat on the map; it must be in sight, as for a person.
export async function clickSeat(page, id, how = "click") {
  const at = await seatCentre(page, id);
  if (!at.inSight) throw new Error(id + " is not in sight on the map");
  if (how === "tap") await page.touchscreen.tap(at.x, at.y);
  else await page.mouse.click(at.x, at.y);
}

/// What the map shows of a seat: free, held, sold, mine or picked.
export const seatShown = (page, id) => page.evaluate((id) => document.getElementById("map").seatShown(id), id);

/// The seat page's map is drawn with the seats' states and takes input.
export const mapReady = (page) => page.waitForSelector('#map[aria-busy="false"]');

/// Fingers moving on the screen together, each along its own path of points (as
/// many points for each); playwright itself only taps, so through the DevTools protocol.
export async function fingers(page, paths) {
  const cdp = await page.context().newCDPSession(page);
  const at = (i) => paths.map((path, id) => ({ x: path[i].x, y: path[i].y, id }));
  await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: at(0) });
  for (let i = 1; i < paths[0].length; i++) await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: at(i) });
  await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
  await cdp.detach();
}

/// Points from `from` to `to` in `steps` even steps.
export function line(from, to, steps = 8) {
  return Array.from({ length: steps + 1 }, (_, i) => ({ x: from.x + (to.x - from.x) * i / steps, y: from.y + (to.y - from.y) * i / steps }));
}
