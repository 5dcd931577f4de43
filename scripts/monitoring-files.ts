import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// What the monitoring files (deploy/grafana, deploy/prometheus) are checked against: the metric
// tables and scrape ports of docs/metrics.md, and the metric and label names a PromQL expression
// uses. String work, no PromQL parser: promtool checks the syntax where it is installed
// (scripts/monitoring-queries.unit.spec.ts, scripts/monitoring-deploy.unit.spec.ts).

/** The repository's root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** A file of the repository, by its path from the root. */
export const readRepoFile = (path: string) => readFileSync(join(ROOT, path), 'utf8');
/** A system tool's path, when it is installed (as libs/bus finds nats-server). */
export const which = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim() || undefined;

export const DASHBOARD_DIR = 'deploy/grafana/dashboards';
export const RULES_DIR = 'deploy/prometheus/rules';
/** The dashboards' file names (`sluice-traffic.json`, ...). */
export const dashboardFiles = () => readdirSync(join(ROOT, DASHBOARD_DIR)).filter((f) => f.endsWith('.json'));
/** The rule files' names (`slo.yml`, ...). */
export const ruleFiles = () => readdirSync(join(ROOT, RULES_DIR)).filter((f) => f.endsWith('.yml'));

/** A metric of docs/metrics.md's tables: its Prometheus series names and the labels it may carry. */
export interface DocumentedMetric {
  /** The Prometheus name as the table gives it (`sluice_requests_total`, `sluice_hop_duration`). */
  name: string;
  kind: 'counter' | 'histogram' | 'gauge';
  /** The names of the series Prometheus stores: a histogram's `_bucket`, `_sum` and `_count`, else the name. */
  series: string[];
  /** Its attributes as Prometheus labels (`gen_ai.request.model` → `gen_ai_request_model`), `le` for a histogram's buckets. */
  labels: Set<string>;
}

const cells = (line: string) =>
  line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());
const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const promName = (otel: string) => otel.replaceAll('.', '_');

/**
 * The metrics of every `| OpenTelemetry name | Prometheus name | kind | unit | attributes |` table.
 * An attribute is a backticked name with a dot; a cell naming another metric (`as
 * \`gen_ai.client.operation.duration\``) takes that metric's attributes too.
 *
 * @example
 * documentedMetrics(readFileSync('docs/metrics.md', 'utf8')).get('sluice_requests_total')?.labels.has('sluice_outcome') // true
 */
export function documentedMetrics(md: string): Map<string, DocumentedMetric> {
  const rows = md
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map(cells)
    .filter((c) => c.length === 5 && ['counter', 'histogram', 'gauge'].includes(c[2]!));
  const own = new Map(rows.map((c) => [backticked(c[0]!)[0]!, backticked(c[4]!).filter((a) => a.includes('.'))]));
  const out = new Map<string, DocumentedMetric>();
  for (const c of rows) {
    const kind = c[2] as DocumentedMetric['kind'];
    const name = backticked(c[1]!)[0]!;
    const attributes = own.get(backticked(c[0]!)[0]!)!.flatMap((a) => (own.has(a) ? own.get(a)! : [a]));
    const labels = new Set(attributes.filter((a) => !own.has(a)).map(promName));
    if (kind === 'histogram') labels.add('le');
    out.set(name, { name, kind, series: kind === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => name + s) : [name], labels });
  }
  return out;
}

/** A row of docs/metrics.md's "Where to scrape" table. */
export interface ScrapePort {
  service: string;
  /** The port `/metrics` is on by default. */
  port: number;
  /** The environment variable that sets it. */
  env: string;
}

/**
 * The `| service | /metrics on | set by |` table: each service's port (the first number of the
 * cell) and the variable that sets it.
 */
export function scrapePorts(md: string): ScrapePort[] {
  const start = md.indexOf('## Where to scrape');
  const table = md.slice(start, md.indexOf('\n## ', start + 1));
  return table
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map(cells)
    .filter((c) => /^[a-z]+$/.test(c[0]!) && c[0] !== 'service')
    .map((c) => ({ service: c[0]!, port: Number(/\d{4,5}/.exec(c[1]!)?.[0]), env: backticked(c[2]!)[0]! }));
}

/** PromQL's functions and aggregations these files may call (a typo such as `rat(` is not one). */
const FUNCTIONS = new Set([
  'abs',
  'absent',
  'avg',
  'avg_over_time',
  'ceil',
  'clamp_max',
  'clamp_min',
  'count',
  'count_over_time',
  'delta',
  'deriv',
  'floor',
  'histogram_quantile',
  'increase',
  'irate',
  'label_replace',
  'max',
  'max_over_time',
  'min',
  'min_over_time',
  'quantile',
  'rate',
  'round',
  'scalar',
  'sort',
  'sort_desc',
  'sum',
  'time',
  'topk',
  'vector',
]);
const BINARY = new Set(['and', 'or', 'unless', 'bool', 'offset']);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** An expression's text without its strings, so that a label value never reads as a name. */
const withoutStrings = (expr: string) => expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');

/** What an expression names: metrics (and recorded series), functions called, and labels matched or grouped by. */
export interface PromqlNames {
  metrics: string[];
  functions: string[];
  labels: string[];
}

/**
 * The names one PromQL expression uses. Grafana's variables (`$tenant`, `$__rate_interval`) may be
 * in it: they sit in strings and ranges, which are skipped.
 *
 * @example
 * promqlNames('sum by (sluice_tenant) (rate(sluice_requests_total{sluice_outcome="failed"}[5m]))')
 * // { metrics: ['sluice_requests_total'], functions: ['sum', 'rate'], labels: ['sluice_outcome', 'sluice_tenant'] }
 */
export function promqlNames(expr: string): PromqlNames {
  const text = withoutStrings(expr);
  const labels = new Set<string>();
  for (const m of text.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.add(l[1]!);
  for (const m of text.matchAll(GROUPING)) for (const l of m[2]!.split(',').map((s) => s.trim())) if (l) labels.add(l);
  const bare = text
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(GROUPING, ' ')
    .replace(/(^|[^\w:.])\d+(\.\d+)?(e[+-]?\d+)?/gi, '$1 ');
  const functions: string[] = [];
  const metrics: string[] = [];
  for (const m of bare.matchAll(/([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2]) functions.push(m[1]!);
    else if (!BINARY.has(m[1]!)) metrics.push(m[1]!);
  }
  return { metrics: [...new Set(metrics)], functions: [...new Set(functions)], labels: [...labels] };
}

/** Whether a function name is one PromQL has (of those listed here). */
export const isPromqlFunction = (name: string) => FUNCTIONS.has(name);

/** Labels a Grafana legend (`{{sluice_tenant}}`) or an alert template (`$labels.sluice_tenant`) prints. */
export function templateLabels(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([a-zA-Z_]\w*)\s*\}\}|\$labels\.([a-zA-Z_]\w*)/g)].map((m) => m[1] ?? m[2]!);
}

/** Brackets and quotes close in order: the check an expression gets where promtool is not installed. */
export function balanced(expr: string): boolean {
  const open: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  for (const ch of withoutStrings(expr)) {
    if ('([{'.includes(ch)) open.push(ch);
    else if (ch in pairs && open.pop() !== pairs[ch]) return false;
  }
  return open.length === 0 && !/["']/.test(withoutStrings(expr).replaceAll('""', ''));
}

/** One `relabel_configs` entry of a Prometheus scrape config. */
export interface RelabelRule {
  source_labels?: string[];
  separator?: string;
  regex?: string;
  target_label?: string;
  replacement?: string;
  action?: string;
}

/**
 * What Prometheus's relabelling makes of one discovered target's labels: `keep`, `drop` and
 * `replace` (the actions these configs use; another throws), the regex anchored at both ends as
 * Prometheus anchors it. Undefined when the target is dropped.
 *
 * @example
 * relabel({ __meta_kubernetes_pod_ip: '10.0.0.5' }, [{ source_labels: ['__meta_kubernetes_pod_ip'], target_label: '__address__', replacement: '${1}:9471' }])
 * // { __meta_kubernetes_pod_ip: '10.0.0.5', __address__: '10.0.0.5:9471' }
 */
export function relabel(labels: Record<string, string>, rules: readonly RelabelRule[]): Record<string, string> | undefined {
  const out = { ...labels };
  for (const r of rules) {
    const value = (r.source_labels ?? []).map((s) => out[s] ?? '').join(r.separator ?? ';');
    const m = new RegExp(`^(?:${r.regex ?? '(.*)'})$`).exec(value);
    const action = r.action ?? 'replace';
    if (action === 'keep' && !m) return undefined;
    if (action === 'drop' && m) return undefined;
    if (action === 'replace' && m && r.target_label)
      out[r.target_label] = (r.replacement ?? '$1').replace(/\$\{(\d+)\}|\$(\d+)/g, (_, a, b) => m[Number(a ?? b)] ?? '');
    if (!['keep', 'drop', 'replace'].includes(action)) throw new Error(`relabel action ${action} is not simulated here`);
  }
  return out;
}
