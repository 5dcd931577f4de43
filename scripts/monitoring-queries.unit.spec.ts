import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  balanced,
  DASHBOARD_DIR,
  dashboardFiles,
  documentedMetrics,
  isPromqlFunction,
  promqlNames,
  readRepoFile as read,
  relabel,
  ROOT,
  ruleFiles,
  RULES_DIR,
  scrapePorts,
  templateLabels,
  which,
} from './monitoring-files.js';

// Issue 15, item 3: the Grafana dashboards and the Prometheus rules use only what docs/metrics.md
// documents (every metric and label), the alerts are the SLO's and state alerts as designed, and
// every query is valid PromQL: promtool (Debian's `prometheus` package) checks the queries and runs
// the rule tests of deploy/prometheus/tests when it is on PATH. Their wiring into compose and
// Kubernetes: monitoring-deploy.unit.spec.ts.

const PROMTOOL = which('promtool');

const metricsMd = read('docs/metrics.md');
const METRICS = documentedMetrics(metricsMd);
const SERIES = new Map([...METRICS.values()].flatMap((m) => m.series.map((s) => [s, m] as const)));
/** Prometheus's own series the files may use, and the labels every scraped series gets. */
const BUILTIN = new Map([['up', new Set(['job', 'instance'])]]);
const TARGET_LABELS = ['job', 'instance'];

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; datasource?: { uid: string }; query: { query: string } | string }> };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string; legendFormat?: string; datasource?: { uid: string } }>;
}
interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboards = dashboardFiles().map((f) => ({ file: f, board: JSON.parse(read(`${DASHBOARD_DIR}/${f}`)) as Dashboard }));
const rules = ruleFiles().flatMap((f) =>
  (parse(read(`${RULES_DIR}/${f}`)) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) =>
    g.rules.map((r) => ({ file: f, group: g.name, rule: r })),
  ),
);
const RECORDED = new Set(rules.flatMap((r) => (r.rule.record ? [r.rule.record] : [])));

/** Grafana's variables and macros replaced by values PromQL accepts, so promtool can parse the query. */
const asPromql = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replace(/\$\w+/g, '.*');

/** Every PromQL expression of the dashboards and the rules, with where it is. */
const expressions = [
  ...dashboards.flatMap(({ file, board }) =>
    board.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ dashboard: true, where: `${file}: ${p.title} ${t.refId}`, expr: t.expr, printed: t.legendFormat ?? '' })),
    ),
  ),
  ...rules.map(({ file, rule }) => ({
    dashboard: false,
    where: `${file}: ${rule.record ?? rule.alert}`,
    expr: rule.expr,
    printed: Object.values(rule.annotations ?? {}).join(' '),
  })),
];

describe('docs/metrics.md, as these checks read it', () => {
  it('has the agreed metrics with their Prometheus series and labels', () => {
    expect(METRICS.get('sluice_requests_total')).toMatchObject({ kind: 'counter', series: ['sluice_requests_total'] });
    expect([...METRICS.get('sluice_requests_total')!.labels].sort()).toEqual([
      'gen_ai_request_model',
      'sluice_lane',
      'sluice_outcome',
      'sluice_tenant',
      'sluice_variant',
    ]);
    expect(METRICS.get('sluice_hop_duration')!.series).toEqual(['sluice_hop_duration_bucket', 'sluice_hop_duration_sum', 'sluice_hop_duration_count']);
    // time to first chunk takes the attributes of the operation duration it names
    expect(METRICS.get('gen_ai_client_operation_time_to_first_chunk')!.labels).toEqual(METRICS.get('gen_ai_client_operation_duration')!.labels);
    expect(METRICS.get('gen_ai_client_operation_duration')!.labels.has('error_type')).toBe(true);
    expect(METRICS.size).toBeGreaterThanOrEqual(14);
  });

  it('has a scrape port for each of the seven services', () => {
    expect(scrapePorts(metricsMd).map((p) => p.service)).toEqual(['ingress', 'ledger', 'router', 'cache', 'limiter', 'invoker', 'degrader']);
    expect(scrapePorts(metricsMd)[2]).toEqual({ service: 'router', port: 9471, env: 'SLUICE_METRICS_PORT' });
  });

  it('reads the names out of an expression', () => {
    expect(
      promqlNames('sum by (le, sluice_hop) (max without (instance) (rate(sluice_hop_duration_bucket{a="x{y}", b=~"$tenant"}[$__rate_interval]))) > 0.5'),
    ).toEqual({
      metrics: ['sluice_hop_duration_bucket'],
      functions: ['sum', 'max', 'rate'],
      labels: ['a', 'b', 'le', 'sluice_hop', 'instance'],
    });
    expect(promqlNames('sluice:slo_burn_rate:rate1h > 14.4 and 1e3 < up').metrics).toEqual(['sluice:slo_burn_rate:rate1h', 'up']);
    expect(balanced('sum(rate(x{a="("}[5m]))')).toBe(true);
    expect(balanced('sum(rate(x[5m])')).toBe(false);
    const rules = [
      { source_labels: ['a'], regex: 'x|y', action: 'keep' },
      { source_labels: ['a', 'b'], regex: 'x;(.+)', target_label: 'c', replacement: '${1}:1' },
    ];
    expect(relabel({ a: 'x', b: '2' }, rules)).toEqual({ a: 'x', b: '2', c: '2:1' });
    expect(relabel({ a: 'xx', b: '2' }, rules)).toBeUndefined();
    expect(relabel({ a: 'y', b: '2' }, rules)).toEqual({ a: 'y', b: '2' });
  });
});

describe('Grafana dashboards', () => {
  it.each(dashboards.map((d) => [d.file, d.board] as const))('%s: panels with queries on the provisioned data source', (file, board) => {
    expect(file).toBe(`${board.uid}.json`);
    expect(board.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(board.title).toMatch(/^Sluice \/ /);
    const panels = board.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(3);
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: 'prometheus' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr.trim(), p.title).not.toBe('');
        expect(t.datasource?.uid, p.title).toBe('prometheus');
      }
      expect(new Set(p.targets!.map((t) => t.refId)).size, p.title).toBe(p.targets!.length);
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
    expect(new Set(board.panels.map((p) => p.id)).size).toBe(board.panels.length);
    // no two panels on the same cells
    const taken = new Set<string>();
    for (const { gridPos: g, title } of board.panels)
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(taken.has(`${x},${y}`), `${title} overlaps at ${x},${y}`).toBe(false);
          taken.add(`${x},${y}`);
        }
    // every variable a query uses is declared
    const declared = new Set(board.templating.list.map((v) => v.name));
    for (const p of panels)
      for (const t of p.targets!) for (const [, v] of t.expr.matchAll(/\$(?!__)(\w+)/g)) expect(declared, `${p.title}: $${v}`).toContain(v);
  });

  it('the uids are unique, and traffic, latency and cost filter by tenant and model', () => {
    expect(new Set(dashboards.map((d) => d.board.uid)).size).toBe(dashboards.length);
    for (const uid of ['sluice-traffic', 'sluice-latency', 'sluice-cost']) {
      const board = dashboards.find((d) => d.board.uid === uid)!.board;
      expect(board.templating.list.map((v) => v.name)).toEqual(['tenant', 'model']);
    }
  });

  it('template variables read documented labels of documented metrics', () => {
    for (const { board } of dashboards)
      for (const v of board.templating.list) {
        const query = typeof v.query === 'string' ? v.query : v.query.query;
        const [, metric, label] = /^label_values\((\w+),\s*(\w+)\)$/.exec(query) ?? [];
        expect(SERIES.get(metric!)?.labels, `${board.uid} $${v.name}: ${query}`).toContain(label);
        expect(v.datasource?.uid).toBe('prometheus');
      }
  });
});

describe('Prometheus rules', () => {
  it.each(ruleFiles())('%s: groups of rules, each a recording or an alert with an expression', (file) => {
    const doc = parse(read(`${RULES_DIR}/${file}`)) as { groups: Array<{ name: string; rules: Rule[] }> };
    expect(doc.groups.length).toBeGreaterThan(0);
    for (const g of doc.groups) {
      expect(g.name).toMatch(/^sluice-/);
      expect(g.rules.length).toBeGreaterThan(0);
      for (const r of g.rules) {
        expect(typeof r.expr, JSON.stringify(r)).toBe('string');
        expect(Boolean(r.record) !== Boolean(r.alert), JSON.stringify(r)).toBe(true);
        // recorded series are named level:metric:operations
        if (r.record) expect(r.record).toMatch(/^sluice:\w+:\w+$/);
        if (r.alert) {
          expect(r.alert).toMatch(/^Sluice[A-Z]\w+$/);
          expect(['page', 'ticket', 'info'], r.alert).toContain(r.labels?.severity);
          expect(r.annotations?.summary, r.alert).toBeTruthy();
          if (r.for) expect(r.for).toMatch(/^\d+[smhd]$/);
        }
      }
    }
  });

  it('burn-rate alerts are the SRE workbook four: 1h/5m at 14.4 and 6h/30m at 6 page, 1d/2h at 3 and 3d/6h at 1 open a ticket', () => {
    const burns = rules.filter((r) => r.rule.alert === 'SluiceErrorBudgetBurn').map((r) => r.rule);
    const found = burns.map((r) => {
      const [long, short] = [r.labels!.long_window, r.labels!.short_window];
      const factor = new RegExp(`^sluice:slo_burn_rate:rate${long} > ([\\d.]+) and sluice:slo_burn_rate:rate${short} > \\1$`).exec(r.expr)?.[1];
      return `${long}/${short} ${factor} ${r.labels!.severity}`;
    });
    expect(found).toEqual(['1h/5m 14.4 page', '6h/30m 6 page', '1d/2h 3 ticket', '3d/6h 1 ticket']);
    // the objective is one recorded constant every burn rate divides by
    const objective = rules.find((r) => r.rule.record === 'sluice:slo_objective:ratio')!.rule;
    expect(objective.expr).toBe('vector(0.999)');
    for (const w of ['5m', '30m', '1h', '2h', '6h', '1d', '3d'])
      expect(rules.find((r) => r.rule.record === `sluice:slo_burn_rate:rate${w}`)?.rule.expr).toContain('sluice:slo_error_budget:ratio');
  });

  it('the SLI counts completed as good, failed and degraded (static fallback) as bad, and nothing else', () => {
    for (const { rule } of rules.filter((r) => /^sluice:slo_(requests|errors):/.test(r.rule.record ?? ''))) {
      const outcomes = /sluice_outcome=~"([^"]+)"/.exec(rule.expr)![1]!.split('|').sort();
      expect(outcomes, rule.record).toEqual(rule.record!.startsWith('sluice:slo_requests') ? ['completed', 'degraded', 'failed'] : ['degraded', 'failed']);
    }
  });
});

describe('every metric and label the dashboards and rules use is documented', () => {
  it.each(expressions.map((e) => [e.where, e] as const))('%s', (_where, { expr, printed }) => {
    const names = promqlNames(expr);
    const labels = new Set(TARGET_LABELS);
    for (const m of names.metrics) {
      if (m.includes(':')) {
        expect(RECORDED, `recorded series ${m}`).toContain(m);
        continue;
      }
      const known = SERIES.get(m)?.labels ?? BUILTIN.get(m);
      expect(known, `${m} is not in docs/metrics.md`).toBeDefined();
      for (const l of known!) labels.add(l);
    }
    for (const f of names.functions) expect(isPromqlFunction(f), `function ${f}`).toBe(true);
    for (const l of [...names.labels, ...templateLabels(printed)]) expect(labels, `label ${l}`).toContain(l);
    expect(balanced(expr)).toBe(true);
  });
});

describe.skipIf(!PROMTOOL)('promtool', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-promtool-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const promtool = (...args: string[]) => spawnSync(PROMTOOL!, args, { cwd: ROOT, encoding: 'utf8' });

  it('checks the compose config and, through it, every rule file', () => {
    const out = promtool('check', 'config', 'deploy/prometheus/prometheus.yml');
    expect(out.status, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toContain(`SUCCESS: ${ruleFiles().length} rule files found`);
  });

  it('checks the Kubernetes config (pod discovery swapped for a static target: Debian builds promtool without it)', () => {
    const config = parse(read('deploy/prometheus/prometheus-k8s.yml')) as { rule_files?: string[]; scrape_configs: Array<Record<string, unknown>> };
    for (const s of config.scrape_configs)
      if (s.kubernetes_sd_configs) {
        delete s.kubernetes_sd_configs;
        s.static_configs = [{ targets: ['pod:1'] }];
      }
    delete config.rule_files;
    writeFileSync(join(dir, 'k8s.yml'), stringify(config));
    const out = promtool('check', 'config', join(dir, 'k8s.yml'));
    expect(out.status, out.stdout + out.stderr).toBe(0);
  });

  it('parses every dashboard query', () => {
    const queries = expressions.filter((e) => e.dashboard);
    const file = join(dir, 'dashboards.yml');
    writeFileSync(
      file,
      stringify({ groups: [{ name: 'dashboards', rules: queries.map((q, i) => ({ record: `dashboard:query:${i}`, expr: asPromql(q.expr) })) }] }),
    );
    const out = promtool('check', 'rules', file);
    expect(out.status, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it('passes the rule tests of deploy/prometheus/tests (alerts fire on known series, and stay quiet)', () => {
    const tests = readdirSync(join(ROOT, 'deploy/prometheus/tests')).map((f) => `deploy/prometheus/tests/${f}`);
    expect(tests.length).toBeGreaterThan(1);
    const out = promtool('test', 'rules', ...tests);
    expect(out.status, out.stdout + out.stderr).toBe(0);
  });
});
