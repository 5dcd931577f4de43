import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishEvent } from '@sluice/bus';
import { startTestBus, type TestBus } from '@sluice/bus/testing';
import { makeEvent, ServiceName, Subjects, type AnyEvent } from '@sluice/contracts';
import { runScript, type ScriptRun } from './run-script.js';
import type { WhatifArgs } from './whatif/args.js';
import type { WhatifReport } from './whatif/report.js';
import { whatif } from './whatif/run.js';
import { scenarioConfig, scenarioEvents } from './whatif/scenario.js';

// Issue 15, item 6: `npm run whatif` reads a recorded scenario from a real stream (a private
// nats-server) and replays it under candidate configs whose answers are known exactly.

/** `npm run whatif -- <args>` against the test's server: its exit code and output. */
function runWhatif(natsUrl: string, args: string[]): Promise<ScriptRun> {
  return runScript('whatif.ts', natsUrl, args);
}

let t: TestBus;
let dir: string;
/** The scenario's first request arrives at t0, 30 s before the events are published (the stream stores them now). */
let t0: number;
const window = () => ({ from: t0, to: t0 + 20_000 });

beforeAll(async () => {
  t = await startTestBus(scenarioConfig(), { name: 'whatif' });
  dir = mkdtempSync(join(tmpdir(), 'sluice-whatif-'));
  t0 = Date.now() - 30_000;
  const before: AnyEvent = makeEvent(
    'chat.requested',
    { requestId: 'r0', tenant: 'acme', service: ServiceName.Ingress, at: t0 - 5_000, reason: 'before the window' },
    { ...(scenarioEvents(t0 - 5_000)[0] as Extract<AnyEvent, { type: 'chat.requested' }>).data },
  );
  for (const e of [before, ...scenarioEvents(t0)]) await publishEvent(t.bus.js, e);
  // a message on an event subject that is not an event: counted, skipped
  await t.bus.js.publish(Subjects.event('chat.completed', 'acme'), 'not json');
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Writes a candidate: the scenario's config changed by `change`. */
function candidate(name: string, change: (c: Record<string, any>) => void = () => {}): string {
  const c = scenarioConfig() as Record<string, any>;
  change(c);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(c));
  return file;
}

const run = (config: string, extra: Partial<WhatifArgs> = {}): Promise<WhatifReport> =>
  whatif({ ...window(), config, nats: t.nats.url, balance: 'recorded', ...extra }, t.bus, {});

describe('what-if on a recorded stream', () => {
  it('reads the window from the stream and replays the live config to what actually happened', async () => {
    const r = await run(candidate('same'));
    expect(r.actual.requests).toBe(6);
    expect(r.source.unreadable).toBe(1);
    expect(r.actual.costUsd).toBe('0.0457');
    expect(r.actual.savedUsd).toBe('0.005');
    expect(r.candidate).toEqual(r.actual);
    expect(r.changed).toBe(0);
  });

  it('halves the cost exactly under halved prices', async () => {
    const r = await run(
      candidate('half', (c) => {
        c.models['m-small'].price = { inputPerMTok: 0.5, outputPerMTok: 1 };
        c.models['m-big'].price = { inputPerMTok: 5, outputPerMTok: 10 };
      }),
    );
    expect(r.actual.costUsd).toBe('0.0457');
    expect(r.candidate.costUsd).toBe('0.02285');
  });

  it('throttles three requests under a tenant limit of 3 a minute', async () => {
    const r = await run(candidate('limit', (c) => (c.tenants[0].limits = { requestsPerMinute: 3, tokensPerMinute: 10_000_000 })));
    expect(r.candidate.throttles).toEqual({ tenant: 3 });
    expect(r.candidate.outcomes.throttled).toBe(3);
  });

  it('moves the routing when m-small is served by d3', async () => {
    const r = await run(candidate('moved', (c) => (c.models['m-small'].deployments = ['d3'])));
    expect(r.actual.deployments).toEqual({ d1: 3, d2: 1 });
    expect(r.candidate.deployments).toEqual({ d2: 1, d3: 3 });
  });

  it('prices recorded events without a price of their own at --baseline, else at the live config', async () => {
    const doubled = candidate('doubled', (c) => {
      c.models['m-small'].price = { inputPerMTok: 2, outputPerMTok: 4 };
      c.models['m-big'].price = { inputPerMTok: 20, outputPerMTok: 40 };
    });
    const r = await run(candidate('same'), { baseline: doubled });
    expect(r.actual.costUsd).toBe('0.0914');
    expect(r.candidate.costUsd).toBe('0.0457');
    // without it, at the live config's prices (the control bucket's), not the candidate's
    const live = await run(doubled);
    expect(live.actual.costUsd).toBe('0.0457');
    expect(live.candidate.costUsd).toBe('0.0914');
  });
});

describe('npm run whatif', () => {
  it('prints the table and writes the JSON: the cache off costs what it saved', async () => {
    const off = candidate('off', (c) => (c.whatif = { cache: 'off' }));
    const json = join(dir, 'out.json');
    const { from, to } = window();
    const r = await runWhatif(t.nats.url, ['--from', new Date(from).toISOString(), '--to', String(to), '--config', off, '--json', json]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^cost USD\s+0\.0457\s+0\.0507\s+\+0\.005$/m);
    expect(r.out).toMatch(/^cache hit exact\s+2\s+0\s+-2$/m);
    const report = JSON.parse(readFileSync(json, 'utf8')) as WhatifReport;
    expect(report.policy.cache).toBe('off');
    expect(report.candidate.cacheHits).toEqual({});
    expect(report.candidate.costUsd).toBe('0.0507');
  });

  it('refuses bad arguments and a bad candidate with exit code 2', async () => {
    const args = await runWhatif(t.nats.url, ['--from', 'last week', '--to', '2026-12-01', '--config', 'x.json']);
    expect(args.code).toBe(2);
    expect(args.err).toContain('--from: last week is neither an ISO 8601 time nor epoch milliseconds');
    const bad = candidate('bad', (c) => (c.tiers[0].model = 'nope'));
    const config = await runWhatif(t.nats.url, ['--from', '2026-11-30', '--to', '2026-12-01', '--config', bad]);
    expect(config.code).toBe(2);
    expect(config.err).toContain('config.tiers.0.model: unknown model nope');
  });
});
