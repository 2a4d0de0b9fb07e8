// An invitation-only presale end to end: the operator makes codes through the
// API, the waiting room asks for one (by keyboard), says in words that a wrong
// one is not this sale's and how long to wait after too many, joins with the
// right one, is admitted and holds a seat. The same code on another device
// finds the same place. Desktop and phone, a screenshot of every state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS, mapReady, clickSeat } from "./support.mjs";

const up = serviceAndBrowser();
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

async function snap(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: true });
}

async function codesFor(event, count) {
  const res = await api(up.service.base, "POST", `/api/admin/events/${event}/codes`, { count }, ADMIN);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.codes;
}

for (const [size, viewport] of Object.entries(SIZES)) {
  test(`${size}: a presale asks for the code, refuses a wrong one in words, admits the right one to a seat`, async () => {
    const event = "presale-" + size;
    await createEvent(up.service.base, event, { access: "codes" });
    const [code] = await codesFor(event, 2);
    await withPage(up.browser, "presale-" + size, { viewport }, async (page) => {
      await page.goto(`${up.service.base}/events/${event}`);
      const input = page.getByLabel("Your invitation code");
      await input.waitFor({ state: "visible" });
      assert.equal(await page.evaluate(() => document.activeElement.id), "code-input", "the input has the focus");
      await snap(page, `presale-ask-${size}`);

      // Sent empty: the page says what is missing, without asking the service.
      await page.keyboard.press("Enter");
      assert.equal(await page.locator("#code-error").innerText(), "Type your invitation code first.");

      await input.fill("WRNG-CODE-0000-0000");
      await page.keyboard.press("Enter");
      await page.locator("#code-error").filter({ hasText: "not one of this sale's codes" }).waitFor();
      assert.equal(await input.getAttribute("aria-invalid"), "true");
      assert.equal(await page.evaluate(() => document.activeElement.id), "code-input", "back to the input to correct it");
      await snap(page, `presale-wrong-${size}`);

      // Typed as people do: lower case, spaces instead of dashes.
      await input.fill(code.toLowerCase().replaceAll("-", " "));
      await page.keyboard.press("Enter");
      await page.waitForURL(`**/events/${event}/seats`, { timeout: 15000 });
      await mapReady(page);
      await clickSeat(page, "A-1-1");
      await page.click("#hold");
      await page.locator("#checkout").waitFor({ state: "visible" });
      await snap(page, `presale-held-${size}`);
    });
    const stats = await api(up.service.base, "GET", `/api/admin/events/${event}/stats`, undefined, ADMIN);
    assert.equal(stats.body.held_seats, 1);
    assert.equal(stats.body.refused.invalid_code, 1);
    const codes = await api(up.service.base, "GET", `/api/admin/events/${event}/codes/stats`, undefined, ADMIN);
    assert.deepEqual(codes.body, { issued: 2, used: 1 });

    // Another device with the same code: the same place, not a second one.
    const again = await api(up.service.base, "POST", `/api/events/${event}/queue`, { code, visitor: "another-device" });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });
}

test("after too many wrong codes the page says how long to wait, then lets the fan in (phone)", async () => {
  const event = "guessed";
  await createEvent(up.service.base, event, { access: "codes", paused: true });
  const [code] = await codesFor(event, 1);
  // The attempts must fall in one minute's window.
  const second = new Date().getUTCSeconds();
  if (second >= 45) await new Promise((r) => setTimeout(r, (61 - second) * 1000));
  // Ten wrong codes a minute per address, whatever the event: the tests before
  // this one may have used some of this minute's, so guess until refused.
  let answer;
  for (let i = 0; i <= 10; i++) {
    answer = await api(up.service.base, "POST", `/api/events/${event}/queue`, { code: "GUESS-" + i });
    if (answer.body.error !== "invalid_code") break;
  }
  assert.equal(answer.status, 429);
  assert.equal(answer.body.error, "rate_limited");
  await withPage(up.browser, "presale-wait-phone", { viewport: SIZES.phone }, async (page) => {
    await page.goto(`${up.service.base}/events/${event}`);
    const input = page.getByLabel("Your invitation code");
    await input.fill(code);
    await page.keyboard.press("Enter");
    await page.locator("#code-error").filter({ hasText: "Too many codes were tried" }).waitFor();
    assert.match(await page.locator("#code-error").innerText(), /You can try again in \d+ s\.$/);
    assert.equal(await page.locator("#code-submit").isDisabled(), true, "sending again waits");
    await snap(page, "presale-wait-phone");
    await page.locator("#code-submit:enabled").waitFor({ timeout: 65000 });
    await page.keyboard.press("Enter");
    await page.locator("#waiting").waitFor({ state: "visible" });
    assert.match(await page.locator("#eta").innerText(), /Admission is paused/);
    await snap(page, "presale-waiting-phone");
  });
});
