// A site Anteroom did not build, protected by the line: a stand-in shop (a tiny
// node server) behind Debian's nginx running infra/nginx-gate.conf as it is,
// which asks Anteroom's gate about every request. Chromium opens the shop, is
// sent to the waiting room, waits, is admitted, comes back with the pass
// (exchanged by nginx for a cookie on the shop's host) and sees the protected
// page; a forged, an expired and another event's pass are each turned back to
// the line. Anteroom is reached as localhost and the shop as 127.0.0.1: two
// hosts that share no domain, so the shop's cookie can only come from nginx.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { api, createEvent, freePort, launch, startService, withPage, SCREENSHOTS } from "./support.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const EVENT = "members-sale";
/// Short, so that a pass runs out within the test.
const PASS_SECONDS = 6;
const up = {};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function snap(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: true });
}

/// The stand-in shop: every page is "protected"; it says whether the pass came as a cookie.
async function startShop() {
  const port = await freePort();
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://shop");
    const cookie = /(?:^|;\s*)anteroom_pass=/.test(req.headers.cookie || "");
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Corner Shop — members' sale</title>
<style>body{font-family:system-ui,sans-serif;margin:0;background:#fdf8f0;color:#222}header{background:#7a3e00;color:#fff;padding:.8rem 1rem;font-weight:700}
main{max-width:40rem;margin:1.5rem auto;padding:0 1rem}.card{background:#fff;border-radius:.5rem;padding:1rem;box-shadow:0 1px 3px #0002}code{overflow-wrap:anywhere}</style></head>
<body><header>Corner Shop</header><main><div class="card"><h1 id="welcome">Members' sale: you are in</h1>
<p>This page is only served to visitors with a valid pass from the line.</p>
<p>Page: <code id="path">${url.pathname}${url.search}</code></p>
<p id="how">${cookie ? "Your pass reached the shop in the cookie anteroom_pass." : "No pass cookie reached the shop."}</p></div></main></body></html>`);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin: "http://127.0.0.1:" + port, port, stop: () => server.close() };
}

async function listening(port) {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => { socket.end(); resolve(true); });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error("nothing listens on " + port);
}

/// nginx with infra/nginx-gate.conf, its placeholders filled in, under its own prefix.
async function startNginx(shopPort, anteroomPort) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "anteroom-gate-nginx-"));
  const gate = readFileSync(join(here, "..", "infra", "nginx-gate.conf"), "utf8")
    .replaceAll("@LISTEN@", "127.0.0.1:" + port)
    .replaceAll("@SITE@", "http://127.0.0.1:" + shopPort)
    .replaceAll("@ANTEROOM@", "http://127.0.0.1:" + anteroomPort)
    .replaceAll("@EVENT@", EVENT);
  writeFileSync(join(dir, "gate.conf"), gate);
  writeFileSync(join(dir, "nginx.conf"), `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  include ${dir}/gate.conf;
}
`);
  const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  await listening(port);
  return {
    origin: "http://127.0.0.1:" + port,
    stop: () => { child.kill("SIGTERM"); rmSync(dir, { recursive: true, force: true }); },
  };
}

before(async () => {
  up.service = await startService((port) => ({ ANTEROOM_PUBLIC_URL: "http://localhost:" + port }));
  up.public = up.service.base.replace("127.0.0.1", "localhost");
  up.shop = await startShop();
  up.nginx = await startNginx(up.shop.port, Number(new URL(up.service.base).port));
  up.browser = await launch();
  await createEvent(up.service.base, EVENT, {
    name: "Members' sale",
    admission: { per_second: 1, max_active: 100, pass_seconds: PASS_SECONDS },
    return_origins: [up.nginx.origin],
  });
  await createEvent(up.service.base, "other-sale", {});
});

after(async () => {
  await up.browser?.close();
  up.nginx?.stop();
  up.shop?.stop();
  up.service?.stop();
});

/// Joins through the API until admitted: a pass for `event`.
async function takePass(event) {
  const joined = await api(up.service.base, "POST", `/api/events/${event}/queue`);
  for (let i = 0; i < 100; i++) {
    const status = await api(up.service.base, "GET", "/api/queue/" + joined.body.token);
    if (status.body.state === "admitted") return status.body.pass;
    await sleep(200);
  }
  throw new Error("never admitted");
}

/// The addresses the page's main frame has asked for, in order, redirects included.
function visits(page) {
  const seen = [];
  page.on("request", (req) => { if (req.isNavigationRequest() && req.frame() === page.mainFrame()) seen.push(req.url()); });
  return seen;
}

const lineFor = (returnTo) => `${up.public}/events/${EVENT}?return_to=${encodeURIComponent(returnTo)}`;
const text = async (page, selector) => (await page.locator(selector).textContent()).trim();

/// The shop's page at `path` is shown, through the line if need be.
async function reachShop(page, path) {
  await page.waitForURL(up.nginx.origin + path, { timeout: 30_000 });
  assert.equal(await text(page, "#welcome"), "Members' sale: you are in");
  assert.equal(await text(page, "#path"), path);
}

for (const [size, viewport] of Object.entries(SIZES)) {
  test(`${size}: a visitor without a pass waits in line and comes back to the shop with one`, async () => {
    // People ahead, admitted one a second: the visitor sees the line.
    for (let i = 0; i < 3; i++) await api(up.service.base, "POST", `/api/events/${EVENT}/queue`);
    await withPage(up.browser, "gate-journey-" + size, { viewport }, async (page) => {
      const seen = visits(page);
      const protectedPath = "/members/checkout?item=7&size=m";
      await page.goto(up.nginx.origin + protectedPath);
      await page.waitForURL(lineFor(up.nginx.origin + protectedPath));
      const host = new URL(up.nginx.origin).host;
      assert.equal(await text(page, "#return-note"), `When it is your turn we will take you back to ${host}.`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      await snap(page, `gate-waiting-${size}`);

      await reachShop(page, protectedPath);
      assert.ok(seen.some((u) => u.startsWith(`${up.public}/events/${EVENT}/return?`)), seen.join("\n"));
      const [cookie] = (await page.context().cookies(up.nginx.origin)).filter((c) => c.name === "anteroom_pass");
      assert.ok(cookie, "the pass is kept in a cookie on the shop's host");
      assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite], [true, true, "Lax"]);
      assert.equal(await text(page, "#how"), "Your pass reached the shop in the cookie anteroom_pass.");
      await snap(page, `gate-shop-${size}`);

      // With the cookie, the next page is served straight away.
      const before = seen.length;
      await page.goto(up.nginx.origin + "/members/basket");
      await reachShop(page, "/members/basket");
      assert.deepEqual(seen.slice(before), [up.nginx.origin + "/members/basket"]);
    });
  });
}

test("an expired pass sends the visitor back to the line, and the line brings them back", async () => {
  await withPage(up.browser, "gate-expired", { viewport: SIZES.desktop }, async (page) => {
    await page.goto(up.nginx.origin + "/members/");
    await reachShop(page, "/members/");
    await sleep(PASS_SECONDS * 1000 + 500);
    const seen = visits(page);
    await page.goto(up.nginx.origin + "/members/after");
    await reachShop(page, "/members/after");
    assert.ok(seen.includes(lineFor(up.nginx.origin + "/members/after")), seen.join("\n"));
  });
});

test("a forged pass, an expired one and another event's are each turned back to the line", async () => {
  const expired = await takePass(EVENT);
  const valid = await takePass(EVENT);
  const other = await takePass("other-sale");
  const [payload, signature] = valid.split(".");
  const forged = payload + "." + (signature.startsWith("A") ? "B" : "A") + signature.slice(1);
  await sleep(PASS_SECONDS * 1000 + 500);
  const cases = [
    { name: "forged, in the query", query: forged },
    { name: "another event's, in the query", query: other },
    { name: "expired, in the cookie", cookie: expired },
    { name: "another event's, in the cookie", cookie: other },
  ];
  for (const { name, query, cookie } of cases) {
    await withPage(up.browser, "gate-refused-pass", { viewport: SIZES.desktop }, async (page) => {
      if (cookie) {
        await page.context().addCookies([{ name: "anteroom_pass", value: cookie, url: up.nginx.origin, httpOnly: true, secure: true, sameSite: "Lax" }]);
      }
      const seen = visits(page);
      const target = "/members/vip?row=2";
      await page.goto(up.nginx.origin + target + (query ? "&anteroom_pass=" + encodeURIComponent(query) : ""));
      // The line, told to come back to the page without the refused pass; then the shop, with a pass of its own.
      await reachShop(page, target);
      assert.ok(seen.includes(lineFor(up.nginx.origin + target)), `${name}: ${seen.join("\n")}`);
      const [kept] = (await page.context().cookies(up.nginx.origin)).filter((c) => c.name === "anteroom_pass");
      assert.ok(kept && ![forged, other, expired].includes(kept.value), `${name}: a new pass replaced it`);
    });
  }
});

for (const [size, viewport] of Object.entries(SIZES)) {
  test(`${size}: a return address the event does not list is refused in words`, async () => {
    await withPage(up.browser, "gate-refused-" + size, { viewport }, async (page) => {
      const seen = visits(page);
      const res = await page.goto(`${up.public}/events/${EVENT}?return_to=${encodeURIComponent("https://evil.example/steal?x=1")}`);
      assert.equal(res.status(), 400);
      assert.equal(await text(page, "h1"), "We cannot send you back to that site");
      assert.match(await text(page, "#why"), /^https:\/\/evil\.example is not one of the sites the organiser of Members' sale lets this waiting room send visitors to/);
      await page.waitForTimeout(500);
      assert.equal(seen.length, 1, "the page stays: " + seen.join("\n"));
      await snap(page, `gate-refused-${size}`);
      await page.click("text=Join the line for Members' sale");
      await page.waitForURL(`${up.public}/events/${EVENT}`);
    });
  });
}
