// Service levels (GET /v1/slo) and error-budget burn. The burn rate of a window is its
// unavailability over the unavailability the objective allows: 1 spends the budget exactly over
// the SLO period, 14.4 spends a 30-day budget's 2 % in an hour. The windows and the rates worth an
// alert are the Google SRE workbook's (chapter 5, multiwindow multi-burn-rate alerts): the
// Prometheus rules alert on them; the console shows where each window stands.
import { get, query } from './api.js';
import { fillRows, int, ms, pct } from './dom.js';

/** [window, the burn rate at which the workbook alerts on it]. */
const BURN_WINDOWS = [
  ['1h', 14.4],
  ['6h', 6],
  ['24h', 3],
  ['3d', 1],
];
const LABEL = { '1h': 'Last hour', '6h': 'Last 6 hours', '24h': 'Last 24 hours', '3d': 'Last 3 days' };

/** (1 − availability) / (1 − objective); null without answered-or-failed requests. */
export const burnRate = (availability, objective) => (availability === null ? null : (1 - availability) / (1 - objective));

/** Fills the burn table for `objective` (e.g. 0.999) and the last 24 hours' table by `dim` (model or tenant). */
export async function showSlo(objective, dim) {
  const [windows, day] = await Promise.all([
    Promise.all(BURN_WINDOWS.map(([window]) => get(`/v1/slo${query({ window })}`))),
    get(`/v1/slo${query({ window: '24h', groupBy: dim })}`),
  ]);
  fillRows(
    document.querySelector('#burn tbody'),
    windows.map((report, i) => {
      const [window, alertAt] = BURN_WINDOWS[i];
      const t = report.totals;
      const burn = burnRate(t.availability, objective);
      const status = burn === null ? 'no data' : burn >= alertAt ? 'burning too fast' : 'within budget';
      return [
        { text: LABEL[window], th: true },
        { text: int(t.requests), num: true },
        { text: pct(t.availability, 3), num: true },
        { text: burn === null ? '—' : `${burn.toFixed(2)}×`, num: true },
        { text: `${alertAt}×`, num: true },
        status,
      ];
    }),
  );
  document.getElementById('slo-dim').textContent = dim === 'model' ? 'Model' : 'Tenant';
  const rows = day.rows.map((r) => [r[dim] ?? '(none)', r]);
  if (rows.length > 1 || rows.length === 0) rows.push(['All', day.totals]);
  fillRows(
    document.querySelector('#slo-table tbody'),
    rows.map(([name, r]) => [
      { text: name, th: true },
      { text: int(r.requests), num: true },
      { text: pct(r.availability, 3), num: true },
      { text: pct(r.errorRate, 3), num: true },
      { text: ms(r.latencyMs.p50), num: true },
      { text: ms(r.latencyMs.p95), num: true },
      { text: ms(r.latencyMs.p99), num: true },
      { text: pct(r.cacheHitRate), num: true },
      { text: pct(r.throttleRate), num: true },
      { text: pct(r.shedRate), num: true },
    ]),
  );
}
