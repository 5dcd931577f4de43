import { describe, expect, it } from 'vitest';
import type { SluiceEvent } from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { initialState } from './degrader.js';
import { testConfig } from './fixtures.js';
import { createLoop } from './loop.js';

const log = createLogger('degrader', 'silent');
const config = testConfig();

describe('degrader loop', () => {
  it('publishes the change before writing it to the bucket, and counts buffered attempts', async () => {
    const calls: string[] = [];
    let clock = 1_000_000;
    const loop = createLoop(initialState(clock), {
      config: () => config,
      now: () => clock,
      publish: async (e) => void calls.push(`publish ${e.data.from}->${e.data.to}`),
      persist: async (s) => void calls.push(`persist ${s.level}`),
      log,
    });
    for (let i = 0; i < 10; i++) loop.attempt({ at: clock, ok: false, latencyMs: 5 });
    await loop.step();
    expect(calls).toEqual(['publish 0->3', 'persist 3']);
    clock += 1;
    await loop.step();
    expect(calls).toHaveLength(2);
  });

  it('keeps the level when the publish fails and decides again at the next step', async () => {
    let fail = true;
    const published: Array<SluiceEvent<'degrade.changed'>> = [];
    const loop = createLoop(initialState(0), {
      config: () => config,
      now: () => 5,
      publish: async (e) => {
        if (fail) throw new Error('stream unavailable');
        published.push(e);
      },
      persist: async () => undefined,
      log,
    });
    for (let i = 0; i < 10; i++) loop.attempt({ at: 5, ok: false, latencyMs: 5 });
    await loop.step();
    expect(loop.state().level).toBe(0);
    fail = false;
    await loop.step();
    expect(loop.state().level).toBe(3);
    expect(published.map((e) => e.data.to)).toEqual([3]);
  });

  it('retries a failed bucket write at the next step', async () => {
    let fail = true;
    const persisted: number[] = [];
    const loop = createLoop(initialState(0), {
      config: () => config,
      now: () => 5,
      publish: async () => undefined,
      persist: async (s) => {
        if (fail) throw new Error('kv unavailable');
        persisted.push(s.level);
      },
      log,
    });
    for (let i = 0; i < 10; i++) loop.attempt({ at: 5, ok: false, latencyMs: 5 });
    await loop.step();
    expect(loop.state().level).toBe(3);
    fail = false;
    await loop.step();
    expect(persisted).toEqual([3]);
  });
});
