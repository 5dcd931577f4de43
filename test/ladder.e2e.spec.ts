import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Subscription } from '@nats-io/transport-node';
import { eventually } from '@sluice/bus/testing';
import { SluiceClient, SluiceHeldError } from '@sluice/client';
import { parseEvent, parseReply, Subjects, type ChatReply } from '@sluice/contracts';
import { defaultConfig, DEV_KEY, sleep, startE2eStack, type E2eStack } from './harness.js';

// The degradation ladder, levels 0-4, walked up and down under steady HTTP traffic with the
// operator's override (what `npm run config -- degrade` writes). Each level is held until its
// answers show, then its answers are checked over a window of steady traffic. At level 4 the
// misses are held (202); the router and the invoker are killed while they wait; on the way down
// they stay held through levels 3 and 2 and are answered, in the order they were held, once the
// level is 1, on their result subjects and at their result URLs.
let stack: E2eStack;
const CAP = 4;
const BILLING = 'Billing questions: see https://example.com/billing or reply INVOICE to get yours by mail.';
const HUMAN = 'A person will help you: write to support@example.com (answers within one working day).';
const FALLBACK = 'The assistant is resting. Please try again in a few minutes.';

beforeAll(async () => {
  const config = defaultConfig();
  config.router = {
    ...config.router,
    degradedMaxTokens: CAP,
    staticFallback: FALLBACK,
    staticAnswers: [
      { category: 'billing', keywords: ['refund', 'invoice', 'charged twice'], answer: BILLING },
      { category: 'human', keywords: ['human', 'agent', 'talk to someone'], answer: HUMAN },
    ],
  };
  // the level moves only when the test says so: no failure ratio or latency without 100k attempts, the other signals off
  config.degrader = { ...config.degrader, minSamples: 100_000, backlogMax: 0, budgetBurnShare: 0, openCircuitShare: 0 };
  // a similar earlier question would be a semantic hit at every level: each kind must reach the router
  for (const t of config.tenants) delete t.cache;
  // the one e2e file on PGlite, the ledger's default under `npm start`
  stack = await startE2eStack({ config, postgres: false });
});
afterAll(async () => {
  await stack?.close();
});

type Kind = 'cached' | 'complex' | 'billing' | 'human';
const KINDS: Kind[] = ['cached', 'complex', 'billing', 'human'];
const CACHED_QUESTION = 'What is the ladder test’s cached question?';

interface Outcome {
  kind: Kind;
  status: number;
  ms: number;
  code?: string;
  retryAfter?: number;
  model?: string | null;
  cache?: string | null;
  requestId?: string | null;
  content?: string | null;
  finish?: string | null;
  usage?: OpenAI.CompletionUsage;
  /** A 202's body: the request is held for later. */
  held?: { id: string; object: string; status: string; result_url: string; result_subject: string };
  location?: string | null;
}

let n = 0;
/** One request of a kind; every kind but `cached` is a new question (misses the exact cache). */
function body(kind: Kind): OpenAI.ChatCompletionCreateParamsNonStreaming {
  const i = ++n;
  const user = (content: string) => [{ role: 'user' as const, content }];
  switch (kind) {
    case 'cached':
      return { model: 'gpt-4o-mini', messages: user(CACHED_QUESTION) };
    case 'complex':
      // three hard words and a code fence: above the small tier's 0.5 (-> gpt-4o at full service)
      return {
        model: 'auto',
        max_tokens: 100,
        messages: user(
          `Analyze and compare these two functions step by step, and name the trade-off (#${i}):\n` +
            '```ts\nfunction twice(x: number) { return x * 2; }\nfunction shifted(x: number) { return x << 1; }\n```',
        ),
      };
    case 'billing':
      return { model: 'auto', messages: user(`Hello, I was charged twice this month; how do I get a refund? (#${i})`) };
    case 'human':
      return { model: 'auto', messages: user(`This is not working, can I talk to someone, a human agent? (#${i})`) };
  }
}

async function send(kind: Kind): Promise<Outcome> {
  const started = performance.now();
  try {
    const { data, response } = await stack.openai().chat.completions.create(body(kind)).withResponse();
    if (response.status === 202) {
      const held = data as unknown as NonNullable<Outcome['held']>;
      return { kind, status: 202, ms: performance.now() - started, requestId: held.id, held, location: response.headers.get('location') };
    }
    return {
      kind,
      status: response.status,
      ms: performance.now() - started,
      model: response.headers.get('x-sluice-model'),
      cache: response.headers.get('x-sluice-cache'),
      requestId: response.headers.get('x-request-id'),
      content: data.choices[0]?.message.content,
      finish: data.choices[0]?.finish_reason,
      ...(data.usage ? { usage: data.usage } : {}),
    };
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    const retryAfter = e.headers?.get('retry-after');
    return {
      kind,
      status: e.status ?? 0,
      ms: performance.now() - started,
      ...(typeof e.code === 'string' ? { code: e.code } : {}),
      ...(retryAfter ? { retryAfter: Number(retryAfter) } : {}),
    };
  }
}

/** Steady traffic: one request every 1000/rps ms, the kinds in turn, each answer kept under the phase it was sent in. */
function traffic(rps: number) {
  const byPhase = new Map<string, Promise<Outcome>[]>();
  let phase: string | undefined;
  let k = 0;
  const timer = setInterval(() => {
    const p = send(KINDS[k++ % KINDS.length]!);
    if (phase !== undefined) byPhase.set(phase, [...(byPhase.get(phase) ?? []), p]);
  }, 1000 / rps);
  return {
    /** Records what is sent for `ms` under `name`, then waits for those answers. */
    async record(name: string, ms: number): Promise<Outcome[]> {
      phase = name;
      await sleep(ms);
      phase = undefined;
      return Promise.all(byPhase.get(name) ?? []);
    },
    stop: () => clearInterval(timer),
  };
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN;
const of = (outcomes: Outcome[], kind: Kind) => outcomes.filter((o) => o.kind === kind);

/** Each level's answers, kind by kind; `warm` is the cached question's answer. */
function expectLevel(level: number, outcomes: Outcome[], warm: string) {
  for (const kind of KINDS) expect(of(outcomes, kind).length, `${kind} answers at level ${level}`).toBeGreaterThan(0);
  // a cached answer is served at every level: the cache answers before the router
  for (const o of of(outcomes, 'cached')) expect(o).toMatchObject({ status: 200, cache: 'hit', content: warm });
  const misses = outcomes.filter((o) => o.kind !== 'cached');
  switch (level) {
    case 0:
      for (const o of of(outcomes, 'complex')) expect(o).toMatchObject({ status: 200, model: 'gpt-4o', finish: 'stop' });
      for (const o of [...of(outcomes, 'billing'), ...of(outcomes, 'human')]) {
        expect(o).toMatchObject({ status: 200, model: 'gpt-4o-mini' });
        expect(o.content).toMatch(/^Echo:/);
      }
      break;
    case 1:
      // auto -> the cheapest tier, and the client's max_tokens (100) capped: the simulator's replies are longer than CAP
      for (const o of misses) {
        expect(o).toMatchObject({ status: 200, model: 'gpt-4o-mini', finish: 'length' });
        expect(o.usage?.completion_tokens).toBeLessThanOrEqual(CAP);
      }
      break;
    case 2:
      for (const o of misses) {
        expect(o).toMatchObject({ status: 503, code: 'service_busy' });
        expect(o.retryAfter).toBeGreaterThanOrEqual(1);
      }
      break;
    case 3: {
      const expected: Record<Exclude<Kind, 'cached'>, string> = { complex: FALLBACK, billing: BILLING, human: HUMAN };
      for (const o of misses) {
        expect(o).toMatchObject({ status: 200, model: 'static-fallback', content: expected[o.kind as Exclude<Kind, 'cached'>] });
        expect(o.usage).toMatchObject({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
      }
      break;
    }
    case 4:
      for (const o of misses) {
        expect(o).toMatchObject({ status: 202, held: { object: 'sluice.request', status: 'held', result_subject: Subjects.result(o.requestId!) } });
        expect(o.location).toBe(`/v1/sluice/requests/${o.requestId}/result`);
        expect(o.held!.result_url).toBe(o.location);
      }
      break;
    default:
      throw new Error(`level ${level} is not walked here`);
  }
}

/** Records, in order, the request ids of core NATS messages on `subject` (each id once). */
function watch(subject: string, idOf: (data: Uint8Array) => string | undefined): { ids: string[]; sub: Subscription } {
  const ids: string[] = [];
  const seen = new Set<string>();
  const sub = stack.nc.subscribe(subject, {
    callback: (_e, m) => {
      const id = idOf(m.data);
      if (id !== undefined && !seen.has(id)) {
        seen.add(id);
        ids.push(id);
      }
    },
  });
  return { ids, sub };
}

async function fetchResult(requestId: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.ingressUrl}/v1/sluice/requests/${requestId}/result`, { headers: { authorization: `Bearer ${DEV_KEY}` } });
  return { status: res.status, body: await res.json() };
}

/** SIGKILLs a service and waits until the supervisor has it running again. */
async function killAndAwaitRestart(name: 'router' | 'invoker'): Promise<void> {
  const s = stack.services.get(name)!;
  const before = s.restarts;
  s.kill('SIGKILL');
  await eventually(() => s.restarts !== before, 30_000);
  await s.whenReady(60_000);
}

/** What shows a level has reached the router: the complex question's answer (billing at 3). */
async function reached(level: number): Promise<void> {
  await eventually(async () => {
    const o = await send(level === 3 ? 'billing' : 'complex');
    const ok = [o.model === 'gpt-4o', o.model === 'gpt-4o-mini' && o.finish === 'length', o.status === 503, o.content === BILLING, o.status === 202][level];
    if (!ok) throw new Error(`level ${level} not seen yet: ${JSON.stringify(o)}`);
  }, 20_000);
}

async function setLevel(level: number): Promise<void> {
  const since = Date.now();
  if (level === 0) await stack.applyDegrade({ level: 0, since, reason: 'e2e ladder: override lifted' });
  else await stack.applyDegrade({ level, override: level, since, reason: `e2e ladder: operator override to ${level}` });
  await reached(level);
}

describe('the degradation ladder', () => {
  it('walks levels 0 -> 1 -> 2 -> 3 -> 4 -> 3 -> 2 -> 1 -> 0 under steady traffic, each level answering as it should', async () => {
    const warm = (await send('cached')).content!;
    await eventually(async () => {
      const o = await send('cached');
      if (o.cache !== 'hit') throw new Error('the cached question is not stored yet');
    }, 20_000);
    await reached(0);

    // what the router holds and releases, and every answer published on a result subject, in order
    const heldIds = watch(Subjects.eventsOf('chat.held'), (d) => parseEvent(d).requestId);
    const releasedIds = watch('sluice.evt.chat.routed.>', (d) => {
      const e = parseEvent(d);
      return e.type === 'chat.routed' && e.data.ctx.held ? e.requestId : undefined;
    });
    const finals = new Map<string, { reply: ChatReply; at: number }>();
    const results = stack.nc.subscribe(Subjects.resultsAll, {
      callback: (_e, m) => {
        const reply = parseReply(m.data);
        if (!('status' in reply) && reply.requestId) finals.set(reply.requestId, { reply, at: Date.now() });
      },
    });
    const natsDoor = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 30_000 });
    let natsHeld: Promise<Awaited<ReturnType<SluiceClient['result']>>> | undefined;
    let heldOutcomes: Outcome[] = [];
    let releasedAt = 0;

    const load = traffic(6);
    const figures: Array<Record<string, unknown>> = [];
    try {
      for (const [step, level] of [0, 1, 2, 3, 4, 3, 2, 1, 0].entries()) {
        // the level the held requests are released at: timed from the override's write
        if (step === 7) releasedAt = Date.now();
        await setLevel(level);
        if (level === 4) {
          // the NATS door hears "held" and waits for the answer on its result subject
          const err = await natsDoor
            .chat({ model: 'auto', messages: [{ role: 'user', content: 'Held over NATS: what is a ladder?' }] })
            .catch((e: unknown) => e);
          expect(err).toBeInstanceOf(SluiceHeldError);
          natsHeld = natsDoor.result((err as SluiceHeldError).requestId, { waitMs: 60_000 });
          // nothing held is lost when the services that hold and answer it die
          await killAndAwaitRestart('router');
          await killAndAwaitRestart('invoker');
        }
        const outcomes = await load.record(`${step}:${level}`, 2_500);
        expectLevel(level, outcomes, warm);
        if (level === 4) {
          heldOutcomes = outcomes.filter((o) => o.status === 202);
          // held, and while held a fetch says so
          const early = await fetchResult(heldOutcomes[0]!.requestId!);
          expect(early).toMatchObject({ status: 202, body: { id: heldOutcomes[0]!.requestId, status: 'held' } });
        }
        if (step === 5 || step === 6) {
          // levels 3 and 2 on the way down: still held, nothing answered
          for (const o of heldOutcomes) expect(finals.has(o.requestId!), `${o.requestId} answered at level ${level}`).toBe(false);
        }
        const statuses: Record<string, number> = {};
        for (const o of outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
        figures.push({
          level,
          answers: outcomes.length,
          statuses: JSON.stringify(statuses),
          'p50 ms (all)': Math.round(p50(outcomes.map((o) => o.ms))),
          'p50 ms (misses)': Math.round(p50(outcomes.filter((o) => o.kind !== 'cached').map((o) => o.ms))),
        });
        if (level === 3) {
          // the timeline says which category answered, at no cost
          const billing = of(outcomes, 'billing')[0]!;
          const report = await eventually(async () => {
            const r = await stack.ledger(`/v1/requests/${billing.requestId}`);
            if (r.outcome !== 'completed') throw new Error('not projected yet');
            return r;
          }, 20_000);
          expect(report).toMatchObject({ deployment: 'static-fallback', costUsd: 0, attempts: 0 });
          const done = report.timeline.find((e: { type: string }) => e.type === 'chat.completed');
          expect(done.reason).toMatch(/^degraded to level 3 \(static fallback\): category billing \(refund, charged twice\)$/);
        }
      }
      // every held request answered once the level was 1, on its subject and at its URL
      await eventually(() => {
        for (const o of heldOutcomes) expect(finals.has(o.requestId!), `${o.requestId} answered`).toBe(true);
      }, 30_000);
      for (const o of heldOutcomes) {
        const got = await fetchResult(o.requestId!);
        expect(got.status, JSON.stringify(got.body)).toBe(200);
        // released at level 1: the cheapest tier, capped
        expect(got.body).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ finish_reason: 'length' }] });
        expect(finals.get(o.requestId!)!.at).toBeGreaterThanOrEqual(releasedAt);
      }
      const viaNats = await natsHeld!;
      expect(viaNats.body).toMatchObject({ object: 'chat.completion' });
      // released in the order they were held
      expect(releasedIds.ids).toEqual(heldIds.ids);
      const report = await eventually(async () => {
        const r = await stack.ledger(`/v1/requests/${heldOutcomes[0]!.requestId}`);
        if (r.outcome !== 'completed') throw new Error(`outcome ${r.outcome}`);
        return r;
      }, 20_000);
      expect(report.timeline.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['chat.held', 'chat.routed', 'chat.completed']));
      const answeredIn = heldOutcomes.map((o) => finals.get(o.requestId!)!.at - releasedAt);
      console.log(
        `held: ${heldOutcomes.length} x 202 in the level-4 window, ${heldIds.ids.length} held in all, ${releasedIds.ids.length} released in order; ` +
          `answered p50 ${Math.round(p50(answeredIn))} ms, max ${Math.round(Math.max(...answeredIn))} ms after the level went to 1`,
      );
    } finally {
      load.stop();
      heldIds.sub.unsubscribe();
      releasedIds.sub.unsubscribe();
      results.unsubscribe();
    }
    console.table(figures);
  });
});
