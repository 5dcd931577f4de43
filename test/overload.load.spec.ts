import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { DEV_KEY, defaultConfig, sleep, startE2eStack, type E2eStack } from './harness.js';

// Overload is shed, not absorbed (issue 16, item 4; docs/input-bounds.md, Overload). The stack's
// sustainable rate is set, not guessed: the invoker makes at most INVOKER_SLOTS upstream calls at
// once and the simulator answers each after SIM_LATENCY_MS, so it completes 40 requests a second.
// Ten times that is offered for LOAD_MS, mostly over HTTP, a tenth over NATS, with small bounds.
const INVOKER_SLOTS = 8;
const SIM_LATENCY_MS = 200;
const SUSTAINABLE_RPS = (INVOKER_SLOTS * 1000) / SIM_LATENCY_MS;
const OFFERED_RPS = 10 * SUSTAINABLE_RPS;
const NATS_SHARE = 0.1;
const LOAD_MS = 25_000;
const MAX_IN_FLIGHT = 128;
const MAX_BACKLOG = 60;
/** Requests go out in ticks this far apart (timers are too coarse for one every 2.5 ms). */
const TICK_MS = 20;
/**
 * What a process may grow by under load: buffers and the heap's slack, not a queue. Measured on 2
 * cores, ingress grew 30-50 MiB with the bounds. Without them it grew ~70 MiB only because the
 * 60 s deadline ends what piles up (p50 31 s, three requests in four answered 504): this catches a
 * queue that outlives deadlines, while the answers and latency below are what show the bounds.
 */
const RSS_GROWTH_MIB = 96;

let stack: E2eStack;
let sluice: SluiceClient;

beforeAll(async () => {
  const config = defaultConfig();
  config.invoker = { ...config.invoker, concurrency: INVOKER_SLOTS };
  config.ingress = { ...config.ingress, maxInFlight: MAX_IN_FLIGHT, maxBacklog: MAX_BACKLOG };
  // the gateway's own limits out of the way: what refuses here is the overload bound alone
  config.limits.userDefault = { requestsPerMinute: 600_000, tokensPerMinute: 200_000_000 };
  // the semantic cache's embedding calls would wait on the simulator's latency too
  for (const t of config.tenants) delete t.cache;
  stack = await startE2eStack({ config, sim: { latencyMs: SIM_LATENCY_MS } });
  sluice = new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 60_000 });
});
afterAll(async () => {
  await stack?.close();
});

type Outcome =
  | { kind: 'ok'; door: 'http' | 'nats'; ms: number; requestId: string }
  | { kind: 'shed'; door: 'http' | 'nats'; ms: number; status: number; retryAfterMs: number; bound: Bound }
  | { kind: 'other'; door: 'http' | 'nats'; what: string };

type Bound = 'in_flight' | 'backlog' | 'other';
/** Which bound shed a request, from the message (overload.ts words them). */
const boundOf = (message = ''): Bound => (/at once/.test(message) ? 'in_flight' : /waiting in the gateway/.test(message) ? 'backlog' : 'other');

const body = (content: string) => ({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content }] });

async function overHttp(content: string): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body(content)),
    });
    const answer = (await res.json()) as { error?: { code: string; message: string } };
    const ms = performance.now() - started;
    if (res.status === 200) return { kind: 'ok', door: 'http', ms, requestId: res.headers.get('x-request-id') ?? '' };
    const retryAfter = Number(res.headers.get('retry-after'));
    if ((res.status === 503 && answer.error?.code === 'service_busy') || res.status === 429) {
      return { kind: 'shed', door: 'http', ms, status: res.status, retryAfterMs: retryAfter * 1000, bound: boundOf(answer.error?.message) };
    }
    return { kind: 'other', door: 'http', what: `${res.status} ${answer.error?.code}` };
  } catch (e) {
    return { kind: 'other', door: 'http', what: String(e) };
  }
}

async function overNats(content: string): Promise<Outcome> {
  const started = performance.now();
  try {
    const result = await sluice.chat(body(content));
    return { kind: 'ok', door: 'nats', ms: performance.now() - started, requestId: result.requestId };
  } catch (e) {
    const ms = performance.now() - started;
    if (e instanceof SluiceRequestError && (e.code === 'service_busy' || e.status === 429)) {
      return { kind: 'shed', door: 'nats', ms, status: e.status, retryAfterMs: e.retryAfterMs ?? 0, bound: boundOf(e.message) };
    }
    return { kind: 'other', door: 'nats', what: e instanceof SluiceRequestError ? `${e.status} ${e.code}` : String(e) };
  }
}

/** Resident set of a process, MiB (/proc/<pid>/status). */
function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

describe('ten times the sustainable rate', () => {
  it('is shed at once with Retry-After while memory stays bounded, every admitted request is answered and recorded, and the stack recovers', async () => {
    const pids = { ingress: stack.services.get('ingress')!.pid!, invoker: stack.services.get('invoker')!.pid! };
    // warm: each door's path once, then the processes' idle size
    expect((await overHttp('warm up over HTTP')).kind).toBe('ok');
    expect((await overNats('warm up over NATS')).kind).toBe('ok');
    await sleep(1000);
    const idle = { ingress: rssMiB(pids.ingress), invoker: rssMiB(pids.invoker) };
    const peak = { ...idle };
    const sampler = setInterval(() => {
      peak.ingress = Math.max(peak.ingress, rssMiB(pids.ingress));
      peak.invoker = Math.max(peak.invoker, rssMiB(pids.invoker));
    }, 250);

    const calls: Array<Promise<Outcome>> = [];
    const started = Date.now();
    let sent = 0;
    for (let tick = 0; tick * TICK_MS < LOAD_MS; tick++) {
      await sleep(started + tick * TICK_MS - Date.now());
      const due = Math.round(((tick + 1) * TICK_MS * OFFERED_RPS) / 1000);
      for (; sent < due; sent++) {
        const tag = `overload ${sent}: say yes`;
        calls.push(sent % Math.round(1 / NATS_SHARE) === 0 ? overNats(tag) : overHttp(tag));
      }
    }
    const offeredMs = Date.now() - started;
    const outcomes = await Promise.all(calls);
    const answeredMs = Date.now() - started;
    clearInterval(sampler);

    const ok = outcomes.filter((o) => o.kind === 'ok');
    const shed = outcomes.filter((o) => o.kind === 'shed');
    const other = outcomes.filter((o) => o.kind === 'other');
    const okMs = ok.map((o) => o.ms).sort((a, b) => a - b);
    const shedMs = shed.map((o) => o.ms).sort((a, b) => a - b);
    const byDoor = (list: Outcome[], door: string) => list.filter((o) => o.door === door).length;
    const retryAfters = shed.map((o) => o.retryAfterMs).sort((a, b) => a - b);
    const lastShedLog = stack.logs.filter((l) => l.includes('shedding load')).at(-1);
    console.log(
      [
        `sustainable ${SUSTAINABLE_RPS} req/s (invoker.concurrency ${INVOKER_SLOTS} x simulator ${SIM_LATENCY_MS} ms); maxInFlight ${MAX_IN_FLIGHT}, maxBacklog ${MAX_BACKLOG}`,
        `offered ${sent} requests in ${(offeredMs / 1000).toFixed(1)} s = ${((sent * 1000) / offeredMs).toFixed(0)} req/s (HTTP ${byDoor(outcomes, 'http')}, NATS ${byDoor(outcomes, 'nats')}); all answered ${(answeredMs / 1000).toFixed(1)} s after the start`,
        `  answered 200: ${ok.length} (HTTP ${byDoor(ok, 'http')}, NATS ${byDoor(ok, 'nats')}) = ${((ok.length * 1000) / answeredMs).toFixed(1)} req/s; latency p50 ${percentile(okMs, 0.5).toFixed(0)} ms, p99 ${percentile(okMs, 0.99).toFixed(0)} ms`,
        `  shed: ${shed.length} (HTTP ${byDoor(shed, 'http')}, NATS ${byDoor(shed, 'nats')}; 503 ${shed.filter((o) => o.status === 503).length}, 429 ${shed.filter((o) => o.status === 429).length}; in-flight bound ${shed.filter((o) => o.bound === 'in_flight').length}, backlog bound ${shed.filter((o) => o.bound === 'backlog').length}); answered in p50 ${percentile(shedMs, 0.5).toFixed(1)} ms, p99 ${percentile(shedMs, 0.99).toFixed(1)} ms; Retry-After ms min ${retryAfters[0]}, p50 ${percentile(retryAfters, 0.5)}, max ${retryAfters.at(-1)}`,
        `  anything else: ${other.length}${other.length > 0 ? ` (${[...new Set(other.map((o) => (o.kind === 'other' ? o.what : '')))].slice(0, 5).join('; ')})` : ''}`,
        `  RSS MiB, idle -> peak: ingress ${idle.ingress.toFixed(0)} -> ${peak.ingress.toFixed(0)}, invoker ${idle.invoker.toFixed(0)} -> ${peak.invoker.toFixed(0)}`,
        `  ingress's last summary: ${lastShedLog ?? '(none)'}`,
      ].join('\n'),
    );

    // every request was answered: admitted and completed, or shed with a Retry-After; nothing else
    expect(other).toEqual([]);
    expect(ok.length + shed.length).toBe(sent);
    expect(shed.every((o) => o.retryAfterMs >= 1000)).toBe(true);
    expect(shed.filter((o) => o.bound === 'other')).toEqual([]);
    // both doors shed and both served; the admitted ones are about what the stack can complete
    for (const door of ['http', 'nats']) {
      expect(byDoor(shed, door)).toBeGreaterThan(0);
      expect(byDoor(ok, door)).toBeGreaterThan(0);
    }
    expect(ok.length).toBeLessThan(sent / 2);
    // memory is bounded by the bounds, not by the offered load
    expect(peak.ingress).toBeLessThan(idle.ingress + RSS_GROWTH_MIB);
    expect(peak.invoker).toBeLessThan(idle.invoker + RSS_GROWTH_MIB);
    expect(lastShedLog).toBeDefined();

    // the stack recovers: with the backlog gone (read again within a second), plain requests pass
    await stack.consumersDrained(30_000);
    await sleep(1000);
    for (let i = 0; i < 5; i++) {
      expect((await overHttp(`after the load ${i}`)).kind).toBe('ok');
      expect((await overNats(`after the load by NATS ${i}`)).kind).toBe('ok');
    }

    // the ledger has every admitted request completed and every shed one rejected
    await stack.ledgerCaughtUp(60_000);
    const slo = await stack.ledger('/v1/slo?window=1h');
    // the two warm-up requests and the ten after the load, besides the load's own
    expect(slo.totals.outcomes.completed).toBe(ok.length + 12);
    expect(slo.totals.outcomes.rejected).toBe(shed.length);
    for (const o of ok.slice(0, 20)) {
      const report = await stack.ledger(`/v1/requests/${o.kind === 'ok' ? o.requestId : ''}`);
      expect(report.outcome).toBe('completed');
    }
  });
});
