import { OUTCOMES, usdChange, type Fate, type Summary } from './summary.js';

/** The whole report, as `--json` writes it. */
export interface WhatifReport {
  /** The window, ISO 8601: requests received in [from, to). */
  window: { from: string; to: string };
  /** Where the recording came from. */
  source: { stream: string; nats: string; firstSeq: number; lastSeq: number; events: number; unreadable: number };
  /** The candidate: its file and the replay's knobs. */
  policy: { config: string; cache: 'on' | 'off'; degradeLevel: number | 'recorded'; balance: string };
  actual: Summary;
  candidate: Summary;
  /** Requests whose outcome, cache kind, throttling layer, model or deployment differ between the two. */
  changed: number;
  /** The first EXAMPLES of them in arrival order, each as `completed m-small d1`, `cached exact`, `throttled tenant`..., to look up on the ledger's timeline. */
  examples: Array<{ requestId: string; actual: string; candidate: string }>;
}

/** How many changed requests the report names. */
const EXAMPLES = 20;

/** The requests that ended differently (see `WhatifReport.changed`): how many, and the first few. */
export function changes(requestIds: readonly string[], actual: readonly Fate[], candidate: readonly Fate[]): Pick<WhatifReport, 'changed' | 'examples'> {
  let changed = 0;
  const examples: WhatifReport['examples'] = [];
  actual.forEach((a, i) => {
    const [x, y] = [signature(a), signature(candidate[i]!)];
    if (x === y) return;
    changed++;
    if (examples.length < EXAMPLES) examples.push({ requestId: requestIds[i]!, actual: x, candidate: y });
  });
  return { changed, examples };
}

function signature(f: Fate): string {
  switch (f.kind) {
    case 'completed':
    case 'cancelled':
      return `${f.kind} ${f.bill.model} ${f.bill.deployment}`;
    case 'cached':
      return `cached ${f.cache}`;
    case 'throttled':
      return `throttled ${f.layer}`;
    default:
      return f.kind;
  }
}

/**
 * The report as a plain table: one row per figure, actual, candidate and the change. USD amounts
 * are exact decimals; a distribution row (tier, model, deployment, throttle layer, cache kind)
 * appears when either side has it.
 *
 * @example
 * process.stdout.write(table(report));
 */
export function table(r: WhatifReport): string {
  const { actual: a, candidate: c } = r;
  const rows: Array<[string, string, string, string]> = [];
  const count = (label: string, x: number, y: number) => rows.push([label, String(x), String(y), y === x ? '' : `${y > x ? '+' : ''}${y - x}`]);
  const usd = (label: string, x: string, y: string) => rows.push([label, x, y, x === y ? '' : usdChange(x, y)]);
  const spread = (label: string, x: Record<string, number>, y: Record<string, number>) => {
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
    for (const k of keys) count(`${label} ${k}`, x[k] ?? 0, y[k] ?? 0);
  };
  count('requests', a.requests, c.requests);
  usd('cost USD', a.costUsd, c.costUsd);
  usd('  upstream USD', a.upstreamUsd, c.upstreamUsd);
  usd('  embedding USD', a.embeddingUsd, c.embeddingUsd);
  usd('saved by cache USD', a.savedUsd, c.savedUsd);
  const money = (label: string, x: Record<string, string>, y: Record<string, string>) => {
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
    for (const k of keys) usd(`${label} ${k}`, x[k] ?? '0', y[k] ?? '0');
  };
  money('cost USD tenant', a.costByTenant, c.costByTenant);
  money('cost USD model', a.costByModel, c.costByModel);
  count('input tokens', a.inputTokens, c.inputTokens);
  count('output tokens', a.outputTokens, c.outputTokens);
  for (const o of OUTCOMES) if (a.outcomes[o] || c.outcomes[o]) count(o, a.outcomes[o], c.outcomes[o]);
  spread('cache hit', a.cacheHits, c.cacheHits);
  spread('throttled at', a.throttles, c.throttles);
  spread('tier', a.tiers, c.tiers);
  spread('model', a.models, c.models);
  spread('deployment', a.deployments, c.deployments);
  const head: [string, string, string, string] = ['', 'actual', 'candidate', 'change'];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[head, ...rows].map((row) => row[i]!.length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const knobs = `cache ${r.policy.cache}, degrade level ${r.policy.degradeLevel}, balance ${r.policy.balance}`;
  const notes = [
    `what-if ${r.window.from} .. ${r.window.to}: ${a.requests} requests from ${r.source.stream} (seq ${r.source.firstSeq}..${r.source.lastSeq}, ${r.source.events} events${r.source.unreadable ? `, ${r.source.unreadable} unreadable` : ''})`,
    `candidate ${r.policy.config} (${knobs}); ${r.changed} requests end differently`,
  ];
  if (c.estimatedUsage) notes.push(`${c.estimatedUsage} candidate completions have estimated tokens (not sent upstream in the recording)`);
  const shown = r.examples.slice(0, 5).map((x) => `  ${x.requestId}: ${x.actual} -> ${x.candidate}`);
  const more =
    r.changed > shown.length ? [`  ... ${r.changed - shown.length} more${r.examples.length > shown.length ? ' (the JSON lists the first 20)' : ''}`] : [];
  const changed = shown.length ? ['', 'requests that end differently:', ...shown, ...more] : [];
  return [...notes, '', line(head), ...rows.map(line), ...changed, ''].join('\n');
}
