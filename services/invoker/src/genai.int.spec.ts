import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@sluice/bus/nats-server';
import type { Deployment } from '@sluice/contracts';
import { startSim, type Sim } from '@sluice/openai-sim';
import { GenAiBuckets, serveMetrics, shutdownMetrics, startMetrics, type MetricsServer } from '@sluice/telemetry';
import { attemptCall, type CallDeps } from './call.js';
import { invocation } from './fixtures.js';
import { ClientPool } from './upstream.js';

// Real upstream calls (the simulator) through the invoker's attempt, recorded by the real metrics
// SDK and scraped from a real /metrics server: the names, kinds, units, buckets and labels a
// Prometheus sees must be the ones docs/metrics.md promises.

let sim: Sim;
let server: MetricsServer;
beforeAll(async () => {
  expect(await startMetrics()).toBe(true);
  server = (await serveMetrics(await freePort()))!;
  sim = await startSim({ port: 0 });
});
afterAll(async () => {
  await server?.close();
  await shutdownMetrics();
  await sim?.close();
});

const deps: CallDeps = { clients: new ClientPool({}), reply: () => undefined, now: Date.now };

async function call(stream: boolean) {
  const base = invocation().event;
  const event = {
    ...base,
    requestId: `req_${Math.random().toString(36).slice(2)}`,
    data: { ...base.data, ctx: { ...base.data.ctx, deadline: Date.now() + 60_000, request: { ...base.data.ctx.request, stream } } },
  };
  const deployment = { baseUrl: sim.url, timeoutMs: 5000, kind: 'openai' } as Deployment;
  const body = { model: 'auto', messages: [{ role: 'user', content: `Hello ${Math.random()}` }], ...(stream ? { stream: true } : {}) };
  return attemptCall(deps, { event, body, cancel: new AbortController().signal }, { model: 'gpt-4o-mini', deployment: 'a' }, deployment);
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, as far as these metrics need: samples, and each family's TYPE and UNIT. */
function parse(text: string): { samples: Sample[]; type: Map<string, string>; unit: Map<string, string> } {
  const samples: Sample[] = [];
  const type = new Map<string, string>();
  const unit = new Map<string, string>();
  for (const line of text.split('\n')) {
    const meta = /^# (TYPE|UNIT) (\S+) (\S+)$/.exec(line);
    if (meta) (meta[1] === 'TYPE' ? type : unit).set(meta[2]!, meta[3]!);
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, type, unit };
}

/** The GenAI table of docs/metrics.md: OpenTelemetry name, Prometheus name, kind, unit, and the attributes it names. */
function documented(): Array<{ otel: string; prom: string; kind: string; unit: string; attributes: string[] }> {
  const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### GenAI semantic conventions'), doc.indexOf('### Sluice'));
  const rows = section.split('\n').filter((l) => l.startsWith('| `gen_ai.'));
  const all = rows.map((row) => {
    const [otel, prom, kind, unit, attrs] = row
      .split('|')
      .slice(1, 6)
      .map((c) => c.trim());
    const ticked = (c: string) => [...c.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    return {
      otel: ticked(otel!)[0]!,
      prom: ticked(prom!)[0]!,
      kind: kind!,
      unit: ticked(unit!)[0]!,
      attributes: ticked(attrs!).filter((a) => a.includes('.')),
    };
  });
  // "as `gen_ai.client.operation.duration`": that row's attributes
  return all.map((r) => (r.attributes.length === 1 ? { ...r, attributes: all.find((o) => o.otel === r.attributes[0])!.attributes } : r));
}

const scrape = async () => {
  const res = await fetch(server.url);
  expect(res.status).toBe(200);
  return parse(await res.text());
};
const promName = (attribute: string) => attribute.replaceAll('.', '_');

describe('the GenAI client metrics on /metrics', () => {
  it('records an answered, a streamed and a failed call as docs/metrics.md names them, in semconv buckets', async () => {
    const whole = await call(false);
    const streamed = await call(true);
    sim.setFaults({ errorRate: 1 });
    const failed = await call(false);
    sim.setFaults({ errorRate: 0 });
    expect([whole, streamed, failed].map((o) => (o.kind === 'failed' ? `failed: ${o.failure.message}` : o.kind))).toEqual([
      'answered',
      'answered',
      expect.stringMatching(/^failed/),
    ]);
    const inputTokens = [whole, streamed].reduce((sum, o) => sum + (o.kind === 'answered' ? o.answer.usage.prompt_tokens : 0), 0);

    const { samples, type, unit } = await scrape();
    const rows = documented();
    expect(rows.map((r) => r.otel)).toEqual(['gen_ai.client.token.usage', 'gen_ai.client.operation.duration', 'gen_ai.client.operation.time_to_first_chunk']);
    for (const row of rows) {
      expect(row.prom, `${row.otel}: the documented Prometheus name is the exporter's rule applied`).toBe(promName(row.otel));
      expect(type.get(row.prom), `# TYPE of ${row.prom}`).toBe(row.kind);
      expect(unit.get(row.prom), `# UNIT of ${row.prom}`).toBe(row.unit);
      const points = samples.filter((s) => s.name.startsWith(`${row.prom}_`));
      expect(points.length, `${row.prom} has points`).toBeGreaterThan(0);
      const allowed = new Set([...row.attributes.map(promName), 'le', 'otel_scope_name', 'otel_scope_version', 'otel_scope_schema_url']);
      for (const p of points) {
        expect(
          Object.keys(p.labels).filter((l) => !allowed.has(l)),
          `${p.name} labels beyond the documented ones`,
        ).toEqual([]);
        expect(p.labels).toMatchObject({
          gen_ai_operation_name: 'chat',
          gen_ai_provider_name: 'openai',
          gen_ai_request_model: 'gpt-4o-mini',
          server_address: '127.0.0.1',
          server_port: String(sim.port),
          sluice_tenant: 'acme',
          sluice_deployment: 'a',
          otel_scope_name: 'sluice.invoker',
        });
      }
    }

    const buckets = (name: string, labels: Record<string, string>) =>
      samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.labels.le);
    expect(buckets('gen_ai_client_token_usage', { gen_ai_token_type: 'input' })).toEqual([...GenAiBuckets.tokens.map(String), '+Inf']);
    expect(buckets('gen_ai_client_operation_duration', { error_type: '500' })).toEqual([...GenAiBuckets.seconds.map(String), '+Inf']);

    const value = (name: string, labels: Record<string, string>) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
    expect(value('gen_ai_client_token_usage_sum', { gen_ai_token_type: 'input' })).toBe(inputTokens);
    expect(value('gen_ai_client_token_usage_count', { gen_ai_token_type: 'output' })).toBe(2);
    expect(value('gen_ai_client_operation_duration_count', {})).toBe(3);
    expect(value('gen_ai_client_operation_duration_count', { error_type: '500' })).toBe(1);
    // the answered calls name the model that answered; the failed one has none
    expect(
      samples.find((s) => s.name === 'gen_ai_client_operation_duration_count' && s.labels.error_type === '500')!.labels.gen_ai_response_model,
    ).toBeUndefined();
    expect(samples.some((s) => s.name === 'gen_ai_client_operation_duration_count' && s.labels.gen_ai_response_model?.startsWith('gpt-4o-mini'))).toBe(true);
    // streamed calls only
    expect(value('gen_ai_client_operation_time_to_first_chunk_count', {})).toBe(1);
  });

  it('answers 404 off /metrics', async () => {
    const res = await fetch(server.url.replace('/metrics', '/other'));
    expect(res.status).toBe(404);
  });
});
