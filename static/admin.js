// The operator's dashboard: sign in with the admin token, watch every event's
// stats each second with a one-minute chart, steer admission, create events.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const HISTORY = 60;
  const cards = new Map();
  let token = sessionStorage.getItem("anteroom.admin");
  let ticking = null;

  async function signIn(candidate) {
    // Any admin route tells a good token from a bad one: 404 for an unknown event, 401 otherwise.
    const res = await api("GET", "/api/admin/events/-/stats", undefined, candidate);
    if (res.status === 401) return false;
    token = candidate;
    sessionStorage.setItem("anteroom.admin", token);
    return true;
  }

  $("signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await signIn($("token").value.trim())) start();
    else problem($("signin-problem"), "That admin token is not right.");
  });

  function card(event) {
    let entry = cards.get(event.id);
    if (!entry) {
      const node = $("event-card").content.firstElementChild.cloneNode(true);
      node.dataset.event = event.id;
      $("events").appendChild(node);
      entry = { node, history: [], event };
      cards.set(event.id, entry);
      const form = node.querySelector(".controls");
      form.per_second.value = event.admission.per_second;
      form.max_active.value = event.admission.max_active;
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const admission = { per_second: Number(form.per_second.value), max_active: Number(form.max_active.value) };
        patch(entry, { admission });
      });
      node.querySelector(".pause").addEventListener("click", () => patch(entry, { paused: !entry.event.paused }));
    }
    entry.event = event;
    entry.node.querySelector(".name").textContent = event.name + " (" + event.id + ")" + (event.paused ? " — paused" : "");
    entry.node.querySelector(".pause").textContent = event.paused ? "Resume admission" : "Pause admission";
    return entry;
  }

  async function patch(entry, body) {
    const res = await api("PATCH", "/api/admin/events/" + entry.event.id, body, token);
    const note = entry.node.querySelector(".problem");
    if (res.status === 200) {
      problem(note, "");
      card(res.body);
    } else {
      problem(note, (res.body && res.body.message) || "The change was not applied.");
    }
  }

  const FIELDS = [
    ["waiting", "Waiting"], ["admitted_total", "Admitted"], ["active", "Active passes"], ["held_seats", "Held"],
    ["sold_seats", "Sold"], ["available_seats", "Available"], ["orders_paid", "Orders paid"], ["orders_expired", "Orders expired"],
  ];

  function render(entry, stats) {
    const dl = entry.node.querySelector(".stats");
    dl.replaceChildren(...FIELDS.map(([key, label]) => {
      const pair = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = stats[key].toLocaleString();
      dd.dataset.stat = key;
      pair.append(dt, dd);
      return pair;
    }));
    entry.history.push(stats);
    if (entry.history.length > HISTORY) entry.history.shift();
    chart(entry.node.querySelector(".chart"), entry.history);
  }

  function chart(svg, history) {
    const series = [["waiting", "waiting"], ["admitted_total", "admitted"], ["sold_seats", "sold"]];
    const top = Math.max(1, ...history.flatMap((s) => series.map(([key]) => s[key])));
    svg.replaceChildren(...series.map(([key, cls]) => {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      // The newest sample at the right edge; the last minute scrolls left.
      const offset = HISTORY - history.length;
      const points = history.map((s, i) => ((offset + i) * 300) / (HISTORY - 1) + "," + (58 - (56 * s[key]) / top).toFixed(1));
      line.setAttribute("points", points.join(" "));
      line.setAttribute("class", cls);
      return line;
    }));
  }

  async function tick() {
    const list = await api("GET", "/api/events");
    if (list.status !== 200) return;
    for (const event of list.body.events) {
      const entry = card(event);
      const res = await api("GET", "/api/admin/events/" + event.id + "/stats", undefined, token);
      if (res.status === 200) render(entry, res.body);
    }
  }

  $("create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const iso = (local) => (local ? new Date(local).toISOString() : undefined);
    const sections = f.sections.value.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
      const [id, name, price, rows, perRow] = line.split(",").map((x) => x.trim());
      return { id, name, price_cents: Number(price), rows: Number(rows), seats_per_row: Number(perRow) };
    });
    const body = {
      id: f.id.value.trim(), name: f.name.value.trim(), venue: f.venue.value.trim(),
      starts_at: iso(f.starts_at.value), on_sale_at: iso(f.on_sale_at.value),
      hold_seconds: Number(f.hold_seconds.value), max_seats_per_user: Number(f.max_seats_per_user.value),
      admission: { per_second: Number(f.per_second.value), max_active: Number(f.max_active.value), pass_seconds: Number(f.pass_seconds.value) },
      sections,
    };
    const res = await api("POST", "/api/admin/events", body, token);
    if (res.status === 201) {
      problem($("create-problem"), "");
      f.reset();
      $("create-card").open = false;
      tick();
    } else {
      problem($("create-problem"), (res.body && res.body.message) || "The event was not created.");
    }
  });

  function start() {
    show($("signin"), false);
    show($("dashboard"), true);
    tick();
    clearInterval(ticking);
    ticking = setInterval(tick, 1000);
  }

  if (token) signIn(token).then((ok) => (ok ? start() : sessionStorage.removeItem("anteroom.admin")));
})();
