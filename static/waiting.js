// The waiting room: join on arrival (a visitor id in localStorage keeps the
// place across reloads), poll exactly as poll_after_ms says, and move on to the
// seat map with the admission pass.
"use strict";

(function () {
  const room = document.getElementById("room");
  const eventId = room.dataset.event;
  const $ = (id) => document.getElementById(id);
  const tokenKey = "anteroom.token." + eventId;
  const firstPositionKey = "anteroom.first-position." + eventId;
  let timer = null;
  let paused = false;
  let polls = 0;

  /// Re-read the event every few polls: a paused sale admits nobody, so no ETA is honest.
  async function readEvent() {
    const res = await api("GET", "/api/events/" + eventId);
    if (res.status === 200) {
      paused = res.body.paused;
      $("commitment").textContent = res.body.prequeue_commitment;
    }
  }

  function visitor() {
    let id = localStorage.getItem("anteroom.visitor");
    if (!id) {
      id = crypto.randomUUID();
      localStorage.setItem("anteroom.visitor", id);
    }
    return id;
  }

  function panel(name) {
    for (const id of ["joining", "waiting", "prequeue", "ended"]) show($(id), id === name);
    show($("leave"), name === "waiting" || name === "prequeue");
  }

  function later(ms, fn) {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  }

  async function join() {
    const res = await api("POST", "/api/events/" + eventId + "/queue", { visitor: visitor() });
    if (res.status === 201 || res.status === 200) {
      localStorage.setItem(tokenKey, res.body.token);
      problem($("problem"), "");
      return render(res.body);
    }
    if (res.status === 410) return ended("Sold out: every seat has been sold.");
    if (res.status === 404) return ended("This event does not exist.");
    problem($("problem"), "We could not place you in line yet; trying again…");
    later(res.retryAfter * 1000, join);
  }

  async function poll() {
    const token = localStorage.getItem(tokenKey);
    if (!token) return join();
    if (paused || ++polls % 5 === 0) await readEvent();
    const res = await api("GET", "/api/queue/" + encodeURIComponent(token));
    if (res.status === 200) {
      problem($("problem"), "");
      return render(res.body);
    }
    if (res.status === 401) {
      localStorage.removeItem(tokenKey);
      return join();
    }
    problem($("problem"), "Connection trouble; your place is kept. Retrying…");
    later(res.retryAfter * 1000, poll);
  }

  function render(status) {
    switch (status.state) {
      case "waiting": {
        panel("waiting");
        const first = Number(localStorage.getItem(firstPositionKey)) || status.position;
        localStorage.setItem(firstPositionKey, String(Math.max(first, status.position)));
        const done = first > 1 ? Math.round((100 * (first - status.position)) / (first - 1)) : 100;
        $("position").textContent = status.position.toLocaleString();
        $("bar").style.width = done + "%";
        document.querySelector(".progress").setAttribute("aria-valuenow", String(done));
        $("eta").textContent = paused
          ? "Admission is paused by the organiser for now; your place is kept."
          : "Expected wait: " + duration(status.eta_seconds) + " (at most about " + duration(status.eta_max_seconds) + ")";
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
        location.assign("/events/" + eventId + "/seats");
        return;
      case "sold_out":
        return ended("Sold out: every seat has been sold. We are sorry.");
      case "expired":
        return ended("Your place has expired.");
      case "left":
        return ended("You left the line.");
      default:
        problem($("problem"), "Unexpected answer from the waiting room.");
    }
  }

  function ended(text) {
    clearTimeout(timer);
    localStorage.removeItem(tokenKey);
    localStorage.removeItem(firstPositionKey);
    $("ended-text").textContent = text;
    panel("ended");
  }

  $("leave").addEventListener("click", async () => {
    const token = localStorage.getItem(tokenKey);
    if (!token) return;
    const res = await api("DELETE", "/api/queue/" + encodeURIComponent(token));
    if (res.status === 200) ended("You left the line.");
    else problem($("problem"), "Could not leave the line just now; try again.");
  });
  $("again").addEventListener("click", (e) => {
    e.preventDefault();
    panel("joining");
    join();
  });

  readEvent().then(poll);
})();
