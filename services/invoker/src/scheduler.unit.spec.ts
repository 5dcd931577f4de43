import { describe, expect, it } from 'vitest';
import { DEFAULT_LANE_SHARES, LANES, type Lane, type Priority } from '@sluice/contracts';
import { entitlements, idle, nextLane, type LaneSettings, type Running } from './scheduler.js';

const defaults = (slots: number, over: Partial<Record<Priority, Lane>> = {}): LaneSettings => ({
  slots,
  lanes: { ...(Object.fromEntries(LANES.map((l) => [l, { share: DEFAULT_LANE_SHARES[l] }])) as Record<Priority, Lane>), ...over },
});
const running = (r: Partial<Running>): Running => ({ ...idle(), ...r });
const withWork =
  (...lanes: Priority[]) =>
  (l: Priority) =>
    lanes.includes(l);

/** Gives out every free slot one at a time to lanes with endless work, as the pump does. */
function fill(settings: LaneSettings, work: Priority[], from: Running = idle()): Running {
  const r = { ...from };
  for (let lane = nextLane(r, withWork(...work), settings); lane; lane = nextLane(r, withWork(...work), settings)) r[lane]++;
  return r;
}

describe('nextLane', () => {
  it('given every slot busy, when any lane has work, then no lane gets one', () => {
    expect(nextLane(running({ batch: 3, low: 1 }), withWork('critical', 'realtime'), defaults(4))).toBeUndefined();
  });

  it('given no lane has work, then no lane gets a free slot', () => {
    expect(nextLane(idle(), withWork(), defaults(4))).toBeUndefined();
  });

  it('given batch and low fill the slots, when a slot frees and realtime waits, then realtime gets it before batch', () => {
    expect(nextLane(running({ batch: 2, low: 1 }), withWork('realtime', 'batch', 'low'), defaults(4))).toBe('realtime');
  });

  it('given a lane below its guaranteed share, then it is served before a higher lane that is borrowing', () => {
    // 10 slots: realtime guaranteed 3, low 1; realtime already runs 5 (borrowed), low none
    expect(nextLane(running({ realtime: 5 }), withWork('realtime', 'low'), defaults(10))).toBe('low');
  });

  it('given every lane at or above its share, then the slot is lent to the highest-priority lane with work', () => {
    expect(nextLane(running({ batch: 2, low: 1 }), withWork('batch', 'low'), defaults(10))).toBe('batch');
  });

  it('given a lane at its maxConcurrency, then it gets no more slots even when the others leave them free', () => {
    const settings = defaults(8, { batch: { share: 0.3, maxConcurrency: 2 } });
    expect(nextLane(running({ batch: 2 }), withWork('batch'), settings)).toBeUndefined();
    expect(nextLane(running({ batch: 2 }), withWork('batch', 'low'), settings)).toBe('low');
  });

  it('given a lane with share 0, then it only borrows: served after every lane below its share', () => {
    const settings = defaults(4, { standard: { share: 0 } });
    expect(nextLane(idle(), withWork('standard', 'low'), settings)).toBe('low');
    expect(nextLane(running({ low: 1 }), withWork('standard', 'low'), settings)).toBe('standard');
  });
});

describe('filling the slots with endless work in several lanes', () => {
  it('gives low its guaranteed slot while batch could take them all (no lane starves)', () => {
    expect(fill(defaults(4), ['batch', 'low'])).toEqual(running({ batch: 3, low: 1 }));
  });

  it('gives every lane with a share its guaranteed slots under full load, the rest to the highest lanes', () => {
    // 10 slots, shares 0.1/0.3/0.2/0.3/0.1 -> 1/3/2/3/1
    expect(fill(defaults(10), [...LANES])).toEqual(running({ critical: 1, realtime: 3, standard: 2, batch: 3, low: 1 }));
    // 4 slots: guarantees (0.4, 1.2, 0.8, 1.2, 0.4) add up to more than the slots: the highest lanes first
    expect(fill(defaults(4), [...LANES])).toEqual(running({ critical: 1, realtime: 2, standard: 1 }));
  });

  it('lets one lane borrow every slot when the others are idle, up to its cap', () => {
    expect(fill(defaults(6), ['low'])).toEqual(running({ low: 6 }));
    expect(fill(defaults(6, { low: { share: 0.1, maxConcurrency: 2 } }), ['low'])).toEqual(running({ low: 2 }));
  });

  it('applies a changed config at the next free slot (more slots, a new cap)', () => {
    const before = fill(defaults(4), ['batch', 'low']);
    expect(fill(defaults(8), ['batch', 'low'], before)).toEqual(running({ batch: 7, low: 1 }));
    expect(nextLane(before, withWork('batch'), defaults(4, { batch: { share: 0.3, maxConcurrency: 3 } }))).toBeUndefined();
  });
});

describe('entitlements', () => {
  it('sizes pulls to the free slots each backlogged lane would be given, nothing for the others', () => {
    expect(entitlements(running({ batch: 1 }), new Set<Priority>(['batch', 'low']), defaults(4))).toEqual({
      critical: 0,
      realtime: 0,
      standard: 0,
      batch: 2,
      low: 1,
    });
  });

  it('gives nothing when every slot runs', () => {
    expect(entitlements(running({ low: 4 }), new Set<Priority>(['realtime']), defaults(4))).toEqual(running({}));
  });
});
