import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { publishEvent, type Bus } from '@sluice/bus';
import { eventuallyFound, startTestBus } from '@sluice/bus/testing';
import {
  laneSpecs,
  isChunk,
  makeEvent,
  parseEvent,
  ServiceName,
  Subjects,
  Topology,
  type AnyEvent,
  type Candidate,
  type ChatChunk,
  type ChatErrorReply,
  type ChatReply,
  type ChatResult,
  type Endpoint,
  type EventType,
  type SluiceEvent,
} from '@sluice/contracts';
import { chatBody, chatRequest } from '@sluice/contracts/testing';
import { startSim, type Sim, type SimOptions } from '@sluice/openai-sim';
import type { Arrival } from './invoke.js';
import type { StoredAnswer } from './replay.js';
import { kvResultStore } from './results.js';
import { startLanes } from './lanes.js';
import { onChatRouted, wireInvoker } from './service.js';

/**
 * Test harness for the invoker's integration tests: a private nats-server, one simulator per
 * deployment (or a recorder of what the invoker sends), the invoker wired as main.ts wires it,
 * and a recorder of every event. Each request's body is published in a chat.requested first,
 * as ingress does, and `ctx.requestSeq` points at it, as the limiter sets it.
 */
export const TENANT = 'acme';
const decoder = new TextDecoder();

export interface DeploymentSpec {
  sim?: SimOptions;
  timeoutMs?: number;
  /** Instead of a simulator, a recorder of the requests it receives that answers each with `capture`'s body. */
  capture?: unknown;
}

/** One request a capturing deployment received, as it arrived. */
interface Captured {
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

interface Outcome {
  requestId: string;
  /** The input, for handing it to the invoker again. */
  routed: SluiceEvent<'chat.routed'>;
  chunks: ChatChunk[];
  final: ChatResult | ChatErrorReply;
  /** Events of this request (circuit events have their own ids; see `events`). */
  events: AnyEvent[];
}

interface InvokeOptions {
  stream?: boolean;
  deadlineMs?: number;
  prompt?: string;
  /** The client's body (default: one user message saying `prompt`, for the first candidate's model). */
  body?: Record<string, unknown>;
  endpoint?: Endpoint;
  /** The degrade cap the router decided. */
  maxTokens?: number;
  /** Where ctx.requestSeq points instead of the request's own chat.requested. */
  requestSeq?: number;
  onChunk?: (chunk: ChatChunk) => void;
}

export interface Harness {
  sims: Record<string, Sim>;
  /** What each capturing deployment received, in order. */
  captured: Record<string, Captured[]>;
  bus: Bus;
  /** Every event seen on the stream's subjects, in order. */
  events: AnyEvent[];
  /** Publishes a chat.routed event as the router would; resolves with the final reply and the terminal event. */
  invoke(candidates: Candidate[], opts?: InvokeOptions): Promise<Outcome>;
  /** A chat.routed event as the router would publish it, not published (its chat.requested is). */
  routed(candidates: Candidate[], opts?: InvokeOptions): Promise<SluiceEvent<'chat.routed'>>;
  /** A client's cancel of its request, as ingress (or a NATS client) publishes it. */
  cancel(requestId: string): void;
  /**
   * Hands a chat.routed to an invoker handler (wired like the service, its own circuits) as
   * consumeEvents would with this delivery; resolves with the reply and the events it published.
   */
  deliver(routed: SluiceEvent<'chat.routed'>, delivery: Arrival): Promise<Outcome>;
  /** What the results bucket holds for a request. */
  stored(requestId: string): Promise<StoredAnswer | undefined>;
  /** Deletes a request's stored answer: what an invoker that died before storing it leaves behind. */
  forget(requestId: string): Promise<void>;
  /** The events of a request that the stream kept (duplicates dropped), in stream order. */
  streamed(requestId: string): Promise<AnyEvent[]>;
  stop(): Promise<void>;
}

export async function startHarness(deployments: Record<string, DeploymentSpec>, invoker: Record<string, number>): Promise<Harness> {
  const names = Object.keys(deployments);
  const captured: Record<string, Captured[]> = {};
  const started = await Promise.all(
    names.map((n) => (deployments[n]!.capture !== undefined ? startCapture(deployments[n]!.capture, (captured[n] = [])) : startSim(deployments[n]!.sim ?? {}))),
  );
  const sims = Object.fromEntries(names.map((n, i) => [n, started[i]!]));

  // the config names the simulators' URLs, so they start first
  const testBus = await startTestBus(
    config(Object.fromEntries(names.map((n) => [n, { baseUrl: sims[n]!.url, timeoutMs: deployments[n]!.timeoutMs ?? 5000 }])), invoker),
    { name: 'invoker' },
  );
  const { bus, buckets, control, log } = testBus;
  // the consumer as main.ts wires it
  const wired = wireInvoker({ bus, buckets, control, log, env: {} });
  const consumption = await startLanes(bus, {
    settings: () => ({ slots: control.config().invoker.concurrency, lanes: laneSpecs(control.config()) }),
    onChange: (listener) => control.onChange(listener),
    log,
    handler: onChatRouted(wired.invoke),
  });
  const other = wireInvoker({ bus, buckets, control, log, env: {} });
  const handler = other.invoke;
  const results = kvResultStore(buckets.results);
  const events: AnyEvent[] = [];
  bus.nc.subscribe('sluice.evt.>', { callback: (_e, m) => void events.push(JSON.parse(decoder.decode(m.data)) as AnyEvent) });

  let seq = 0;
  const routed = async (candidates: Candidate[], opts: InvokeOptions = {}): Promise<SluiceEvent<'chat.routed'>> => {
    const n = ++seq;
    const requestId = `req-${process.pid}-${n}`;
    const now = Date.now();
    const stream = opts.stream ?? false;
    const body = opts.body ?? chatBody(opts.prompt ?? `Say hello number ${n}`, candidates[0]!.model, stream ? { stream } : {});
    const ctx = {
      request: chatRequest({ endpoint: opts.endpoint ?? 'chat.completions', model: candidates[0]!.model, stream, promptTokens: 12 }),
      replyTo: `_INBOX.test.${requestId}`,
      frontDoor: 'nats' as const,
      receivedAt: now,
      deadline: now + (opts.deadlineMs ?? 30_000),
    };
    // what ingress publishes: the one event with the body
    const fields = { requestId, tenant: TENANT, at: now, reason: 'test' };
    const ack = await publishEvent(bus.js, makeEvent('chat.requested', { ...fields, service: ServiceName.Ingress }, { ctx, body }));
    return makeEvent(
      'chat.routed',
      { ...fields, service: ServiceName.Router },
      {
        ctx: { ...ctx, requestSeq: opts.requestSeq ?? ack.seq },
        tier: 'small',
        lane: 'standard',
        candidates,
        degradeLevel: 0,
        cacheKey: `${TENANT}.key-${n}`,
        ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
      },
    );
  };

  /** Listens on the request's inbox, runs `send`, and waits for the final reply and a terminal event after it. */
  const answerOf = async (event: SluiceEvent<'chat.routed'>, send: () => Promise<unknown>, onChunk?: (chunk: ChatChunk) => void): Promise<Outcome> => {
    const { requestId } = event;
    const chunks: ChatChunk[] = [];
    const from = events.length;
    const final = new Promise<ChatResult | ChatErrorReply>((resolve) => {
      const sub = bus.nc.subscribe(event.data.ctx.replyTo!, {
        callback: (_e, m) => {
          const reply = JSON.parse(decoder.decode(m.data)) as ChatReply;
          if (isChunk(reply)) {
            chunks.push(reply);
            onChunk?.(reply);
          } else {
            sub.unsubscribe();
            // the invoker never holds a request: only a result or an error ends it
            resolve(reply as ChatResult | ChatErrorReply);
          }
        },
      });
    });
    await send();
    const reply = await final;
    const mine = () => events.slice(from).filter((e) => e.requestId === requestId);
    const terminal = await waitFor(() => mine().find((e) => e.type === 'chat.completed' || e.type === 'chat.failed' || e.type === 'chat.cancelled'));
    if (!terminal) throw new Error(`no terminal event for ${requestId}`);
    return { requestId, routed: event, chunks, final: reply, events: mine() };
  };

  return {
    sims,
    captured,
    bus,
    events,
    routed,
    cancel: (requestId) => bus.nc.publish(Subjects.cancel(requestId)),
    async invoke(candidates, opts = {}) {
      const event = await routed(candidates, opts);
      return answerOf(event, () => publishEvent(bus.js, event), opts.onChunk);
    },
    deliver: (event, delivery) => answerOf(event, () => handler(event, delivery)),
    stored: (requestId) => results.get(requestId),
    forget: async (requestId) => void (await buckets.results.purge(requestId)),
    async streamed(requestId) {
      const stream = Topology.stream.name;
      let left = (await bus.jsm.streams.info(stream)).state.messages;
      const kept: AnyEvent[] = [];
      if (left === 0) return kept;
      const consumer = await bus.js.consumers.get(stream, { filter_subjects: 'sluice.evt.>' });
      const batch = await consumer.fetch({ max_messages: left, expires: 5_000 });
      for await (const m of batch) {
        const e = parseEvent(m.data);
        if (e.requestId === requestId) kept.push(e);
        if (--left === 0) break;
      }
      return kept;
    },
    async stop() {
      await consumption.stop();
      wired.stop();
      other.stop();
      await testBus.stop();
      await Promise.all(Object.values(sims).map((s) => s.close().catch(() => undefined)));
    },
  };
}

/**
 * A stand-in upstream that records every request as it arrived and answers each with `answer`
 * (JSON, 200): for asserting the exact body the invoker sends. Shaped like a Sim so the harness
 * treats both alike; its stats are zero.
 */
async function startCapture(answer: unknown, into: Captured[]): Promise<Sim> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      into.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const none = { requests: 0, completions: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, embeddings: 0, embeddingTokens: 0 };
  const stats = { ...none, errors: 0, throttled: 0, timeouts: 0, replays: 0, responses: 0, aborted: 0, abortedTokens: 0 };
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    stats: () => ({ ...stats }),
    setFaults: () => undefined,
    reset: () => void into.splice(0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The first value `probe` finds within `timeoutMs` (eventuallyFound from the test kit, which throws on timeout). */
export const waitFor = <T>(probe: () => T | undefined, timeoutMs = 10_000) => eventuallyFound(probe, timeoutMs, 'the probe to find something');

/** The events of one type, typed. */
export function only<T extends EventType>(list: AnyEvent[], type: T): Array<SluiceEvent<T>> {
  return list.filter((e) => e.type === type) as unknown as Array<SluiceEvent<T>>;
}

function config(deployments: Record<string, { baseUrl: string; timeoutMs: number }>, invoker: Record<string, number>) {
  const rate = { requestsPerMinute: 1e6, tokensPerMinute: 1e9 };
  const price = { inputPerMTok: 0.15, outputPerMTok: 0.6 };
  const first = Object.keys(deployments)[0]!;
  return {
    tenants: [{ id: TENANT, keySha256: ['0'.repeat(64)] }],
    limits: { global: rate, tenantDefault: rate, userDefault: rate },
    deployments,
    // the invoker calls the candidates it is given; models only have to make the config valid
    models: { 'gpt-4o-mini': { deployments: [first], fallback: [], price } },
    tiers: [{ name: 'small', model: 'gpt-4o-mini', maxComplexity: 1 }],
    router: {},
    invoker,
    cache: {},
    degrader: {},
    ingress: {},
  };
}
