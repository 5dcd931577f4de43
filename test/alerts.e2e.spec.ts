import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { eventually } from '@sluice/bus/testing';
import {
  budgetPeriod,
  BudgetKeys,
  parseReply,
  NANOS_PER_USD,
  Subjects,
  Topology,
  verifySignature,
  WebhookHeaders,
  type AnyEvent,
  type BudgetSpend,
  type ChatReply,
  type EventType,
  type SluiceEvent,
} from '@sluice/contracts';
import { defaultConfig, DEV_KEY, startE2eStack, type E2eStack } from './harness.js';

// Budget alerts through the whole stack: requests spend two budgets of the dev tenant until the
// limiter refuses; every threshold the ledger's exact spend reached is published once on
// sluice.alerts.dev and POSTed, signed, to two real receivers, one of which answers 500 first.

const SECRET = 'whsec_e2e_alerts_0123456789';
const SECRET_ENV = 'SLUICE_E2E_ALERTS_SECRET';
/** The flaky receiver answers each alert 500, then 503, then 200. */
const FLAKY_STATUSES = [500, 503, 200];

interface Post {
  body: string;
  signature: string | undefined;
  eventId: string | undefined;
  status: number;
}

interface Receiver {
  url: string;
  posts: Post[];
  close(): Promise<void>;
}

/** A node:http receiver that answers `statusFor(n)` to the n-th POST (from 0) of each event id. */
async function startReceiver(statusFor: (n: number) => number): Promise<Receiver> {
  const posts: Post[] = [];
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const eventId = req.headers[WebhookHeaders.eventId] as string | undefined;
      const status = statusFor(posts.filter((p) => p.eventId === eventId).length);
      posts.push({ body: Buffer.concat(parts).toString('utf8'), signature: req.headers[WebhookHeaders.signature] as string | undefined, eventId, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`,
    posts,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let stack: E2eStack;
let jsm: JetStreamManager;
let steady: Receiver;
let flaky: Receiver;
const onCore: AnyEvent[] = [];

// soft: 0.0001 USD a day, downgrades when spent, the default thresholds (50, 75, 90, 100 %);
// hard: 0.0004 USD a day, refuses once spent, alerts at 50, 90 and 100 % (its own thresholds)
const SOFT = { id: 'soft', scope: 'tenant', window: 'daily', limitUsd: 0.0001, action: 'downgrade' };
const HARD = { id: 'hard', scope: 'tenant', window: 'daily', limitUsd: 0.0004, action: 'refuse', thresholds: [0.5, 0.9, 1] };

beforeAll(async () => {
  steady = await startReceiver(() => 204);
  flaky = await startReceiver((n) => FLAKY_STATUSES[Math.min(n, FLAKY_STATUSES.length - 1)]!);
  const config = defaultConfig();
  config.tenants[0].budgets = [SOFT, HARD];
  config.alerts = {
    webhooks: [
      { id: 'steady', url: steady.url, secretEnv: SECRET_ENV },
      { id: 'flaky', url: flaky.url, secretEnv: SECRET_ENV, tenants: ['dev'] },
    ],
    retry: { initialDelayMs: 100, maxDelayMs: 1000, giveUpAfterMs: 120_000, timeoutMs: 2000 },
  };
  stack = await startE2eStack({ config, env: { [SECRET_ENV]: SECRET } });
  jsm = await jetstreamManager(stack.nc);
  stack.nc.subscribe(Subjects.alerts('dev'), { callback: (_e, m) => void onCore.push(m.json<AnyEvent>()) });
});
afterAll(async () => {
  await stack?.close();
  await steady?.close();
  await flaky?.close();
});

/** The events of a type the stream holds (duplicates dropped by their msg ids), in order. */
async function stored<T extends EventType>(type: T): Promise<Array<SluiceEvent<T>>> {
  const info = await jsm.streams.info(Topology.stream.name);
  const out: Array<SluiceEvent<T>> = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(Topology.stream.name, { seq }).catch(() => null);
    if (m?.subject === Subjects.event(type, 'dev')) out.push(m.json<SluiceEvent<T>>());
  }
  return out;
}

/** A receiver's POSTs of alerts (the async test's answers, `<id>:result`, go to the flaky receiver too). */
const alertPosts = (r: Receiver) => r.posts.filter((p) => !p.eventId?.endsWith(':result'));

let sentBeforeRestart: { stored: number; core: number; steady: number; flaky: number } | undefined;

// before the budgets are spent: an async request's answer on its subject, at its URL, and POSTed
// (signed, retried through the flaky receiver's 500 and 503) to the webhook it named
describe('async requests', () => {
  it('answers 202 at once, then publishes, stores and POSTs the answer to the named webhook until it takes it', async () => {
    const published = new Map<string, ChatReply>();
    const sub = stack.nc.subscribe(Subjects.resultsAll, { callback: (_e, m) => void published.set(m.subject, parseReply(m.data)) });
    try {
      const headers = { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/json', 'x-sluice-async': 'true' };
      const body = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: `async ${Date.now()}` }] });
      const bad = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'x-sluice-webhook': 'nope' }, body });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as any).error).toMatchObject({ code: 'invalid_request', param: 'x-sluice-webhook' });

      const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'x-sluice-webhook': 'flaky' }, body });
      expect(res.status).toBe(202);
      const queued = (await res.json()) as { id: string; status: string };
      expect(queued.status).toBe('queued');

      // on its subject (the answer, after the queued notice)
      await eventually(() => expect(published.get(Subjects.result(queued.id))).toMatchObject({ requestId: queued.id, model: 'gpt-4o-mini' }), 20_000);
      // by fetch
      const fetched = await fetch(`${stack.ingressUrl}/v1/sluice/requests/${queued.id}/result`, { headers: { authorization: `Bearer ${DEV_KEY}` } });
      expect(fetched.status).toBe(200);
      expect(await fetched.json()).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-mini' });
      // to its webhook: 500, 503, then 200, each signed, the same event id on every try
      await eventually(() => expect(flaky.posts.filter((p) => p.eventId === `${queued.id}:result`).map((p) => p.status)).toEqual(FLAKY_STATUSES), 20_000);
      for (const p of flaky.posts.filter((x) => x.eventId === `${queued.id}:result`)) {
        expect(verifySignature(SECRET, p.signature, p.body, 300)).toBe(true);
        expect(JSON.parse(p.body)).toMatchObject({
          id: queued.id,
          object: 'sluice.request.result',
          status: 'completed',
          response: { object: 'chat.completion' },
        });
      }
      expect(steady.posts.some((p) => p.eventId === `${queued.id}:result`)).toBe(false);
      // each attempt on the request's timeline
      const attempts = await eventually(async () => {
        const r = await stack.ledger(`/v1/requests/${queued.id}`);
        const seen = r.timeline.filter((e: { type: string }) => e.type === 'result.delivery_attempted');
        if (seen.length < 3) throw new Error(`${seen.length} attempts projected`);
        return seen as Array<{ data: { ok: boolean; attempt: number } }>;
      }, 20_000);
      expect(attempts.map((e) => [e.data.attempt, e.data.ok])).toEqual([
        [1, false],
        [2, false],
        [3, true],
      ]);
    } finally {
      sub.unsubscribe();
    }
  });
});

describe('budget alerts', () => {
  it('alerts every threshold the spend reached exactly once, on NATS and to each webhook, signed, retrying a webhook that fails', async (ctx) => {
    const client = stack.openai();
    const { windowId } = budgetPeriod('daily', Date.now());
    let refused: InstanceType<typeof OpenAI.RateLimitError> | undefined;
    let answered = 0;
    for (let i = 0; i < 200 && !refused; i++) {
      try {
        await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 32, messages: [{ role: 'user', content: `spend ${i} ${Date.now()}` }] });
        answered++;
      } catch (e) {
        if (!(e instanceof OpenAI.RateLimitError && e.code === 'insufficient_quota')) throw e;
        // held by requests in flight (the ledger has not settled the last answers yet): retry in a
        // second, as the refusal says; used up: stop
        if (e.message.includes('is held by requests in flight')) await new Promise((resolve) => setTimeout(resolve, 1_000));
        else refused = e;
      }
    }
    expect(refused, 'the hard budget was never refused').toBeDefined();
    expect(refused!.message).toContain('Budget hard');
    expect(refused!.message).toContain('is used up');
    await stack.consumersDrained(60_000);

    // what the ledger counted, from sluice_budgets
    // a day's end during the requests splits the spend over two windows: not this test's subject
    if (budgetPeriod('daily', Date.now()).windowId !== windowId) ctx.skip();
    const bucket = Topology.buckets.budgets.name;
    const spent = async (b: string) =>
      (await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${BudgetKeys.spend(`dev.${b}`, windowId)}` }))!.json<BudgetSpend>();
    const soft = await spent('soft');
    const hard = await spent('hard');
    // the thresholds each budget's spend reached, in integers as the ledger decides them
    const reached = (b: string, s: BudgetSpend, limitUsd: number, thresholds: number[]) =>
      thresholds
        .filter((t) => s.spentNanos * 1000 >= Math.round(t * 1000) * Math.round(limitUsd * NANOS_PER_USD))
        .map((t) => BudgetKeys.alert(`dev.${b}`, windowId, t));
    const expected = [...reached('soft', soft, SOFT.limitUsd, [0.5, 0.75, 0.9, 1]), ...reached('hard', hard, HARD.limitUsd, HARD.thresholds)].sort();
    // both budgets were spent: the hard one refuses only once its spend reached the limit
    expect(expected).toEqual(expect.arrayContaining([BudgetKeys.alert('dev.soft', windowId, 1), BudgetKeys.alert('dev.hard', windowId, 1)]));

    // once each in the stream and on sluice.alerts.dev
    const alerts = await eventually(async () => {
      const a = await stored('budget.threshold_crossed');
      expect(a.map((e) => e.requestId).sort()).toEqual(expected);
      return a;
    }, 30_000);
    await eventually(() => onCore.length >= expected.length);
    expect(onCore.map((e) => e.requestId).sort()).toEqual(expected);

    // each webhook acknowledged each alert once; the flaky one after two failures
    await eventually(
      () => alertPosts(steady).length === expected.length && alertPosts(flaky).filter((p) => p.status === 200).length === expected.length,
      30_000,
    );
    const byId = new Map(alerts.map((a) => [a.id, JSON.stringify(a)]));
    for (const p of [...alertPosts(steady), ...alertPosts(flaky)]) {
      expect(byId.get(p.eventId!)).toBe(p.body);
      expect(verifySignature(SECRET, p.signature, p.body, 300)).toBe(true);
    }
    expect(new Set(alertPosts(steady).map((p) => p.eventId)).size).toBe(expected.length);
    expect(
      alertPosts(flaky)
        .map((p) => p.status)
        .sort(),
    ).toEqual(expected.flatMap(() => FLAKY_STATUSES).sort());

    // every attempt is an event: steady 1 (ok), flaky 3 (500, 503, 200) per alert
    const attempts = await eventually(async () => {
      const a = await stored('alert.delivery_attempted');
      expect(a).toHaveLength(expected.length * 4);
      return a;
    }, 30_000);
    for (const alert of alerts) {
      const mine = attempts.filter((a) => a.data.alertId === alert.requestId);
      expect(mine.filter((a) => a.data.webhook === 'steady').map((a) => [a.data.attempt, a.data.ok])).toEqual([[1, true]]);
      expect(mine.filter((a) => a.data.webhook === 'flaky').map((a) => [a.data.attempt, a.data.ok, a.data.status])).toEqual([
        [1, false, 500],
        [2, false, 503],
        [3, true, 200],
      ]);
    }
    const perThreshold = Object.fromEntries(
      alerts.map((a) => [
        a.requestId,
        attempts.filter((x) => x.data.alertId === a.requestId).map((x) => `${x.data.webhook}#${x.data.attempt}:${x.data.status ?? x.data.error}`),
      ]),
    );
    sentBeforeRestart = { stored: alerts.length, core: onCore.length, steady: alertPosts(steady).length, flaky: alertPosts(flaky).length };
    console.log(
      JSON.stringify({
        answered,
        refusedAfter: answered,
        soft: soft.spentUsd,
        hard: hard.spentUsd,
        alerts: expected.length,
        posts: { steady: alertPosts(steady).length, flaky: alertPosts(flaky).length },
        perThreshold,
      }),
    );
  });

  it('sends no alert again after the ledger is killed and restarted', async () => {
    expect(sentBeforeRestart, 'the first test ran').toBeDefined();
    const ledger = stack.services.get('ledger')!;
    const restarts = ledger.restarts;
    ledger.kill('SIGKILL');
    await eventually(() => ledger.restarts === restarts + 1, 30_000);
    await ledger.whenReady(60_000);
    // one more request through the restarted ledger: refused, or answered if it fits once every
    // reservation settled (it crosses no threshold left: all of both budgets' are already sent)
    const outcome = await stack
      .openai()
      .chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 32, messages: [{ role: 'user', content: 'after the restart' }] })
      .then(
        () => 'answered',
        (e: unknown) => (e instanceof OpenAI.RateLimitError ? e.code : e),
      );
    expect(['answered', 'insufficient_quota']).toContain(outcome);
    await stack.consumersDrained(60_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await stored('budget.threshold_crossed')).length).toBe(sentBeforeRestart!.stored);
    expect({ core: onCore.length, steady: alertPosts(steady).length, flaky: alertPosts(flaky).length }).toEqual({
      core: sentBeforeRestart!.core,
      steady: sentBeforeRestart!.steady,
      flaky: sentBeforeRestart!.flaky,
    });
  });
});
