// The seat page: the venue's map on a canvas (seatcanvas.js), kept live from the
// compact seat map's changes, picking by click or tap, by arrow keys or by name
// from lists, best-available proposals, hold, a countdown, a simulated payment and
// the confirmation. The pass comes from the waiting room (localStorage); its end
// is read from the pass itself and announced.
"use strict";

(function () {
  const shop = document.getElementById("shop");
  const eventId = shop.dataset.event;
  const $ = (id) => document.getElementById(id);
  const pass = localStorage.getItem("anteroom.pass." + eventId);
  const orderKey = "anteroom.order." + eventId;
  const mapPath = "/api/events/" + eventId + "/seatmap";
  // How often the map asks for what changed, unless the service asks for a pause (Retry-After).
  const MAP_EVERY_MS = 2000;
  const TEST_CARD = "4242424242424242";
  // The pass's last minute is announced.
  const PASS_WARNING_SECONDS = 60;
  // Seats our own expired hold freed stay shown free this long even if a lagging
  // map read still says held (the map may lag the truth by up to 1 s).
  const FREED_GRACE_MS = 3000;

  // The server's clock minus this browser's: the pass's end and the hold's are
  // the server's instants. Gaps of a second or two are the Date header's noise.
  let clockOffset = 0;
  const now = () => Date.now() + clockOffset;
  let event = null;
  let picked = new Set();
  let order = null;
  // The venue (seatcanvas.js's SeatLayout), each seat's state as the service last
  // said it (a STATE code per seat, in the layout's order), the version read, the view.
  let layout = null;
  let states = null;
  let version = null;
  let view = null;
  const freed = new Map();
  let countdown = null;
  let passEnded = false;
  let passWarned = false;
  // Bumped when a hold starts and when it ends, so that a map read overlapping
  // it cannot report the seats it took as taken by someone else.
  let generation = 0;
  let holding = false;

  const currency = () => event.currency || "EUR";
  /// The compact map's one-letter states, and the words for them.
  const STATE = { f: SHOWN.free, h: SHOWN.held, s: SHOWN.sold };
  const STATE_NAMES = ["free", "held", "sold"];
  const STATE_WORDS = {
    free: t("seats.state_free"), held: t("seats.state_held"), sold: t("seats.state_sold"),
    mine: t("seats.state_mine"), picked: t("seats.state_picked"),
  };

  function panel(name) {
    for (const id of ["picker", "checkout", "confirmation", "pass-ended"]) show($(id), id === name);
    // While paying, the pass matters only once it has ended: to say the hold is kept.
    show($("pass"), name === "picker" || name === "checkout" && passEnded);
  }

  /// A problem in words, where the eye is: by the basket and its Hold button
  /// while picking, under the payment form otherwise.
  function say(text) {
    const [here, there] = $("picker").hidden ? ["problem", "picker-problem"] : ["picker-problem", "problem"];
    problem($(there), "");
    problem($(here), text);
  }
  function tell(text) { $("status").textContent = text || ""; }

  // --- Seats by name ---------------------------------------------------------

  function sectionOf(id) { return layout.byId.get(id); }

  function parts(id) {
    const [section, row, seat] = id.split("-");
    return { section: sectionOf(section), row: Number(row), seat: Number(seat) };
  }

  function seatName(id) {
    const p = parts(id);
    return t("seats.seat_name", { section: p.section.name, row: p.row, seat: p.seat });
  }

  function seatIdOf(section, row, seat) { return section.id + "-" + row + "-" + seat; }

  /// A seat's state as the page should believe it: the service's word, except for
  /// seats our own ended hold freed a moment ago.
  function stateOf(id) {
    const index = layout.indexOf(id);
    if (index < 0) return "sold";
    return (freed.get(id) || 0) > Date.now() ? "free" : STATE_NAMES[states[index]];
  }

  function shownOf(id) { return orderHolds(id) ? "mine" : picked.has(id) ? "picked" : stateOf(id); }

  /// Several seats in one sentence; each name has commas of its own, so they are set apart by semicolons.
  function names(ids) { return ids.map(seatName).join("; "); }

  function fillList(list, ids, withPrice) {
    list.replaceChildren(...ids.map((id) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "seat-name";
      name.textContent = seatName(id);
      item.appendChild(name);
      if (withPrice) {
        const price = document.createElement("span");
        price.className = "muted";
        price.textContent = money(parts(id).section.price_cents, currency());
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link";
        remove.textContent = t("seats.remove");
        remove.setAttribute("aria-label", t("seats.remove_seat", { seat: seatName(id) }));
        remove.addEventListener("click", () => removeFromBasket(id));
        item.append(" ", price, " ", remove);
      }
      return item;
    }));
  }

  function when(iso) {
    return new Intl.DateTimeFormat(LANG, {
      weekday: "long", year: "numeric", month: "long", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short",
    }).format(new Date(iso));
  }

  // --- Messages ----------------------------------------------------------------

  function explain(res, fallback) {
    const code = res.body && res.body.error;
    if (code === "seat_unavailable") {
      const seats = res.body.seats || [];
      return seats.length ? takenText(seats) : t("seats.no_block_anywhere");
    }
    if (code === "limit_exceeded") return t("seats.limit_exceeded", { limit: event.max_seats_per_user });
    if (code === "invalid_pass") return t("seats.pass_invalid");
    if (code === "expired") return t("seats.hold_expired_at_payment");
    if (code === "already_paid") return t("seats.already_paid");
    if (res.status === 429) return t("seats.too_many_requests");
    if (res.status === 503 || res.status === 0) return t("seats.busy");
    return fallback;
  }

  function takenText(ids) {
    return ids.length === 1 ? t("seats.taken_one", { seat: seatName(ids[0]) }) : t("seats.taken_many", { seats: names(ids) });
  }

  // --- The map -----------------------------------------------------------------

  function drawMap(sections) {
    layout = new SeatLayout(sections);
    const canvas = $("map");
    view = new SeatCanvas(canvas, layout, {
      shown: shownCode,
      free: (index) => states[index] === STATE.f,
      label: (section, free, short) => {
        const price = money(section.price_cents, currency());
        if (short) return t("seats.section_label_short", { section: section.name, price });
        const total = (section.rows * section.seats_per_row).toLocaleString(LANG);
        return t("seats.section_label", { section: section.name, price, free: free.toLocaleString(LANG), total });
      },
      marked: () => [...picked, ...(order ? order.seats : [])].map((id) => layout.indexOf(id)),
      onPick: (index) => {
        const id = layout.idOf(index);
        toggle(id);
        pointAt(index);
      },
      onPoint: pointAt,
    });
    // Read by the browser tests, which aim at a seat the way a person would.
    canvas.seatBox = (id) => view.seatBox(layout.indexOf(id));
    canvas.seatShown = (id) => shownOf(id);
    $("zoom-in").addEventListener("click", () => view.zoomBy(2));
    $("zoom-out").addEventListener("click", () => view.zoomBy(0.5));
    $("zoom-all").addEventListener("click", () => view.showAll());
  }

  /// Says which seat the pointer or the keyboard is on, and in what state.
  function pointAt(index) {
    if (index < 0) return;
    const id = layout.idOf(index);
    $("map-seat").textContent = t("seats.seat_state", { seat: seatName(id), state: STATE_WORDS[shownOf(id)] });
  }

  /// Brings a seat into sight on the map, zoomed in enough to pick it.
  function revealInMap(id) { view.reveal(layout.indexOf(id), SeatCanvas.PICK_TOUCH); }

  function orderHolds(id) {
    return order && (order.status === "pending" || order.status === "paid") && order.seats.includes(id);
  }

  /// The few seats not shown as the service says: picked, ours, or just freed by our ended hold.
  let ownSeats = new Set();

  /// What the map shows of a seat (a SHOWN code; the service's STATE codes are the same numbers).
  function shownCode(index) { return ownSeats.has(index) ? SHOWN[shownOf(layout.idOf(index))] : states[index]; }

  /// These seats changed in the page's eyes; the map follows.
  function paint(ids) {
    const graced = [...freed].filter(([, until]) => until > Date.now()).map(([id]) => id);
    const own = [...picked, ...graced, ...(order ? order.seats : [])];
    ownSeats = new Set(own.map((id) => layout.indexOf(id)));
    view.repaint(ids.map((id) => layout.indexOf(id)));
  }

  /// The states of the whole venue, one letter per seat.
  function readStates(letters) {
    if (!states || states.length !== letters.length) states = new Uint8Array(letters.length);
    for (let i = 0; i < letters.length; i++) states[i] = STATE[letters[i]] ?? STATE.s;
  }

  /// Reads what changed on the map since the version the page has (the whole map
  /// the first time, or when the service no longer keeps the changes since then),
  /// and tells the buyer about picked seats someone else took.
  async function readMap() {
    const started = generation;
    const since = version;
    const res = since === null
      ? await api("GET", mapPath)
      : await api("GET", mapPath + "?since=" + since, undefined, undefined, { "If-None-Match": 'W/"' + since + '"' });
    if (res.status === 304) return MAP_EVERY_MS;
    if (res.status !== 200 || !res.body) return Math.max(MAP_EVERY_MS, res.retryAfter * 1000);
    // A read overlapping a hold of ours could show its seats as taken by someone
    // else: it is dropped, and the next read asks again from the same version.
    if (started !== generation || holding || since !== version) return MAP_EVERY_MS;
    let rowChanged = false;
    if (typeof res.body.states === "string") {
      readStates(res.body.states);
      view.repaintAll();
      rowChanged = true;
    } else {
      const changed = [];
      const listed = $("pick-section").value + "-" + $("pick-row").value + "-";
      for (const [id, letter] of Object.entries(res.body.changes || {})) {
        const index = layout.indexOf(id);
        if (index < 0) continue;
        states[index] = STATE[letter] ?? STATE.s;
        changed.push(index);
        rowChanged ||= id.startsWith(listed);
      }
      if (changed.length) view.repaint(changed);
    }
    version = String(res.body.version);
    const taken = [...picked].filter((id) => stateOf(id) !== "free");
    if (taken.length) {
      taken.forEach((id) => picked.delete(id));
      paint(taken);
      say(takenText(taken));
      hideProposal();
      summarize();
    }
    if (rowChanged || taken.length) fillSeatOptions();
    return MAP_EVERY_MS;
  }

  /// One read at a time; asked for during one, another follows it.
  let reading = null, readAgain = false;
  function refresh() {
    if (reading) {
      readAgain = true;
      return reading;
    }
    reading = readMap().finally(() => {
      reading = null;
      if (readAgain) {
        readAgain = false;
        refresh();
      }
    });
    return reading;
  }

  /// Reads the map every MAP_EVERY_MS (longer when the service asks), only while the page is seen.
  async function keepMapLive() {
    const wait = document.hidden ? MAP_EVERY_MS : await refresh();
    setTimeout(keepMapLive, wait || MAP_EVERY_MS);
  }

  // --- Picking -----------------------------------------------------------------

  /// Picks a free seat, within the limit; says why not otherwise.
  function pick(id) {
    if (picked.has(id)) return true;
    if (stateOf(id) !== "free") {
      say(t("seats.not_free", { seat: seatName(id) }));
      return false;
    }
    if (picked.size >= event.max_seats_per_user) {
      say(t("seats.pick_limit", { limit: event.max_seats_per_user }));
      return false;
    }
    picked.add(id);
    say("");
    changed(id);
    return true;
  }

  function unpick(id) {
    picked.delete(id);
    changed(id);
    tell(t("seats.removed", { seat: seatName(id) }));
  }

  /// Removing from the basket takes its button away: focus goes on to the basket.
  function removeFromBasket(id) {
    unpick(id);
    if (!$("hold").disabled) $("hold").focus();
    else $("basket-title").focus();
  }

  function changed(id) {
    hideProposal();
    paint([id]);
    fillSeatOptions();
    summarize();
  }

  function toggle(id) {
    if (order && order.status === "pending") return;
    if (picked.has(id)) unpick(id);
    else pick(id);
  }

  function hideProposal() { show($("proposal"), false); }

  function summarize() {
    const ids = [...picked];
    fillList($("picked"), ids, true);
    show($("picked-none"), ids.length === 0);
    const total = ids.reduce((sum, id) => sum + parts(id).section.price_cents, 0);
    $("total").textContent = t("seats.total", { amount: money(total, currency()) });
    show($("total"), ids.length > 0);
    $("hold").disabled = ids.length === 0;
  }

  // The lists: section, row, seat, for those who would rather not use the map.
  function fillSections() {
    for (const section of event.sections) {
      $("pick-section").add(new Option(section.name, section.id));
      $("best-section").add(new Option(section.name, section.id));
    }
    fillRows();
  }

  function fillRows() {
    const section = sectionOf($("pick-section").value);
    const rows = $("pick-row");
    rows.replaceChildren();
    for (let row = 1; row <= section.rows; row++) rows.add(new Option(t("seats.row_n", { row }), String(row)));
    fillSeatOptions(true);
  }

  function fillSeatOptions(rebuild) {
    const section = sectionOf($("pick-section").value);
    const row = Number($("pick-row").value);
    if (!section || !row) return;
    const seats = $("pick-seat");
    if (rebuild) {
      seats.replaceChildren();
      for (let n = 1; n <= section.seats_per_row; n++) seats.add(new Option("", String(n)));
    }
    for (const option of seats.options) {
      const id = seatIdOf(section, row, Number(option.value));
      const state = picked.has(id) ? "picked" : orderHolds(id) ? "mine" : stateOf(id);
      option.textContent = state === "free"
        ? t("seats.seat_n", { seat: option.value })
        : t("seats.seat_n_state", { seat: option.value, state: STATE_WORDS[state] });
      option.disabled = state !== "free";
    }
    if (rebuild || seats.selectedOptions[0]?.disabled) {
      const firstFree = [...seats.options].find((o) => !o.disabled);
      if (firstFree) seats.value = firstFree.value;
    }
  }

  // --- The pass --------------------------------------------------------------

  /// When the pass ends (ms since the epoch), read from the pass itself, or null.
  /// A pass is `base64url(payload).base64url(mac)` with the payload
  /// `<tag>|<event>|<key>|<token id>|<expiry ms>`, or a JWT whose claims carry `exp`.
  function passEndsAt(raw) {
    const decode = (part) => atob(part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4));
    try {
      const pieces = raw.split(".");
      if (pieces.length === 3) return JSON.parse(decode(pieces[1])).exp * 1000 || null;
      const fields = decode(pieces[0]).split("|");
      const ms = Number(fields[4]);
      return fields.length === 5 && Number.isFinite(ms) ? ms : null;
    } catch (_) {
      return null;
    }
  }

  function watchPass() {
    const endsAt = passEndsAt(pass);
    if (!endsAt) return;
    const tick = () => {
      const left = (endsAt - now()) / 1000;
      if (left <= 0) {
        clearInterval(timer);
        return passRanOut();
      }
      $("pass-left").textContent = t("seats.pass_left", { time: duration(left) });
      if (left <= PASS_WARNING_SECONDS && !passWarned && !$("picker").hidden) {
        passWarned = true;
        problem($("pass-warning"), t("seats.pass_warning"));
      }
    };
    const timer = setInterval(tick, 1000);
    tick();
  }

  /// No new holds without a pass; a hold already made stays payable.
  function passRanOut() {
    passEnded = true;
    show($("pass-warning"), false);
    $("pass-left").textContent = t("seats.pass_over_hold_kept");
    show($("pass"), !$("checkout").hidden);
    // A pending hold stays payable, and a confirmation stays on screen.
    if (!order) {
      say("");
      endOfPass();
    }
  }

  function endOfPass() {
    passEnded = true;
    picked.clear();
    panel("pass-ended");
    $("pass-ended-title").focus();
  }

  /// Back to choosing seats, or to the way back to the line once the pass has ended.
  function backToPicking() {
    if (passEnded) return endOfPass();
    panel("picker");
  }

  // --- Hold, pay, confirmation ------------------------------------------------

  function remember(o) {
    order = o;
    if (o) localStorage.setItem(orderKey, o.order_id);
    else localStorage.removeItem(orderKey);
  }

  function checkout(o) {
    remember(o);
    picked.clear();
    hideProposal();
    summarize();
    panel("checkout");
    if (passEnded) $("pass-left").textContent = t("seats.pass_over_hold_kept");
    fillList($("held-seats"), o.seats, false);
    $("amount").textContent = money(o.amount_cents, currency());
    clearInterval(countdown);
    const tick = () => {
      const left = (new Date(o.expires_at) - now()) / 1000;
      $("timer").textContent = duration(left);
      if (left <= 0) {
        clearInterval(countdown);
        holdRanOut(o);
      }
    };
    tick();
    countdown = setInterval(tick, 1000);
    paint(o.seats);
    refresh();
  }

  /// The time to pay is up: once the service has ended the hold, its seats are
  /// shown free on the map in the same moment the page says so.
  async function holdRanOut(o) {
    $("timer").textContent = t("seats.hold_ending");
    let ended = null;
    for (let attempt = 0; attempt < 20 && !ended; attempt++) {
      const res = await api("GET", "/api/orders/" + o.order_id, undefined, pass);
      if (res.status === 200 && res.body.status !== "pending") ended = res.body;
      else await new Promise((r) => setTimeout(r, 500));
    }
    if (ended && ended.status === "paid") return confirmed(ended);
    remember(null);
    showFreed(o.seats);
    backToPicking();
    say(t("seats.hold_expired"));
    refresh();
  }

  /// Seats our own order no longer holds, shown free at once: a map read already
  /// under way, or one lagging behind the truth, must not paint them held again.
  function showFreed(ids) {
    generation++;
    const until = Date.now() + FREED_GRACE_MS;
    for (const id of ids) freed.set(id, until);
    paint(ids);
    // Once the grace is over, the service's word shows again, whatever it is.
    setTimeout(() => paint(ids), FREED_GRACE_MS);
    fillSeatOptions();
  }

  function confirmed(o) {
    clearInterval(countdown);
    remember(o);
    panel("confirmation");
    $("confirmed-event").textContent = event.name;
    $("confirmed-when").textContent = when(event.starts_at);
    $("confirmed-when").setAttribute("datetime", event.starts_at);
    $("confirmed-where").textContent = event.venue;
    fillList($("confirmed-seats"), o.seats, false);
    $("paid-amount").textContent = money(o.amount_cents, currency());
    $("order-id").textContent = o.order_id;
    paint(o.seats);
    refresh();
  }

  async function hold() {
    say("");
    tell("");
    holding = true;
    generation++;
    const res = await api("POST", "/api/events/" + eventId + "/holds", { seats: [...picked] }, pass);
    holding = false;
    generation++;
    if (res.status === 201) {
      tell(t("seats.held_status"));
      return checkout(res.body);
    }
    if (res.status === 401) return endOfPass();
    const taken = res.status === 409 && res.body ? res.body.seats || [] : [];
    for (const id of taken) {
      picked.delete(id);
      const index = layout.indexOf(id);
      if (index >= 0) states[index] = STATE.h;
    }
    if (taken.length) {
      paint(taken);
      hideProposal();
      fillSeatOptions();
      summarize();
    }
    say(explain(res, t("seats.hold_failed")));
    refresh();
  }

  async function propose(e) {
    e.preventDefault();
    say("");
    const count = Number($("best-count").value);
    const section = $("best-section").value;
    const query = "?count=" + count + (section ? "&section=" + encodeURIComponent(section) : "");
    const res = await api("GET", "/api/events/" + eventId + "/best_available" + query);
    if (res.status === 200) {
      const before = [...picked];
      picked = new Set(res.body.seats);
      paint([...before, ...res.body.seats]);
      fillSeatOptions();
      summarize();
      const proposal = t("seats.proposed", { seats: names(res.body.seats) });
      $("proposal").textContent = proposal;
      show($("proposal"), true);
      tell(proposal);
      revealInMap(res.body.seats[0]);
      $("proposal").scrollIntoView({ block: "nearest" });
      return;
    }
    if (res.status === 409) {
      const name = section ? sectionOf(section).name : "";
      return say(section ? t("seats.no_block_in", { count, section: name }) : t("seats.no_block", { count }));
    }
    say(explain(res, t("seats.propose_failed")));
  }

  $("hold").addEventListener("click", hold);
  $("best").addEventListener("submit", propose);
  $("pick-section").addEventListener("change", fillRows);
  $("pick-row").addEventListener("change", () => fillSeatOptions(true));
  $("by-name").addEventListener("submit", (e) => {
    e.preventDefault();
    const section = sectionOf($("pick-section").value);
    const id = seatIdOf(section, Number($("pick-row").value), Number($("pick-seat").value));
    if (pick(id)) tell(t("seats.added", { seat: seatName(id) }));
  });
  $("skip-map").addEventListener("click", (e) => {
    e.preventDefault();
    $("pick-section").focus();
  });
  $("pay").addEventListener("submit", async (e) => {
    e.preventDefault();
    const digits = $("card").value.replace(/\D/g, "");
    if (digits !== TEST_CARD) return say(t("seats.card_declined"));
    const ref = "card-" + digits.slice(-4) + "-" + crypto.randomUUID().slice(0, 8);
    const res = await api("POST", "/api/orders/" + order.order_id + "/pay", { payment_ref: ref }, pass);
    if (res.status === 200) {
      say("");
      tell("");
      confirmed(res.body);
      $("confirmation-title").focus();
      return;
    }
    if (res.status === 410) {
      clearInterval(countdown);
      const lost = order.seats;
      remember(null);
      showFreed(lost);
      backToPicking();
      refresh();
    }
    say(explain(res, t("seats.payment_failed")));
  });
  $("release").addEventListener("click", async () => {
    const res = await api("DELETE", "/api/orders/" + order.order_id, undefined, pass);
    if (res.status === 200 || res.status === 410) {
      clearInterval(countdown);
      const released = order.seats;
      remember(null);
      showFreed(released);
      say("");
      tell(t("seats.released"));
      backToPicking();
      return refresh();
    }
    say(explain(res, t("seats.release_failed")));
  });

  async function start() {
    if (!pass) {
      show($("nopass"), true);
      show($("picker"), false);
      return;
    }
    const [res, map] = await Promise.all([api("GET", "/api/events/" + eventId), api("GET", mapPath)]);
    if (res.status !== 200) return say(t("seats.no_event"));
    event = res.body;
    // The Date header is whole seconds, rounded down, and stamped before the answer
    // travelled: the server's clock is up to a second or so later; never promise more time.
    const offset = res.serverDate ? res.serverDate + 1000 - Date.now() : 0;
    // A clock behind the server's would show more time than the pass has: always
    // follow it; one ahead shows less, so only a large gap is corrected.
    if (offset > 0 || offset < -2000) clockOffset = offset;
    $("event-info").textContent = t("seats.event_info", { venue: event.venue, when: when(event.starts_at) });
    for (let n = 1; n <= event.max_seats_per_user; n++) {
      $("best-count").add(new Option(String(n), String(n), n === 2, n === 2));
    }
    // The map is drawn from the compact map's sections and states; without them
    // (a busy service), from the event's sections, all free until the first read.
    const whole = map.status === 200 && map.body && typeof map.body.states === "string";
    const sections = whole ? map.body.sections : event.sections;
    if (whole) {
      readStates(map.body.states);
      version = String(map.body.version);
    } else {
      states = new Uint8Array(sections.reduce((seats, s) => seats + s.rows * s.seats_per_row, 0));
    }
    drawMap(sections);
    $("map").setAttribute("aria-busy", "false");
    performance.mark("seat-map-ready");
    fillSections();
    panel("picker");
    const saved = localStorage.getItem(orderKey);
    if (saved) {
      const found = await api("GET", "/api/orders/" + saved, undefined, pass);
      if (found.status === 200 && found.body.status === "pending") checkout(found.body);
      else if (found.status === 200 && found.body.status === "paid") confirmed(found.body);
      else remember(null);
    }
    watchPass();
    setTimeout(keepMapLive, whole ? MAP_EVERY_MS : 0);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  }

  start();
})();
