// An operator steers a live sale in the browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS } from "./support.mjs";

const up = serviceAndBrowser();

test("sign in, watch live stats, change the rate, pause, create an event", async () => {
  await createEvent(up.service.base, "live", { paused: true });
  for (let i = 0; i < 3; i++) await api(up.service.base, "POST", "/api/events/live/queue");
  await withPage(up.browser, "admin", { viewport: { width: 1100, height: 900 } }, async (page) => {
    await page.goto(up.service.base + "/admin");
    await page.fill("#token", "wrong");
    await page.click("#signin button");
    await page.locator("#signin-problem").waitFor({ state: "visible" });
    await page.fill("#token", ADMIN);
    await page.click("#signin button");
    const card = page.locator('[data-event="live"]');
    await card.waitFor();
    await page.waitForFunction(() => document.querySelector('[data-event="live"] dd[data-stat="waiting"]')?.textContent === "3");

    await card.locator("input[name=per_second]").fill("7");
    await card.locator("button[type=submit]").click();
    await page.waitForFunction(async () => (await (await fetch("/api/events/live")).json()).admission.per_second === 7);
    await card.locator(".pause").click();
    await page.waitForFunction(async () => (await (await fetch("/api/events/live")).json()).paused === false);
    await page.waitForFunction(() => document.querySelector('[data-event="live"] dd[data-stat="admitted_total"]')?.textContent === "3");
    assert.ok((await card.locator(".chart polyline").count()) === 3);

    await page.click("#create-card summary");
    await page.fill("#create input[name=id]", "made-in-browser");
    await page.fill("#create input[name=name]", "Made in the browser");
    await page.fill("#create input[name=starts_at]", "2030-01-01T20:00");
    await page.click("#create button[type=submit]");
    await page.locator('[data-event="made-in-browser"]').waitFor({ timeout: 5000 });
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "admin.png"), fullPage: true });
  });
  const made = await api(up.service.base, "GET", "/api/events/made-in-browser");
  assert.equal(made.status, 200);
  assert.equal(made.body.seats_total, 200);
});
