import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlKeys } from '@sluice/contracts';
import { rollBackCanary, watchControl, type Control } from './control.js';
import { encodeJson } from './kv.js';
import { eventually, minimalConfig, startTestBus, type TestBus } from './testing.js';

// The control key `canaries`: the guard's rollbacks, written once with compare-and-set, seen live
// by every watcher (the routers), and cleared by deleting the key.
let t: TestBus;
let control: Control;
beforeAll(async () => {
  t = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'canaries' });
  control = await watchControl(t.buckets.control, t.log);
});
afterAll(async () => {
  control?.stop();
  await t?.stop();
});

describe('canary rollbacks in the control bucket', () => {
  it('the first rollback of a canary writes it, a second does not, and another canary is kept beside it', async () => {
    expect(control.canaries()).toEqual({});
    const both = await Promise.all([
      rollBackCanary(t.buckets.control, 'c1', { at: 1, variant: 'b', reason: 'first' }),
      rollBackCanary(t.buckets.control, 'c1', { at: 2, variant: 'b', reason: 'second' }),
    ]);
    expect(both.filter(Boolean)).toHaveLength(1);
    expect(await rollBackCanary(t.buckets.control, 'c2', { at: 3, variant: 'x', reason: 'other' })).toBe(true);
    const seen = await eventually(() => (Object.keys(control.canaries()).length === 2 ? control.canaries() : false));
    // whichever came first, its entry is whole
    expect([
      { at: 1, variant: 'b', reason: 'first' },
      { at: 2, variant: 'b', reason: 'second' },
    ]).toContainEqual(seen.c1);
    expect(seen.c2).toEqual({ at: 3, variant: 'x', reason: 'other' });
  });

  it('an invalid value is ignored and deleting the key re-enables every canary', async () => {
    const before = control.canaries();
    await t.buckets.control.put(ControlKeys.canaries, encodeJson({ c1: { at: 'soon' } }));
    await t.buckets.control.put(ControlKeys.config, encodeJson(minimalConfig([{ id: 'beta' }])));
    // the config written after the bad value is applied: the bad value was read (and refused) before it
    await eventually(() => control.config().tenants[0]!.id === 'beta');
    expect(control.canaries()).toEqual(before);
    await t.buckets.control.delete(ControlKeys.canaries);
    await eventually(() => Object.keys(control.canaries()).length === 0);
  });
});
