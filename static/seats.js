// The seat map: an SVG of the venue refreshed live, picking by click or
// keyboard, best-available, hold, a countdown, a simulated payment and the
// confirmation. The pass comes from the waiting room (localStorage).
"use strict";

(function () {
  const shop = document.getElementById("shop");
  const eventId = shop.dataset.event;
  const $ = (id) => document.getElementById(id);
  const pass = localStorage.getItem("anteroom.pass." + eventId);
  const orderKey = "anteroom.order." + eventId;
  const SVG = "http://www.w3.org/2000/svg";
  const PITCH = 20, SIZE = 16, LEFT = 34, HEADER = 26;
  const TEST_CARD = "4242424242424242";
  let event = null;
  let picked = new Set();
  let order = null;
  const seatEls = new Map();
  let countdown = null;

  function panel(name) {
    for (const id of ["picker", "checkout", "confirmation"]) show($(id), id === name);
  }

  function say(text) { problem($("problem"), text); }

  function explain(res, fallback) {
    const code = res.body && res.body.error;
    if (code === "seat_unavailable") {
      const seats = res.body.seats || [];
      return seats.length ? "Sorry — " + seats.join(", ") + (seats.length > 1 ? " were" : " was") + " just taken. Pick other seats."
        : "No block of adjacent free seats like that is left. Try fewer seats or another section.";
    }
    if (code === "limit_exceeded") return "One pass can hold at most " + event.max_seats_per_user + " seats in all.";
    if (code === "invalid_pass") return "Your admission pass has expired or ended. Please join the waiting room again.";
    if (code === "expired") return "Your hold expired before the payment went through; the seats are free again.";
    if (code === "already_paid") return "This order is already paid.";
    if (res.status === 429) return "Too many requests from here; wait a moment and try again.";
    if (res.status === 503 || res.status === 0) return "The box office is busy; try again in a moment.";
    return fallback;
  }

  function sectionOf(id) { return event.sections.find((s) => s.id === id); }

  function draw() {
    const map = $("map");
    let y = 0, width = 0;
    for (const section of event.sections) {
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", LEFT);
      label.setAttribute("y", y + 16);
      label.setAttribute("class", "section-label");
      label.textContent = section.name + " · " + money(section.price_cents);
      map.appendChild(label);
      y += HEADER;
      for (let row = 1; row <= section.rows; row++) {
        const rowLabel = document.createElementNS(SVG, "text");
        rowLabel.setAttribute("x", 4);
        rowLabel.setAttribute("y", y + 13);
        rowLabel.setAttribute("class", "row-label");
        rowLabel.textContent = row;
        map.appendChild(rowLabel);
        for (let n = 1; n <= section.seats_per_row; n++) {
          const id = section.id + "-" + row + "-" + n;
          const rect = document.createElementNS(SVG, "rect");
          rect.setAttribute("x", LEFT + (n - 1) * PITCH);
          rect.setAttribute("y", y);
          rect.setAttribute("width", SIZE);
          rect.setAttribute("height", SIZE);
          rect.setAttribute("rx", 3);
          rect.setAttribute("tabindex", "0");
          rect.setAttribute("role", "checkbox");
          rect.dataset.id = id;
          rect.dataset.name = section.name + ", row " + row + ", seat " + n;
          rect.addEventListener("click", () => toggle(id));
          rect.addEventListener("keydown", (e) => {
            if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(id); }
          });
          seatEls.set(id, rect);
          map.appendChild(rect);
        }
        y += PITCH;
      }
      y += 10;
      width = Math.max(width, LEFT + section.seats_per_row * PITCH);
    }
    map.setAttribute("viewBox", "0 0 " + width + " " + y);
    map.setAttribute("width", width);
  }

  function paint(id, state) {
    const el = seatEls.get(id);
    if (!el) return;
    const mine = order && order.status !== "expired" && order.status !== "cancelled" && order.seats.includes(id);
    const shown = mine ? "mine" : picked.has(id) ? "picked" : state;
    el.dataset.state = state;
    el.setAttribute("class", "seat " + shown);
    el.setAttribute("aria-checked", picked.has(id) ? "true" : "false");
    el.setAttribute("aria-disabled", state === "free" ? "false" : "true");
    el.setAttribute("aria-label", el.dataset.name + ": " + (mine ? "yours" : picked.has(id) ? "picked" : state));
  }

  async function refresh() {
    const res = await api("GET", "/api/events/" + eventId + "/seats");
    if (res.status === 200) {
      for (const seat of res.body.seats) {
        if (seat.state !== "free" && picked.has(seat.id)) picked.delete(seat.id);
        paint(seat.id, seat.state);
      }
      summarize();
    }
  }

  function toggle(id) {
    const el = seatEls.get(id);
    if (!el || order && order.status === "pending") return;
    if (picked.has(id)) picked.delete(id);
    else if (el.dataset.state !== "free") return say("That seat is not free.");
    else if (picked.size >= event.max_seats_per_user) return say("You can pick at most " + event.max_seats_per_user + " seats.");
    else picked.add(id);
    say("");
    paint(id, el.dataset.state);
    summarize();
  }

  function summarize() {
    const ids = [...picked];
    $("picked").textContent = ids.length ? ids.join(", ") : "none";
    const total = ids.reduce((sum, id) => sum + sectionOf(id.split("-")[0]).price_cents, 0);
    $("total").textContent = ids.length ? "(" + money(total) + ")" : "";
    $("hold").disabled = ids.length === 0;
  }

  function remember(o) {
    order = o;
    if (o) localStorage.setItem(orderKey, o.order_id);
    else localStorage.removeItem(orderKey);
  }

  function checkout(o) {
    remember(o);
    picked.clear();
    summarize();
    panel("checkout");
    $("held-seats").textContent = o.seats.join(", ");
    $("amount").textContent = money(o.amount_cents);
    clearInterval(countdown);
    const tick = () => {
      const left = (new Date(o.expires_at) - Date.now()) / 1000;
      $("timer").textContent = duration(left);
      if (left <= 0) {
        clearInterval(countdown);
        remember(null);
        panel("picker");
        say("Your hold expired before the payment; the seats are free again.");
        refresh();
      }
    };
    tick();
    countdown = setInterval(tick, 1000);
    refresh();
  }

  function confirmed(o) {
    clearInterval(countdown);
    remember(o);
    panel("confirmation");
    $("order-id").textContent = o.order_id;
    $("confirmed-seats").textContent = o.seats.join(", ");
    $("paid-amount").textContent = money(o.amount_cents);
    refresh();
  }

  async function hold(body) {
    say("");
    const res = await api("POST", "/api/events/" + eventId + "/holds", body, pass);
    if (res.status === 201) return checkout(res.body);
    say(explain(res, "The seats could not be held."));
    refresh();
  }

  $("hold").addEventListener("click", () => hold({ seats: [...picked] }));
  $("best").addEventListener("submit", (e) => {
    e.preventDefault();
    const section = $("best-section").value;
    hold({ best_available: { count: Number($("best-count").value), section: section || undefined } });
  });
  $("pay").addEventListener("submit", async (e) => {
    e.preventDefault();
    const digits = $("card").value.replace(/\D/g, "");
    if (digits !== TEST_CARD) {
      return say("Your card was declined. (This is a simulation: use the test card 4242 4242 4242 4242.)");
    }
    const ref = "card-" + digits.slice(-4) + "-" + crypto.randomUUID().slice(0, 8);
    const res = await api("POST", "/api/orders/" + order.order_id + "/pay", { payment_ref: ref }, pass);
    if (res.status === 200) {
      say("");
      return confirmed(res.body);
    }
    say(explain(res, "The payment did not go through; try again."));
    if (res.status === 410) {
      remember(null);
      panel("picker");
      refresh();
    }
  });
  $("release").addEventListener("click", async () => {
    const res = await api("DELETE", "/api/orders/" + order.order_id, undefined, pass);
    if (res.status === 200 || res.status === 410) {
      clearInterval(countdown);
      remember(null);
      panel("picker");
      say("");
      return refresh();
    }
    say(explain(res, "The seats could not be released just now."));
  });

  async function start() {
    if (!pass) {
      show($("nopass"), true);
      show($("picker"), false);
      return;
    }
    const res = await api("GET", "/api/events/" + eventId);
    if (res.status !== 200) return say("This event does not exist.");
    event = res.body;
    $("limit").textContent = event.max_seats_per_user;
    for (let n = 1; n <= event.max_seats_per_user; n++) {
      $("best-count").add(new Option(String(n), String(n), n === 2, n === 2));
    }
    for (const section of event.sections) $("best-section").add(new Option(section.name, section.id));
    draw();
    const saved = localStorage.getItem(orderKey);
    if (saved) {
      const found = await api("GET", "/api/orders/" + saved, undefined, pass);
      if (found.status === 200 && found.body.status === "pending") checkout(found.body);
      else if (found.status === 200 && found.body.status === "paid") confirmed(found.body);
      else remember(null);
    }
    await refresh();
    setInterval(refresh, 2000);
  }

  start();
})();
