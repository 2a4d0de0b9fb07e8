// A steady sale for DURATION (default 5m; try `-e DURATION=30s` for a short
// run): RATE new visitors per second (default 8) join, wait, hold seats and
// mostly walk away, so short holds (HOLD_SECONDS, default 6) expire all along
// the run while others pay or cancel. The venue (SEATS, default 5000) is large
// enough not to sell out. Teardown checks the books (lib.js: checkBooks).
//
//   bash k6/run.sh soak [-e DURATION=30s]
//   k6 run -e ADMIN_TOKEN=... [-e BASE_URL=...] [-e DURATION=5m -e RATE=8] k6/soak.js
import { checkBooks, commonOptions, createEvent, envFloat, envInt, envString, thresholds, venue, visit } from './lib.js';

const RATE = envInt('RATE', 8);
const DURATION = envString('DURATION', '5m');

const mix = {
  pay: envFloat('PAY_SHARE', 0.3),
  cancel: envFloat('CANCEL_SHARE', 0.1),
  explicitShare: 0.5,
  rejoinShare: 0.05,
  maxWaitSeconds: 120,
};

export const options = Object.assign({}, commonOptions, {
  scenarios: {
    sale: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: RATE * 20,
      maxVUs: RATE * 40,
      gracefulStop: '2m', // let every visitor finish: the books count on it
    },
  },
  thresholds: thresholds({
    join: [200, 500],
    poll: [100, 300],
    seats: [300, 600],
    hold: [200, 500],
    pay: [200, 500],
    order: [200, 500],
    cancel: [200, 500],
    leave: [200, 500],
  }),
});

export function setup() {
  return createEvent('soak', {
    hold_seconds: envInt('HOLD_SECONDS', 6),
    max_seats_per_user: 4,
    admission: { per_second: envFloat('ADMIT_PER_SECOND', 50), max_active: envInt('MAX_ACTIVE', 500), pass_seconds: 120, abandon_seconds: 60 },
    sections: venue(envInt('SEATS', 5000)),
  });
}

export default function (ev) {
  visit(ev, 'soak', mix);
}

export function teardown(ev) {
  checkBooks(ev);
}
