// A person buys a ticket in the browser: join, wait, admitted, pick, hold, pay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS, clickSeat, seatShown, mapReady } from "./support.mjs";

const up = serviceAndBrowser();

async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, "buyer-" + name + ".png"), fullPage: true });
}

for (const [size, viewport] of [["phone", { width: 390, height: 844 }], ["desktop", { width: 1280, height: 800 }]]) {
  test(`${size}: join, wait, pick two seats, hold, a declined card, pay, a confirmation that says what, when and where`, async () => {
    const id = "buy-" + size;
    await createEvent(up.service.base, id);
    await withPage(up.browser, "buyer-" + size, { viewport, timezoneId: "Europe/Berlin" }, async (page) => {
      await page.goto(up.service.base + "/events/" + id);
      await page.waitForURL(`**/events/${id}/seats`, { timeout: 15000 });
      await mapReady(page);
      assert.equal(await seatShown(page, "A-1-1"), "free");
      assert.equal(await page.getAttribute("#map", "aria-label"), "Seat map");
      await shot(page, "map-" + size);

      await clickSeat(page, "A-1-1");
      assert.equal(await page.locator("#map-seat").textContent(), "Floor, row 1, seat 1: picked");
      await page.keyboard.press("ArrowRight");
      await page.keyboard.press("Enter");
      assert.deepEqual(await page.locator("#picked .seat-name").allTextContents(), ["Floor, row 1, seat 1", "Floor, row 1, seat 2"]);
      await shot(page, "picked-" + size);
      await page.click("#hold");
      await page.locator("#checkout").waitFor({ state: "visible" });
      assert.match(await page.locator("#timer").textContent(), /min|s/);
      assert.deepEqual(await page.locator("#held-seats .seat-name").allTextContents(), ["Floor, row 1, seat 1", "Floor, row 1, seat 2"]);
      assert.equal(await page.locator("#amount").textContent(), "€100.00");

      await page.fill("#card", "4000 0000 0000 0002");
      await page.fill("#cardholder", "Ada Lovelace");
      await page.click("#pay button[type=submit]");
      await page.locator("#problem").waitFor({ state: "visible" });
      assert.match(await page.locator("#problem").textContent(), /declined/);
      await shot(page, "declined-" + size);

      await page.fill("#card", "4242 4242 4242 4242");
      await page.click("#pay button[type=submit]");
      await page.locator("#confirmation").waitFor({ state: "visible" });
      assert.deepEqual(await page.locator("#confirmed-seats .seat-name").allTextContents(), ["Floor, row 1, seat 1", "Floor, row 1, seat 2"]);
      assert.equal(await page.locator("#paid-amount").textContent(), "€100.00");
      assert.equal(await page.locator("#confirmed-event").textContent(), "E2E " + id);
      assert.equal(await page.locator("#confirmed-where").textContent(), "Test Hall");
      // 19:00 UTC, in the visitor's time zone (Berlin, summer time), in words.
      assert.match(await page.locator("#confirmed-when").textContent(), /^Saturday, June 1, 2030 at 09:00 PM GMT\+2$/);
      assert.match(await page.locator("#order-id").textContent(), /^[0-9a-f-]{36}$/);
      assert.match(await page.locator("#confirmation").textContent(), /keep your order number, your tickets are tied to it/);
      assert.equal(await seatShown(page, "A-1-1"), "mine");
      await shot(page, "confirmation-" + size);
    });
    const stats = await api(up.service.base, "GET", `/api/admin/events/${id}/stats`, undefined, ADMIN);
    assert.equal(stats.body.sold_seats, 2);
    assert.equal(stats.body.orders_paid, 1);
  });
}

test("a seat taken by someone else just before the hold is explained in words and leaves the basket", async () => {
  await createEvent(up.service.base, "race", { sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 1, seats_per_row: 4 }] });
  await withPage(up.browser, "race", {}, async (page) => {
    await page.goto(up.service.base + "/events/race");
    await page.waitForURL("**/events/race/seats", { timeout: 15000 });
    await mapReady(page);
    await clickSeat(page, "A-1-3");
    await clickSeat(page, "A-1-4");
    // The map stops refreshing, so only the hold can tell the page.
    await page.route("**/api/events/race/seatmap*", (route) => route.abort());
    // Another person takes A-1-3 first, through the API.
    const join = await api(up.service.base, "POST", "/api/events/race/queue");
    let pass;
    for (let i = 0; i < 50 && !pass; i++) {
      pass = (await api(up.service.base, "GET", "/api/queue/" + join.body.token)).body.pass;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await api(up.service.base, "POST", "/api/events/race/holds", { seats: ["A-1-3"] }, pass)).status, 201);
    await page.click("#hold");
    await page.locator("#picker-problem").waitFor({ state: "visible" });
    assert.equal(await page.locator("#picker-problem").textContent(), "Floor, row 1, seat 3 was just taken by someone else; pick another.");
    assert.deepEqual(await page.locator("#picked .seat-name").allTextContents(), ["Floor, row 1, seat 4"]);
    assert.equal(await seatShown(page, "A-1-3"), "held");
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
    await page.click("#leave-confirm");
    await page.locator("#ended").waitFor({ state: "visible" });
    assert.match(await page.locator("#ended-text").textContent(), /left the line/);
  });
});
