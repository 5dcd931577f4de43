import type { Priority, SluiceConfig } from '@sluice/contracts';

/** Where a request's lane came from, strongest first. */
type LaneSource = 'key' | 'request' | 'feature' | 'tenant' | 'default';

export interface LaneChoice {
  lane: Priority;
  source: LaneSource;
  /** For chat.requested's reason: the lane and why. */
  reason: string;
}

export interface LaneInputs {
  /** `x-sluice-priority` (HTTP header, NATS header) or the body's `priority`, already checked. */
  requested?: Priority | undefined;
  /** The request's feature (`x-sluice-feature` / `feature`): `config.lanes.features` may name its lane. */
  feature?: string | undefined;
  /** The virtual key's lane: every request with that key goes there, whatever it asks. */
  keyLane?: Priority | undefined;
  /** The tenant's `lane`. */
  tenantLane?: Priority | undefined;
}

/**
 * A request's priority lane: its virtual key's lane if the key has one (an operator's decision
 * the caller cannot override), else what the request asks for, else its feature's rule
 * (`config.lanes.features`), else its tenant's `lane`, else `standard`. Pure.
 *
 * @example
 * resolveLane({ feature: 'nightly-report' }, { lanes: { features: { 'nightly-report': 'batch' } } });
 * // { lane: 'batch', source: 'feature', reason: 'lane batch (feature nightly-report)' }
 */
export function resolveLane(input: LaneInputs, config: Pick<SluiceConfig, 'lanes'>): LaneChoice {
  if (input.keyLane !== undefined) return choice(input.keyLane, 'key', 'its virtual key');
  if (input.requested !== undefined) return choice(input.requested, 'request', 'asked by the request');
  const byFeature = input.feature !== undefined && Object.hasOwn(config.lanes.features, input.feature) ? config.lanes.features[input.feature] : undefined;
  if (byFeature !== undefined) return choice(byFeature, 'feature', `feature ${input.feature}`);
  if (input.tenantLane !== undefined) return choice(input.tenantLane, 'tenant', "the tenant's");
  return choice('standard', 'default', 'the default');
}

function choice(lane: Priority, source: LaneSource, why: string): LaneChoice {
  return { lane, source, reason: `lane ${lane} (${why})` };
}
