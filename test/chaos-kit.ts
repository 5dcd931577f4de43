// What the chaos specs share: open-loop load through both doors, one call's outcome, and the audit
// of the stream afterwards (each accepted request ended exactly once).
import { expect } from 'vitest';
import OpenAI from 'openai';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { Subjects, Topology, type EventType } from '@sluice/contracts';
import { sleep, type E2eStack } from './harness.js';

/** The events that end a request: exactly one of them per `chat.requested`. */
const TERMINAL: readonly EventType[] = ['chat.completed', 'chat.failed', 'chat.throttled', 'chat.shed', 'cache.hit', 'chat.rejected'];

export type Outcome =
  | { kind: 'answered'; requestId: string }
  | { kind: 'coded'; code: string; status: number; retryAfterMs?: number; requestId?: string }
  /** refused: nothing listened, so nothing was accepted; other: the connection broke mid-request */
  | { kind: 'transport'; refused: boolean; message: string };

/** Open-loop load: one call every `paceMs` until stopped, whatever the answers take. */
export function loadLoop<O>(call: (n: number) => Promise<O>, paceMs: number) {
  const outcomes: O[] = [];
  const pending = new Set<Promise<void>>();
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const p: Promise<void> = call(n++).then((o) => void outcomes.push(o));
      pending.add(p);
      void p.finally(() => pending.delete(p));
      await sleep(paceMs);
    }
  })();
  return {
    outcomes,
    inFlight: () => pending.size,
    started: () => n,
    async stop() {
      running = false;
      await loop;
      await Promise.all([...pending]);
    },
  };
}

function causeCode(e: unknown): string | undefined {
  for (let c: any = e, i = 0; c && i < 6; c = c.cause, i++) if (typeof c.code === 'string' && c.code.startsWith('E')) return c.code;
  return undefined;
}

type Messages = Array<{ role: 'user'; content: string }>;

/** A unique prompt, so no answer comes from the cache or is coalesced with another. */
export const prompt = (door: string, n: number): Messages => [{ role: 'user', content: `crash test ${door} ${n} ${Math.random()}` }];

/** One chat request through the NATS door, cache skipped. */
export async function natsCall(client: SluiceClient, messages: Messages, idempotencyKey?: string): Promise<Outcome> {
  try {
    const r = await client.chat({ model: 'gpt-4o-mini', messages }, { skipCache: true, ...(idempotencyKey ? { idempotencyKey } : {}) });
    return { kind: 'answered', requestId: r.requestId };
  } catch (e) {
    if (e instanceof SluiceRequestError)
      return {
        kind: 'coded',
        code: e.code,
        status: e.status,
        ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
        ...(e.requestId ? { requestId: e.requestId } : {}),
      };
    return { kind: 'transport', refused: false, message: String(e) };
  }
}

/** One chat request through the HTTP door (the OpenAI SDK), cache skipped. */
export async function httpCall(client: OpenAI, messages: Messages, idempotencyKey?: string): Promise<Outcome> {
  try {
    const headers = { 'x-sluice-cache': 'skip', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) };
    const { response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, { headers }).withResponse();
    return { kind: 'answered', requestId: response.headers.get('x-sluice-request-id') ?? '' };
  } catch (e) {
    if (e instanceof OpenAI.APIError && e.status !== undefined && typeof e.code === 'string') {
      const requestId = e.headers?.get('x-sluice-request-id');
      const retryAfter = Number(e.headers?.get('retry-after'));
      return {
        kind: 'coded',
        code: e.code,
        status: e.status,
        ...(retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
        ...(requestId ? { requestId } : {}),
      };
    }
    return { kind: 'transport', refused: causeCode(e) === 'ECONNREFUSED', message: `${String(e)} (${causeCode(e) ?? 'no code'})` };
  }
}

/** Answered, coded (by code), refused and broken calls. */
export function tally(os: readonly Outcome[]) {
  return {
    answered: os.filter((o) => o.kind === 'answered').length,
    coded: Object.entries(os.reduce<Record<string, number>>((acc, o) => (o.kind === 'coded' ? { ...acc, [o.code]: (acc[o.code] ?? 0) + 1 } : acc), {})),
    refused: os.filter((o) => o.kind === 'transport' && o.refused).length,
    broken: os.filter((o) => o.kind === 'transport' && !o.refused).map((o) => (o.kind === 'transport' ? o.message : '')),
  };
}

/** Every event of one type in the stream, read with an ordered consumer. */
export async function eventsOf(nc: NatsConnection, type: EventType): Promise<Array<{ id: string; requestId: string; at: string }>> {
  return (await streamEvents(nc, Subjects.eventsOf(type))).map((e) => ({ id: e.id, requestId: e.requestId, at: new Date(e.at).toISOString() }));
}

/** Every event in the stream under `filter` (a subject, wildcards allowed), as published, read with an ordered consumer. */
export async function streamEvents(nc: NatsConnection, filter: string): Promise<Array<{ id: string; requestId: string; at: number; data: unknown }>> {
  const consumer = await jetstream(nc).consumers.get(Topology.stream.name, { filter_subjects: filter });
  const out: Array<{ id: string; requestId: string; at: number; data: unknown }> = [];
  if ((await consumer.info()).num_pending === 0) return out;
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push(m.json());
    if (m.info.pending === 0) break;
  }
  return out;
}

/**
 * Every request in the stream and how it ended: `lost` has no terminal event, `doubled` more
 * than one; `completedIds` ended in `chat.completed`.
 */
export async function auditRequests(nc: NatsConnection) {
  const requested = await eventsOf(nc, 'chat.requested');
  const terminals = new Map<string, string[]>();
  for (const type of TERMINAL) {
    for (const e of await eventsOf(nc, type)) terminals.set(e.requestId, [...(terminals.get(e.requestId) ?? []), type]);
  }
  return {
    requested: requested.length,
    lost: requested.filter((e) => !terminals.has(e.requestId)).map((e) => e.requestId),
    doubled: [...terminals].filter(([, types]) => types.length > 1),
    completedIds: new Set([...terminals].filter(([, t]) => t.includes('chat.completed')).map(([id]) => id)),
  };
}

/** What the upstream (the stack's simulator) served and what the ledger billed, in total. */
export async function billing(stack: E2eStack) {
  const s = stack.sim!.stats();
  const costs = await stack.ledger<{ totals: { completed: number; inputTokens: number; outputTokens: number } }>('/v1/costs');
  return {
    sim: { completions: s.completions, replays: s.replays, promptTokens: s.promptTokens, completionTokens: s.completionTokens },
    ledger: costs.totals,
  };
}

/** Not charged twice, nothing served unbilled: one upstream completion and one charged row per completed request, token for token. */
export function expectBilledExactlyOnce({ sim, ledger }: Awaited<ReturnType<typeof billing>>, completedIds: ReadonlySet<string>): void {
  // not charged twice: one completion per request, one charged row per completion
  expect(ledger.completed).toBe(completedIds.size);
  // every call repeated on a redelivery (after a crash, or a handler slower than the ack wait)
  // carried the first call's Idempotency-Key: the upstream served each completion once
  expect(sim.completions).toBe(completedIds.size);
  // exact: the ledger bills what the upstream served, token for token
  expect(ledger.inputTokens).toBe(sim.promptTokens);
  expect(ledger.outputTokens).toBe(sim.completionTokens);
}
