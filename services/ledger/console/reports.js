// Budgets and cache savings: the current budget windows (GET /v1/budgets) with the alert
// thresholds each has crossed, and what the cache saved in the period by kind (GET /v1/cache).
import { get, query } from './api.js';
import { el, fillRows, int, pct, usd, when } from './dom.js';

const ACTION = { refuse: 'refuse requests', downgrade: 'cheaper model' };

export async function showBudgets() {
  const { budgets } = await get('/v1/budgets');
  const body = document.querySelector('#budgets-table tbody');
  if (budgets.length === 0) return fillRows(body, [[{ text: 'No budget has counted any spend in its current window.', span: 10 }]]);
  fillRows(
    body,
    budgets.map((b) => [
      { text: b.tenant, th: true },
      b.budget ?? '(no longer configured)',
      b.window ? `${b.window} ${b.windowId}` : b.windowId,
      { text: usd(b.limitUsd), num: true },
      { text: usd(Number(b.spentUsd)), num: true },
      usedCell(b.spentFraction),
      { text: usd(b.inFlightUsd), num: true },
      b.alerted.length ? b.alerted.map((t) => pct(t, 0)).join(', ') : 'none',
      ACTION[b.action] ?? '—',
      when(b.resetsAt),
    ]),
  );
}

/** A used-fraction cell: a meter (announced as a value by screen readers) and the percentage beside it. */
function usedCell(fraction) {
  if (fraction === null) return '—';
  const meter = el('meter', {
    min: 0,
    max: 1,
    low: 0.5,
    high: 0.8,
    optimum: 0,
    value: Math.min(fraction, 1),
    'aria-label': `${pct(fraction, 1)} of the limit`,
  });
  return el('span', {}, meter, ` ${pct(fraction, 1)}`);
}

export async function showCache(period) {
  const report = await get(`/v1/cache${query({ from: period.from, to: period.to, groupBy: 'kind' })}`);
  const table = document.getElementById('cache-table');
  table.querySelector('caption').textContent = `By kind, ${period.from.slice(0, 10)} to ${period.toDay} (UTC); hit rate ${pct(report.totals.hitRate)}`;
  const figures = (r) => [
    { text: int(r.requests), num: true },
    { text: int(r.tokensSaved), num: true },
    { text: usd(r.savedUsd), num: true },
    { text: usd(r.embeddingUsd), num: true },
    { text: usd(r.netSavedUsd), num: true },
  ];
  fillRows(
    table.tBodies[0],
    report.rows.map((r) => [{ text: r.kind, th: true }, ...figures(r)]),
  );
  fillRows(table.tFoot, [[{ text: 'All', th: true }, ...figures(report.totals)]]);
}
