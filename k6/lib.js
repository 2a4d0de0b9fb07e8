// Shared by the Anteroom load scripts: configuration, the HTTP calls of API.md
// (each tagged with its route name and the statuses it may legitimately answer),
// one visitor's journey through the line and the shop, and the book check that
// every script's teardown runs.
//
// How a broken book fails the run: every violation adds to a Counter whose
// threshold is `count==0`, so k6 exits non-zero (99) and names the metric.
// VUs cannot share memory with teardown, so the ledger is kept in counters too:
// each VU adds what it was acknowledged (seats and orders paid, orders that
// expired), teardown subtracts what the service's books say, and each
// `ledger_gap_*` counter must end at exactly 0.

import http from 'k6/http';
import crypto from 'k6/crypto';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN_TOKEN = __ENV.ADMIN_TOKEN;
if (!ADMIN_TOKEN) {
  throw new Error('ADMIN_TOKEN is not set: pass the service\'s ANTEROOM_ADMIN_TOKEN, e.g. k6 run -e ADMIN_TOKEN=... (k6/run.sh does it for you)');
}

// ---------------------------------------------------------------- configuration

function envNumber(name, fallback, parse) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = parse(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}=${raw} is not a non-negative number`);
  return value;
}
export const envInt = (name, fallback) => envNumber(name, fallback, (s) => (/^\d+$/.test(s) ? Number(s) : NaN));
export const envFloat = (name, fallback) => envNumber(name, fallback, Number);
export const envString = (name, fallback) => __ENV[name] || fallback;

// ---------------------------------------------------------------- metrics

// Booking invariants: a paid order that does not read paid or whose seats do not
// read sold, a seat listed twice, books that do not balance, a seat never released.
const oversellOrLost = new Counter('oversell_or_lost');
// Any other departure from API.md: an unexpected status or body, a position that
// went up, a hold that expired late, a state that should not happen.
const contractViolations = new Counter('contract_violations');
const ledgerSoldSeats = new Counter('ledger_gap_sold_seats');
const ledgerPaidOrders = new Counter('ledger_gap_paid_orders');
const ledgerExpiredOrders = new Counter('ledger_gap_expired_orders');

// Legitimate outcomes, counted separately.
const outcomes = {
  visitors: new Counter('visitors'),
  soldOutAtJoin: new Counter('sold_out_at_join'),
  soldOutInLine: new Counter('sold_out_in_line'),
  admitted: new Counter('admitted'),
  seatConflicts: new Counter('seat_conflicts'), // 409 seat_unavailable, retried
  noSeats: new Counter('admitted_no_seats'), // admitted, but nothing left to hold
  held: new Counter('orders_held'),
  paid: new Counter('orders_paid'),
  cancelled: new Counter('orders_cancelled'),
  abandoned: new Counter('orders_abandoned'), // left to expire, and seen expired
  payTooLate: new Counter('pay_too_late'), // 410 on pay: the hold had expired
  cancelTooLate: new Counter('cancel_too_late'), // 410 on cancel: the same
  challengesRenewed: new Counter('challenges_renewed'), // 428 on join: solved the fresh challenge
};
const queueWait = new Trend('queue_wait', true);
// When, after expires_at, an abandoned order was first seen expired (read every
// 0.5 s; the answer's arrival, so an upper bound).
const expiryLag = new Trend('expiry_lag', true);

let violationLogs = 0;
function report(counter, kind, message) {
  counter.add(1, { kind });
  if (violationLogs++ < 2) console.error(`[${kind}] ${message}`);
}
const violation = (kind, message) => report(contractViolations, kind, message);
export const bookViolation = (kind, message) => report(oversellOrLost, kind, message);

// ---------------------------------------------------------------- options

// Thresholds every script has: no failed request, no violation, balanced
// ledgers, plus p95/p99 latency bounds per route: `{ poll: [p95, p99] }` in ms,
// each overridable from the environment (P95_POLL=..., P99_POLL=...).
export function thresholds(latency, extra = {}) {
  const t = {
    http_req_failed: [`rate<=${envFloat('MAX_ERROR_RATE', 0)}`],
    checks: ['rate==1'],
    oversell_or_lost: ['count==0'],
    contract_violations: ['count==0'],
    ledger_gap_sold_seats: ['count==0'],
    ledger_gap_paid_orders: ['count==0'],
    ledger_gap_expired_orders: ['count==0'],
  };
  for (const [name, [p95, p99]] of Object.entries(latency)) {
    const route = name.toUpperCase();
    t[`http_req_duration{name:${name}}`] = [`p(95)<${envInt(`P95_${route}`, p95)}`, `p(99)<${envInt(`P99_${route}`, p99)}`];
  }
  return Object.assign(t, extra);
}

export const commonOptions = {
  setupTimeout: '2m',
  teardownTimeout: '3m',
  // Tokens and order ids are in the URLs: keep `url` out of the tags (one time
  // series per route name, not per token).
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response', 'error_code'],
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

// ---------------------------------------------------------------- HTTP

// One response callback per list of expected statuses, made once per VU.
const callbacks = {};
function expected(statuses) {
  const key = statuses.join(',');
  if (!callbacks[key]) callbacks[key] = http.expectedStatuses(...statuses);
  return callbacks[key];
}

// The API.md routes. Each returns a request: `expect` lists the statuses that are
// legitimate there; anything else (5xx, a 401 on a fresh token or pass, ...)
// fails the request and is reported as a contract violation.
const admin = ADMIN_TOKEN;
const routes = {
  createEvent: (spec) => ['POST', '/api/admin/events', { name: 'admin', expect: [201], body: spec, auth: admin }],
  stats: (id) => ['GET', `/api/admin/events/${id}/stats`, { name: 'admin', expect: [200], auth: admin }],
  seats: (id) => ['GET', `/api/events/${id}/seats`, { name: 'seats', expect: [200] }],
  challenge: (id) => ['GET', `/api/events/${id}/challenge`, { name: 'challenge', expect: [200] }],
  // `door`: the solved join challenge ({challenge, nonce}), or {} when the event asks none.
  join: (id, visitor, door = {}, expect = [201, 410]) =>
    ['POST', `/api/events/${id}/queue`, { name: 'join', expect, body: { visitor, ...door } }],
  poll: (token) => ['GET', `/api/queue/${token}`, { name: 'poll', expect: [200] }],
  leave: (token) => ['DELETE', `/api/queue/${token}`, { name: 'leave', expect: [200] }],
  hold: (id, pass, body) => ['POST', `/api/events/${id}/holds`, { name: 'hold', expect: [201, 409], body, auth: pass }],
  order: (orderId, pass) => ['GET', `/api/orders/${orderId}`, { name: 'order', expect: [200], auth: pass }],
  pay: (orderId, pass, ref, expect = [200, 410]) =>
    ['POST', `/api/orders/${orderId}/pay`, { name: 'pay', expect, body: { payment_ref: ref }, auth: pass }],
  cancel: (orderId, pass) => ['DELETE', `/api/orders/${orderId}`, { name: 'cancel', expect: [200, 410], auth: pass }],
};

function prepare([method, path, { name, expect, body, auth }]) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = `Bearer ${auth}`;
  const params = { headers, tags: { name }, responseCallback: expected(expect) };
  return { method, url: BASE_URL + path, body: body === undefined ? null : JSON.stringify(body), params, name, expect };
}

// Returns { status, body, res }: `body` is parsed on first use (null if not
// JSON). Seat maps are big and JSON.parse is slow in k6: read them with
// `res.json(selector)` (gjson, in Go) instead.
function conclude(req, res) {
  if (!req.expect.includes(res.status)) {
    violation(`status_${req.name}`, `${req.method} ${req.url.slice(BASE_URL.length, BASE_URL.length + 60)} -> ${res.status} (expected ${req.expect}) ${String(res.body).slice(0, 200)} ${res.error || ''}`);
  }
  let parsed;
  return {
    status: res.status,
    res,
    get body() {
      if (parsed === undefined) {
        try {
          parsed = res.body ? JSON.parse(res.body) : null;
        } catch (e) {
          parsed = null;
        }
      }
      return parsed;
    },
  };
}

function send(request) {
  const req = prepare(request);
  return conclude(req, http.request(req.method, req.url, req.body, req.params));
}

// Sends several requests at the same moment (k6 http.batch).
function sendAll(requests) {
  const reqs = requests.map(prepare);
  return http.batch(reqs.map((r) => [r.method, r.url, r.body, r.params])).map((res, i) => conclude(reqs[i], res));
}

// `api.pay(...)` sends `routes.pay(...)`, and so on.
export const api = Object.fromEntries(Object.entries(routes).map(([k, route]) => [k, (...args) => send(route(...args))]));

// ---------------------------------------------------------------- events

const randomHex = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
const randomInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
const randomItem = (items) => items[Math.floor(Math.random() * items.length)];

// Creates the run's own event. `spec` is the API.md body without `id`, `name`,
// `venue` and `starts_at` (filled in here); its join challenge is CHALLENGE_BITS
// (default 0: off). Returns what the VUs and teardown need.
export function createEvent(script, spec) {
  const id = `k6-${script}-${Date.now()}-${randomHex(6)}`;
  const res = api.createEvent(Object.assign({
    id,
    name: `k6 ${script}`,
    venue: 'Load test hall',
    starts_at: new Date(Date.now() + 30 * 86400e3).toISOString(),
    join_challenge: { bits: envInt('CHALLENGE_BITS', 0) },
  }, spec));
  if (res.status !== 201 || !res.body || res.body.id !== id) {
    throw new Error(`setup: creating event ${id} answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  const seatsTotal = spec.sections.reduce((n, s) => n + s.rows * s.seats_per_row, 0);
  if (res.body.seats_total !== seatsTotal) {
    throw new Error(`setup: event ${id} has seats_total ${res.body.seats_total}, expected ${seatsTotal}`);
  }
  console.log(`event ${id}: ${seatsTotal} seats, hold ${spec.hold_seconds} s, admission ${JSON.stringify(spec.admission)}, join challenge ${res.body.join_challenge.bits} bits`);
  return {
    id,
    challengeBits: res.body.join_challenge.bits,
    seatsTotal,
    holdSeconds: spec.hold_seconds,
    maxSeats: spec.max_seats_per_user,
    prices: Object.fromEntries(spec.sections.map((s) => [s.id, s.price_cents])),
    sections: spec.sections.map((s) => ({ id: s.id, rows: s.rows, seatsPerRow: s.seats_per_row })),
  };
}

// The sections of a venue of `seats` seats: rows of `rowLength` seats,
// `rowsPerSection` rows per section (the last row of the last section may be
// shorter, in a section of its own), prices varying by section.
export function venue(seats, { rowLength = 25, rowsPerSection = 20 } = {}) {
  const out = [];
  for (let left = seats; left > 0;) {
    const perRow = Math.min(rowLength, left);
    const rows = Math.min(rowsPerSection, Math.floor(left / perRow));
    if (out.length === 26) throw new Error(`a venue of ${seats} seats needs more than 26 sections: raise rowsPerSection`);
    out.push({ id: String.fromCharCode(65 + out.length), name: `Section ${out.length + 1}`, price_cents: 5000 + 1000 * (out.length % 5), rows, seats_per_row: perRow });
    left -= rows * perRow;
  }
  return out;
}

// ---------------------------------------------------------------- the journey

const parseSeat = (id) => {
  const [section, row, seat] = id.split('-');
  return { section, row: Number(row), seat: Number(seat) };
};
const expectedAmount = (ev, seats) => seats.reduce((sum, id) => sum + ev.prices[parseSeat(id).section], 0);

// Unique per VU iteration, and per run.
export function uniqueVisitor(script) {
  return `k6-${script}-${exec.vu.idInTest}-${exec.vu.iterationInInstance}-${randomHex(8)}`.slice(0, 64);
}

// ---------------------------------------------------------------- the join challenge

// Leading zero bits of a hex digest.
function zeroBits(hex) {
  let zeros = 0;
  for (const digit of hex) {
    const value = parseInt(digit, 16);
    if (value !== 0) return zeros + Math.clz32(value) - 28;
    zeros += 4;
  }
  return zeros;
}

// The first nonce that makes sha256(challenge + ":" + nonce) start with `bits`
// zero bits: 2^bits hashes on average, as a visitor's browser pays.
function solve(challenge, bits) {
  for (let n = 0; ; n++) {
    if (zeroBits(crypto.sha256(`${challenge}:${n}`, 'hex')) >= bits) return { challenge, nonce: String(n) };
  }
}

// What a join brings to the door: a solved challenge when the event asks for one.
function passDoor(ev) {
  if (!ev.challengeBits) return {};
  const res = api.challenge(ev.id);
  return res.status === 200 ? solve(res.body.challenge, res.body.bits) : {};
}

// Joins the line. Returns the 201 body, or null when sold out (410) or broken.
// A 428 (the difficulty rose since the challenge was fetched) is answered
// once, by solving the fresh challenge it carries.
export function joinLine(ev, visitor) {
  outcomes.visitors.add(1);
  let res = api.join(ev.id, visitor, passDoor(ev), [201, 410, 428]);
  if (res.status === 428) {
    outcomes.challengesRenewed.add(1);
    res = api.join(ev.id, visitor, solve(res.body.challenge, res.body.bits));
  }
  if (res.status === 410) {
    if (!check(res, { 'join 410 is sold_out': (r) => r.body && r.body.error === 'sold_out' })) violation('join_body', JSON.stringify(res.body));
    outcomes.soldOutAtJoin.add(1);
    return null;
  }
  if (res.status !== 201) return null;
  const b = res.body || {};
  const ok = check(b, {
    'join gives a token': (x) => typeof x.token === 'string' && x.token.length > 0 && typeof x.token_id === 'string',
    'join state is waiting, admitted or sold_out': (x) => ['waiting', 'admitted', 'sold_out'].includes(x.state),
    'join position is a positive integer': (x) => x.state !== 'waiting' || (Number.isInteger(x.position) && x.position >= 1),
    'join poll_after_ms is set': (x) => x.state === 'sold_out' || (Number.isInteger(x.poll_after_ms) && x.poll_after_ms >= 0),
  });
  if (!ok) {
    violation('join_body', JSON.stringify(b));
    return null;
  }
  return Object.assign({ joinedAt: Date.now() }, b);
}

// Joining again with the same visitor (a page reload) must give the same token,
// 200 (or 410 if the event sold out in between).
export function rejoin(ev, visitor, joined) {
  // A live place is returned without a challenge, whatever the event asks.
  const res = api.join(ev.id, visitor, {}, [200, 410]);
  if (res.status === 410 && !check(res.body, { 'rejoin 410 is sold_out': (b) => b && b.error === 'sold_out' })) violation('rejoin', JSON.stringify(res.body));
  if (res.status !== 200) return;
  const b = res.body || {};
  if (!check(b, {
    'rejoin gives the same token': (x) => x.token_id === joined.token_id,
    'rejoin position did not go up': (x) => x.state !== 'waiting' || joined.state !== 'waiting' || x.position <= joined.position,
  })) violation('rejoin', `${JSON.stringify(joined)} then ${JSON.stringify(b)}`);
}

// Polls exactly as poll_after_ms says until admitted. Returns the pass, or null
// (sold out while waiting, or broken).
export function waitForPass(joined, maxWaitSeconds) {
  let state = joined;
  let position = joined.position;
  const deadline = joined.joinedAt + maxWaitSeconds * 1000;
  for (;;) {
    if (state.state === 'admitted') {
      if (!check(state, { 'admitted with a pass': (x) => typeof x.pass === 'string' && !Number.isNaN(Date.parse(x.pass_expires_at)) })) {
        violation('admitted_body', JSON.stringify(state));
        return null;
      }
      outcomes.admitted.add(1);
      queueWait.add(Date.now() - joined.joinedAt);
      return state.pass;
    }
    if (state.state === 'sold_out') {
      outcomes.soldOutInLine.add(1);
      return null;
    }
    if (state.state !== 'waiting') {
      violation('poll_state', `token ${joined.token_id} read ${JSON.stringify(state)} while polling on time`);
      return null;
    }
    if (!check(state, {
      'waiting: position, eta and poll_after_ms': (x) => Number.isInteger(x.position) && x.position >= 1
        && x.eta_seconds >= 0 && x.eta_max_seconds >= x.eta_seconds && Number.isInteger(x.poll_after_ms) && x.poll_after_ms >= 0,
    })) {
      violation('poll_body', JSON.stringify(state));
      return null;
    }
    if (state.position > position) violation('position_went_up', `token ${joined.token_id}: ${position} then ${state.position}`);
    position = state.position;
    if (Date.now() > deadline) {
      violation('wait_too_long', `token ${joined.token_id} still waiting at position ${position} after ${maxWaitSeconds} s`);
      return null;
    }
    sleep(state.poll_after_ms / 1000);
    const res = api.poll(joined.token);
    if (res.status !== 200 || !res.body) return null;
    state = res.body;
  }
}

export function leaveLine(joined) {
  const res = api.leave(joined.token);
  if (res.status === 200 && !check(res.body, { 'leave reads left': (b) => b && b.state === 'left' })) {
    violation('leave_body', JSON.stringify(res.body));
  }
}

// Checks a 201 hold body against what was asked. `want` is either a list of
// seat ids or { count, section } for best_available.
// `sentAt`..`now` is when the request was in flight: the hold was made then.
function checkHeld(ev, want, body, sentAt) {
  const seats = (body && body.seats) || [];
  const coords = seats.map(parseSeat);
  const expiresAt = body && Date.parse(body.expires_at);
  const holdMs = ev.holdSeconds * 1000;
  return check(body, {
    'hold is pending with an order id': (b) => b && b.status === 'pending' && typeof b.order_id === 'string',
    'hold has the seats asked for': () => (Array.isArray(want)
      ? seats.length === want.length && want.every((s) => seats.includes(s))
      : seats.length === want.count && new Set(seats).size === seats.length),
    'best_available seats are adjacent in one row (and section)': () => Array.isArray(want) || coords.every((c, i) => c.section === coords[0].section
      && c.row === coords[0].row && c.seat === coords[0].seat + i && (!want.section || c.section === want.section)),
    'hold amount is the sum of the seat prices': (b) => b && b.amount_cents === expectedAmount(ev, seats),
    'hold expires hold_seconds after it was made': () => expiresAt >= sentAt + holdMs - 500 && expiresAt <= Date.now() + holdMs + 500,
  });
}

// One hold attempt. Returns { order } on 201, { taken: [...] } on 409.
export function holdOnce(ev, pass, want) {
  const sentAt = Date.now();
  const res = api.hold(ev.id, pass, Array.isArray(want) ? { seats: want } : { best_available: want });
  if (res.status === 201) {
    if (!checkHeld(ev, want, res.body, sentAt)) {
      violation('hold_body', `${JSON.stringify(want)} -> ${JSON.stringify(res.body)}`);
      return {};
    }
    outcomes.held.add(1);
    return { order: Object.assign({ pass }, res.body) };
  }
  if (res.status === 409) {
    const b = res.body || {};
    const taken = Array.isArray(b.seats) ? b.seats : null;
    const ok = check(b, {
      '409 is seat_unavailable': (x) => x.error === 'seat_unavailable' && taken !== null,
      '409 names only seats that were asked for': () => taken !== null && (Array.isArray(want) ? taken.length > 0 && taken.every((s) => want.includes(s)) : taken.length === 0),
    });
    if (!ok) violation('hold_409_body', `${JSON.stringify(want)} -> ${JSON.stringify(b)}`);
    outcomes.seatConflicts.add(1);
    return { taken: taken || [] };
  }
  return {};
}

function freeSeats(ev) {
  const r = api.seats(ev.id);
  const free = r.status === 200 ? r.res.json('seats.#(state=="free")#.id') : null;
  return Array.isArray(free) ? free : null;
}

function pickSeats(free, count) {
  const pool = free.slice();
  const picked = [];
  while (picked.length < count && pool.length > 0) picked.push(pool.splice(Math.floor(Math.random() * pool.length), 1)[0]);
  return picked;
}

// Holds 1..max_seats_per_user seats like a person would: either picks free
// seats on the seat map (retrying other seats on 409, up to `attempts` times),
// or asks for best_available (then, if no block of that size is left, a
// single seat). Returns the order, or null.
export function holdSeats(ev, pass, { explicitShare = 0.5, attempts = 3 } = {}) {
  const count = randomInt(1, ev.maxSeats);
  if (Math.random() < explicitShare) {
    const taken = new Set();
    for (let i = 0; i < attempts; i++) {
      const free = freeSeats(ev);
      if (free === null) return null;
      const want = pickSeats(free.filter((s) => !taken.has(s)), count);
      if (want.length === 0) break;
      const r = holdOnce(ev, pass, want);
      if (r.order) return r.order;
      if (!r.taken) return null;
      r.taken.forEach((s) => taken.add(s));
    }
  } else {
    const section = Math.random() < 0.5 ? randomItem(ev.sections).id : undefined;
    for (const want of [{ count, section }, { count: 1 }]) {
      const r = holdOnce(ev, pass, want);
      if (r.order) return r.order;
      if (!r.taken) return null;
    }
  }
  outcomes.noSeats.add(1);
  return null;
}

function readOrder(order) {
  const res = api.order(order.order_id, order.pass);
  return res.status === 200 ? res.body : null;
}

// The seat map may lag by up to 1 s: read it after 1 s, and once more 0.5 s later.
function seatsReadSold(ev, seats) {
  for (const wait of [1.0, 0.5]) {
    sleep(wait);
    const r = api.seats(ev.id);
    if (r.status !== 200) return null;
    if (seats.every((s) => r.res.json(`seats.#(id=="${s}").state`) === 'sold')) return true;
  }
  return false;
}

// Pays (with `copies` > 1, that many identical payments at the same moment,
// which must all agree: paying is idempotent), then proves the sale: the order
// reads paid and its seats read sold on the seat map. Returns true if paid.
export function payOrder(ev, order, ref, copies = 1) {
  const answers = sendAll(Array.from({ length: copies }, () => routes.pay(order.order_id, order.pass, ref)));
  const statuses = answers.map((a) => a.status);
  if (statuses.some((s) => s !== statuses[0])) {
    bookViolation('pay_disagrees', `order ${order.order_id}: ${copies} payments at once answered ${statuses}`);
  }
  const paid = answers.filter((a) => a.status === 200);
  if (paid.length === 0) {
    if (statuses.includes(410)) endedByExpiry(order, 'pay', answers[statuses.indexOf(410)].body);
    else settleUnknown(order);
    return false;
  }
  if (!check(paid, { 'pay gives a paid order with the held seats': (list) => list.every((a) => a.body && a.body.status === 'paid' && sameSeats(a.body.seats, order.seats)) })) {
    violation('pay_body', JSON.stringify(paid.map((a) => a.body)));
  }
  outcomes.paid.add(1);
  ledgerPaidOrders.add(1);
  ledgerSoldSeats.add(order.seats.length);
  const read = readOrder(order);
  if (read && !(read.status === 'paid' && sameSeats(read.seats, order.seats))) {
    bookViolation('paid_order_not_paid', `order ${order.order_id} was paid but reads ${JSON.stringify(read)}`);
  }
  const sold = seatsReadSold(ev, order.seats);
  if (sold === false) bookViolation('paid_seat_not_sold', `order ${order.order_id} paid, but seats ${order.seats} do not all read sold 1.5 s later`);
  return true;
}

const sameSeats = (a, b) => Array.isArray(a) && a.length === b.length && b.every((s) => a.includes(s));

// After a failed pay or cancel (already reported) the outcome is unknown: read
// the order, as a client would, and keep the ledger to what it says, so that
// one failure is not reported again as a gap in the books.
function settleUnknown(order) {
  sleep(0.5);
  const read = readOrder(order);
  if (!read) return;
  if (read.status === 'paid') {
    ledgerPaidOrders.add(1);
    ledgerSoldSeats.add(order.seats.length);
  } else if (read.status === 'expired') {
    ledgerExpiredOrders.add(1);
  } else if (read.status === 'pending') {
    abandonOrder(order, 'k6-unknown');
  }
}

// A 410 on pay or cancel is legitimate only once the hold has expired: the
// answer cannot have come before expires_at, and the order must read expired.
function endedByExpiry(order, route, body) {
  const early = Date.parse(order.expires_at) - Date.now();
  (route === 'pay' ? outcomes.payTooLate : outcomes.cancelTooLate).add(1);
  if (!body || body.error !== 'expired') violation(`${route}_410_body`, JSON.stringify(body));
  if (early > 0) violation('expired_early', `order ${order.order_id}: ${route} answered 410 expired ${early} ms before expires_at`);
  const read = readOrder(order);
  if (read && read.status !== 'expired') violation(`${route}_410_status`, `order ${order.order_id} got 410 on ${route} but reads ${read.status}`);
  if (read && read.status === 'expired') ledgerExpiredOrders.add(1);
}

// Cancels the hold (410 if it expired first: API.md does not say, 410 expired
// is what pay answers then), then checks that it can no longer be paid.
export function cancelOrder(order, ref) {
  const res = api.cancel(order.order_id, order.pass);
  if (res.status === 410) endedByExpiry(order, 'cancel', res.body);
  else if (res.status !== 200) settleUnknown(order);
  if (res.status !== 200) return;
  if (!check(res.body, { 'cancel reads cancelled': (b) => b && b.status === 'cancelled' })) violation('cancel_body', JSON.stringify(res.body));
  outcomes.cancelled.add(1);
  payMustFail(order, ref);
}

// A cancelled or expired hold cannot be paid any more: 410 expired.
function payMustFail(order, ref) {
  const res = api.pay(order.order_id, order.pass, ref, [410]);
  if (res.status === 410 && !check(res.body, { 'paying an ended hold is 410 expired': (b) => b && b.error === 'expired' })) {
    violation('pay_after_end', JSON.stringify(res.body));
  }
}

// Walks away from the hold: it must read expired no later than hold_seconds + 2 s
// after it was made (expires_at + 2 s), so a read sent after that must not see
// it pending; after that, it cannot be paid. Reads the order every 0.5 s from
// expires_at, which also times the expiry (expiry_lag: an upper bound).
export function abandonOrder(order, ref) {
  const expiresAt = Date.parse(order.expires_at);
  const due = expiresAt + 2000;
  sleep(Math.max(0, expiresAt - Date.now()) / 1000);
  let sentAt;
  let read;
  const readNow = () => {
    sentAt = Date.now();
    read = readOrder(order);
    return read && read.status === 'pending';
  };
  while (readNow() && sentAt < due) sleep(0.5);
  if (read && read.status === 'pending') {
    violation('expiry_late', `order ${order.order_id} read pending ${sentAt - due} ms after expires_at + 2 s`);
    const giveUp = Date.now() + 10000;
    while (Date.now() < giveUp) {
      sleep(0.5);
      if (!readNow()) break;
    }
  }
  if (!read) return;
  if (read.status !== 'expired') {
    bookViolation('hold_never_expired', `abandoned order ${order.order_id} reads ${read.status}`);
    return;
  }
  expiryLag.add(Date.now() - expiresAt);
  outcomes.abandoned.add(1);
  ledgerExpiredOrders.add(1);
  payMustFail(order, ref);
}

// One visitor's whole journey: join (and, sometimes, reload), wait, hold, then
// pay, cancel or walk away, as `mix` says ({ pay, cancel } shares, the rest
// abandon; `explicitShare` of holds pick seats on the map; `rejoinShare`
// reload the waiting room once; `maxWaitSeconds` in line).
export function visit(ev, script, mix) {
  const visitor = uniqueVisitor(script);
  const joined = joinLine(ev, visitor);
  if (!joined) return;
  if (Math.random() < mix.rejoinShare) rejoin(ev, visitor, joined);
  const pass = waitForPass(joined, mix.maxWaitSeconds);
  if (pass) {
    const order = holdSeats(ev, pass, mix);
    if (order) {
      const ref = `k6-${visitor}`;
      const dice = Math.random();
      if (dice < mix.pay + mix.cancel) sleep(randomInt(200, Math.min(2000, ev.holdSeconds * 250)) / 1000); // think
      if (dice < mix.pay) payOrder(ev, order, ref);
      else if (dice < mix.pay + mix.cancel) cancelOrder(order, ref);
      else abandonOrder(order, ref);
    }
  }
  // Done: free the place in max_active at once.
  if (pass) leaveLine(joined);
}

// ---------------------------------------------------------------- the books

// Run from teardown, once every VU is done. Waits until no seat is held (every
// pending order has ended: hold_seconds + 2 s at most), then checks that the
// stats balance, that the seat map lists every seat of the venue exactly once
// and agrees with the stats, and closes the ledgers. Violations go to the
// counters; the return value is for the summary.
export function checkBooks(ev) {
  const deadline = Date.now() + (ev.holdSeconds + 5) * 1000;
  let stats = null;
  for (;;) {
    const res = api.stats(ev.id);
    if (res.status !== 200 || !res.body) {
      bookViolation('stats_unreadable', `stats answered ${res.status}`);
      return null;
    }
    stats = res.body;
    if (stats.held_seats === 0 || Date.now() > deadline) break;
    sleep(0.5);
  }
  if (stats.held_seats !== 0) bookViolation('stuck_hold', `${stats.held_seats} seats still held ${ev.holdSeconds + 5} s after the last visitor left`);
  // Every visitor who got a pass gave it back (DELETE /api/queue/{token}), and
  // nobody told sold_out may be admitted afterwards: no pass is left active.
  if (stats.active !== 0) violation('passes_still_active', `${stats.active} passes active after every visitor left (admitted after reading sold_out?)`);
  if (stats.sold_seats + stats.held_seats + stats.available_seats !== ev.seatsTotal) {
    bookViolation('stats_unbalanced', `sold ${stats.sold_seats} + held ${stats.held_seats} + available ${stats.available_seats} != ${ev.seatsTotal}`);
  }

  // The seat map may lag by up to 1 s.
  let map = null;
  let mapProblems = [];
  for (let attempt = 0; attempt < 4; attempt++) {
    sleep(1.5);
    stats = api.stats(ev.id).body || stats;
    const res = api.seats(ev.id);
    if (res.status !== 200 || !res.body || !Array.isArray(res.body.seats)) continue;
    map = res.body.seats;
    mapProblems = seatMapProblems(ev, map, stats);
    if (mapProblems.length === 0) break;
  }
  if (!map) bookViolation('seat_map_unreadable', 'GET seats never answered a seat list');
  mapProblems.forEach((p) => bookViolation('seat_map', p));

  ledgerSoldSeats.add(-stats.sold_seats);
  ledgerPaidOrders.add(-stats.orders_paid);
  ledgerExpiredOrders.add(-stats.orders_expired);
  console.log(`books of ${ev.id}: ${JSON.stringify(stats)}`);
  return stats;
}

function seatMapProblems(ev, seats, stats) {
  const problems = [];
  const expectedIds = [];
  for (const s of ev.sections) {
    for (let r = 1; r <= s.rows; r++) for (let n = 1; n <= s.seatsPerRow; n++) expectedIds.push(`${s.id}-${r}-${n}`);
  }
  const ids = seats.map((s) => s.id);
  const seen = new Set();
  const dupes = [];
  for (const id of ids) {
    if (seen.has(id)) dupes.push(id);
    seen.add(id);
  }
  if (dupes.length > 0) problems.push(`seat map lists ${dupes.length} seats more than once: ${dupes.slice(0, 5)}`);
  if (ids.length !== expectedIds.length || ids.some((id, i) => id !== expectedIds[i])) {
    problems.push(`seat map has ${ids.length} seats, not the ${expectedIds.length} of the venue in section, row, seat order`);
  }
  const count = (state) => seats.filter((s) => s.state === state).length;
  const odd = seats.filter((s) => !['free', 'held', 'sold'].includes(s.state));
  if (odd.length > 0) problems.push(`seats in unknown states: ${JSON.stringify(odd.slice(0, 3))}`);
  if (count('sold') !== stats.sold_seats) problems.push(`seat map sold ${count('sold')} != stats sold_seats ${stats.sold_seats}`);
  if (count('held') !== stats.held_seats) problems.push(`seat map held ${count('held')} != stats held_seats ${stats.held_seats}`);
  if (count('free') !== stats.available_seats) problems.push(`seat map free ${count('free')} != stats available_seats ${stats.available_seats}`);
  return problems;
}
