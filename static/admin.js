// The operator's dashboard: sign in with the admin token, see every event in one
// compact table refreshed each second, open one at a time for its charts and
// controls, and create events with prices in the currency's units.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  /// The charts show the last minute.
  const WINDOW_MS = 60000;
  /// Per event: its body, its latest stats, its samples of the last minute, its table row.
  const known = new Map();
  let token = sessionStorage.getItem("anteroom.admin");
  let opened = null;
  let ticking = null;
  /// Counts the changes this page made, so a refresh that started before one
  /// does not put back what the change replaced.
  let changes = 0;

  const number = (n, digits = 0) => Number(n).toLocaleString(LANG, { maximumFractionDigits: digits });
  const when = new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "short" });
  const STATE_WORDS = {
    on_sale: t("admin.state.on_sale"),
    paused: t("admin.state.paused"),
    opens: t("admin.state.opens"),
    sold_out: t("admin.state.sold_out"),
  };

  // ---- signing in ----

  /// "ok", "wrong", "waiting" (too many wrong tokens from here: retry in `retryAfter` s) or "unreachable".
  async function signIn(candidate) {
    // Any admin route tells a good token from a bad one: 404 for an unknown event, 401 otherwise.
    const res = await api("GET", "/api/admin/events/-/stats", undefined, candidate);
    if (res.status === 401) return { outcome: "wrong" };
    if (res.status === 429) return { outcome: "waiting", retryAfter: res.retryAfter };
    if (res.status === 0 || res.status >= 500) return { outcome: "unreachable" };
    token = candidate;
    sessionStorage.setItem("anteroom.admin", token);
    return { outcome: "ok" };
  }

  $("signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    const candidate = $("token").value.trim();
    if (!candidate) {
      problem($("signin-problem"), t("admin.signin.empty"));
      $("token").focus();
      return;
    }
    const signed = await signIn(candidate);
    if (signed.outcome === "ok") return start();
    const words = {
      wrong: () => t("admin.signin.wrong"),
      waiting: () => t("admin.signin.waiting", { seconds: signed.retryAfter }),
      unreachable: () => t("admin.signin.unreachable"),
    };
    problem($("signin-problem"), words[signed.outcome]());
    $("token").focus();
  });

  // ---- the table of events ----

  function saleState(event, stats) {
    if (stats && stats.sold_seats >= event.seats_total) return "sold_out";
    if (event.on_sale_at && Date.parse(event.on_sale_at) > Date.now()) return "opens";
    return event.paused ? "paused" : "on_sale";
  }

  function entryFor(event, listedBeforeChange) {
    let entry = known.get(event.id);
    if (!entry) {
      const row = document.createElement("tr");
      row.dataset.event = event.id;
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.setAttribute("aria-expanded", "false");
      open.setAttribute("aria-controls", "detail");
      open.addEventListener("click", () => toggle(event.id));
      const nameCell = document.createElement("th");
      nameCell.scope = "row";
      nameCell.append(open);
      const cells = ["state", "waiting", "active", "sold"].map((name) => {
        const cell = document.createElement("td");
        cell.dataset.col = name;
        if (name !== "state") cell.className = "num";
        return cell;
      });
      row.append(nameCell, ...cells);
      $("events-table").tBodies[0].append(row);
      entry = { event, stats: null, samples: [], row, open, changedAt: 0 };
      known.set(event.id, entry);
    }
    if (entry.changedAt <= listedBeforeChange) entry.event = event;
    return entry;
  }

  function showRow(entry) {
    const { event, stats, row, open } = entry;
    open.textContent = event.name;
    const state = saleState(event, stats);
    const cell = (name) => row.querySelector(`[data-col="${name}"]`);
    cell("state").textContent = STATE_WORDS[state];
    cell("state").className = "state " + state;
    cell("waiting").textContent = stats ? number(stats.waiting) : "–";
    cell("active").textContent = stats ? number(stats.active) : "–";
    cell("sold").textContent = stats
      ? t("admin.sold_of", { sold: number(stats.sold_seats), total: number(event.seats_total) })
      : "–";
  }

  function toggle(id) {
    opened = opened === id ? null : id;
    for (const [other, entry] of known) entry.open.setAttribute("aria-expanded", String(other === opened));
    const detail = $("detail");
    if (!opened) {
      show(detail, false);
      return;
    }
    const entry = known.get(opened);
    // The opened event's details sit right under its row.
    let detailRow = $("detail-row");
    if (!detailRow) {
      detailRow = document.createElement("tr");
      detailRow.id = "detail-row";
      const cell = document.createElement("td");
      cell.colSpan = 5;
      detailRow.append(cell);
    }
    detailRow.firstChild.append(detail);
    entry.row.after(detailRow);
    const controls = $("controls");
    controls.per_second.value = entry.event.admission.per_second;
    controls.max_active.value = entry.event.admission.max_active;
    $("detail-status").textContent = "";
    problem($("detail-problem"), "");
    show(detail, true);
    showDetail(entry);
  }

  // ---- the opened event ----

  const STATS = [
    ["waiting", t("admin.stat.waiting")], ["active", t("admin.stat.active")],
    ["admitted_total", t("admin.stat.admitted_total")], ["held_seats", t("admin.stat.held_seats")],
    ["sold_seats", t("admin.stat.sold_seats")], ["available_seats", t("admin.stat.available_seats")],
    ["orders_paid", t("admin.stat.orders_paid")], ["orders_expired", t("admin.stat.orders_expired")],
  ];

  /// Joins refused at the door, by defence (the stats' `refused`).
  const REFUSALS = [
    ["challenge_required", t("admin.refused.challenge_required")],
    ["challenge_used", t("admin.refused.challenge_used")],
    ["code_required", t("admin.refused.code_required")],
    ["invalid_code", t("admin.refused.invalid_code")],
    ["too_many_places", t("admin.refused.too_many_places")],
    ["rate_limited", t("admin.refused.rate_limited")],
  ];

  /// `pairs` of [key, label] as the terms of a list, their figures from `values`.
  function figures(pairs, values) {
    return pairs.map(([key, label]) => {
      const pair = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = number(values[key] || 0);
      dd.dataset.stat = key;
      pair.append(dt, dd);
      return pair;
    });
  }

  function showDetail(entry) {
    const { event, stats } = entry;
    $("detail-name").textContent = event.name + " (" + event.id + ")";
    const opens = event.on_sale_at && Date.parse(event.on_sale_at) > Date.now()
      ? t("admin.facts.opens", { when: when.format(new Date(event.on_sale_at)) })
      : "";
    $("detail-facts").textContent = [
      t("admin.facts.starts", { when: when.format(new Date(event.starts_at)) }),
      event.venue, opens, STATE_WORDS[saleState(event, stats)],
      event.access === "codes" ? t("admin.facts.invitation_only") : "",
      event.address_limit
        ? t("admin.facts.address_limit", { places: number(event.address_limit.places), window: duration(event.address_limit.window_seconds) })
        : "",
      t("admin.facts.seats", { total: number(event.seats_total), currency: event.currency }),
    ].filter(Boolean).join(" · ");
    $("pause").textContent = event.paused ? t("admin.resume") : t("admin.pause");
    if (!stats) return;
    $("detail-stats").replaceChildren(...figures(STATS, stats));
    $("detail-refused").replaceChildren(...figures(REFUSALS, stats.refused || {}));
    const now = Date.now();
    chart($("chart-now"), now, entry.samples.map((s) => ({ at: s.at, waiting: s.stats.waiting, active: s.stats.active })),
      ["waiting", "active"], true);
    // Running totals become rates: what changed between two samples, per second.
    const rates = entry.samples.slice(1).map((s, i) => {
      const before = entry.samples[i];
      const seconds = Math.max(0.001, (s.at - before.at) / 1000);
      const rate = (key) => Math.max(0, (s.stats[key] - before.stats[key]) / seconds);
      return { at: s.at, admitted: rate("admitted_total"), sold: rate("sold_seats") };
    });
    chart($("chart-rates"), now, rates, ["admitted", "sold"], false);
  }

  /// The smallest of 1, 2, 5 × 10^k at or above `value`: round figures on the y-axis.
  function niceTop(value) {
    if (value <= 1) return 1;
    const scale = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 5, 10].map((m) => m * scale).find((top) => top >= value);
  }

  /// `counting`: the series count people, so the middle of the axis is a whole number too.
  function chart(figure, now, points, series, counting) {
    let top = niceTop(Math.max(0, ...points.flatMap((p) => series.map((key) => p[key]))));
    if (counting && !Number.isInteger(top / 2)) top *= 2;
    figure.querySelector(".y-axis").replaceChildren(...[top, top / 2, 0].map((value) => {
      const label = document.createElement("span");
      label.textContent = number(value, 1);
      return label;
    }));
    const svg = figure.querySelector("svg");
    const grid = [0, 50, 100].map((y) => {
      const line = document.createElementNS(SVG, "line");
      for (const [name, value] of [["x1", 0], ["x2", 300], ["y1", y], ["y2", y]]) line.setAttribute(name, value);
      line.setAttribute("class", "grid");
      return line;
    });
    const lines = series.map((key) => {
      const line = document.createElementNS(SVG, "polyline");
      // Time runs left to right: a minute ago at the left edge, now at the right.
      const xy = points.map((p) => {
        const x = Math.max(0, 300 - (300 * (now - p.at)) / WINDOW_MS);
        return x.toFixed(1) + "," + (100 - (100 * p[key]) / top).toFixed(1);
      });
      line.setAttribute("points", xy.join(" "));
      line.setAttribute("class", key);
      return line;
    });
    svg.replaceChildren(...grid, ...lines);
  }

  // ---- steering the opened event ----

  $("controls").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const perSecond = Number(form.per_second.value);
    const maxActive = Number(form.max_active.value);
    const refuse = (input, text) => {
      problem($("detail-problem"), text);
      $("detail-status").textContent = "";
      input.focus();
    };
    if (form.per_second.value.trim() === "" || !(perSecond > 0)) {
      return refuse(form.per_second, t("admin.invalid.positive", { field: t("admin.field.per_second") }));
    }
    if (!Number.isInteger(maxActive) || maxActive < 1) {
      return refuse(form.max_active, t("admin.invalid.whole", { field: t("admin.field.max_active") }));
    }
    const saved = await change({ admission: { per_second: perSecond, max_active: maxActive } });
    if (saved) {
      $("detail-status").textContent = t("admin.saved", { per_second: number(perSecond, 2), max_active: number(maxActive) });
    }
  });

  $("pause").addEventListener("click", async () => {
    const entry = known.get(opened);
    if (!entry) return;
    if (entry.event.paused) {
      if (await change({ paused: false })) $("detail-status").textContent = t("admin.resumed");
      return;
    }
    $("confirm-pause-text").textContent = t("admin.pause_confirm", { name: entry.event.name });
    $("confirm-pause").returnValue = "";
    $("confirm-pause").showModal();
  });

  $("confirm-pause").addEventListener("close", async () => {
    if ($("confirm-pause").returnValue !== "pause") return;
    if (await change({ paused: true })) $("detail-status").textContent = t("admin.paused");
  });

  /// Sends a change of the opened event; true when the service took it.
  async function change(body) {
    const entry = known.get(opened);
    if (!entry) return false;
    $("detail-status").textContent = t("admin.saving");
    const res = await api("PATCH", "/api/admin/events/" + entry.event.id, body, token);
    if (res.status === 200) {
      problem($("detail-problem"), "");
      entry.event = res.body;
      entry.changedAt = ++changes;
      showRow(entry);
      showDetail(entry);
      return true;
    }
    $("detail-status").textContent = "";
    problem($("detail-problem"), res.status === 422 && res.body
      ? t("admin.refused", { message: res.body.message })
      : t("admin.not_saved"));
    return false;
  }

  // ---- the live feed ----

  let refreshing = false;

  async function tick() {
    // A slow answer must not let two refreshes interleave their samples.
    if (refreshing) return;
    refreshing = true;
    try {
      await refresh();
    } finally {
      refreshing = false;
    }
  }

  async function refresh() {
    const changesBefore = changes;
    const list = await api("GET", "/api/events");
    if (list.status !== 200) return;
    const events = list.body.events;
    show($("no-events"), events.length === 0);
    const answers = await Promise.all(events.map((event) =>
      api("GET", "/api/admin/events/" + event.id + "/stats", undefined, token)));
    // A token changed under a running dashboard: stop asking (every wrong try
    // counts against this address) and sign in again.
    const refused = answers.find((a) => a.status === 401 || a.status === 429);
    if (refused) return signOut(refused);
    const now = Date.now();
    events.forEach((event, i) => {
      const entry = entryFor(event, changesBefore);
      if (answers[i].status === 200) {
        entry.stats = answers[i].body;
        entry.samples.push({ at: now, stats: entry.stats });
        while (entry.samples.length && now - entry.samples[0].at > WINDOW_MS) entry.samples.shift();
      }
      showRow(entry);
      if (opened === event.id) showDetail(entry);
    });
  }

  function signOut(refused) {
    clearInterval(ticking);
    token = null;
    sessionStorage.removeItem("anteroom.admin");
    show($("dashboard"), false);
    show($("signin"), true);
    problem($("signin-problem"), refused.status === 429
      ? t("admin.signin.waiting", { seconds: refused.retryAfter })
      : t("admin.signin.again"));
  }

  function start() {
    show($("signin"), false);
    show($("dashboard"), true);
    tick();
    clearInterval(ticking);
    ticking = setInterval(tick, 1000);
  }

  // ---- creating an event ----

  const create = $("create");

  function addSection(values) {
    const row = $("section-row").content.firstElementChild.cloneNode(true);
    const [id, name, price, rows, perRow] = values || ["", "", "", "", ""];
    row.querySelector("[name=section_id]").value = id;
    row.querySelector("[name=section_name]").value = name;
    row.querySelector("[name=section_price]").value = price;
    row.querySelector("[name=section_rows]").value = rows;
    row.querySelector("[name=section_seats_per_row]").value = perRow;
    row.querySelector(".remove-section").addEventListener("click", () => {
      row.remove();
      preview();
    });
    $("section-rows").append(row);
    return row;
  }

  function resetSections() {
    $("section-rows").replaceChildren();
    // An example price written the way the operator writes amounts (99.00 or 99,00).
    const price = (99).toLocaleString(LANG, { minimumFractionDigits: 2, useGrouping: false });
    addSection(["A", t("admin.section.default_name"), price, "10", "20"]);
  }

  $("add-section").addEventListener("click", () => {
    const taken = new Set([...document.querySelectorAll("[name=section_id]")].map((i) => i.value.trim()));
    const free = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("").find((letter) => !taken.has(letter)) || "";
    addSection([free, "", "", "", ""]).querySelector("[name=section_name]").focus();
    preview();
  });

  /// A price in the currency's units ("99", "99.5", "99.00" or "99,00") in cents, or null.
  function cents(text) {
    const match = /^(\d{1,9})(?:[.,](\d{1,2}))?$/.exec(text.trim());
    if (!match) return null;
    return Number(match[1]) * 100 + Number((match[2] || "0").padEnd(2, "0"));
  }

  const whole = (text) => /^\s*\d+\s*$/.test(text) && Number(text) >= 1;

  /// The form as the API's body, or the first field that is not right and why.
  function read() {
    const f = create;
    const refuse = (input, text) => ({ input, text });
    const id = f.id.value.trim();
    if (!id) return refuse(f.id, t("admin.invalid.required", { field: t("admin.field.id") }));
    if (!/^[a-z0-9-]{1,64}$/.test(id)) return refuse(f.id, t("admin.invalid.id", { field: t("admin.field.id") }));
    if (!f.name.value.trim()) return refuse(f.name, t("admin.invalid.required", { field: t("admin.field.name") }));
    const startsAt = new Date(f.starts_at.value);
    if (!f.starts_at.value || Number.isNaN(startsAt.getTime())) {
      return refuse(f.starts_at, t("admin.invalid.time", { field: t("admin.field.starts_at") }));
    }
    const onSaleAt = f.on_sale_at.value ? new Date(f.on_sale_at.value) : null;
    if (onSaleAt && Number.isNaN(onSaleAt.getTime())) {
      return refuse(f.on_sale_at, t("admin.invalid.time", { field: t("admin.field.on_sale_at") }));
    }
    const wholeFields = {
      hold_seconds: t("admin.field.hold_seconds"), max_seats_per_user: t("admin.field.max_seats_per_user"),
      max_active: t("admin.field.max_active"), pass_seconds: t("admin.field.pass_seconds"),
      abandon_seconds: t("admin.field.abandon_seconds"),
    };
    for (const [name, field] of Object.entries(wholeFields)) {
      if (!whole(f[name].value)) return refuse(f[name], t("admin.invalid.whole", { field }));
    }
    if (!(Number(f.per_second.value) > 0)) {
      return refuse(f.per_second, t("admin.invalid.positive", { field: t("admin.field.per_second") }));
    }
    const rows = [...$("section-rows").children];
    if (rows.length === 0) return refuse($("add-section"), t("admin.invalid.no_sections"));
    const sections = [];
    const seen = new Set();
    for (const [i, row] of rows.entries()) {
      const input = (name) => row.querySelector(`[name=section_${name}]`);
      const field = (name) => t("admin.section_field", { n: i + 1, field: name });
      const sectionId = input("id").value.trim();
      if (!/^[A-Za-z0-9]{1,8}$/.test(sectionId)) {
        return refuse(input("id"), t("admin.invalid.section_id", { field: field(t("admin.section.id")) }));
      }
      if (seen.has(sectionId)) {
        return refuse(input("id"), t("admin.invalid.section_twice", { field: field(t("admin.section.id")), id: sectionId }));
      }
      seen.add(sectionId);
      const name = input("name").value.trim();
      if (!name) return refuse(input("name"), t("admin.invalid.required", { field: field(t("admin.section.name")) }));
      const price = cents(input("price").value);
      if (price === null) return refuse(input("price"), t("admin.invalid.price", { field: field(t("admin.section.price")) }));
      if (!whole(input("rows").value)) {
        return refuse(input("rows"), t("admin.invalid.whole", { field: field(t("admin.section.rows")) }));
      }
      if (!whole(input("seats_per_row").value)) {
        return refuse(input("seats_per_row"), t("admin.invalid.whole", { field: field(t("admin.section.seats_per_row")) }));
      }
      sections.push({
        id: sectionId, name, price_cents: price,
        rows: Number(input("rows").value), seats_per_row: Number(input("seats_per_row").value),
      });
    }
    return {
      body: {
        id, name: f.name.value.trim(), venue: f.venue.value.trim(), currency: f.currency.value,
        // datetime-local is the operator's local time; the API takes UTC.
        starts_at: startsAt.toISOString(), on_sale_at: onSaleAt ? onSaleAt.toISOString() : undefined,
        hold_seconds: Number(f.hold_seconds.value), max_seats_per_user: Number(f.max_seats_per_user.value),
        admission: {
          per_second: Number(f.per_second.value), max_active: Number(f.max_active.value),
          pass_seconds: Number(f.pass_seconds.value), abandon_seconds: Number(f.abandon_seconds.value),
        },
        paused: f.paused.checked,
        sections,
      },
    };
  }

  /// What will be charged, section by section, before anything is sent.
  function preview() {
    const currency = create.currency.value;
    const lines = [];
    let seats = 0, revenue = 0;
    for (const [i, row] of [...$("section-rows").children].entries()) {
      const value = (name) => row.querySelector(`[name=section_${name}]`).value.trim();
      const price = cents(value("price"));
      const count = whole(value("rows")) && whole(value("seats_per_row")) ? Number(value("rows")) * Number(value("seats_per_row")) : 0;
      if (price === null || count === 0) continue;
      seats += count;
      revenue += count * price;
      lines.push(t("admin.preview.section", {
        name: value("name") || t("admin.preview.unnamed", { n: i + 1 }),
        seats: number(count), price: money(price, currency),
      }));
    }
    const items = lines.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    });
    const list = document.createElement("ul");
    list.append(...items);
    const total = document.createElement("p");
    total.className = "total";
    total.textContent = seats ? t("admin.preview.total", { seats: number(seats), revenue: money(revenue, currency) }) : "";
    // Both the operator's own time and what is sent: datetime-local is local time.
    const instant = (input) => {
      const at = input.value ? new Date(input.value) : null;
      return at && !Number.isNaN(at.getTime())
        ? { local: when.format(at), utc: at.toISOString().slice(0, 16).replace("T", " ") }
        : null;
    };
    const starts = instant(create.starts_at), opens = instant(create.on_sale_at);
    const times = [];
    if (starts) times.push(t("admin.preview.starts", starts));
    times.push(opens ? t("admin.preview.opens", opens) : t("admin.preview.opens_now"));
    const timeLines = times.map((text) => {
      const p = document.createElement("p");
      p.textContent = text;
      return p;
    });
    const heading = document.createElement("p");
    heading.className = "preview-title";
    heading.textContent = t("admin.preview.title");
    $("preview").replaceChildren(...(lines.length || times.length ? [heading, list, total, ...timeLines] : []));
  }

  create.addEventListener("input", preview);
  create.addEventListener("change", preview);

  /// The input a refusal of the service names ("sections[1].price_cents: …"), if the form has it.
  function inputNamed(message) {
    const path = String(message || "").split(":")[0];
    const section = /^sections\[(\d+)\]\.(\w+)$/.exec(path);
    if (section) {
      const row = $("section-rows").children[Number(section[1])];
      const name = section[2] === "price_cents" ? "price" : section[2];
      return row && row.querySelector(`[name=section_${name}]`);
    }
    const name = path.replace(/^admission\./, "");
    return /^\w+$/.test(name) && create.elements[name] instanceof HTMLElement ? create.elements[name] : null;
  }

  /// Marks the field the problem is about, links it to the sentence, and takes the operator there.
  function refused(input) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "create-problem");
    input.focus();
  }

  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    $("create-status").textContent = "";
    const filled = read();
    for (const marked of create.querySelectorAll("[aria-invalid]")) marked.removeAttribute("aria-invalid");
    if (filled.input) {
      problem($("create-problem"), filled.text);
      refused(filled.input);
      return;
    }
    problem($("create-problem"), "");
    $("create-status").textContent = t("admin.creating");
    const res = await api("POST", "/api/admin/events", filled.body, token);
    $("create-status").textContent = "";
    if (res.status === 201) {
      create.reset();
      resetSections();
      preview();
      $("create-status").textContent = t("admin.created", { name: res.body.name });
      await tick();
    } else if (res.status === 409) {
      problem($("create-problem"), t("admin.invalid.exists", { id: filled.body.id }));
      refused(create.id);
    } else if (res.status === 422 && res.body) {
      problem($("create-problem"), t("admin.refused", { message: res.body.message }));
      const named = inputNamed(res.body.message);
      if (named) refused(named);
    } else {
      problem($("create-problem"), t("admin.not_created"));
    }
  });

  function describeZone() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes < 0 ? "−" : "+";
    const offset = sign + String(Math.floor(Math.abs(minutes) / 60)).padStart(2, "0") + ":" + String(Math.abs(minutes) % 60).padStart(2, "0");
    $("zone").textContent = t("admin.zone", { zone, offset });
  }

  describeZone();
  resetSections();
  preview();
  if (token) {
    signIn(token).then((signed) => {
      if (signed.outcome === "ok") start();
      else if (signed.outcome === "wrong") sessionStorage.removeItem("anteroom.admin");
    });
  }
})();
