// The operator's door: after ten wrong admin tokens from one address in a
// minute, the sign-in says how long to wait instead of "not right".
import { test } from "node:test";
import assert from "node:assert/strict";
import { serviceAndBrowser, withPage, api } from "./support.mjs";

const up = serviceAndBrowser();

test("admin sign-in after too many wrong tokens says when to try again (phone)", async () => {
  // The attempts must fall in one minute's window.
  const second = new Date().getUTCSeconds();
  if (second >= 50) await new Promise((r) => setTimeout(r, (61 - second) * 1000));
  for (let i = 0; i < 10; i++) {
    const guess = await api(up.service.base, "GET", "/api/admin/events/-/stats", undefined, "a-wrong-admin-token-guess-" + i);
    assert.equal(guess.status, 401);
  }
  await withPage(up.browser, "admin-door-phone", { viewport: { width: 390, height: 844 } }, async (page) => {
    await page.goto(up.service.base + "/admin");
    await page.fill("#token", "one-more-wrong-admin-token");
    await page.click("#signin button");
    await page.locator("#signin-problem").waitFor({ state: "visible" });
    assert.match(await page.locator("#signin-problem").innerText(),
      /^Too many wrong admin tokens came from here\. Try again in \d+ s\.$/);
    assert.equal(await page.locator("#dashboard").isVisible(), false, "not signed in");
    await page.screenshot({ path: new URL("./screenshots/admin-door-phone.png", import.meta.url).pathname });
  });
});
