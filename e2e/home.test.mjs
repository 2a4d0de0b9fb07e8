// A visitor reads the home page: where each sale stands, when, at what price, and the way in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS } from "./support.mjs";

const up = serviceAndBrowser();
const SIZES = [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]];
/// An RFC 3339 timestamp as a script or template might leak it.
const RAW_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d/;

/// Buys every seat of `event` (one seat) through the API, as a buyer would.
async function sellOut(base, event) {
  const joined = await api(base, "POST", `/api/events/${event}/queue`);
  let pass = null;
  for (let i = 0; i < 100 && !pass; i++) {
    const poll = await api(base, "GET", "/api/queue/" + joined.body.token);
    pass = poll.body.pass;
    if (!pass) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(pass, "admitted to buy the last seat");
  const hold = await api(base, "POST", `/api/events/${event}/holds`, { seats: ["A-1-1"] }, pass);
  assert.equal(hold.status, 201, JSON.stringify(hold.body));
  const paid = await api(base, "POST", `/api/orders/${hold.body.order_id}/pay`, { payment_ref: "e2e" }, pass);
  assert.equal(paid.status, 200);
  for (let i = 0; i < 50; i++) {
    if ((await api(base, "GET", "/api/events/" + event)).body.seats_available === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/// The four sales, made once for the file's tests.
let made = null;
const sales = () => (made ??= makeSales());

async function makeSales() {
  const base = up.service.base;
  const sections = [
    { id: "A", name: "Floor", price_cents: 9900, rows: 3, seats_per_row: 8 },
    { id: "B", name: "Balcony", price_cents: 2500, rows: 2, seats_per_row: 8 },
  ];
  await createEvent(base, "now-on", { name: "On Sale Night", currency: "USD", sections, starts_at: "2030-06-01T19:00:00Z" });
  await createEvent(base, "halted", { name: "Paused Night", paused: true, starts_at: "2030-06-02T19:00:00Z" });
  await createEvent(base, "later", {
    name: "Later Night", starts_at: "2030-06-03T19:00:00Z", on_sale_at: "2029-03-01T09:00:00Z",
  });
  await createEvent(base, "gone", {
    name: "Sold Out Night", starts_at: "2030-06-04T19:00:00Z",
    sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 1, seats_per_row: 1 }],
  });
  await sellOut(base, "gone");
  // The admin token is not needed for the page; the check only proves the sale really ended.
  assert.equal((await api(base, "GET", "/api/admin/events/gone/stats", undefined, ADMIN)).body.sold_seats, 1);
}

for (const [size, viewport] of SIZES) {
  test(`home (${size}): every sale's state in words, dates in the visitor's zone, prices with their currency`, async () => {
    await sales();
    await withPage(up.browser, "home-" + size, { viewport, timezoneId: "America/New_York", locale: "en-US" }, async (page) => {
      await page.goto(up.service.base + "/");
      const card = (id) => page.locator(`li.event[data-event="${id}"]`);
      assert.equal(await card("now-on").locator(".sale-state").innerText(), "On sale now");
      assert.match(await card("halted").locator(".sale-state").innerText(), /^Admission paused\./);
      assert.match(await card("later").locator(".sale-state").innerText(), /^Sale opens Thursday, March 1, 2029 at 4:00\s?AM$/);
      assert.equal(await card("gone").locator(".sale-state").innerText(), "Sold out");

      // 19:00 UTC is 3 pm in New York in June.
      assert.match(await card("now-on").locator(".when time").innerText(), /^Saturday, June 1, 2030 at 3:00\s?PM$/);
      assert.doesNotMatch(await page.locator("main").innerText(), RAW_TIME);
      assert.doesNotMatch(await page.locator("main").innerText(), /UTC/);

      assert.equal(await card("now-on").locator(".prices").innerText(), "$25.00 to $99.00 per seat");
      assert.equal(await card("halted").locator(".prices").innerText(), "€50.00 per seat");
      assert.equal(await card("now-on").locator(".availability").innerText(), "40 of 40 seats available");

      assert.equal(await card("now-on").locator("a.button").innerText(), "Join the line");
      assert.equal(await card("halted").locator("a.button").innerText(), "Join the line");
      assert.equal(await card("later").locator("a.button").innerText(), "Join the early line");
      assert.equal(await card("gone").locator("a").count(), 0, "no way into a sold-out sale");

      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, `home-${size}.png`), fullPage: true });
    });
  });
}

test("home in German: states, dates and prices in German", async () => {
  await sales();
  const viewport = SIZES[1][1];
  await withPage(up.browser, "home-de", { viewport, timezoneId: "Europe/Berlin", locale: "de-DE" }, async (page) => {
    await page.goto(up.service.base + "/");
    const card = (id) => page.locator(`li.event[data-event="${id}"]`);
    assert.equal(await page.locator("html").getAttribute("lang"), "de");
    assert.equal(await card("gone").locator(".sale-state").innerText(), "Ausverkauft");
    assert.equal(await card("now-on").locator(".sale-state").innerText(), "Jetzt im Verkauf");
    assert.match(await card("later").locator(".sale-state").innerText(), /^Verkauf ab Donnerstag, 1\. März 2029 um 10:00$/);
    assert.match(await card("now-on").locator(".prices").innerText(), /^25,00\s\$ bis 99,00\s\$ pro Platz$/);
    assert.equal(await card("later").locator("a.button").innerText(), "In die frühe Warteschlange");
    await page.screenshot({ path: join(SCREENSHOTS, "home-de-phone.png"), fullPage: true });
  });
});
