import { describe, expect, it } from 'vitest';
import { makeEvent, parseConfig, ServiceName, type AnyEvent } from '@sluice/contracts';
import { recordedFate } from './whatif/actual.js';
import { parseArgs, UsageError } from './whatif/args.js';
import { recordingOf } from './whatif/record.js';
import { replay, type CandidatePolicy } from './whatif/replay.js';
import { changes, table, type WhatifReport } from './whatif/report.js';
import { KEY, scenarioConfig, scenarioEvents, STEPS, type Step } from './whatif/scenario.js';
import { summarize, usdChange } from './whatif/summary.js';

const T0 = Date.parse('2026-11-30T12:00:00Z');
const base = parseConfig(scenarioConfig());

/** Given the scenario's events, when replayed under `change(config)`: both summaries and the fates. */
function whatif(
  change: (c: Raw) => void = () => {},
  knobs: Partial<CandidatePolicy> = {},
  events: AnyEvent[] = scenarioEvents(T0),
  from = T0,
  opts: { semantic?: boolean } = {},
) {
  const raw = scenarioConfig(opts) as Raw;
  change(raw);
  const recording = recordingOf(events, from, T0 + 60_000);
  const baseline = opts.semantic ? parseConfig(scenarioConfig(opts)) : base;
  const actualFates = recording.requests.map((r) => recordedFate(r, baseline));
  const candidateFates = replay(recording, { config: parseConfig(raw), cache: 'on', balance: 'recorded', ...knobs });
  const tenants = recording.requests.map((r) => r.tenant);
  const { changed, examples } = changes(
    recording.requests.map((r) => r.requestId),
    actualFates,
    candidateFates,
  );
  return { actual: summarize(actualFates, tenants), candidate: summarize(candidateFates, tenants), changed, examples };
}

type Raw = Record<string, any>;

describe('what-if replay of a recorded scenario', () => {
  it('sums what actually happened, exactly', () => {
    const { actual } = whatif();
    expect(actual.requests).toBe(6);
    expect(actual.outcomes).toMatchObject({ completed: 4, cached: 2, throttled: 0 });
    expect(actual.costUsd).toBe('0.0457');
    expect(actual.savedUsd).toBe('0.005');
    expect(actual.costByTenant).toEqual({ acme: '0.0457' });
    expect(actual.costByModel).toEqual({ 'm-big': '0.04', 'm-small': '0.0057' });
    expect(actual.cacheHits).toEqual({ exact: 2 });
    expect(actual.models).toEqual({ 'm-big': 1, 'm-small': 3 });
    expect(actual.deployments).toEqual({ d1: 3, d2: 1 });
    expect(actual.tiers).toEqual({ explicit: 3, small: 1 });
    expect([actual.inputTokens, actual.outputTokens]).toEqual([4500, 2600]);
  });

  it('replays the recorded config to what actually happened', () => {
    const { actual, candidate, changed } = whatif();
    expect(candidate).toEqual(actual);
    expect(changed).toBe(0);
  });

  it('halves the cost when every price is halved', () => {
    const { candidate } = whatif((c: Raw) => {
      c.models['m-small'].price = { inputPerMTok: 0.5, outputPerMTok: 1 };
      c.models['m-big'].price = { inputPerMTok: 5, outputPerMTok: 10 };
    });
    expect(candidate.costUsd).toBe('0.02285');
    expect(candidate.costByModel).toEqual({ 'm-big': '0.02', 'm-small': '0.00285' });
    expect(candidate.savedUsd).toBe('0.0025');
    expect(usdChange('0.0457', candidate.costUsd)).toBe('-0.02285');
  });

  it('throttles every request past a lower tenant limit, at the tenant layer', () => {
    const { candidate, changed, examples } = whatif((c: Raw) => {
      c.tenants[0].limits = { requestsPerMinute: 3, tokensPerMinute: 10_000_000 };
    });
    // r1..r3 fit 3/min (one second apart, refill 0.05 a second); r4, r5 and r6 do not
    expect(candidate.throttles).toEqual({ tenant: 3 });
    expect(candidate.outcomes).toMatchObject({ completed: 2, cached: 1, throttled: 3 });
    expect(candidate.costUsd).toBe('0.042');
    expect(changed).toBe(3);
    expect(examples).toEqual([
      { requestId: 'r4', actual: 'completed m-small d1', candidate: 'throttled tenant' },
      { requestId: 'r5', actual: 'completed m-small d1', candidate: 'throttled tenant' },
      { requestId: 'r6', actual: 'cached exact', candidate: 'throttled tenant' },
    ]);
  });

  it('reconciles the token buckets with the recorded usage after each completion', () => {
    // 1,700 tokens/min: six estimates of 110 would fit, but r1 used 1,500 and r3 3,000 (charged at
    // their completions, 500 ms after each), which leaves the tenant's bucket in debt from r4 on
    const { candidate } = whatif((c: Raw) => {
      c.tenants[0].limits = { requestsPerMinute: 1000, tokensPerMinute: 1700 };
    });
    expect(candidate.throttles).toEqual({ tenant: 3 });
    expect(candidate.outcomes).toMatchObject({ completed: 2, cached: 1, throttled: 3 });
  });

  it('refuses the requests a candidate budget has no room for, once the replayed spend reaches it', () => {
    // $0.01 a day: r1 ($0.002) and r3 ($0.04) are admitted with the budget not yet spent; from r4 on it is
    const { candidate } = whatif((c: Raw) => {
      c.tenants[0].budgets = [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.01 }];
    });
    expect(candidate.outcomes).toMatchObject({ completed: 2, cached: 1, rejected: 3 });
    expect(candidate.costUsd).toBe('0.042');
  });

  it('sends requests to the cheapest tier once a downgrade budget is spent, and does not cache their answers', () => {
    const { candidate } = whatif((c: Raw) => {
      c.tenants[0].budgets = [{ id: 'daily', scope: 'tenant', window: 'daily', limitUsd: 0.01, action: 'downgrade' }];
    });
    // r4, r5 and r6 take tier small; r5's downgraded answer is not stored, so r6 is answered upstream too
    expect(candidate.tiers).toEqual({ explicit: 2, small: 3 });
    expect(candidate.outcomes).toMatchObject({ completed: 5, cached: 1, rejected: 0 });
    expect(candidate.costUsd).toBe('0.0487');
  });

  it('learns the global limit from the upstreams’ recorded rate-limit headers, as the limiter does', () => {
    // just before the window both deployments said: 2 requests a minute, none left for a minute
    const observed = ['d1', 'd2'].map((deployment) =>
      makeEvent(
        'upstream.limits_observed',
        { requestId: '', tenant: '_system', service: ServiceName.Invoker, at: T0 - 1000, reason: 'scenario' },
        { deployment, status: 200, throttled: false, limitRequests: 2, remainingRequests: 0, resetRequestsMs: 60_000 },
      ),
    );
    const events = [...observed, ...scenarioEvents(T0)];
    // what is left refills at 2 + 2 a minute: 0.4 of a request after the window's 6 s, so none passes
    expect(whatif(() => {}, {}, events).candidate.throttles).toEqual({ global: 6 });
    expect(whatif((c: Raw) => (c.limits.adaptive = { enabled: false }), {}, events).candidate.throttles).toEqual({});
  });

  it('turns the cache off: no hits, and the cost rises by exactly what the hits saved', () => {
    const { actual, candidate } = whatif(() => {}, { cache: 'off' });
    expect(candidate.cacheHits).toEqual({});
    expect(candidate.outcomes).toMatchObject({ completed: 6, cached: 0 });
    expect(candidate.costUsd).toBe('0.0507');
    expect(usdChange(actual.costUsd, candidate.costUsd)).toBe(`+${actual.savedUsd}`);
    // the two former hits are answered with their key's recorded answer
    expect(candidate.estimatedUsage).toBe(2);
    expect(candidate.deployments).toEqual({ d1: 5, d2: 1 });
  });

  it('moves the distribution when a model is served elsewhere, the cost unchanged', () => {
    const { candidate, changed } = whatif((c: Raw) => {
      c.models['m-small'].deployments = ['d3'];
    });
    expect(candidate.deployments).toEqual({ d2: 1, d3: 3 });
    expect(candidate.costUsd).toBe('0.0457');
    expect(changed).toBe(3);
  });

  it('prices a tier routed to another model at that model', () => {
    const { candidate } = whatif((c: Raw) => {
      c.tiers[0].model = 'm-big';
    });
    // r4 (500 + 100 tokens) now on m-big: $0.007 instead of $0.0007
    expect(candidate.models).toEqual({ 'm-big': 2, 'm-small': 2 });
    expect(candidate.deployments).toEqual({ d1: 2, d2: 2 });
    expect(candidate.costUsd).toBe('0.052');
  });

  it('answers at the static fallback (level 3) for nothing, and sheds at level 2', () => {
    const statics = whatif(() => {}, { degradeLevel: 3 }).candidate;
    // no answer comes from upstream, so none is stored for the later identical requests either
    expect(statics.outcomes).toMatchObject({ static: 6, cached: 0, completed: 0 });
    expect(statics.costUsd).toBe('0');
    expect(whatif(() => {}, { degradeLevel: 2 }).candidate.outcomes).toMatchObject({ shed: 6, cached: 0 });
  });

  it('keeps an entry stored before the window, known from the hit it served', () => {
    // the window opens after r1 completed: its answer is known only from r2's hit
    const { actual, candidate } = whatif(() => {}, {}, scenarioEvents(T0), T0 + 600);
    expect(actual.requests).toBe(5);
    expect(actual.cacheHits).toEqual({ exact: 2 });
    expect(candidate).toEqual(actual);
    // and with the cache off r2 is answered upstream with that answer's tokens
    expect(whatif(() => {}, { cache: 'off' }, scenarioEvents(T0), T0 + 600).candidate.costUsd).toBe('0.0487');
  });

  it('counts a request without a terminal event as pending, and leaves out requests outside the window', () => {
    const events = scenarioEvents(T0).filter((e) => !(e.requestId === 'r6' && e.type === 'cache.hit'));
    const late = makeEvent(
      'chat.requested',
      { requestId: 'late', tenant: 'acme', service: ServiceName.Ingress, at: T0 + 120_000, reason: 'scenario' },
      { ...(scenarioEvents(T0)[0] as Extract<AnyEvent, { type: 'chat.requested' }>).data },
    );
    const late2 = { ...late, data: { ...late.data, ctx: { ...late.data.ctx, receivedAt: T0 + 120_000 } } } as AnyEvent;
    const { actual } = whatif(() => {}, {}, [...events, late2]);
    expect(actual.requests).toBe(6);
    expect(actual.outcomes.pending).toBe(1);
  });
});

describe('what the recording says beyond the scenario', () => {
  it('bills the actual at the price recorded on each event, the candidate at its config', () => {
    const events = scenarioEvents(T0).map((e) => {
      const recorded = { inputPerMTok: 3, outputPerMTok: 6, source: 'config' as const };
      if (e.type === 'chat.completed' && e.requestId === 'r1') return { ...e, data: { ...e.data, price: recorded } };
      if (e.type === 'cache.hit' && e.requestId === 'r2') return { ...e, data: { ...e.data, price: recorded } };
      return e;
    });
    const { actual, candidate } = whatif(() => {}, {}, events);
    // r1: 1000 × $3 + 500 × $6 per MTok = $0.006 instead of $0.002; r2 saved as much
    expect(actual.costUsd).toBe('0.0497');
    expect(actual.savedUsd).toBe('0.009');
    expect(candidate.costUsd).toBe('0.0457');
  });

  // r7 was a semantic hit on r1's answer (similarity 0.95), r8 a semantic miss whose best candidate
  // was r1's question at 0.85 (answered upstream, 100 + 100 tokens); each lookup embedded 10 tokens
  const semantic: Step[] = [
    ...STEPS,
    { id: 'r7', model: 'm-small', key: KEY(5), end: { hitOf: 'r1', lookup: { similarity: 0.95, matchedKey: KEY(1), embeddingTokens: 10 } } },
    {
      id: 'r8',
      model: 'm-small',
      key: KEY(6),
      end: {
        usage: [100, 100],
        answeredBy: { model: 'm-small', deployment: 'd1', tier: 'explicit' },
        lookup: { similarity: 0.85, matchedKey: KEY(1), embeddingTokens: 10 },
      },
    },
  ];
  const semanticWhatif = (change: (c: Raw) => void) => whatif(change, {}, scenarioEvents(T0, semantic), T0, { semantic: true });

  it('replays semantic lookups from their recorded similarity against the candidate threshold', () => {
    const same = semanticWhatif(() => {});
    expect(same.actual.cacheHits).toEqual({ exact: 2, semantic: 1 });
    expect(same.actual.embeddingUsd).toBe('0.00002');
    expect(same.actual.costByModel).toEqual({ emb: '0.00002', 'm-big': '0.04', 'm-small': '0.006' });
    expect(same.actual.costUsd).toBe('0.04602');
    expect(same.candidate).toEqual(same.actual);

    // at 0.8 r8's candidate is close enough: a hit, and its $0.0003 answer is saved instead
    const lower = semanticWhatif((c) => (c.tenants[0].cache.semantic.threshold = 0.8)).candidate;
    expect(lower.cacheHits).toEqual({ exact: 2, semantic: 2 });
    expect(lower.costUsd).toBe('0.04572');

    // at 0.97 r7 misses and goes upstream with the token estimate: 10 + 100 tokens, $0.00021
    const higher = semanticWhatif((c) => (c.tenants[0].cache.semantic.threshold = 0.97)).candidate;
    expect(higher.cacheHits).toEqual({ exact: 2 });
    expect(higher.estimatedUsage).toBe(1);
    expect(higher.costUsd).toBe('0.04623');

    // opted out: no lookup, no embedding paid
    const off = semanticWhatif((c) => (c.tenants[0].cache.semantic.enabled = false)).candidate;
    expect(off.embeddingUsd).toBe('0');
    expect(off.cacheHits).toEqual({ exact: 2 });
  });

  it('coalesces a request with an identical one in flight, unless coalescing is off', () => {
    // r7 asks r5's question 200 ms after it, while r5's upstream call is still running
    const steps: Step[] = [...STEPS.slice(0, 5), { id: 'r7', model: 'm-small', key: KEY(4), end: { coalescedWith: 'r5' } }, STEPS[5]!];
    const events = scenarioEvents(T0, steps).map((e) => {
      if (e.requestId !== 'r7') return e;
      const at = T0 + 4_200;
      return { ...e, at: at + (e.at - (T0 + 5_000)), data: 'ctx' in e.data ? { ...e.data, ctx: { ...e.data.ctx, receivedAt: at } } : e.data } as AnyEvent;
    });
    const same = whatif(() => {}, {}, events);
    expect(same.actual.cacheHits).toEqual({ coalesced: 1, exact: 2 });
    expect(same.candidate).toEqual(same.actual);
    const apart = whatif((c) => (c.cache.coalesce = { enabled: false }), {}, events).candidate;
    expect(apart.cacheHits).toEqual({ exact: 2 });
    expect(apart.costUsd).toBe('0.0487');
  });

  it('draws deployments by the candidate weights with --balance drawn, keeps the recorded ones otherwise', () => {
    const spare = (c: Raw) => {
      c.models['m-small'].deployments = ['d1', 'd3'];
      c.deployments.d1.weight = 0;
    };
    expect(whatif(spare).candidate.deployments).toEqual({ d1: 3, d2: 1 });
    expect(whatif(spare, { balance: 'drawn' }).candidate.deployments).toEqual({ d2: 1, d3: 3 });
  });

  it('takes upstream failures as recorded, and the degrade level from the recorded changes for a request never routed', () => {
    const events = scenarioEvents(T0).flatMap((e): AnyEvent[] => {
      if (e.requestId === 'r3' && e.type === 'chat.completed') {
        const data = { code: 'upstream_failed' as const, status: 502, message: 'bad gateway', attempts: 3, receivedAt: e.data.ctx.receivedAt };
        return [makeEvent('chat.failed', { requestId: 'r3', tenant: 'acme', service: ServiceName.Invoker, at: e.at, reason: 'scenario' }, data)];
      }
      if (e.requestId === 'r6' && e.type === 'chat.requested') {
        const meta = { requestId: '', tenant: '_system', service: ServiceName.Degrader, at: e.at - 500, reason: 'scenario' };
        return [makeEvent('degrade.changed', meta, { from: 0, to: 3, signals: {}, manual: true }), e];
      }
      return [e];
    });
    const { actual, candidate } = whatif(() => {}, { cache: 'off' }, events);
    expect(actual.outcomes).toMatchObject({ completed: 3, failed: 1, cached: 2 });
    // r2 goes upstream (the cache is off); r6 meets level 3 on its way to the router: the static answer
    expect(candidate.outcomes).toMatchObject({ completed: 4, failed: 1, static: 1, cached: 0 });
    expect(candidate.costUsd).toBe('0.0077');
  });

  it('routes a request held at level 4 again at the level it was released at', () => {
    const events = scenarioEvents(T0).flatMap((e): AnyEvent[] => {
      if (e.requestId !== 'r3' || e.type !== 'chat.routed') return [e];
      const held = makeEvent(
        'chat.held',
        { requestId: 'r3', tenant: 'acme', service: ServiceName.Router, at: e.at - 1, reason: 'scenario' },
        { ctx: e.data.ctx, key: KEY(2), estimatedTokens: 110, degradeLevel: 4 },
      );
      return [held, e];
    });
    const { actual, candidate } = whatif(() => {}, {}, events);
    expect(candidate).toEqual(actual);
    expect(whatif(() => {}, { degradeLevel: 4 }, events).candidate.outcomes).toMatchObject({ held: 6 });
  });
});

describe('the report', () => {
  it('prints each figure with actual, candidate and the change', () => {
    const { actual, candidate, changed, examples } = whatif(() => {}, { cache: 'off' });
    const report: WhatifReport = {
      window: { from: new Date(T0).toISOString(), to: new Date(T0 + 60_000).toISOString() },
      source: { stream: 'SLUICE_EVENTS', nats: 'nats://x', firstSeq: 1, lastSeq: 26, events: 26, unreadable: 0 },
      policy: { config: 'candidate.json', cache: 'off', degradeLevel: 'recorded', balance: 'recorded' },
      actual,
      candidate,
      changed,
      examples,
    };
    const text = table(report);
    expect(text).toMatch(/^cost USD\s+0\.0457\s+0\.0507\s+\+0\.005$/m);
    expect(text).toMatch(/^cache hit exact\s+2\s+0\s+-2$/m);
    expect(text).toMatch(/^deployment d1\s+3\s+5\s+\+2$/m);
    expect(text).toContain('2 requests end differently');
    expect(text).toContain('  r2: cached exact -> completed m-small d1\n  r6: cached exact -> completed m-small d1\n');
  });
});

describe('arguments', () => {
  const ok = ['--from', '2026-11-30T00:00:00Z', '--to', '1796083200000', '--config', 'c.json'];

  it('takes ISO times and epoch ms, NATS_URL as the default server', () => {
    expect(parseArgs(ok, { NATS_URL: 'nats://n:4222' })).toEqual({
      from: Date.parse('2026-11-30T00:00:00Z'),
      to: 1796083200000,
      config: 'c.json',
      nats: 'nats://n:4222',
      balance: 'recorded',
    });
  });

  it.each([
    [['--to', '2026-12-01', '--config', 'c.json'], '--from is required'],
    [['--from', 'yesterday', '--to', '2026-12-01', '--config', 'c.json'], '--from: yesterday is neither'],
    [['--from', '2026-12-01', '--to', '2026-11-30', '--config', 'c.json'], 'must be after --from'],
    [[...ok, '--verbose', 'x'], 'unknown argument --verbose'],
    [[...ok, '--json'], '--json needs a value'],
    [[...ok, '--balance', 'random'], '--balance must be recorded or drawn'],
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parseArgs(argv, {})).toThrow(UsageError);
    expect(() => parseArgs(argv, {})).toThrow(message);
  });
});
