import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ControlKeys } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { putConfig, watchControl, type Control } from './control.js';
import { encodeJson, getJson } from './kv.js';
import { eventually, minimalConfig, startTestBus, type TestBus } from './testing.js';

// Issue 11, item 7: a config changed live is validated as it is at start. `putConfig` (what
// `npm run config -- apply` calls) refuses a bad one before writing it; one written around it
// is refused loudly by every watcher, which keeps the config it had.

/** A logger whose lines a test reads. */
function capturedLogger() {
  const lines: Array<Record<string, any>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, any>);
      done();
    },
  });
  return { log: createLogger('control-test', 'info', sink), lines };
}

const good = (requestsPerMinute: number) => minimalConfig([{ id: 'acme' }], { global: { requestsPerMinute, tokensPerMinute: 1_000_000 } });

let t: TestBus;
let control: Control;
let captured: ReturnType<typeof capturedLogger>;
let changes = 0;
beforeAll(async () => {
  t = await startTestBus(good(100), { name: 'control' });
  captured = capturedLogger();
  control = await watchControl(t.buckets.control, captured.log);
  control.onChange(() => changes++);
});
afterAll(async () => {
  control?.stop();
  await t?.stop();
});

describe('live config', () => {
  it('putConfig refuses an unknown key with its path and writes nothing', async () => {
    const before = (await t.buckets.control.get(ControlKeys.config))?.revision;
    const bad = { ...good(200), budgets: { acme: 10 } };
    await expect(putConfig(t.buckets, bad)).rejects.toThrow(new ConfigError('config.budgets: Unexpected property'));
    const cross = { ...good(200), tokenBudgets: [{ id: 'x', model: 'gpt-9' }] };
    await expect(putConfig(t.buckets, cross)).rejects.toThrow(/config\.tokenBudgets\.0\.model: unknown model gpt-9/);
    expect((await t.buckets.control.get(ControlKeys.config))?.revision).toBe(before);
  });

  it('a bad config written around putConfig is refused loudly, naming the key, and the old one is kept', async () => {
    const seenBefore = changes;
    const bad = good(300);
    (bad.tenants[0] as Record<string, unknown>).budget = 5;
    const revision = await t.buckets.control.put(ControlKeys.config, encodeJson(bad));
    const line = await eventually(() => captured.lines.find((l) => l.revision === revision) ?? false);
    expect(line.level).toBe(50); // error
    expect(line.msg).toBe('ignoring invalid control value');
    expect(line.err.message).toBe('config.tenants.0.budget: Unexpected property');
    expect(control.config().limits.global.requestsPerMinute).toBe(100);
    expect(changes).toBe(seenBefore);
    // the bad value is what the bucket holds; the services run on the last good one
    expect((await getJson<typeof bad>(t.buckets.control, ControlKeys.config))?.value.limits.global.requestsPerMinute).toBe(300);
  });

  it('a good config after it is applied, and listeners hear of it', async () => {
    const seenBefore = changes;
    await putConfig(t.buckets, good(400));
    await eventually(() => control.config().limits.global.requestsPerMinute === 400);
    expect(changes).toBe(seenBefore + 1);
  });

  it('a service starting while the latest config is bad waits for a good one rather than run on it', async () => {
    const bad = { ...good(500), lanes: { batch: { share: 0.9 } } };
    await t.buckets.control.put(ControlKeys.config, encodeJson(bad));
    const late = capturedLogger();
    let started: Control | undefined;
    const starting = watchControl(t.buckets.control, late.log).then((c) => (started = c));
    await eventually(() => late.lines.some((l) => /config\.lanes: the lanes' shares add up to 1\.60/.test(l.err?.message ?? '')));
    expect(started).toBeUndefined();
    await putConfig(t.buckets, good(600));
    await starting;
    expect(started!.config().limits.global.requestsPerMinute).toBe(600);
    started!.stop();
  });
});
