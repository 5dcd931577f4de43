import { LANES, type Lane, type Priority } from '@sluice/contracts';

/** Upstream calls running in each lane on this replica. */
export type Running = Record<Priority, number>;

/** What the scheduler reads of the config: this replica's upstream slots and each lane's spec (`laneSpecs`). */
export interface LaneSettings {
  /** `invoker.concurrency`: upstream calls this replica runs at once, across lanes. */
  slots: number;
  lanes: Record<Priority, Lane>;
}

/** The lane's guaranteed slots: its share of the replica's slots, not rounded (a share of 0.1 of 4 slots still guarantees one). */
function guaranteed(lane: Lane, slots: number): number {
  return lane.share * slots;
}

function belowCap(lane: Lane, running: number): boolean {
  return lane.maxConcurrency === undefined || running < lane.maxConcurrency;
}

/**
 * The lane that gets the next free upstream slot, or undefined when no slot is free or no lane
 * that has work may take one. First the highest-priority lane with work that runs fewer calls
 * than its guaranteed share (`share × slots`); then, borrowing what other lanes leave unused,
 * the highest-priority lane with work under its cap (`maxConcurrency`). So a lane with a share
 * above 0 keeps at least one slot however busy the lanes above it are: none starves.
 *
 * @example
 * // 4 slots, default shares (realtime 0.3: 1.2 slots guaranteed), batch and low filling 3 of them
 * nextLane({ critical: 0, realtime: 0, standard: 0, batch: 2, low: 1 }, (l) => l === 'realtime' || l === 'batch', settings);
 * // 'realtime': below its share, and served before batch
 */
export function nextLane(running: Running, hasWork: (lane: Priority) => boolean, settings: LaneSettings): Priority | undefined {
  const busy = LANES.reduce((sum, l) => sum + running[l], 0);
  if (busy >= settings.slots) return undefined;
  const candidates = LANES.filter((l) => hasWork(l) && belowCap(settings.lanes[l], running[l]));
  return candidates.find((l) => running[l] < guaranteed(settings.lanes[l], settings.slots)) ?? candidates[0];
}

/**
 * How many of the free slots each lane would be given if the lanes in `backlogged` had endless
 * work and the others none: what to pull from each lane so the slots can fill in one round trip
 * without taking more from the stream than the slots can start. A lane not backlogged still
 * gets nothing here; the caller keeps one pull open on it to hear its next request.
 */
export function entitlements(running: Running, backlogged: ReadonlySet<Priority>, settings: LaneSettings): Record<Priority, number> {
  const would: Running = { ...running };
  const given = Object.fromEntries(LANES.map((l) => [l, 0])) as Record<Priority, number>;
  for (let lane = nextLane(would, (l) => backlogged.has(l), settings); lane !== undefined; lane = nextLane(would, (l) => backlogged.has(l), settings)) {
    would[lane]++;
    given[lane]++;
  }
  return given;
}

/** No calls in any lane. */
export function idle(): Running {
  return { critical: 0, realtime: 0, standard: 0, batch: 0, low: 0 };
}
