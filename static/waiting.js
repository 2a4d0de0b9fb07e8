// The waiting room: join on arrival (a visitor id in localStorage keeps the
// place across reloads), poll exactly as poll_after_ms says, count the wait
// down between polls, and move on to the seat map with the admission pass.
// An event that asks for a proof of work gets it solved in a Web Worker
// (static/pow.js) before the join, with the progress shown in words. An
// invitation-only event asks for the fan's code first; the code that joined is
// kept, so that a reload (or the same code on another device) finds its place.
// Opened with ?return_to= (the server has checked it against the event's
// return_origins), the page says where it will take the visitor and, once
// admitted, goes there through /events/{id}/return with the pass.
"use strict";

(function () {
  const room = document.getElementById("room");
  const eventId = room.dataset.event;
  const $ = (id) => document.getElementById(id);
  const tokenKey = "anteroom.token." + eventId;
  const firstPositionKey = "anteroom.first-position." + eventId;
  const visitorKey = "anteroom.visitor";
  const codeKey = "anteroom.code." + eventId;
  const invitationOnly = room.dataset.access === "codes";
  /// The protected site to go back to once admitted, if any.
  const returnTo = room.dataset.returnTo || null;
  let timer = null;
  /// The last waiting status and when it arrived, for the countdown between polls.
  let last = null;
  let lastAt = 0;
  /// Whether this page has read its place yet: an ended place found on arrival
  /// (a pass that ran out, a place left earlier) is replaced by a new one.
  let arrived = false;

  const endings = {
    sold_out: () => t("waiting.ended_sold_out"),
    expired: () => t("waiting.ended_expired"),
    left: () => t("waiting.ended_left"),
    missing: () => t("waiting.ended_missing"),
  };

  async function readEvent() {
    const res = await api("GET", "/api/events/" + eventId);
    if (res.status === 200) $("commitment").textContent = res.body.prequeue_commitment || "";
  }

  function visitor(fresh) {
    let id = localStorage.getItem(visitorKey);
    if (!id || fresh) {
      id = crypto.randomUUID();
      localStorage.setItem(visitorKey, id);
    }
    return id;
  }

  function panel(name) {
    for (const id of ["joining", "code", "solving", "waiting", "prequeue", "ended"]) show($(id), id === name);
    show($("leave"), name === "waiting" || name === "prequeue");
    if (name !== "waiting") last = null;
  }

  function later(ms, fn) {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  }

  function showSolving(percent) {
    $("solving-text").textContent = t("waiting.solving", { percent });
    $("solving-bar").style.width = percent + "%";
    $("solving").querySelector(".progress").setAttribute("aria-valuenow", String(percent));
  }

  /// Solves a challenge in a worker: `{challenge, nonce}` for the join, or
  /// null if the worker failed. The progress shown is the chance that a
  /// solution has been found by now (2^bits hashes are expected): it never
  /// reaches 100 before one has.
  function solve(challenge, bits) {
    panel("solving");
    showSolving(0);
    const started = performance.now();
    return new Promise((resolve) => {
      const worker = new Worker("/static/pow.js");
      worker.onmessage = (message) => {
        const { nonce, hashes } = message.data;
        if (nonce === undefined) {
          return showSolving(Math.min(99, Math.floor(100 * (1 - Math.exp(-hashes / 2 ** bits)))));
        }
        worker.terminate();
        showSolving(100);
        // How long this device took, for whoever tunes the difficulty.
        $("solving").dataset.solvedInMs = String(Math.round(performance.now() - started));
        resolve({ challenge, nonce });
      };
      worker.onerror = () => {
        worker.terminate();
        resolve(null);
      };
      worker.postMessage({ challenge, bits });
    });
  }

  /// What the event asks of a join: nothing, or a solved challenge (null if
  /// solving failed). A challenge that cannot be fetched is left to the
  /// join's 428, which carries a fresh one.
  async function passDoor() {
    const res = await api("GET", "/api/events/" + eventId + "/challenge");
    if (res.status !== 200 || res.body.bits === 0) return {};
    return solve(res.body.challenge, res.body.bits);
  }

  /// Asks for the invitation code, saying `error` (in words) if the last one was
  /// refused; with `waitSeconds`, the form can be sent again only after them.
  /// Resolves with the code typed.
  function askCode(error, waitSeconds) {
    clearTimeout(timer);
    panel("code");
    const input = $("code-input");
    const submit = $("code-submit");
    problem($("code-error"), error);
    input.setAttribute("aria-invalid", error ? "true" : "false");
    submit.disabled = Boolean(waitSeconds);
    if (waitSeconds) setTimeout(() => { submit.disabled = false; }, waitSeconds * 1000);
    input.focus();
    return new Promise((resolve) => {
      $("code").onsubmit = (e) => {
        e.preventDefault();
        const code = input.value.trim();
        if (!code) {
          problem($("code-error"), t("waiting.code_missing"));
          input.setAttribute("aria-invalid", "true");
          return input.focus();
        }
        $("code").onsubmit = null;
        problem($("code-error"), "");
        panel("joining");
        resolve(code);
      };
    });
  }

  /// Joins the line; a visitor id whose place ended gets a new place at the back.
  /// `door`: the solved challenge to join with, if one is already at hand;
  /// `typed`: the invitation code, if the visitor has just typed it.
  async function join(retried, door, typed) {
    const code = invitationOnly ? typed || localStorage.getItem(codeKey) || (await askCode("")) : undefined;
    const proof = door || (await passDoor());
    if (!proof) {
      problem($("problem"), t("waiting.problem_join"));
      return later(2000, () => join(retried, undefined, code));
    }
    const res = await api("POST", "/api/events/" + eventId + "/queue", { visitor: visitor(false), ...proof, ...(code ? { code } : {}) });
    if (res.status === 403 && res.body && (res.body.error === "invalid_code" || res.body.error === "code_required")) {
      // The code is checked before the challenge: the proof is still good for the next code.
      localStorage.removeItem(codeKey);
      const refused = res.body.error === "invalid_code" ? t("waiting.code_invalid") : "";
      return join(retried, proof, await askCode(refused));
    }
    if (res.status === 429 && invitationOnly && res.body && res.body.error === "rate_limited") {
      localStorage.removeItem(codeKey);
      const wait = t("waiting.code_wait", { wait: duration(res.retryAfter) });
      return join(retried, proof, await askCode(wait, res.retryAfter));
    }
    if (res.status === 429 && res.body && res.body.error === "too_many_places") {
      problem($("problem"), t("waiting.too_many_places", { wait: duration(res.retryAfter) }));
      return later(res.retryAfter * 1000, () => join(retried, proof, code));
    }
    if (res.status === 428 && res.body && res.body.challenge) {
      // The difficulty may have risen since the challenge was fetched: solve the fresh one.
      return join(retried, await solve(res.body.challenge, res.body.bits), code);
    }
    // Used already (a join sent twice): another challenge.
    if (res.status === 409 && res.body && res.body.error === "challenge_used") return join(retried, undefined, code);
    if (res.status === 201 || res.status === 200) {
      if (!retried && (res.body.state === "left" || res.body.state === "expired")) {
        // A service that answers an ended place to a join: never a dead end, ask
        // again as a new visitor.
        visitor(true);
        return join(true, undefined, code);
      }
      if (code) localStorage.setItem(codeKey, code);
      localStorage.setItem(tokenKey, res.body.token);
      localStorage.removeItem(firstPositionKey);
      problem($("problem"), "");
      arrived = true;
      return render(res.body);
    }
    if (res.status === 410) return ended(endings.sold_out(), false);
    if (res.status === 404) return ended(endings.missing(), false);
    problem($("problem"), t("waiting.problem_join"));
    later(res.retryAfter * 1000, () => join(retried, undefined, code));
  }

  async function poll() {
    const token = localStorage.getItem(tokenKey);
    if (!token) return join(false);
    const res = await api("GET", "/api/queue/" + encodeURIComponent(token));
    if (res.status === 200) {
      problem($("problem"), "");
      if (!arrived && (res.body.state === "left" || res.body.state === "expired")) {
        // Back in the waiting room after the place ended: a new place, not a dead end.
        localStorage.removeItem(tokenKey);
        return join(false);
      }
      arrived = true;
      return render(res.body);
    }
    if (res.status === 401) {
      localStorage.removeItem(tokenKey);
      return join(false);
    }
    problem($("problem"), t("waiting.problem_poll"));
    later(res.retryAfter * 1000, poll);
  }

  function render(status) {
    switch (status.state) {
      case "waiting": {
        panel("waiting");
        const first = Math.max(Number(localStorage.getItem(firstPositionKey)) || 0, status.position);
        localStorage.setItem(firstPositionKey, String(first));
        const done = first > 1 ? Math.round((100 * (first - status.position)) / (first - 1)) : 100;
        $("position").textContent = status.position.toLocaleString(LANG);
        $("bar").style.width = done + "%";
        $("waiting").querySelector(".progress").setAttribute("aria-valuenow", String(done));
        last = status;
        lastAt = Date.now();
        tick();
        return later(status.poll_after_ms, poll);
      }
      case "pre_queue": {
        panel("prequeue");
        const opens = new Date(status.opens_at);
        $("countdown").textContent = duration((opens - Date.now()) / 1000);
        return later(Math.min(status.poll_after_ms, 1000), poll);
      }
      case "admitted":
        localStorage.setItem("anteroom.pass." + eventId, status.pass);
        localStorage.removeItem(firstPositionKey);
        if (returnTo) {
          $("return-note").textContent = t("return.going", { host: room.dataset.returnHost });
          const query = new URLSearchParams({ return_to: returnTo, anteroom_pass: status.pass });
          location.assign("/events/" + eventId + "/return?" + query);
        } else {
          location.assign("/events/" + eventId + "/seats");
        }
        return;
      case "sold_out":
        return ended(endings.sold_out(), false);
      case "expired":
      case "left":
        return ended(endings[status.state](), true);
      default:
        problem($("problem"), t("waiting.problem_unexpected"));
    }
  }

  /// Between polls the wait counts down every second, and the page says how
  /// fresh its numbers are. A wait that has run down before the next answer
  /// reads "any moment now", never a number the service did not give.
  function tick() {
    if (!last) return;
    const elapsed = Math.max(0, (Date.now() - lastAt) / 1000);
    const paused = last.limited_by === "paused";
    const expected = Math.max(0, last.eta_seconds - elapsed);
    const most = Math.max(0, last.eta_max_seconds - elapsed);
    let eta;
    if (paused) eta = t("waiting.paused");
    else if (expected < 1) eta = t("waiting.eta_soon");
    else eta = t("waiting.eta", { expected: duration(expected), max: duration(most) });
    $("eta").textContent = eta;
    $("eta").classList.toggle("muted", paused);
    const passes = !paused && last.limited_by === "passes";
    $("limit").textContent = passes ? t("waiting.limited_by_passes") : "";
    show($("limit"), passes);
    $("updated").textContent = elapsed < 2
      ? t("waiting.updated_now")
      : t("waiting.updated_ago", { ago: duration(elapsed) });
  }

  /// The place ended; `canJoinAgain` unless there is nothing left to wait for.
  function ended(text, canJoinAgain) {
    clearTimeout(timer);
    localStorage.removeItem(tokenKey);
    localStorage.removeItem(firstPositionKey);
    $("ended-text").textContent = text;
    show($("ended-hint"), canJoinAgain);
    show($("again").parentElement, canJoinAgain);
    panel("ended");
    arrived = true;
  }

  const dialog = $("leave-dialog");
  $("leave").addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "leave") return;
    const token = localStorage.getItem(tokenKey);
    if (!token) return;
    const res = await api("DELETE", "/api/queue/" + encodeURIComponent(token));
    if (res.status === 200) ended(endings.left(), true);
    else problem($("problem"), t("waiting.problem_leave"));
  });
  $("again").addEventListener("click", () => {
    panel("joining");
    localStorage.removeItem(tokenKey);
    join(false);
  });

  if (returnTo) {
    // Switching the language keeps the way back.
    for (const link of document.querySelectorAll(".languages a[hreflang]")) {
      link.search = new URLSearchParams({ lang: link.hreflang, return_to: returnTo }).toString();
    }
  }

  setInterval(tick, 1000);
  readEvent();
  poll();
})();
