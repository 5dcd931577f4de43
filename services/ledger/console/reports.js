// Budgets, cache savings and canaries: the current budget windows (GET /v1/budgets) with the
// alert thresholds each has crossed, what the cache saved in the period by kind (GET /v1/cache),
// and each canary variant's figures in the period (GET /v1/variants).
import { get, query } from './api.js';
import { el, fillRows, int, ms, pct, usd, when } from './dom.js';

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

export async function showVariants(period) {
  const report = await get(`/v1/variants${query({ from: period.from, to: period.to })}`);
  const table = document.getElementById('variants-table');
  table.querySelector('caption').textContent = `${period.from.slice(0, 10)} to ${period.toDay} (UTC); requests no canary matched are not counted`;
  if (report.rows.length === 0) return fillRows(table.tBodies[0], [[{ text: 'No request took a canary variant in this period.', span: 10 }]]);
  fillRows(
    table.tBodies[0],
    report.rows.map((r) => [
      { text: r.canary, th: true },
      r.variant,
      { text: int(r.requests), num: true },
      { text: int(r.completed), num: true },
      { text: int(r.failed), num: true },
      { text: pct(r.errorRate, 3), num: true },
      { text: ms(r.latencyMs.p50), num: true },
      { text: ms(r.latencyMs.p95), num: true },
      { text: ms(r.latencyMs.p99), num: true },
      { text: usd(r.costUsd), num: true },
    ]),
  );
}
