// An operator runs sales in the browser: signs in, reads a compact table of events,
// opens one for its charts and controls, steers and pauses it, creates events.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS } from "./support.mjs";

const up = serviceAndBrowser();
const SIZES = [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]];

async function shot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: true });
}

async function signIn(page) {
  await page.goto(up.service.base + "/admin");
  await page.fill("#token", ADMIN);
  await page.click("#signin button");
  await page.locator("#dashboard").waitFor({ state: "visible" });
  // The first refresh fills the table; forms below it move down once.
  await page.waitForFunction(() => document.querySelector("#events-table tbody tr") || !document.querySelector("#no-events").hidden);
}

const row = (page, id) => page.locator(`#events-table tr[data-event="${id}"]`);

for (const [size, viewport] of SIZES) {
  test(`admin (${size}): sign in, live table, open an event, apply with feedback, pause only after confirming`, async () => {
    const id = "live-" + size;
    await createEvent(up.service.base, id, { name: "Live " + size, paused: true });
    for (let i = 0; i < 3; i++) await api(up.service.base, "POST", `/api/events/${id}/queue`);
    await withPage(up.browser, "admin-steer-" + size, { viewport }, async (page) => {
      await page.goto(up.service.base + "/admin");
      await shot(page, `admin-signin-${size}`);
      await page.fill("#token", "wrong");
      await page.click("#signin button");
      await page.locator("#signin-problem").waitFor({ state: "visible" });
      assert.equal(await page.locator("#signin-problem").innerText(), "That admin token is not right.");
      await page.fill("#token", ADMIN);
      await page.click("#signin button");

      await row(page, id).waitFor();
      await page.waitForFunction((id) =>
        document.querySelector(`tr[data-event="${id}"] [data-col="waiting"]`)?.textContent === "3", id);
      assert.equal(await row(page, id).locator('[data-col="state"]').innerText(), "Admission paused");
      assert.equal(await row(page, id).locator('[data-col="sold"]').innerText(), "0 / 24");

      await row(page, id).locator("button.open").click();
      const detail = page.locator("#detail");
      await detail.waitFor({ state: "visible" });
      await page.waitForFunction(() => document.querySelector('#detail dd[data-stat="waiting"]')?.textContent === "3");
      // Two charts, each with a y-axis of round figures, its unit, and a time axis.
      for (const chart of ["#chart-now", "#chart-rates"]) {
        assert.equal(await page.locator(`${chart} .y-axis span`).count(), 3);
        assert.equal(await page.locator(`${chart} .y-axis span`).last().innerText(), "0");
        assert.deepEqual(await page.locator(`${chart} .x-axis span`).allInnerTexts(), ["60 s ago", "30 s ago", "now"]);
      }
      const caption = async (chart) => (await page.locator(chart + " figcaption").textContent()).replace(/\s+/g, " ");
      assert.match(await caption("#chart-now"), /People right now \(count\) Waiting Active passes/);
      assert.match(await caption("#chart-rates"), /Flow \(per second\) admitted seats sold/);
      assert.equal(await page.locator("#chart-now polyline").count(), 2);

      await page.fill("#controls input[name=per_second]", "7");
      await page.click("#controls button[type=submit]");
      await page.waitForFunction(() => document.querySelector("#detail-status").textContent.startsWith("Saved"));
      assert.equal(await page.locator("#detail-status").innerText(), "Saved: 7 admitted per second, at most 100 active passes.");
      assert.equal((await api(up.service.base, "GET", "/api/events/" + id)).body.admission.per_second, 7);

      // Resuming needs no confirmation; people start being admitted.
      assert.equal(await page.locator("#pause").innerText(), "Resume admission");
      await page.click("#pause");
      await page.waitForFunction(() => document.querySelector("#detail-status").textContent === "Admission resumed.");
      await page.waitForFunction(() => document.querySelector('#detail dd[data-stat="admitted_total"]')?.textContent === "3");
      await page.waitForFunction(() => Number(document.querySelector("#chart-now .y-axis span").textContent) >= 3);
      await shot(page, `admin-opened-${size}`);

      // Pausing asks first: keeping on admitting changes nothing.
      await page.click("#pause");
      const dialog = page.locator("#confirm-pause");
      await dialog.waitFor({ state: "visible" });
      assert.match(await dialog.innerText(), new RegExp(`Pause admission for “Live ${size}”\\?`));
      await shot(page, `admin-pause-confirm-${size}`);
      await page.click("#confirm-pause button[value=cancel]");
      await dialog.waitFor({ state: "hidden" });
      assert.equal((await api(up.service.base, "GET", "/api/events/" + id)).body.paused, false);
      await page.click("#pause");
      await page.click("#confirm-pause-yes");
      await page.waitForFunction(() => document.querySelector("#detail-status").textContent.startsWith("Admission paused"));
      assert.equal((await api(up.service.base, "GET", "/api/events/" + id)).body.paused, true);
      assert.equal(await row(page, id).locator('[data-col="state"]').innerText(), "Admission paused");
    });
  });

  test(`admin (${size}): create an event with prices in dollars, every API field, a preview of what is charged`, async () => {
    const id = "made-" + size;
    await withPage(up.browser, "admin-create-" + size, { viewport, timezoneId: "Europe/Berlin" }, async (page) => {
      await signIn(page);
      await page.click("#create-card summary");
      const form = page.locator("#create");
      // Every field of the API is offered.
      for (const name of ["id", "name", "venue", "currency", "starts_at", "on_sale_at", "hold_seconds", "max_seats_per_user",
        "per_second", "max_active", "pass_seconds", "abandon_seconds", "paused"]) {
        assert.equal(await form.locator(`[name=${name}]`).count(), 1, name + " is offered");
      }
      for (const name of ["id", "name", "price", "rows", "seats_per_row"]) {
        assert.equal(await form.locator(`[name=section_${name}]`).count(), 1, "section " + name + " is offered");
      }
      assert.match(await page.locator("#zone").innerText(), /Europe\/Berlin \(UTC\+01:00\).*sent in UTC/);

      await form.locator("[name=id]").fill(id);
      await form.locator("[name=name]").fill("Made " + size);
      await form.locator("[name=venue]").fill("Browser Hall");
      await form.locator("[name=currency]").selectOption("USD");
      await form.locator("[name=starts_at]").fill("2030-01-01T20:00");
      await form.locator("[name=on_sale_at]").fill("2029-12-01T10:30");
      await form.locator("[name=abandon_seconds]").fill("90");
      await form.locator("[name=paused]").check();
      await page.click("#add-section");
      const second = form.locator(".section-row").nth(1);
      assert.equal(await second.locator("[name=section_id]").inputValue(), "B");
      await second.locator("[name=section_name]").fill("Balcony");
      await second.locator("[name=section_price]").fill("45,50");
      await second.locator("[name=section_rows]").fill("5");
      await second.locator("[name=section_seats_per_row]").fill("26");

      const preview = page.locator("#preview");
      assert.deepEqual(await preview.locator("li").allInnerTexts(), ["Floor: 200 seats at $99.00 each", "Balcony: 130 seats at $45.50 each"]);
      assert.equal(await preview.locator(".total").innerText(), "330 seats in all; $25,715.00 if every seat sells.");
      assert.match(await preview.innerText(), /sent as 2030-01-01 19:00 UTC/);
      assert.match(await preview.innerText(), /sent as 2029-12-01 09:30 UTC/);
      await shot(page, `admin-create-preview-${size}`);

      await page.click("#create button[type=submit]");
      await page.waitForFunction(() => document.querySelector("#create-status").textContent.startsWith("Created"));
      assert.equal(await page.locator("#create-status").innerText(), `Created “Made ${size}”. It is in the table below.`);
      await row(page, id).waitFor();

      const made = (await api(up.service.base, "GET", "/api/events/" + id)).body;
      assert.deepEqual(made.sections.map((s) => [s.id, s.name, s.price_cents, s.rows, s.seats_per_row]),
        [["A", "Floor", 9900, 10, 20], ["B", "Balcony", 4550, 5, 26]]);
      assert.equal(made.currency, "USD");
      assert.equal(made.starts_at, "2030-01-01T19:00:00Z");
      assert.equal(made.on_sale_at, "2029-12-01T09:30:00Z");
      assert.equal(made.admission.abandon_seconds, 90);
      assert.equal(made.paused, true);
      assert.equal(made.venue, "Browser Hall");

      // The visitors see dollars.
      await page.goto(up.service.base + "/");
      assert.equal(await page.locator(`li.event[data-event="${id}"] .prices`).innerText(), "$45.50 to $99.00 per seat");
    });
  });

  test(`admin (${size}): a field that is not right is named in a sentence and focused`, async () => {
    await withPage(up.browser, "admin-invalid-" + size, { viewport }, async (page) => {
      await signIn(page);
      await page.click("#create-card summary");
      const form = page.locator("#create");
      const submit = () => page.click("#create button[type=submit]");
      const said = () => page.locator("#create-problem").innerText();
      const focused = () => page.evaluate(() => document.activeElement?.name);

      await form.locator("[name=id]").fill("Bad Id");
      await submit();
      assert.equal(await said(), "Id may hold only lower-case letters, digits and hyphens (at most 64), such as rock-2027.");
      assert.equal(await focused(), "id");

      await form.locator("[name=id]").fill("fine-" + size);
      await form.locator("[name=name]").fill("Fine");
      await form.locator("[name=starts_at]").fill("2030-01-01T20:00");
      await form.locator("[name=hold_seconds]").fill("");
      await submit();
      assert.equal(await said(), "Seconds a hold lasts must be a whole number, 1 or more.");
      assert.equal(await focused(), "hold_seconds");

      await form.locator("[name=hold_seconds]").fill("300");
      await form.locator("[name=section_price]").fill("ninety");
      await submit();
      assert.equal(await said(), "Section 1: Price per seat must be an amount such as 99.00 or 99.");
      assert.equal(await focused(), "section_price");
      assert.doesNotMatch(await said(), /invalid type|expected/);
      await shot(page, `admin-error-${size}`);

      // What only the service can know is said in words too, and the field focused.
      await createEvent(up.service.base, "taken-" + size);
      await form.locator("[name=section_price]").fill("99.00");
      await form.locator("[name=id]").fill("taken-" + size);
      await submit();
      await page.waitForFunction(() => document.querySelector("#create-problem").textContent.includes("exists already"));
      assert.equal(await said(), `An event with the id taken-${size} exists already: choose another id.`);
      assert.equal(await focused(), "id");
    });
  });
}

test("admin: nine events fit a compact table and one opens at a time", async () => {
  for (let i = 1; i <= 9; i++) {
    await createEvent(up.service.base, "nine-" + i, { name: "Concert number " + i, starts_at: `2031-0${i}-01T19:00:00Z` });
  }
  for (const [size, viewport] of SIZES) {
    await withPage(up.browser, "admin-nine-" + size, { viewport }, async (page) => {
      await signIn(page);
      await row(page, "nine-9").waitFor();
      const rows = await page.locator("#events-table tbody tr[data-event]").count();
      assert.ok(rows >= 9, `${rows} rows`);
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      assert.ok(height < 1400, `the page is ${height}px tall with every event closed`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await shot(page, `admin-table-${size}`);

      await row(page, "nine-2").locator("button.open").click();
      await page.locator("#detail").waitFor({ state: "visible" });
      assert.match(await page.locator("#detail-name").innerText(), /Concert number 2/);
      await row(page, "nine-7").locator("button.open").click();
      assert.match(await page.locator("#detail-name").innerText(), /Concert number 7/);
      assert.equal(await page.locator('button.open[aria-expanded="true"]').count(), 1);
      assert.equal(await row(page, "nine-2").locator("button.open").getAttribute("aria-expanded"), "false");
      // The details sit right under the opened row.
      assert.equal(await page.evaluate(() => document.querySelector("#detail-row").previousElementSibling.dataset.event), "nine-7");
      await row(page, "nine-7").locator("button.open").click();
      await page.locator("#detail").waitFor({ state: "hidden" });
    });
  }
});

test("admin in German: the table and the create form speak German", async () => {
  await createEvent(up.service.base, "deutsch", { paused: true });
  await withPage(up.browser, "admin-de", { viewport: SIZES[1][1], locale: "de-DE" }, async (page) => {
    await signIn(page);
    assert.equal(await page.locator("h1").innerText(), "Laufende Verkäufe");
    await row(page, "deutsch").waitFor();
    await page.waitForFunction(() => document.querySelector('tr[data-event="deutsch"] [data-col="state"]')?.textContent === "Einlass pausiert");
    await page.click("#create-card summary");
    await page.click("#create button[type=submit]");
    assert.equal(await page.locator("#create-problem").innerText(), "Kennung fehlt.");
    assert.match(await page.locator("#preview").innerText(), /200 Plätze zu je 99,00\s€/);
    await shot(page, "admin-de-phone");
  });
});
