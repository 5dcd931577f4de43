import { publishEvent } from '@sluice/bus';
import { startTestBus } from '@sluice/bus/testing';
import {
  isChunk,
  makeEvent,
  ServiceName,
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
import { startInvoker } from './service.js';

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

export interface Outcome {
  requestId: string;
  chunks: ChatChunk[];
  final: ChatResult | ChatErrorReply;
  /** Events of this request (circuit events have their own ids; see `events`). */
  events: AnyEvent[];
}

export interface InvokeOptions {
  stream?: boolean;
  deadlineMs?: number;
  prompt?: string;
  onChunk?: () => void;
}

export interface Harness {
  sims: Record<string, Sim>;
  /** Every event seen on the stream's subjects, in order. */
  events: AnyEvent[];
  /** Publishes a chat.routed event as the router would; resolves with the final reply and the terminal event. */
  invoke(candidates: Candidate[], opts?: InvokeOptions): Promise<Outcome>;
  stop(): Promise<void>;
}

export async function startHarness(deployments: Record<string, DeploymentSpec>, invoker: Record<string, number>): Promise<Harness> {
  const names = Object.keys(deployments);
  const started = await Promise.all(names.map((n) => startSim(deployments[n]!.sim ?? {})));
  const sims = Object.fromEntries(names.map((n, i) => [n, started[i]!]));

  // the config names the simulators' URLs, so they start first
  const testBus = await startTestBus(config(Object.fromEntries(names.map((n) => [n, { baseUrl: sims[n]!.url, timeoutMs: deployments[n]!.timeoutMs ?? 5000 }])), invoker), { name: 'invoker' });
  const { bus, control, log } = testBus;
  const consumption = await startInvoker({ bus, control, log, env: {} });
  const events: AnyEvent[] = [];
  bus.nc.subscribe('sluice.evt.>', { callback: (_e, m) => void events.push(JSON.parse(decoder.decode(m.data)) as AnyEvent) });

  let seq = 0;
  const invoke = async (candidates: Candidate[], opts: InvokeOptions = {}): Promise<Outcome> => {
    const n = ++seq;
    const requestId = `req-${process.pid}-${n}`;
    const replyTo = `_INBOX.test.${requestId}`;
    const chunks: ChatChunk[] = [];
    const final = new Promise<ChatResult | ChatErrorReply>((resolve) => {
      const sub = bus.nc.subscribe(replyTo, {
        callback: (_e, m) => {
          const reply = JSON.parse(decoder.decode(m.data)) as ChatReply;
          if (isChunk(reply)) {
            chunks.push(reply);
            opts.onChunk?.();
          } else {
            sub.unsubscribe();
            resolve(reply);
          }
        },
      });
    });
    const now = Date.now();
    const routed = makeEvent(
      'chat.routed',
      { requestId, tenant: TENANT, service: ServiceName.Router, at: now, reason: 'test' },
      {
        ctx: {
          request: { model: candidates[0]!.model, messages: [{ role: 'user', content: opts.prompt ?? `Say hello number ${n}` }], priority: 'standard', stream: opts.stream ?? false, params: {}, cache: 'default' },
          replyTo,
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
    await publishEvent(bus.js, routed);
    const reply = await final;
    const terminal = await waitFor(() => events.find((e) => e.requestId === requestId && (e.type === 'chat.completed' || e.type === 'chat.failed')));
    if (!terminal) throw new Error(`no terminal event for ${requestId}`);
    return { requestId, chunks, final: reply, events: events.filter((e) => e.requestId === requestId) };
  };

  return {
    sims,
    events,
    invoke,
    async stop() {
      await consumption.stop();
      await testBus.stop();
      await Promise.all(Object.values(sims).map((s) => s.close().catch(() => undefined)));
    },
  };
}

export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T | undefined> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; ) {
    const v = probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

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
