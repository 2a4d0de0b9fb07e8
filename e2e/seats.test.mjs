// The seat page's journeys, at desktop and phone sizes: the pass's time and its
// end, a picked seat taken by someone else, choose-for-me as a proposal, the
// keyboard's ways through the page, a hold running out, touch-sized seats, German.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serviceAndBrowser, createEvent, withPage, api, ADMIN, SCREENSHOTS, clickSeat, seatCentre, seatShown, mapReady, fingers, line } from "./support.mjs";

const up = serviceAndBrowser();

const SIZES = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};

async function snap(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, "seats-" + name + ".png"), fullPage: true });
}

/// Through the waiting room (it admits at once) onto the seat page, the map drawn.
async function enterSeats(page, id, query = "") {
  await page.goto(up.service.base + "/events/" + id + query);
  await page.waitForURL("**/events/" + id + "/seats", { timeout: 15000 });
  await mapReady(page);
}

/// Someone else: a pass of their own, through the API.
async function otherPass(id) {
  const join = await api(up.service.base, "POST", "/api/events/" + id + "/queue");
  for (let i = 0; i < 50; i++) {
    const pass = (await api(up.service.base, "GET", "/api/queue/" + join.body.token)).body.pass;
    if (pass) return pass;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the other visitor was never admitted");
}

const basket = (page) => page.locator("#picked .seat-name").allTextContents();

for (const [size, options] of Object.entries(SIZES)) {
  test(`${size}: the pass's time is shown, its last minute announced, and once it ends the way back to the line`, async () => {
    const id = "pass-" + size;
    await createEvent(up.service.base, id, { admission: { per_second: 50, max_active: 100, pass_seconds: 6 } });
    await withPage(up.browser, "seats-pass-" + size, options, async (page) => {
      await enterSeats(page, id);
      assert.match(await page.locator("#pass-left").textContent(), /Your admission pass lets you hold seats for \d+ s more/);
      const warning = page.locator("#pass-warning");
      await warning.waitFor({ state: "visible" });
      assert.equal(await warning.getAttribute("role"), "alert");
      assert.match(await warning.textContent(), /Less than a minute left on your admission pass/);
      await clickSeat(page, "A-1-1");
      await snap(page, "pass-warning-" + size);

      await page.locator("#pass-ended").waitFor({ state: "visible", timeout: 10000 });
      assert.equal(await page.locator("#picker").isVisible(), false, "no seats to pick without a pass");
      assert.match(await page.locator("#pass-ended").textContent(), /Your admission pass has ended/);
      const back = page.locator("#back-to-line");
      assert.equal(await back.textContent(), "Back to the waiting room");
      await snap(page, "pass-ended-" + size);
      await back.click();
      await page.waitForURL((url) => url.pathname === "/events/" + id);
    });
  });

  test(`${size}: a picked seat taken by someone else is announced in words and leaves the basket`, async () => {
    const id = "taken-" + size;
    await createEvent(up.service.base, id);
    await withPage(up.browser, "seats-taken-" + size, options, async (page) => {
      await enterSeats(page, id);
      await clickSeat(page, "A-1-3");
      await clickSeat(page, "A-1-4");
      assert.deepEqual(await basket(page), ["Floor, row 1, seat 3", "Floor, row 1, seat 4"]);
      assert.match(await page.locator("#total").textContent(), /€100\.00/);
      assert.equal((await api(up.service.base, "POST", `/api/events/${id}/holds`, { seats: ["A-1-3"] }, await otherPass(id))).status, 201);

      const problem = page.locator("#picker-problem");
      await problem.waitFor({ state: "visible", timeout: 5000 });
      assert.equal(await problem.textContent(), "Floor, row 1, seat 3 was just taken by someone else; pick another.");
      assert.equal(await problem.getAttribute("role"), "alert");
      assert.deepEqual(await basket(page), ["Floor, row 1, seat 4"]);
      assert.match(await page.locator("#total").textContent(), /€50\.00/);
      assert.equal(await seatShown(page, "A-1-3"), "held");
      await snap(page, "taken-" + size);
    });
  });

  test(`${size}: choose for me proposes seats, the buyer changes one and holds them`, async () => {
    const id = "choose-" + size;
    await createEvent(up.service.base, id);
    await withPage(up.browser, "seats-choose-" + size, options, async (page) => {
      await enterSeats(page, id);
      await page.selectOption("#best-count", "3");
      await page.click("#choose");
      await page.locator("#proposal").waitFor({ state: "visible" });
      assert.match(await page.locator("#proposal").textContent(),
        /^We suggest Floor, row 1, seat 1; Floor, row 1, seat 2; Floor, row 1, seat 3\. Hold them/);
      assert.deepEqual(await basket(page), ["Floor, row 1, seat 1", "Floor, row 1, seat 2", "Floor, row 1, seat 3"]);
      assert.equal(await seatShown(page, "A-1-2"), "picked");
      assert.equal(await page.locator("#checkout").isVisible(), false, "nothing is held before the buyer says so");
      const stats = await api(up.service.base, "GET", `/api/admin/events/${id}/stats`, undefined, ADMIN);
      assert.equal(stats.body.held_seats, 0);
      await snap(page, "proposal-" + size);

      await page.click('#picked button[aria-label="Remove Floor, row 1, seat 3"]');
      await clickSeat(page, "A-2-5");
      assert.deepEqual(await basket(page), ["Floor, row 1, seat 1", "Floor, row 1, seat 2", "Floor, row 2, seat 5"]);
      await page.click("#hold");
      await page.locator("#checkout").waitFor({ state: "visible" });
      assert.deepEqual(await page.locator("#held-seats .seat-name").allTextContents(),
        ["Floor, row 1, seat 1", "Floor, row 1, seat 2", "Floor, row 2, seat 5"]);
      assert.equal(await page.locator("#amount").textContent(), "€150.00");
      assert.equal(await page.locator("#pass").isVisible(), false, "a valid pass is no concern while paying");
      await snap(page, "held-" + size);
    });
  });
}

test("a hold made before the pass ends can still be paid after it", async () => {
  await createEvent(up.service.base, "passhold", { admission: { per_second: 50, max_active: 100, pass_seconds: 5 } });
  await withPage(up.browser, "seats-passhold", SIZES.phone, async (page) => {
    await enterSeats(page, "passhold");
    await clickSeat(page, "A-1-1");
    await page.click("#hold");
    await page.locator("#checkout").waitFor({ state: "visible" });
    await page.waitForFunction(() => /has ended, but the seats you hold stay yours/.test(document.getElementById("pass-left").textContent),
      null, { timeout: 10000 });
    assert.equal(await page.locator("#checkout").isVisible(), true, "the checkout stays");
    assert.equal(await page.locator("#pass-left").isVisible(), true, "and says the hold is kept");
    assert.equal(await page.locator("#pass-ended").isVisible(), false);
    await snap(page, "held-pass-over-phone");
    await page.fill("#card", "4242 4242 4242 4242");
    await page.fill("#cardholder", "Ada Lovelace");
    await page.click("#pay button[type=submit]");
    await page.locator("#confirmation").waitFor({ state: "visible" });
    assert.deepEqual(await page.locator("#confirmed-seats .seat-name").allTextContents(), ["Floor, row 1, seat 1"]);
  });
});

test("a visitor whose clock is ten minutes fast still sees the pass's true time", async () => {
  await createEvent(up.service.base, "skew");
  await withPage(up.browser, "seats-skew", SIZES.desktop, async (page) => {
    await page.clock.install({ time: Date.now() + 10 * 60 * 1000 });
    await enterSeats(page, "skew");
    await page.waitForFunction(() => document.getElementById("pass-left").textContent);
    assert.match(await page.locator("#pass-left").textContent(), /for 9 min \d+ s more/);
    assert.equal(await page.locator("#pass-ended").isVisible(), false);
  });
});

test("no block of seats side by side: choose for me says so in words", async () => {
  await createEvent(up.service.base, "noblock", { sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 1, seats_per_row: 3 }] });
  await withPage(up.browser, "seats-noblock", SIZES.desktop, async (page) => {
    await enterSeats(page, "noblock");
    await page.selectOption("#best-count", "4");
    await page.click("#choose");
    await page.locator("#picker-problem").waitFor({ state: "visible" });
    assert.equal(await page.locator("#picker-problem").textContent(), "No 4 free seats side by side are left. Try fewer seats.");
  });
});

test("keyboard: the map is one Tab stop moved by arrow keys, the skip link leads to the lists, a seat is added by name", async () => {
  await createEvent(up.service.base, "keys");
  await withPage(up.browser, "seats-keys", SIZES.desktop, async (page) => {
    await enterSeats(page, "keys");
    const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.textContent);
    assert.equal(await page.locator("#map").getAttribute("tabindex"), "0", "one Tab stop for all 24 seats");
    assert.equal(await page.locator("#map").getAttribute("role"), "application");
    assert.match(await page.locator("#map-help").textContent(), /arrow keys move from seat to seat/, "the map's description");

    // From the top of the page, Tab reaches the skip link before the map.
    await page.locator("body").focus();
    let presses = 0;
    while ((await focused()) !== "skip-map" && presses < 10) {
      await page.keyboard.press("Tab");
      presses++;
    }
    assert.equal(await focused(), "skip-map");
    await snap(page, "skip-link-desktop");
    await page.keyboard.press("Enter");
    assert.equal(await focused(), "pick-section");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "pick-row");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "pick-seat");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "add-seat");
    await page.keyboard.press("Enter");
    assert.deepEqual(await basket(page), ["Floor, row 2, seat 3"]);
    assert.equal(await page.locator("#status").textContent(), "Floor, row 2, seat 3 added to your seats.");

    // The map: one stop, reached with Tab from the skip link, whose seat is named;
    // then the arrow keys; from it a few Tabs reach "Choose for me".
    await page.locator("#skip-map").focus();
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "map");
    assert.equal(await page.locator("#map-seat").textContent(), "Floor, row 1, seat 1: free");
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowDown");
    assert.equal(await focused(), "map");
    assert.equal(await page.locator("#map-seat").textContent(), "Floor, row 2, seat 2: free");
    await page.keyboard.press("Enter");
    assert.deepEqual(await basket(page), ["Floor, row 2, seat 3", "Floor, row 2, seat 2"]);
    assert.equal(await page.locator("#map-seat").textContent(), "Floor, row 2, seat 2: picked");
    await page.keyboard.press("+");
    assert.ok((await seatCentre(page, "A-2-2")).size > 20, "+ zooms in");
    await snap(page, "keyboard-cursor-desktop");
    presses = 0;
    while ((await focused()) !== "choose" && presses < 14) {
      await page.keyboard.press("Tab");
      presses++;
    }
    // The three zoom buttons, the lists (section, row, seat, add) and the count and section of "Choose for me".
    assert.equal(await focused(), "choose", "Choose for me is a few Tabs after the map, not one per seat");
    assert.ok(presses <= 10, presses + " Tabs");
  });
});

test("the map shows the seats free the moment the page says the hold ran out", async () => {
  await createEvent(up.service.base, "runout", { hold_seconds: 2 });
  await withPage(up.browser, "seats-runout", SIZES.desktop, async (page) => {
    await enterSeats(page, "runout");
    await clickSeat(page, "A-1-1");
    await clickSeat(page, "A-1-2");
    await page.click("#hold");
    await page.locator("#checkout").waitFor({ state: "visible" });
    await page.waitForFunction(() => document.getElementById("map").seatShown("A-1-1") === "mine");
    // The moment the words appear, the map must already agree with them.
    const atThatMoment = await page.waitForFunction(() => {
      const said = [...document.querySelectorAll("[role=alert]")].some((el) => !el.hidden && /free again/.test(el.textContent));
      if (!said) return false;
      return ["A-1-1", "A-1-2"].map((id) => document.getElementById("map").seatShown(id));
    }, null, { timeout: 15000 });
    assert.deepEqual(await atThatMoment.jsonValue(), ["free", "free"]);
    assert.equal(await page.locator("#picker-problem").textContent(), "Your time to pay ran out; the seats are free again.");
    await snap(page, "hold-ran-out-desktop");
  });
});

test("phone: seats are drawn at 24 CSS px or more and a wide map pans", async () => {
  await createEvent(up.service.base, "touch", { sections: [{ id: "A", name: "Floor", price_cents: 5000, rows: 4, seats_per_row: 20 }] });
  await withPage(up.browser, "seats-touch", SIZES.phone, async (page) => {
    await enterSeats(page, "touch");
    for (const id of ["A-1-1", "A-2-10", "A-4-20"]) {
      const { size } = await seatCentre(page, id);
      assert.ok(size >= 24, `${id}: ${size} px`);
    }
    assert.equal((await seatCentre(page, "A-4-20")).inSight, false, "the map pans rather than shrinking");
    assert.match(await page.locator("#map-help").textContent(), /Drag to move the map/, "and says so");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), "the page itself does not overflow");
    await clickSeat(page, "A-1-2", "tap");
    assert.deepEqual(await basket(page), ["Floor, row 1, seat 2"]);
    await snap(page, "map-phone");
    // A finger dragging the map to the left brings the row's end into sight.
    for (let swipe = 0; swipe < 2; swipe++) {
      const from = await seatCentre(page, "A-4-8");
      await fingers(page, [line(from, { x: from.x - 250, y: from.y })]);
    }
    assert.equal((await seatCentre(page, "A-4-20")).inSight, true, "dragged into sight");
    await clickSeat(page, "A-4-20", "tap");
    assert.deepEqual(await basket(page), ["Floor, row 1, seat 2", "Floor, row 4, seat 20"], "a drag picks nothing; a tap does");
  });
});

test("German: the seat page speaks German, seats named the German way", async () => {
  await createEvent(up.service.base, "deutsch");
  await withPage(up.browser, "seats-german", { ...SIZES.phone, locale: "de-DE" }, async (page) => {
    await enterSeats(page, "deutsch");
    assert.equal(await page.getAttribute("html", "lang"), "de");
    await page.locator("#skip-map").focus();
    await page.keyboard.press("Tab");
    assert.equal(await page.locator("#map-seat").textContent(), "Floor, Reihe 1, Platz 1: frei");
    await clickSeat(page, "A-1-1");
    assert.deepEqual(await basket(page), ["Floor, Reihe 1, Platz 1"]);
    assert.equal(await page.locator("#basket-title").textContent(), "Ihre Plätze");
    assert.match(await page.locator("#total").textContent(), /^Summe: 50,00\s€$/);
    assert.match(await page.locator("#pass-left").textContent(), /Mit Ihrem Einlassschein können Sie noch \d+ min \d+ s lang Plätze reservieren/);
    await snap(page, "german-phone");
  });
});

test("a whole map in answer to a since read (the service no longer has those changes) replaces every state", async () => {
  await createEvent(up.service.base, "wholemap");
  await withPage(up.browser, "seats-wholemap", SIZES.desktop, async (page) => {
    await enterSeats(page, "wholemap");
    await clickSeat(page, "A-2-3");
    // From now on every since read is answered as if its changes were gone: the whole map.
    const asked = [];
    await page.route("**/api/events/wholemap/seatmap?since=*", (route) => {
      asked.push(route.request().url());
      return route.continue({ url: up.service.base + "/api/events/wholemap/seatmap" });
    });
    const other = await otherPass("wholemap");
    assert.equal((await api(up.service.base, "POST", "/api/events/wholemap/holds", { seats: ["A-2-3", "A-3-8"] }, other)).status, 201);
    await page.locator("#picker-problem").waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await page.locator("#picker-problem").textContent(), "Floor, row 2, seat 3 was just taken by someone else; pick another.");
    assert.deepEqual([await seatShown(page, "A-2-3"), await seatShown(page, "A-3-8"), await seatShown(page, "A-1-1")], ["held", "held", "free"]);
    assert.ok(asked.length > 0);
  });
});

// --- A stadium: two sections of 100 rows × 500 seats -----------------------------

const STADIUM = [
  { id: "N", name: "North", price_cents: 9000, rows: 100, seats_per_row: 500 },
  { id: "S", name: "South", price_cents: 6000, rows: 100, seats_per_row: 500 },
];

/// Admitted through the waiting room, then onto the seat page again as a fresh
/// navigation: how long until its map is drawn and takes input (ms).
async function timeToMap(page, id) {
  await enterSeats(page, id);
  const started = Date.now();
  await page.goto(up.service.base + "/events/" + id + "/seats");
  await mapReady(page);
  return Date.now() - started;
}

const heapBytes = async (page) => {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("HeapProfiler.collectGarbage");
  const { usedSize } = await cdp.send("Runtime.getHeapUsage");
  await cdp.detach();
  return usedSize;
};

test("stadium, desktop: usable within 1.5 s, picked by mouse, by arrow keys and by name, held; small heap; only small since answers", async (t) => {
  const id = "stadium";
  await createEvent(up.service.base, id, { sections: STADIUM });
  await withPage(up.browser, "seats-stadium-desktop", SIZES.desktop, async (page) => {
    // Every answer to a map read: where, its status and its body's size (read at
    // once, so that none is left pending when the page closes).
    const reads = [];
    page.on("response", (res) => {
      const url = new URL(res.url());
      if (!url.pathname.startsWith("/api/events/" + id + "/seat")) return;
      const bytes = res.status() === 200 ? res.body().then((body) => body.length, () => Infinity) : 0;
      reads.push({ url: url.pathname + url.search, status: res.status(), bytes });
    });
    const ms = await timeToMap(page, id);
    t.diagnostic(`map usable ${ms} ms after navigation`);
    assert.ok(ms <= 1500, `the map took ${ms} ms`);
    reads.length = 0;
    const loaded = Date.now();
    await snap(page, "stadium-overview-desktop");

    // The whole venue is in sight, too small to aim at: a click zooms in there, the next picks.
    const aim = await seatCentre(page, "N-50-250");
    assert.ok(aim.inSight && aim.size < 7, "the overview: " + JSON.stringify(aim));
    await page.mouse.click(aim.x, aim.y);
    const zoomed = await seatCentre(page, "N-50-250");
    assert.ok(zoomed.inSight && zoomed.size >= 18, "zoomed in around the click: " + JSON.stringify(zoomed));
    assert.deepEqual(await basket(page), [], "the first click only zooms");
    await snap(page, "stadium-zoomed-desktop");
    await clickSeat(page, "N-50-250");
    assert.deepEqual(await basket(page), ["North, row 50, seat 250"]);
    assert.equal(await seatShown(page, "N-50-250"), "picked");

    // The wheel zooms out around the pointer, and the zoom buttons work too.
    await page.mouse.move(zoomed.x, zoomed.y);
    await page.mouse.wheel(0, 400);
    assert.ok((await seatCentre(page, "N-50-250")).size < zoomed.size, "the wheel zooms out");
    await page.click("#zoom-in");
    await page.click("#zoom-in");

    // The keyboard: the map's cursor is on the seat just clicked; one to the right, Enter.
    await page.locator("#map").focus();
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.locator("#map-seat").textContent(), "North, row 50, seat 251: free");
    await page.keyboard.press("Enter");
    // And by name, from lists of 100 rows and 500 seats.
    await page.selectOption("#pick-section", "S");
    await page.selectOption("#pick-row", "100");
    await page.selectOption("#pick-seat", "500");
    await page.click("#add-seat");
    assert.deepEqual(await basket(page), ["North, row 50, seat 250", "North, row 50, seat 251", "South, row 100, seat 500"]);
    await snap(page, "stadium-picked-desktop");

    // Twenty seconds of someone else buying: each change reaches the map in a small answer.
    const other = await otherPass(id);
    for (const seats of [["N-1-1", "N-1-2"], ["S-77-400"], ["N-50-252"]]) {
      assert.equal((await api(up.service.base, "POST", `/api/events/${id}/holds`, { seats }, other)).status, 201);
      await page.waitForTimeout(4000);
    }
    await page.waitForTimeout(Math.max(0, 20000 - (Date.now() - loaded)));
    assert.equal(await seatShown(page, "S-77-400"), "held");
    assert.equal(await seatShown(page, "N-50-252"), "held");
    const answers = await Promise.all(reads.map(async (read) => ({ ...read, bytes: await read.bytes })));
    assert.ok(answers.length >= 8, "the map was read every 2 s: " + answers.length);
    for (const answer of answers) {
      assert.match(answer.url, /\/seatmap\?since=\d+$/, "only since reads after the first load");
      assert.ok(answer.status === 200 || answer.status === 304, JSON.stringify(answer));
      assert.ok(answer.bytes <= 1024, "a small answer: " + JSON.stringify(answer));
    }
    assert.ok(answers.some((a) => a.status === 200 && a.bytes > 0), "the changes came in since answers");
    t.diagnostic(`${answers.length} map reads in 20 s, at most ${Math.max(...answers.map((a) => a.bytes))} bytes: ` +
      answers.map((a) => a.status + ":" + a.bytes).join(" "));

    const heap = await heapBytes(page);
    t.diagnostic(`JS heap ${(heap / 1e6).toFixed(1)} MB`);
    assert.ok(heap < 60e6, `JS heap ${heap} bytes`);

    await page.click("#hold");
    await page.locator("#checkout").waitFor({ state: "visible" });
    assert.deepEqual(await page.locator("#held-seats .seat-name").allTextContents(),
      ["North, row 50, seat 250", "North, row 50, seat 251", "South, row 100, seat 500"]);
    assert.equal(await seatShown(page, "N-50-251"), "mine");
  });
});

test("stadium, phone: usable within 1.5 s; a tap zooms in, a pinch zooms, a tap picks and the seat is held", async (t) => {
  const id = "stadium-phone";
  await createEvent(up.service.base, id, { sections: STADIUM });
  await withPage(up.browser, "seats-stadium-phone", SIZES.phone, async (page) => {
    const ms = await timeToMap(page, id);
    t.diagnostic(`map usable ${ms} ms after navigation`);
    assert.ok(ms <= 1500, `the map took ${ms} ms`);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), "the page does not overflow");
    await snap(page, "stadium-overview-phone");

    const aim = await seatCentre(page, "S-20-100");
    await page.touchscreen.tap(aim.x, aim.y);
    const zoomed = await seatCentre(page, "S-20-100");
    assert.ok(zoomed.inSight && zoomed.size >= 24, "a tap on the overview zooms in to finger size: " + JSON.stringify(zoomed));
    assert.deepEqual(await basket(page), []);

    // Two fingers apart: bigger seats, around the fingers.
    const c = { x: zoomed.x, y: zoomed.y };
    await fingers(page, [line({ x: c.x - 30, y: c.y }, { x: c.x - 60, y: c.y }), line({ x: c.x + 30, y: c.y }, { x: c.x + 60, y: c.y })]);
    const pinched = await seatCentre(page, "S-20-100");
    assert.ok(pinched.size > zoomed.size * 1.5, `pinched from ${zoomed.size} to ${pinched.size} px`);
    assert.ok(pinched.inSight, "the seat between the fingers stays in sight");
    await snap(page, "stadium-zoomed-phone");

    await clickSeat(page, "S-20-100", "tap");
    assert.deepEqual(await basket(page), ["South, row 20, seat 100"]);
    await snap(page, "stadium-picked-phone");
    await page.click("#hold");
    await page.locator("#checkout").waitFor({ state: "visible" });
    assert.equal(await seatShown(page, "S-20-100"), "mine");
  });
});
