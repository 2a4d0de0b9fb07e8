// A TicketMax-style on-sale spike: VISITORS people (default 3000, one VU each)
// arrive evenly within ARRIVAL_SECONDS (default 8), twice as many as there are
// seats. Each joins with a unique visitor id, polls exactly as poll_after_ms
// says, and once admitted (ADMIT_PER_SECOND, default 50) holds seats (seat-map
// picks or best_available), then pays, cancels, or walks away and lets the
// short hold expire during the run. Once the line should have drained,
// latecomers keep arriving and meet whatever is left, often `410 sold_out`.
// Teardown checks the books (lib.js: checkBooks).
//
//   bash k6/run.sh [--servers] spike [-e VISITORS=5000 ...]
//   k6 run -e ADMIN_TOKEN=... [-e BASE_URL=...] [-e VISITORS=3000 ...] k6/spike.js
import { sleep } from 'k6';
import exec from 'k6/execution';
import { checkBooks, commonOptions, createEvent, envFloat, envInt, thresholds, venue, visit } from './lib.js';

const VISITORS = envInt('VISITORS', 3000);
const ARRIVAL_SECONDS = Math.max(3, envInt('ARRIVAL_SECONDS', 8));
const SEATS = envInt('SEATS', 1500);
const ADMIT_PER_SECOND = envFloat('ADMIT_PER_SECOND', 50);
const LATE_PER_SECOND = envInt('LATE_PER_SECOND', 5);
const LATE_SECONDS = envInt('LATE_SECONDS', 20);

// When the last of the rush should have been admitted.
const drainSeconds = ARRIVAL_SECONDS + Math.ceil(VISITORS / ADMIT_PER_SECOND);

const mix = {
  pay: envFloat('PAY_SHARE', 0.6),
  cancel: envFloat('CANCEL_SHARE', 0.1),
  explicitShare: 0.5,
  rejoinShare: 0.05,
  maxWaitSeconds: drainSeconds + 120,
};

export const options = Object.assign({}, commonOptions, {
  scenarios: {
    // Every VU starts at once and sleeps until its arrival time: exactly
    // VISITORS arrivals, on time even when k6 is short of CPU (an arrival-rate
    // executor then silently starts fewer).
    rush: {
      executor: 'per-vu-iterations',
      exec: 'rush',
      vus: VISITORS,
      iterations: 1,
      maxDuration: `${ARRIVAL_SECONDS + mix.maxWaitSeconds + 60}s`, // every visitor finishes: the books count on it
    },
    latecomers: {
      executor: 'constant-arrival-rate',
      startTime: `${drainSeconds + 10}s`,
      duration: `${LATE_SECONDS}s`,
      rate: LATE_PER_SECOND,
      timeUnit: '1s',
      preAllocatedVUs: LATE_PER_SECOND * LATE_SECONDS, // a visit can last as long as the whole phase
      gracefulStop: '2m',
    },
  },
  // k6 shares the two cores with the service: at the peak its own scheduling
  // adds most of the latency it measures (run.sh prints the service's view).
  thresholds: thresholds({
    join: [1500, 3000],
    poll: [1000, 2000],
    seats: [1500, 3000],
    hold: [1500, 3000],
    pay: [1500, 3000],
    order: [1500, 3000],
    cancel: [1500, 3000],
    leave: [1500, 3000],
  }),
});

export function setup() {
  return createEvent('spike', {
    hold_seconds: envInt('HOLD_SECONDS', 8),
    max_seats_per_user: 4,
    admission: { per_second: ADMIT_PER_SECOND, max_active: envInt('MAX_ACTIVE', 500), pass_seconds: 120, abandon_seconds: 60 },
    sections: venue(SEATS),
  });
}

export function rush(ev) {
  sleep((ARRIVAL_SECONDS * exec.scenario.iterationInTest) / VISITORS);
  visit(ev, 'spike', mix);
}

export default function (ev) {
  visit(ev, 'spike', mix);
}

export function teardown(ev) {
  checkBooks(ev);
}
