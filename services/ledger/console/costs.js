// Cost over time: a stacked bar per UTC day, one colour per tenant, model or feature
// (GET /v1/costs?groupBy=day,<dimension>), and the same period's totals per group in a table
// (GET /v1/costs?groupBy=<dimension>).
import { get, query } from './api.js';
import { fillRows, int, usd } from './dom.js';

/** Colours that stay apart for the first eight series; later ones repeat. */
const COLOURS = ['#2f6db5', '#d9822b', '#3a9c5b', '#b9414b', '#7b5fb0', '#8c6d46', '#c9569e', '#6f7a86'];
const DAY_MS = 86_400_000;
const NONE = '(none)';

/** Every UTC day of the period, as the API names them (`YYYY-MM-DD`), so days without spend show as 0. */
function daysOf(period) {
  const days = [];
  for (let t = Date.parse(period.from); t < Date.parse(period.to); t += DAY_MS) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

let chart;

/** Draws the chart and fills the table for `period` ({from, to} ISO instants) split by `dim`. */
export async function showCosts(period, dim) {
  const [byDay, totals] = await Promise.all([
    get(`/v1/costs${query({ from: period.from, to: period.to, groupBy: `day,${dim}` })}`),
    get(`/v1/costs${query({ from: period.from, to: period.to, groupBy: dim })}`),
  ]);
  const days = daysOf(period);
  const series = new Map();
  for (const row of byDay.rows) {
    const name = row[dim] ?? NONE;
    if (!series.has(name)) series.set(name, new Array(days.length).fill(0));
    const i = days.indexOf(row.day);
    if (i >= 0) series.get(name)[i] = row.costUsd;
  }
  // in the table's order (the API's: byte order of the names), so the legend reads like the table
  const names = totals.rows.map((r) => r[dim] ?? NONE).filter((n) => series.has(n));
  const datasets = names
    .map((label) => [label, series.get(label)])
    .map(([label, data], i) => ({ label, data, backgroundColor: COLOURS[i % COLOURS.length], stack: 'cost' }));
  drawChart(days, datasets, dim);

  const table = document.getElementById('costs-table');
  table.querySelector('caption').textContent = `Totals by ${dim}, ${period.from.slice(0, 10)} to ${period.toDay} (UTC)`;
  document.getElementById('costs-dim').textContent = dim[0].toUpperCase() + dim.slice(1);
  const figures = (r) => [
    { text: int(r.requests), num: true },
    { text: int(r.completed), num: true },
    { text: int(r.cacheHits), num: true },
    { text: int(r.inputTokens), num: true },
    { text: int(r.outputTokens), num: true },
    { text: usd(r.costUsd), num: true },
    { text: usd(r.savedUsd), num: true },
  ];
  fillRows(
    table.tBodies[0],
    totals.rows.map((r) => [{ text: r[dim] ?? NONE, th: true }, ...figures(r)]),
  );
  fillRows(table.tFoot, [[{ text: 'All', th: true }, ...figures(totals.totals)]]);
}

function drawChart(days, datasets, dim) {
  const canvas = document.getElementById('costs-chart');
  canvas.setAttribute('aria-label', `Cost in USD per UTC day by ${dim}, ${days[0]} to ${days.at(-1)}; the table below has the totals`);
  if (!window.Chart) throw new Error('Chart.js did not load.');
  if (chart) {
    chart.data.labels = days;
    chart.data.datasets = datasets;
    chart.update();
    return;
  }
  chart = new window.Chart(canvas, {
    type: 'bar',
    data: { labels: days, datasets },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: 'USD' } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(c.parsed.y)}` } } },
    },
  });
}
