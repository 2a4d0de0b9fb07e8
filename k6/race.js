// The race for the last seats: VUS people (default 500) are all admitted at
// once (high per_second, large max_active), wait for the same instant, then all
// try to hold the SAME SEATS seats (default 5) of a one-row venue, one seat
// each (max_seats_per_user 1): half pick seats on the map, all starting from
// A-1-1 and moving along the row after each 409; half ask for best_available.
// Each winner pays twice at the same moment (both must answer 200 paid).
// Exactly min(SEATS, VUS) holds must win; teardown checks that exactly that many
// seats and paid orders are on the books, every seat sold once, besides the
// books (lib.js: checkBooks).
//
//   bash k6/run.sh race
//   k6 run -e ADMIN_TOKEN=... [-e BASE_URL=...] [-e VUS=500 -e SEATS=5] k6/race.js
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
  bookViolation, checkBooks, commonOptions, createEvent, envInt, holdOnce, joinLine, leaveLine,
  payOrder, thresholds, uniqueVisitor, waitForPass,
} from './lib.js';

const VUS = envInt('VUS', 500);
const SEATS = envInt('SEATS', 5);
// Time after setup for every VU to join and be admitted before the start signal.
const BARRIER_SECONDS = envInt('BARRIER_SECONDS', 10);
const expectedWins = Math.min(SEATS, VUS);

const wins = new Counter('race_wins');
const losses = new Counter('race_losses');
const lateStarters = new Counter('race_late_starters'); // admitted after the signal

export const options = Object.assign({}, commonOptions, {
  scenarios: {
    race: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: '3m' },
  },
  thresholds: thresholds({
    join: [1000, 2000],
    poll: [1000, 2000],
    hold: [1000, 2000],
    pay: [1000, 2000],
  }, {
    race_wins: [`count==${expectedWins}`],
    race_losses: [`count==${VUS - expectedWins}`],
  }),
});

export function setup() {
  const ev = createEvent('race', {
    hold_seconds: 60,
    max_seats_per_user: 1,
    admission: { per_second: VUS * 10, max_active: VUS * 2, pass_seconds: 300, abandon_seconds: 60 },
    sections: [{ id: 'A', name: 'The last row', price_cents: 25000, rows: 1, seats_per_row: SEATS }],
  });
  return Object.assign(ev, { startAt: Date.now() + BARRIER_SECONDS * 1000 });
}

// The seat order a VU tries: everyone starts with A-1-1.
const row = Array.from({ length: SEATS }, (_, i) => `A-1-${i + 1}`);

function race(ev, pass, explicit) {
  const attempts = explicit ? row.map((seat) => [seat]) : [{ count: 1 }];
  for (const want of attempts) {
    const r = holdOnce(ev, pass, want);
    if (r.order) return r.order;
    if (!r.taken) return null; // broken: already reported
  }
  return null;
}

export default function (ev) {
  const visitor = uniqueVisitor('race');
  const joined = joinLine(ev, visitor);
  if (!joined) return;
  const pass = waitForPass(joined, 120);
  if (!pass) return;
  const wait = ev.startAt - Date.now();
  if (wait > 0) sleep(wait / 1000);
  else lateStarters.add(1);

  const order = race(ev, pass, __VU % 2 === 0);
  if (order) {
    wins.add(1);
    payOrder(ev, order, `k6-${visitor}`, 2);
  } else {
    losses.add(1);
  }
  leaveLine(joined);
}

export function teardown(ev) {
  const stats = checkBooks(ev);
  if (!stats) return;
  if (stats.sold_seats !== expectedWins || stats.orders_paid !== expectedWins) {
    bookViolation('race_result', `expected exactly ${expectedWins} seats sold in ${expectedWins} orders, the books say ${stats.sold_seats} seats in ${stats.orders_paid} orders`);
  }
}
