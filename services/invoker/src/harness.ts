import { consumeEvents, publishEvent, type Bus } from '@sluice/bus';
import { eventuallyFound, startTestBus } from '@sluice/bus/testing';
import {
  Consumers,
  isChunk,
  makeEvent,
  parseEvent,
  ServiceName,
  Topology,
  type AnyEvent,
  type Candidate,
  type ChatChunk,
  type ChatErrorReply,
  type ChatReply,
  type ChatResult,
  type EventType,
  type SluiceEvent,
} from '@sluice/contracts';
import { startSim, type Sim, type SimOptions } from '@sluice/openai-sim';
import type { Arrival } from './invoke.js';
import type { StoredAnswer } from './replay.js';
import { kvResultStore } from './results.js';
import { onChatRouted, wireInvoker } from './service.js';

/**
 * Test harness for the invoker's integration tests: a private nats-server, one simulator per
 * deployment, the invoker wired as main.ts wires it, and a recorder of every event.
 */
export const TENANT = 'acme';
const decoder = new TextDecoder();

export interface DeploymentSpec {
  sim?: SimOptions;
  timeoutMs?: number;
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
  onChunk?: () => void;
}

export interface Harness {
  sims: Record<string, Sim>;
  bus: Bus;
  /** Every event seen on the stream's subjects, in order. */
  events: AnyEvent[];
  /** Publishes a chat.routed event as the router would; resolves with the final reply and the terminal event. */
  invoke(candidates: Candidate[], opts?: InvokeOptions): Promise<Outcome>;
  /** A chat.routed event as the router would publish it, not published. */
  routed(candidates: Candidate[], opts?: InvokeOptions): SluiceEvent<'chat.routed'>;
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
  const started = await Promise.all(names.map((n) => startSim(deployments[n]!.sim ?? {})));
  const sims = Object.fromEntries(names.map((n, i) => [n, started[i]!]));

  // the config names the simulators' URLs, so they start first
  const testBus = await startTestBus(
    config(Object.fromEntries(names.map((n) => [n, { baseUrl: sims[n]!.url, timeoutMs: deployments[n]!.timeoutMs ?? 5000 }])), invoker),
    { name: 'invoker' },
  );
  const { bus, buckets, control, log } = testBus;
  // the consumer as main.ts wires it
  const consumption = await consumeEvents(bus, {
    consumer: Consumers.invoker,
    concurrency: control.config().invoker.concurrency,
    log,
    handler: onChatRouted(wireInvoker({ bus, buckets, control, log, env: {} })),
  });
  const handler = wireInvoker({ bus, buckets, control, log, env: {} });
  const results = kvResultStore(buckets.results);
  const events: AnyEvent[] = [];
  bus.nc.subscribe('sluice.evt.>', { callback: (_e, m) => void events.push(JSON.parse(decoder.decode(m.data)) as AnyEvent) });

  let seq = 0;
  const routed = (candidates: Candidate[], opts: InvokeOptions = {}): SluiceEvent<'chat.routed'> => {
    const n = ++seq;
    const requestId = `req-${process.pid}-${n}`;
    const now = Date.now();
    return makeEvent(
      'chat.routed',
      { requestId, tenant: TENANT, service: ServiceName.Router, at: now, reason: 'test' },
      {
        ctx: {
          request: {
            model: candidates[0]!.model,
            messages: [{ role: 'user', content: opts.prompt ?? `Say hello number ${n}` }],
            priority: 'standard',
            stream: opts.stream ?? false,
            params: {},
            cache: 'default',
          },
          replyTo: `_INBOX.test.${requestId}`,
          frontDoor: 'nats',
          receivedAt: now,
          deadline: now + (opts.deadlineMs ?? 30_000),
        },
        tier: 'small',
        lane: 'standard',
        candidates,
        degradeLevel: 0,
        cacheKey: `${TENANT}.key-${n}`,
      },
    );
  };

  /** Listens on the request's inbox, runs `send`, and waits for the final reply and a terminal event after it. */
  const answerOf = async (event: SluiceEvent<'chat.routed'>, send: () => Promise<unknown>, onChunk?: () => void): Promise<Outcome> => {
    const { requestId } = event;
    const chunks: ChatChunk[] = [];
    const from = events.length;
    const final = new Promise<ChatResult | ChatErrorReply>((resolve) => {
      const sub = bus.nc.subscribe(event.data.ctx.replyTo!, {
        callback: (_e, m) => {
          const reply = JSON.parse(decoder.decode(m.data)) as ChatReply;
          if (isChunk(reply)) {
            chunks.push(reply);
            onChunk?.();
          } else {
            sub.unsubscribe();
            resolve(reply);
          }
        },
      });
    });
    await send();
    const reply = await final;
    const mine = () => events.slice(from).filter((e) => e.requestId === requestId);
    const terminal = await waitFor(() => mine().find((e) => e.type === 'chat.completed' || e.type === 'chat.failed'));
    if (!terminal) throw new Error(`no terminal event for ${requestId}`);
    return { requestId, routed: event, chunks, final: reply, events: mine() };
  };

  return {
    sims,
    bus,
    events,
    routed,
    invoke(candidates, opts = {}) {
      const event = routed(candidates, opts);
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
      await testBus.stop();
      await Promise.all(Object.values(sims).map((s) => s.close().catch(() => undefined)));
    },
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
