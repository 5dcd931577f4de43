// What holds right now: the degrade level (GET /v1/degrade, any key), each deployment's circuit
// (GET /v1/circuits, admin keys), both read live by the ledger from the control and circuits
// buckets, and the priority lanes' depth in the stream (GET /v1/lanes, admin keys).
import { ApiError, get } from './api.js';
import { fillFacts, fillRows, int, pct, when } from './dom.js';

const STATE = { closed: 'closed', open: 'OPEN: calls refused', 'half-open': 'half-open: trial calls', paused: 'paused by the upstream (Retry-After)' };

/** Fills the degrade facts and the circuits table; `admin`: whether the key may read the circuits. */
export async function showLive(admin) {
  const [degrade, circuits, lanes] = await Promise.all([get('/v1/degrade'), admin ? get('/v1/circuits') : null, admin ? lanesOrNull() : null]);
  fillFacts(document.getElementById('degrade'), [
    ['Degrade level', `${degrade.level}: ${degrade.meaning}`],
    ['Set by', degrade.override === null ? 'the degrader' : `an operator (override ${degrade.override})`],
    ['Since', when(degrade.since)],
    ['Reason', degrade.reason],
  ]);
  showLanes(admin, lanes);
  const body = document.querySelector('#circuits tbody');
  if (!circuits) return fillRows(body, [[{ text: 'The circuits take an admin key.', span: 5 }]]);
  fillRows(
    body,
    circuits.data.map((c) => [
      { text: c.configured ? c.deployment : `${c.deployment} (not in the config)`, th: true },
      STATE[c.state] ?? c.state,
      { text: int(c.failures), num: true },
      when(c.openedAt),
      when(c.pausedUntil),
    ]),
  );
  document.getElementById('live-at').textContent = `Last read ${new Date().toISOString().slice(11, 19)} UTC.`;
}

/** The lanes, or null where the ledger does not serve them (it runs without the stream's consumers). */
const lanesOrNull = () => get('/v1/lanes').catch((e) => (notServed(e) ? null : Promise.reject(e)));

function showLanes(admin, lanes) {
  const body = document.querySelector('#lanes tbody');
  if (!admin) return fillRows(body, [[{ text: 'The lanes take an admin key.', span: 6 }]]);
  if (!lanes) return fillRows(body, [[{ text: 'This ledger does not serve the lanes.', span: 6 }]]);
  fillRows(
    body,
    lanes.data.map((l) => [
      { text: l.lane, th: true },
      { text: int(l.pending), num: true },
      { text: int(l.ackPending), num: true },
      { text: pct(l.share, 0), num: true },
      { text: int(l.slots), num: true },
      { text: int(l.estimatedWaitMs), num: true },
    ]),
  );
}

/** Whether an error means the live routes are not served by this ledger (it runs without NATS). */
export const notServed = (e) => e instanceof ApiError && e.status === 404;
