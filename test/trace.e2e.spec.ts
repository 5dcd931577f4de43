import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient } from '@sluice/client';
import { eventually } from '@sluice/bus/testing';
import { freePort } from '@sluice/bus/nats-server';
import { startOtlpReceiver as startReceiver } from '@sluice/scripts/otlp';
import { DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// The whole stack with tracing on, exporting to an OTLP/HTTP receiver in this process: one
// request must be one trace, hop after hop, with each consumer span the child of the span that
// published its input, and the invoker's upstream call a GenAI client span (docs/metrics.md).
// The invoker serves /metrics on a port of its own here, to show the GenAI metrics of the same calls.

/** OTLP span kinds as the JSON encoding numbers them. */
const Kind = { server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string }>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number; arrayValue?: { values?: OtlpValue[] } };
type OtlpAttribute = { key: string; value: OtlpValue };
interface OtlpExport {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: Array<{ spans?: Array<Omit<ReceivedSpan, 'service' | 'attributes'> & { attributes?: OtlpAttribute[] }> }>;
  }>;
}

/** The stack's spans as the OTLP receiver gets them, kept in memory. */
async function startOtlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const receiver = await startReceiver((body) => {
    for (const rs of (body as OtlpExport).resourceSpans ?? []) {
      const service = String(valueOf(rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value));
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          spans.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind,
            attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, valueOf(a.value)])),
            links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          });
        }
      }
    }
  });
  return { url: receiver.url, spans, close: () => receiver.close() };
}

function valueOf(v: OtlpValue | undefined): unknown {
  if (!v) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(valueOf);
  return v.stringValue ?? v.boolValue ?? v.doubleValue;
}

let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
let stack: E2eStack;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
  stack = await startE2eStack({
    postgres: true,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      // ingress logs each accepted request at debug: a line the trace id must show up on
      LOG_LEVEL: 'debug',
    },
    metricsPorts: { invoker: await freePort() },
  });
});
afterAll(async () => {
  await stack?.close();
  await receiver?.close();
});

const ask = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `${content} ${Math.random()}` }] });

/** The spans of the one trace that holds the request's spans. */
function traceOf(requestId: string): ReceivedSpan[] {
  const traceIds = new Set(receiver.spans.filter((s) => s.attributes['sluice.request_id'] === requestId).map((s) => s.traceId));
  expect(traceIds.size).toBe(1);
  const [traceId] = traceIds;
  return receiver.spans.filter((s) => s.traceId === traceId);
}

/**
 * How long a trace may take to settle: each process exports its spans on its own schedule, so the
 * last hop's span can arrive before an earlier one.
 */
const SETTLE_MS = 30_000;

function one(spans: ReceivedSpan[], service: string, kind: number, name: string): ReceivedSpan {
  const found = spans.filter((s) => s.service === service && s.kind === kind && s.name === name);
  expect(found.map((s) => `${s.service} ${s.name}`)).toEqual([`${service} ${name}`]);
  return found[0]!;
}

/** Every hop of a request that missed the cache, each consumer the child of the producer before it. */
function expectChain(spans: ReceivedSpan[], ingressSpan: ReceivedSpan): void {
  const hops = [
    ['sluice-ingress', 'chat.requested', 'sluice-limiter'],
    ['sluice-limiter', 'chat.admitted', 'sluice-cache'],
    ['sluice-cache', 'cache.missed', 'sluice-router'],
    ['sluice-router', 'chat.routed', 'sluice-invoker'],
    ['sluice-invoker', 'chat.completed', 'sluice-ledger'],
  ] as const;
  let upstream = ingressSpan;
  for (const [from, type, to] of hops) {
    const producer = one(spans, from, Kind.producer, `publish ${type}`);
    const consumer = one(spans, to, Kind.consumer, `process ${type}`);
    if (upstream.kind === Kind.server) {
      // over HTTP, fastify's request and handler spans (@fastify/otel) sit between the server span and the publish
      expect(isDescendant(spans, producer, upstream), `${from} publishes ${type} inside the HTTP request`).toBe(true);
      const handler = spans.find((s) => s.spanId === producer.parentSpanId);
      expect(handler?.service).toBe('sluice-ingress');
      expect(handler?.name).toMatch(/handler/);
    } else {
      expect(producer.parentSpanId, `${from} publishes ${type} inside the span that handles its input`).toBe(upstream.spanId);
    }
    expect(consumer.parentSpanId, `${to} processes ${type} as a child of ${from}'s publish`).toBe(producer.spanId);
    expect(producer.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'send',
      // chat.routed goes out in its lane (docs/lanes.md)
      'messaging.destination.name': type === 'chat.routed' ? 'sluice.evt.chat.routed.standard.dev' : `sluice.evt.${type}.dev`,
      'sluice.event_type': type,
      'sluice.tenant': 'dev',
    });
    expect(consumer.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.message.id': producer.attributes['messaging.message.id'],
    });
    expect(typeof consumer.attributes['messaging.consumer.group.name']).toBe('string');
    if (to !== 'sluice-ledger') upstream = one(spans, to, Kind.consumer, `process ${type}`);
  }

  const invoking = one(spans, 'sluice-invoker', Kind.consumer, 'process chat.routed');
  const upstreamCall = spans.find(
    (s) => s.service === 'sluice-invoker' && s.kind === Kind.client && String(s.attributes['url.full']).endsWith('/chat/completions'),
  );
  expect(upstreamCall, 'the invoker traces its call to the upstream').toBeDefined();
  expect(isDescendant(spans, upstreamCall!, invoking), 'the upstream call runs inside the chat.routed consumer span').toBe(true);
  expectGenAiSpan(spans, invoking, upstreamCall!);

  const services = new Set(spans.map((s) => s.service));
  for (const s of ['sluice-ingress', 'sluice-limiter', 'sluice-cache', 'sluice-router', 'sluice-invoker', 'sluice-ledger']) expect(services).toContain(s);
}

/**
 * The upstream call as semconv's GenAI client span: `chat {model}` inside the chat.routed consumer
 * span, the HTTP client span its child, with the operation, provider, models, usage, finish
 * reasons, the upstream's own response id, the server, and the request's Sluice ids.
 */
function expectGenAiSpan(spans: ReceivedSpan[], invoking: ReceivedSpan, httpCall: ReceivedSpan): void {
  const genAi = one(spans, 'sluice-invoker', Kind.client, 'chat gpt-4o-mini');
  expect(isDescendant(spans, genAi, invoking), 'the GenAI span runs inside the chat.routed consumer span').toBe(true);
  expect(httpCall.parentSpanId, "the HTTP call is the GenAI span's child").toBe(genAi.spanId);
  const a = genAi.attributes;
  expect(a).toMatchObject({
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o-mini',
    'gen_ai.response.finish_reasons': ['stop'],
    'server.address': '127.0.0.1',
    'server.port': stack.sim!.port,
    'sluice.request_id': invoking.attributes['sluice.request_id'],
    'sluice.tenant': 'dev',
    'sluice.deployment': 'primary',
  });
  expect(a['gen_ai.response.model']).toMatch(/^gpt-4o-mini/);
  expect(a['gen_ai.usage.input_tokens']).toBeGreaterThan(0);
  expect(a['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
  // the upstream's id, not the chatcmpl-<requestId> the client is given
  expect(a['gen_ai.response.id']).toEqual(expect.any(String));
  expect(a['gen_ai.response.id']).not.toBe(`chatcmpl-${String(invoking.attributes['sluice.request_id'])}`);
  expect(a['error.type']).toBeUndefined();
}

/** A service's output line (`[name] {...}`) as pino's JSON, or {} when it is not JSON. */
function jsonLine(line: string): { trace_id?: string; span_id?: string } {
  try {
    return JSON.parse(line.slice(line.indexOf('{')));
  } catch {
    return {};
  }
}

function isDescendant(spans: ReceivedSpan[], span: ReceivedSpan, ancestor: ReceivedSpan): boolean {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (let s: ReceivedSpan | undefined = span; s; s = byId.get(s.parentSpanId)) if (s.parentSpanId === ancestor.spanId) return true;
  return false;
}

describe('tracing across the pipeline', () => {
  it('makes one HTTP request one trace, rooted at the ingress server span, through every hop', async () => {
    const { response } = await stack.openai().chat.completions.create(ask('Trace me over HTTP')).withResponse();
    const requestId = response.headers.get('x-sluice-request-id')!;
    expect(requestId).toMatch(/^req_/);
    await eventually(() => {
      const spans = traceOf(requestId);
      const root = one(spans, 'sluice-ingress', Kind.server, 'POST /v1/chat/completions');
      expect(root.parentSpanId).toBe('');
      expect(root.attributes['sluice.request_id']).toBe(requestId);
      expectChain(spans, root);
      // every span that names a request names this one
      expect(new Set(spans.map((s) => s.attributes['sluice.request_id']).filter(Boolean))).toEqual(new Set([requestId]));

      // the ledger commits a batch in one transaction: its span links to the event and holds the queries
      const completed = one(spans, 'sluice-invoker', Kind.producer, 'publish chat.completed');
      const batch = receiver.spans.find(
        (s) => s.service === 'sluice-ledger' && s.name === 'process batch' && s.links.some((l) => l.spanId === completed.spanId),
      );
      expect(batch, 'a ledger batch span links to the chat.completed it projected').toBeDefined();
      expect(receiver.spans.some((s) => s.parentSpanId === batch!.spanId && s.attributes['db.system.name'] === 'postgresql')).toBe(true);

      // a log line written while handling the request carries its trace id and the span's id
      const logged = stack.logs.filter((l) => l.includes(root.traceId)).map(jsonLine);
      expect(logged.some((l) => l.trace_id === root.traceId && spans.some((s) => s.spanId === l.span_id))).toBe(true);
    }, SETTLE_MS);
  });

  it('makes one NATS front-door request one trace, rooted at the ingress request span', async () => {
    const client = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY });
    const answer = await client.chat(ask('Trace me over NATS'));
    await eventually(() => {
      const spans = traceOf(answer.requestId);
      const root = one(spans, 'sluice-ingress', Kind.consumer, 'process chat request');
      expect(root.parentSpanId).toBe('');
      expect(root.attributes['sluice.request_id']).toBe(answer.requestId);
      expectChain(spans, root);
    }, SETTLE_MS);
  });

  it("records nothing for a request whose caller's traceparent is unsampled, in any service", async () => {
    // the default sampler follows the parent: the caller's "not sampled" holds for every hop
    const unsampled = '0af7651916cd43dd8448eb211c80319c';
    const { response } = await stack
      .openai()
      .chat.completions.create(ask('Do not trace me'), { headers: { traceparent: `00-${unsampled}-b7ad6b7169203331-00` } })
      .withResponse();
    const skipped = response.headers.get('x-sluice-request-id')!;
    // a sampled request after it: once its trace has reached the ledger, so would the other's have
    const { response: next } = await stack.openai().chat.completions.create(ask('Trace me after')).withResponse();
    await eventually(
      () =>
        expectChain(
          traceOf(next.headers.get('x-sluice-request-id')!),
          one(traceOf(next.headers.get('x-sluice-request-id')!), 'sluice-ingress', Kind.server, 'POST /v1/chat/completions'),
        ),
      SETTLE_MS,
    );
    expect(receiver.spans.filter((s) => s.traceId === unsampled || s.attributes['sluice.request_id'] === skipped)).toEqual([]);
  });

  it("serves the GenAI metrics of the invoker's upstream calls on its /metrics port", async () => {
    await stack.openai().chat.completions.create(ask('Count my tokens'));
    // recorded before chat.completed is published, so before the answer arrives
    const text = await (await fetch(stack.metricsUrls.invoker!)).text();
    const input = text.split('\n').find((l) => l.startsWith('gen_ai_client_token_usage_count{') && l.includes('gen_ai_token_type="input"'));
    expect(input, 'a token usage histogram for input tokens').toBeDefined();
    expect(input).toContain('gen_ai_request_model="gpt-4o-mini"');
    expect(input).toContain('sluice_tenant="dev"');
    expect(input).toContain('sluice_deployment="primary"');
    // every request of this file so far went upstream once
    expect(Number(input!.split(' ').at(-1))).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^# TYPE gen_ai_client_operation_duration histogram$/m);
    expect(text).toMatch(/^gen_ai_client_operation_duration_bucket\{.*le="81.92"\} \d+$/m);
  });

  it("continues the HTTP caller's traceparent", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const { response } = await stack
      .openai()
      .chat.completions.create(ask('Trace me under my parent'), { headers: { traceparent: `00-${traceId}-${parent}-01` } })
      .withResponse();
    await eventually(() => {
      const spans = traceOf(response.headers.get('x-sluice-request-id')!);
      const root = one(spans, 'sluice-ingress', Kind.server, 'POST /v1/chat/completions');
      expect(root.traceId).toBe(traceId);
      expect(root.parentSpanId).toBe(parent);
      expectChain(spans, root);
    }, SETTLE_MS);
  });
});
