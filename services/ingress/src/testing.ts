// Test support for the int specs: a private nats-server, ingress in-process, and a fake terminal
// stage that speaks the real protocol (consumes chat.requested, answers on ctx.replyTo with
// OpenAI-shaped bodies and chunks, as the invoker and the cache do).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consumeEvents, putConfig, type Bus, type Buckets, type Consumption, type ServiceContext } from '@sluice/bus';
import { freePort, startNats as startLocalNats } from '@sluice/bus/nats-server';
import { startTestBus } from '@sluice/bus/testing';
import OpenAI from 'openai';
import { SluiceRequestError } from '@sluice/client';
import {
  chatChunksOf,
  completionId,
  Consumers,
  isJsonObject,
  parseEvent,
  responseEventsOf,
  splitKeyHashes,
  Subjects,
  Topology,
  usageOf,
  type AnyEvent,
  type CacheKind,
  type ChatReply,
  type Endpoint,
  type RateLimitState,
  type SluiceConfig,
  type SluiceEvent,
} from '@sluice/contracts';
import { answer } from '@sluice/contracts/testing';
import { startFrontDoors, type FrontDoors } from './ingress.js';

export const KEYS = { acme: 'sk-acme-test', beta: 'sk-beta-test' } as const;

function fixtureConfig(): SluiceConfig {
  return JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8')) as SluiceConfig;
}

export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
}

/** A bare nats-server (no topology) on a free port with a temporary store, so no name collides. */
export async function startNats(): Promise<PrivateNats> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ingress-'));
  try {
    const nats = await startLocalNats(dir, await freePort());
    return {
      url: nats.url,
      async stop() {
        await nats.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The limits the fake stage reports, as the limiter would set them on the context. */
const RATE_LIMIT: RateLimitState = {
  requests: { limit: 1000, remaining: 999, resetMs: 60 },
  tokens: { limit: 1_000_000, remaining: 999_990, resetMs: 360_000 },
};
const USAGE = { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 };

type Json = Record<string, unknown>;

/** The text the request ends with, which tells the fake stage what to do. */
function saidIn(endpoint: Endpoint, body: unknown): string {
  const b = isJsonObject(body) ? body : {};
  const textOf = (content: unknown): string =>
    typeof content === 'string'
      ? content
      : Array.isArray(content)
        ? content.map((p) => (isJsonObject(p) && typeof p.text === 'string' ? p.text : '')).join('')
        : '';
  switch (endpoint) {
    case 'chat.completions':
      return textOf((b.messages as Json[]).at(-1)?.content);
    case 'responses':
      return typeof b.input === 'string' ? b.input : textOf((b.input as Json[]).at(-1)?.content);
    case 'embeddings':
      return typeof b.input === 'string' ? b.input : String((b.input as unknown[])[0]);
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
}

/** The answer body the fake upstream writes for each endpoint. */
function upstreamBody(endpoint: Endpoint, requestId: string, created: number, model: string, content: string, request: Json): Json {
  switch (endpoint) {
    case 'chat.completions': {
      const body = { ...(answer(model, 5, 2, content).body as Json), id: completionId(requestId), created };
      if (content !== 'tool-call') return body;
      const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
      return {
        ...body,
        choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, tool_calls: [call] }, logprobs: null, finish_reason: 'tool_calls' }],
      };
    }
    case 'responses':
      return {
        id: `resp_${requestId}`,
        object: 'response',
        created_at: created,
        status: 'completed',
        model,
        output: [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: content, annotations: [] }] }],
        usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 },
      };
    case 'embeddings': {
      const vector = [0.25, 0.5, 0.75];
      // the openai SDK asks for base64 unless told otherwise, and decodes it
      const embedding = request.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
      return { object: 'list', data: [{ object: 'embedding', index: 0, embedding }], model, usage: { prompt_tokens: 5, total_tokens: 5 } };
    }
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
}

/** A chat stream as an upstream sends it when asked for usage: `Hel`, `lo`, the finish, the usage chunk. */
function chatStream(requestId: string, created: number, model: string): Json[] {
  const chunk = (choices: unknown[], usage: unknown = null) => ({
    id: completionId(requestId),
    object: 'chat.completion.chunk',
    created,
    model,
    system_fingerprint: null,
    choices,
    usage,
  });
  const choice = (delta: Json, finish: string | null = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  return [chunk([choice({ role: 'assistant', content: 'Hel' })]), chunk([choice({ content: 'lo' })]), chunk([choice({}, 'stop')]), chunk([], USAGE)];
}

/** What the fake terminal stage does, chosen by the text the request ends with. */
function answerTo(event: SluiceEvent<'chat.requested'>): ChatReply[] {
  const { ctx, body } = event.data;
  const { requestId } = event;
  const { endpoint, stream } = ctx.request;
  const said = saidIn(endpoint, body);
  const model = ctx.request.model === 'auto' ? 'small' : ctx.request.model;
  const created = Math.floor(ctx.receivedAt / 1000);
  const bodyOf = (content: string) => upstreamBody(endpoint, requestId, created, model, content, body as Json);
  // `cached` alone is how a stage from before the cache kinds said hit; a kind adds `cache`
  const result = (content: string, cached = false, cache?: CacheKind): ChatReply => {
    const b = bodyOf(content);
    return { requestId, model, body: b, usage: usageOf(endpoint, b) ?? USAGE, cached, ...(cache ? { cache } : {}), created, rateLimit: RATE_LIMIT };
  };
  const chunks = (all: unknown[], cached = false, cache?: CacheKind): ChatReply[] =>
    all.map((chunk, i) => ({
      requestId,
      model,
      chunk,
      ...(cached ? { cached } : {}),
      ...(cache ? { cache } : {}),
      ...(i === 0 ? { rateLimit: RATE_LIMIT } : {}),
    }));
  // an upstream's stream of a whole answer: chat asks for usage always (the invoker does, to bill)
  const streamOf = (content: string) => (endpoint === 'responses' ? responseEventsOf(bodyOf(content)) : chatChunksOf(bodyOf(content), requestId, true));
  switch (said) {
    case 'silent':
      return [];
    case 'throttle':
      return [
        {
          requestId,
          error: { code: 'rate_limit_exceeded', message: 'Rate limit reached; retry after the given time.', status: 429, retryAfterMs: 1500 },
          rateLimit: { requests: { limit: 3, remaining: 0, resetMs: 60_000 } },
        },
      ];
    case 'shed':
      return [{ requestId, error: { code: 'service_busy', message: 'The gateway is shedding load.', status: 503, retryAfterMs: 5000 } }];
    case 'context-too-long':
      return [
        {
          requestId,
          error: {
            code: 'context_length_exceeded',
            message: "This model's maximum context length is 8 tokens.",
            status: 400,
            type: 'invalid_request_error',
            param: 'messages',
          },
        },
      ];
    case 'fail-midstream':
      return [
        ...chunks(streamOf('partial').slice(0, 1)),
        { requestId, error: { code: 'upstream_failed', message: 'Every upstream deployment failed.', status: 502 } },
      ];
    case 'cached':
      return stream ? [...chunks(streamOf('from cache'), true), result('from cache', true)] : [result('from cache', true)];
    case 'cached hit':
    case 'cached semantic':
    case 'cached coalesced': {
      const kind = said.slice('cached '.length) as CacheKind;
      return stream ? [...chunks(streamOf(`from ${kind}`), true, kind), result(`from ${kind}`, true, kind)] : [result(`from ${kind}`, true, kind)];
    }
    case 'result-only':
      return [result('whole at once')];
    case 'result-only coalesced':
      return [result('whole at once', true, 'coalesced')];
    case 'tool-call':
      return stream ? [...chunks(streamOf('tool-call')), result('tool-call')] : [result('tool-call')];
    default:
      if (!stream) return [result(`echo: ${said}`)];
      return [...chunks(endpoint === 'chat.completions' ? chatStream(requestId, created, model) : streamOf('Hello')), result('Hello')];
  }
}

export interface Harness {
  nats: PrivateNats;
  bus: Bus;
  buckets: Buckets;
  ctx: ServiceContext;
  ingress: FrontDoors;
  /** chat.requested events the fake stage consumed, newest last. */
  requested: Array<AnyEvent & { type: 'chat.requested' }>;
  baseURL: string;
  /** The last chat.rejected event published for a tenant. */
  lastRejected(tenant: string): Promise<AnyEvent & { type: 'chat.rejected' }>;
  /** Writes a config and waits until ingress applied it. */
  applyConfig(change: (c: SluiceConfig) => SluiceConfig): Promise<void>;
  stop(): Promise<void>;
}

/** `env`: more of ingress's environment (e.g. `SLUICE_NATS_USERS`). */
export async function startHarness(opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Harness> {
  const testBus = await startTestBus(fixtureConfig(), { name: 'ingress' });
  const { nats, log, bus, buckets, control } = testBus;
  const env = { SLUICE_HOST: '127.0.0.1', SLUICE_INGRESS_PORT: '0', ...opts.env };
  const ctx: ServiceContext = { name: 'ingress', log, bus, buckets, control, env };
  const ingress = await startFrontDoors(ctx);

  const requested: Harness['requested'] = [];
  // a stand-in for the limiter's durable: what ingress publishes, answered as a terminal stage would
  const downstream: Consumption = await consumeEvents(bus, {
    consumer: { ...Consumers.limiter, durable: 'limiter-fake-terminal-stage', emits: [] },
    concurrency: 64,
    log,
    handler: async (event) => {
      requested.push(event);
      return { events: [], replies: answerTo(event).map((reply) => ({ to: event.data.ctx.replyTo, reply })) };
    },
  });

  return {
    nats,
    bus,
    buckets,
    ctx,
    ingress,
    requested,
    baseURL: `http://127.0.0.1:${ingress.port}/v1`,
    async lastRejected(tenant) {
      const msg = await bus.jsm.streams.getMessage(Topology.stream.name, { last_by_subj: Subjects.event('chat.rejected', tenant) });
      return parseEvent(msg!.data) as AnyEvent & { type: 'chat.rejected' };
    },
    async applyConfig(change) {
      // compared split: the config and its hashes arrive apart, and come back together in another key order
      const canonical = (c: SluiceConfig) => JSON.stringify(splitKeyHashes(c));
      const applied = canonical(await putConfig(buckets, change(fixtureConfig())));
      for (let i = 0; canonical(control.config()) !== applied; i++) {
        if (i > 200) throw new Error('ingress did not apply the config');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      for (const close of [...ingress.closers].reverse()) await close();
      await downstream.stop();
      // drain first: replies still in flight reach their inboxes before the connection closes
      await bus.nc.drain();
      await testBus.stop();
    },
  };
}

/** The `SluiceRequestError` the NATS door's client threw for `p`; fails when it resolved or threw something else. */
export async function clientError(p: Promise<unknown>): Promise<SluiceRequestError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SluiceRequestError) return e;
    throw e;
  }
  throw new Error('expected a SluiceRequestError');
}

/** What the HTTP door answered an `openai` SDK call: 200 when it resolved, else the API error's status and code. */
export async function httpStatus(p: Promise<unknown>): Promise<{ status: number; code: unknown }> {
  try {
    await p;
    return { status: 200, code: null };
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status ?? 0, code: e.code };
    throw e;
  }
}
