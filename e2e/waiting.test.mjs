// The waiting room's journeys: leave (after a confirmation) and join again, back
// to the line after a pass ran out, a wait that counts down between polls, a
// wait for buyers ahead when every pass is taken, and the page in German. Each
// runs at desktop and phone size, and keeps a screenshot of every state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS } from "./support.mjs";

const up = serviceAndBrowser();
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

async function snap(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: true });
}

const token = (page, event) => page.evaluate((e) => localStorage.getItem("anteroom.token." + e), event);
const text = async (page, id) => (await page.locator("#" + id).textContent()).trim();

/// Joins `n` people through the API, so that the page's visitor is behind them.
async function crowd(event, n) {
  for (let i = 0; i < n; i++) await api(up.service.base, "POST", `/api/events/${event}/queue`);
}

/// Joins through the API until admitted: takes a pass.
async function takePass(event) {
  const joined = await api(up.service.base, "POST", `/api/events/${event}/queue`);
  for (let i = 0; i < 100; i++) {
    const status = await api(up.service.base, "GET", "/api/queue/" + joined.body.token);
    if (status.body.state === "admitted") return status.body.pass;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("never admitted");
}

for (const [size, viewport] of Object.entries(SIZES)) {
  test(`${size}: leaving asks first; joining again gives a new place, also after a reload`, async () => {
    const event = "leave-" + size;
    await createEvent(up.service.base, event, { paused: true });
    await crowd(event, 1);
    await withPage(up.browser, "waiting-leave-" + size, { viewport }, async (page) => {
      // The join is slowed down so that the joining state can be seen.
      await page.route("**/api/events/*/queue", async (route) => {
        await new Promise((r) => setTimeout(r, 800));
        await route.continue();
      });
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#joining").waitFor({ state: "visible" });
      await snap(page, `waiting-joining-${size}`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      await page.unroute("**/api/events/*/queue");
      assert.equal(await text(page, "position"), "2");
      assert.match(await text(page, "eta"), /Admission is paused/);
      await snap(page, `waiting-paused-${size}`);
      const first = await token(page, event);

      await page.click("#leave");
      await page.locator("#leave-dialog").waitFor({ state: "visible" });
      assert.match(await text(page, "leave-dialog"), /give up your place/);
      await snap(page, `waiting-leave-dialog-${size}`);
      await page.click("#leave-cancel");
      await page.locator("#leave-dialog").waitFor({ state: "hidden" });
      assert.equal((await api(up.service.base, "GET", "/api/queue/" + first)).body.state, "waiting", "staying keeps the place");
      await page.click("#leave");
      await page.click("#leave-confirm");
      await page.locator("#ended").waitFor({ state: "visible" });
      assert.match(await text(page, "ended-text"), /You left the line/);
      assert.equal((await api(up.service.base, "GET", "/api/queue/" + first)).body.state, "left");
      await snap(page, `waiting-left-${size}`);

      await page.click("#again");
      await page.locator("#waiting").waitFor({ state: "visible" });
      const second = await token(page, event);
      assert.notEqual(second, first, "a new place");
      assert.equal(await text(page, "position"), "2", "at the back of the line");
      await page.reload();
      await page.locator("#waiting").waitFor({ state: "visible" });
      assert.equal(await token(page, event), second, "a reload keeps the new place");

      // Leaving, then reloading: the page places the visitor again, no dead end.
      await page.click("#leave");
      await page.click("#leave-confirm");
      await page.locator("#ended").waitFor({ state: "visible" });
      await page.reload();
      await page.locator("#waiting").waitFor({ state: "visible" });
      const third = await token(page, event);
      assert.ok(third && third !== second, "a new place after the reload");
    });
  });

  test(`${size}: back in the line after the pass ran out, a new place`, async () => {
    const event = "ran-out-" + size;
    await createEvent(up.service.base, event, { admission: { per_second: 50, max_active: 10, pass_seconds: 2 } });
    await withPage(up.browser, "waiting-ran-out-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.waitForURL(`**/events/${event}/seats`, { timeout: 15000 });
      const admitted = await token(page, event);
      await api(up.service.base, "PATCH", `/api/admin/events/${event}`, { paused: true }, ADMIN);
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await api(up.service.base, "GET", "/api/queue/" + admitted)).body.state, "expired");
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      assert.notEqual(await token(page, event), admitted, "a new place");
      assert.equal(await text(page, "position"), "1");
    });
  });

  test(`${size}: far from the front the wait counts down between polls and says when it was updated`, async () => {
    const event = "far-" + size;
    await createEvent(up.service.base, event, { admission: { per_second: 0.05, max_active: 500, pass_seconds: 600 } });
    await crowd(event, 30);
    await withPage(up.browser, "waiting-far-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      assert.equal(await text(page, "position"), "31");
      const before = await text(page, "eta");
      assert.match(before, /Expected wait: 10 min/);
      assert.equal(await page.locator("#limit").isVisible(), false);
      await page.waitForFunction(() => /Updated [23] s ago/.test(document.getElementById("updated").textContent));
      const after = await text(page, "eta");
      assert.notEqual(after, before, "the wait counts down");
      assert.match(after, /Expected wait: 10 min 1\d s|Expected wait: 10 min 0\d s/);
      await snap(page, `waiting-far-${size}`);
    });
  });

  test(`${size}: near the front, the wait is short and says so`, async () => {
    const event = "near-" + size;
    await createEvent(up.service.base, event, { admission: { per_second: 0.05, max_active: 500, pass_seconds: 600 } });
    await crowd(event, 1);
    await withPage(up.browser, "waiting-near-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      assert.match(await text(page, "position"), /^[12]$/);
      assert.match(await text(page, "eta"), /Expected wait: \d+ s|Any moment now/);
      await snap(page, `waiting-near-${size}`);
    });
  });

  test(`${size}: with every pass taken, the page waits for buyers ahead to finish and shows no short wait`, async () => {
    const event = "full-" + size;
    await createEvent(up.service.base, event, { admission: { per_second: 50, max_active: 1, pass_seconds: 600 } });
    await takePass(event);
    await withPage(up.browser, "waiting-passes-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#waiting").waitFor({ state: "visible" });
      assert.equal(await text(page, "position"), "1");
      await page.locator("#limit").waitFor({ state: "visible" });
      assert.match(await text(page, "limit"), /waiting for buyers ahead to finish/);
      // The pass ahead runs out in about ten minutes: no wait of seconds is shown.
      assert.match(await text(page, "eta"), /Expected wait: (9 min [45]\d|10 min 0\d) s \(at most about 10 min \d\d s\)/);
      await snap(page, `waiting-passes-${size}`);
    });
  });

  test(`${size}: before the sale opens, the pre-queue counts down to the opening`, async () => {
    const event = "early-" + size;
    const opens = new Date(Date.now() + 3600_000).toISOString();
    await createEvent(up.service.base, event, { on_sale_at: opens });
    await withPage(up.browser, "waiting-prequeue-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#prequeue").waitFor({ state: "visible" });
      assert.match(await text(page, "countdown"), /59 min|1 h/);
      assert.match(await text(page, "commitment"), /^[0-9a-f]{64}$/);
      await snap(page, `waiting-prequeue-${size}`);
    });
  });

  test(`${size}: a sold-out sale ends the wait in words, with nothing to join again`, async () => {
    const event = "gone-" + size;
    await createEvent(up.service.base, event, {
      sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 1, seats_per_row: 1 }],
    });
    const pass = await takePass(event);
    const hold = await api(up.service.base, "POST", `/api/events/${event}/holds`, { seats: ["A-1-1"] }, pass);
    await api(up.service.base, "POST", `/api/orders/${hold.body.order_id}/pay`, { payment_ref: "e2e" }, pass);
    await withPage(up.browser, "waiting-sold-out-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#ended").waitFor({ state: "visible" });
      assert.match(await text(page, "ended-text"), /Sold out/);
      assert.equal(await page.locator("#again").isVisible(), false);
      await snap(page, `waiting-sold-out-${size}`);
    });
  });
}

test("in German, the paused wait and the confirmation speak German", async () => {
  await createEvent(up.service.base, "pause-de", { paused: true });
  await withPage(up.browser, "waiting-de", { viewport: SIZES.phone, locale: "de-DE" }, async (page) => {
    await page.goto(`${up.service.base}/events/pause-de`);
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.equal(await page.getAttribute("html", "lang"), "de");
    assert.match(await page.locator("#waiting").textContent(), /Ihr Platz in der Warteschlange/);
    assert.match(await text(page, "eta"), /Der Einlass ist vom Veranstalter vorerst angehalten/);
    assert.match(await text(page, "updated"), /Gerade aktualisiert/);
    await page.click("#leave");
    await page.locator("#leave-dialog").waitFor({ state: "visible" });
    assert.match(await text(page, "leave-dialog"), /Warteschlange verlassen\?/);
    await snap(page, "waiting-de-leave-dialog-phone");
    await page.click("#leave-cancel");
    await snap(page, "waiting-de-paused-phone");
  });
});

// The join challenge: the page solves it in a worker before joining, says so
// in words with its progress, and solves a fresh one when the difficulty rose
// between fetching and joining.

/// Where the solving state's screenshots are kept for review, besides SCREENSHOTS.
const SHOTS = process.env.POW_SHOTS;

test("with a join challenge of 12 bits, the page checks it is not a bot, then joins", async () => {
  const event = "pow-12";
  await createEvent(up.service.base, event, { paused: true, join_challenge: { bits: 12 } });
  await withPage(up.browser, "waiting-pow-12", { viewport: SIZES.desktop }, async (page) => {
    const seen = [];
    await page.exposeFunction("sawProgress", (t) => seen.push(t));
    await page.addInitScript(() => {
      new MutationObserver(() => {
        const el = document.getElementById("solving-text");
        if (el && el.textContent) window.sawProgress(el.textContent);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    await page.goto(`${up.service.base}/events/${event}`);
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.ok(seen.some((t) => /^Checking you're not a bot… \d+%$/.test(t)), JSON.stringify(seen));
    assert.equal(await text(page, "position"), "1");
    assert.ok(await token(page, event));
  });
});

test("a difficulty raised between fetching and joining: the page solves the fresh challenge", async () => {
  const event = "pow-raised";
  await createEvent(up.service.base, event, { paused: true, join_challenge: { bits: 4 } });
  await withPage(up.browser, "waiting-pow-raised", { viewport: SIZES.phone }, async (page) => {
    let raised = false;
    await page.route("**/api/events/*/queue", async (route) => {
      if (!raised) {
        raised = true;
        await api(up.service.base, "PATCH", `/api/admin/events/${event}`, { join_challenge: { bits: 14 } }, ADMIN);
      }
      await route.continue();
    });
    const answers = [];
    page.on("response", (r) => { if (r.url().endsWith("/queue")) answers.push(r.status()); });
    await page.goto(`${up.service.base}/events/${event}`);
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.deepEqual(answers, [428, 201]);
  });
});

/// Joins `event` through a fresh page; how long the page took to solve.
async function solveTime(event, viewport) {
  let ms = null;
  await withPage(up.browser, "waiting-" + event, { viewport }, async (page) => {
    await page.goto(`${up.service.base}/events/${event}`);
    await page.locator("#waiting").waitFor({ state: "visible", timeout: 120_000 });
    ms = Number(await page.locator("#solving").getAttribute("data-solved-in-ms"));
  });
  return ms;
}

test("the solving state, and the page's solve time at 16 and 20 bits (reported, not asserted)", { timeout: 600_000 }, async () => {
  for (const [size, viewport] of Object.entries(SIZES)) {
    const event = "pow-shot-" + size;
    // Hard enough to be caught solving.
    await createEvent(up.service.base, event, { paused: true, join_challenge: { bits: 26 } });
    await withPage(up.browser, "waiting-solving-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      await page.locator("#solving").waitFor({ state: "visible" });
      await page.waitForFunction(() => /[1-9]\d*%/.test(document.getElementById("solving-text").textContent));
      await snap(page, `waiting-solving-${size}`);
      if (SHOTS) {
        mkdirSync(SHOTS, { recursive: true });
        await page.screenshot({ path: join(SHOTS, `waiting-solving-${size}.png`) });
      }
    });
  }
  for (const [bits, runs] of [[16, 8], [20, 5]]) {
    const event = "pow-time-" + bits;
    await createEvent(up.service.base, event, { paused: true, join_challenge: { bits } });
    const times = [];
    for (let i = 0; i < runs; i++) times.push(await solveTime(event, SIZES.desktop));
    const mean = Math.round(times.reduce((a, b) => a + b, 0) / times.length);
    console.log(`solve time at ${bits} bits over ${runs} joins: mean ${mean} ms, each ${times.join(", ")} ms`);
  }
});
