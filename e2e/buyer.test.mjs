// A person buys a ticket in the browser: join, wait, admitted, pick, hold, pay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS } from "./support.mjs";

const up = serviceAndBrowser();

test("join, wait, pick two seats, hold, a declined card, pay, confirmation", async () => {
  await createEvent(up.service.base, "buy");
  await withPage(up.browser, "buyer", { viewport: { width: 390, height: 844 } }, async (page) => {
    await page.goto(up.service.base + "/events/buy");
    await page.waitForURL("**/events/buy/seats", { timeout: 15000 });
    const seat = (id) => page.locator(`rect[data-id="${id}"]`);
    await seat("A-1-1").waitFor();
    await page.waitForFunction(() => document.querySelector('rect[data-id="A-1-1"]')?.classList.contains("free"));
    assert.equal(await seat("A-1-1").getAttribute("aria-label"), "Floor, row 1, seat 1: free");

    await seat("A-1-1").click();
    await seat("A-1-2").focus();
    await page.keyboard.press("Enter");
    assert.equal(await page.locator("#picked").textContent(), "A-1-1, A-1-2");
    await page.click("#hold");
    await page.locator("#checkout").waitFor({ state: "visible" });
    assert.match(await page.locator("#timer").textContent(), /min|s/);
    assert.equal(await page.locator("#held-seats").textContent(), "A-1-1, A-1-2");

    await page.fill("#card", "4000 0000 0000 0002");
    await page.fill("#cardholder", "Ada Lovelace");
    await page.click("#pay button[type=submit]");
    await page.locator("#problem").waitFor({ state: "visible" });
    assert.match(await page.locator("#problem").textContent(), /declined/);

    await page.fill("#card", "4242 4242 4242 4242");
    await page.click("#pay button[type=submit]");
    await page.locator("#confirmation").waitFor({ state: "visible" });
    assert.equal(await page.locator("#confirmed-seats").textContent(), "A-1-1, A-1-2");
    assert.match(await page.locator("#order-id").textContent(), /^[0-9a-f-]{36}$/);
    await page.waitForFunction(() => document.querySelector('rect[data-id="A-1-1"]')?.classList.contains("mine"));
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "confirmation.png"), fullPage: true });
  });
  const stats = await api(up.service.base, "GET", "/api/admin/events/buy/stats", undefined, ADMIN);
  assert.equal(stats.body.sold_seats, 2);
  assert.equal(stats.body.orders_paid, 1);
});

test("a seat taken by someone else is explained in words and the map updates", async () => {
  await createEvent(up.service.base, "race", { sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 1, seats_per_row: 4 }] });
  await withPage(up.browser, "race", {}, async (page) => {
    await page.goto(up.service.base + "/events/race");
    await page.waitForURL("**/events/race/seats", { timeout: 15000 });
    await page.waitForFunction(() => document.querySelector('rect[data-id="A-1-3"]')?.classList.contains("free"));
    await page.locator('rect[data-id="A-1-3"]').click();
    // Another person takes A-1-3 first, through the API.
    const join = await api(up.service.base, "POST", "/api/events/race/queue");
    let pass;
    for (let i = 0; i < 50 && !pass; i++) {
      pass = (await api(up.service.base, "GET", "/api/queue/" + join.body.token)).body.pass;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await api(up.service.base, "POST", "/api/events/race/holds", { seats: ["A-1-3"] }, pass)).status, 201);
    await page.click("#hold");
    await page.locator("#problem").waitFor({ state: "visible" });
    assert.match(await page.locator("#problem").textContent(), /A-1-3 was just taken/);
    await page.waitForFunction(() => document.querySelector('rect[data-id="A-1-3"]')?.classList.contains("held"));
  });
});

test("the waiting room shows the place in line while admission is paused, and leaving works", async () => {
  await createEvent(up.service.base, "line", { paused: true });
  await api(up.service.base, "POST", "/api/events/line/queue");
  await withPage(up.browser, "waiting", { viewport: { width: 390, height: 844 } }, async (page) => {
    await page.goto(up.service.base + "/events/line");
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.equal(await page.locator("#position").textContent(), "2");
    assert.match(await page.locator("#eta").textContent(), /Admission is paused/);
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "waiting.png"), fullPage: true });
    await page.reload();
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.equal(await page.locator("#position").textContent(), "2", "a reload keeps the place");
    await api(up.service.base, "PATCH", "/api/admin/events/line", { paused: false, admission: { per_second: 0.01 } }, ADMIN);
    await page.waitForFunction(() => /Expected wait/.test(document.getElementById("eta").textContent), null, { timeout: 15000 });
    await page.click("#leave");
    await page.locator("#ended").waitFor({ state: "visible" });
    assert.match(await page.locator("#ended-text").textContent(), /left the line/);
  });
});
