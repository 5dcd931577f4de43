// The console's wiring: sign in with a key, then fill each section from the ledger's API; the
// live section every 5 seconds, the rest every 30 seconds and when its controls change.
import { ApiError, get, key } from './api.js';
import { showBudgets, showCache, showVariants } from './reports.js';
import { showCosts } from './costs.js';
import { showError } from './dom.js';
import { notServed, showLive } from './live.js';
import { showRequest } from './request.js';
import { showSlo } from './slo.js';

const LIVE_EVERY_MS = 5_000;
const REPORTS_EVERY_MS = 30_000;
const DAY_MS = 86_400_000;

const $ = (id) => document.getElementById(id);
let principal = null;
let timers = [];

/** The period's UTC days as the API's [from, to) instants; `toDay` is the last day shown. */
function period() {
  const from = `${$('from').value}T00:00:00.000Z`;
  const to = new Date(Date.parse(`${$('to').value}T00:00:00.000Z`) + DAY_MS).toISOString();
  return { from, to, toDay: $('to').value };
}

/** Runs a section's refresh, showing its error in its own alert line; a refused key signs out. */
async function run(errorId, refresh) {
  try {
    await refresh();
    showError($(errorId), null);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signOut(`The ledger refused the key: ${e.message}`);
    showError($(errorId), e instanceof ApiError && e.status === 403 ? `Not with this key: ${e.message}` : e.message);
  }
}

const refreshLive = () =>
  run('live-error', async () => {
    try {
      await showLive(principal.role === 'admin');
    } catch (e) {
      if (notServed(e)) throw new Error('This ledger does not serve the live state (it runs without the control and circuits buckets).');
      throw e;
    }
  });
const refreshCosts = () => run('costs-error', () => showCosts(period(), $('costs-by').value));
const refreshSlo = () => run('slo-error', () => showSlo(Number($('objective').value), $('slo-by').value));
const refreshBudgets = () => run('budgets-error', showBudgets);
const refreshCache = () => run('cache-error', () => showCache(period()));
const refreshVariants = () => run('variants-error', () => showVariants(period()));

async function refreshPosition() {
  try {
    const p = await get('/v1/ledger/position');
    const who = principal.role === 'admin' ? 'an admin key' : `the read key of tenant ${principal.tenant}`;
    const behind = p.lag === undefined ? '' : p.lag === 0 ? ', up to date' : `, ${p.lag} events behind the stream`;
    $('who').textContent = `Signed in with ${who}. Ledger at event ${p.seq}${behind}.`;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signOut(`The ledger refused the key: ${e.message}`);
  }
}

function refreshReports() {
  return Promise.all([refreshCosts(), refreshSlo(), refreshBudgets(), refreshCache(), refreshVariants()]);
}

async function signIn(value) {
  key.set(value);
  try {
    principal = await get('/v1/principal');
  } catch (e) {
    key.clear();
    const why = e instanceof ApiError && e.status === 401 ? `The ledger refused the key: ${e.message}` : e.message;
    return signOut(why);
  }
  showError($('sign-in-error'), null);
  $('sign-in').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  $('key').value = '';
  timers = [setInterval(refreshLive, LIVE_EVERY_MS), setInterval(refreshPosition, LIVE_EVERY_MS), setInterval(refreshReports, REPORTS_EVERY_MS)];
  await Promise.all([refreshPosition(), refreshLive(), refreshReports()]);
}

function signOut(message) {
  key.clear();
  principal = null;
  for (const t of timers) clearInterval(t);
  timers = [];
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('who').textContent = '';
  showError($('sign-in-error'), message ?? null);
  $('key').focus();
}

function start() {
  const today = new Date().toISOString().slice(0, 10);
  $('to').value = today;
  $('from').value = new Date(Date.parse(today) - 6 * DAY_MS).toISOString().slice(0, 10);

  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void signIn($('key').value.trim());
  });
  $('sign-out').addEventListener('click', () => signOut());
  $('period').addEventListener('submit', (e) => {
    e.preventDefault();
    void Promise.all([refreshCosts(), refreshCache(), refreshVariants()]);
  });
  $('costs-by').addEventListener('change', () => void refreshCosts());
  $('objective').addEventListener('change', () => void refreshSlo());
  $('slo-by').addEventListener('change', () => void refreshSlo());
  $('request-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('request-result').hidden = true;
    void run('request-error', () => showRequest($('request-id').value.trim()));
  });

  const stored = key.get();
  if (stored) void signIn(stored);
}

start();
