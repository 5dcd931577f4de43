import type { EventDataOf, Rate, SluiceConfig } from '@sluice/contracts';

/**
 * The global layer learns from the upstreams (issue 11, item 6). Pure: observations
 * (`upstream.limits_observed`, published by the invoker) fold into a state per deployment, and
 * the global limit is read from that state at a given time. adaptive-feed.ts keeps a replica's
 * state current from the stream; docs/adaptive-limits.md says what it does for an operator.
 */

export type Observation = EventDataOf<'upstream.limits_observed'>;
export type AdaptiveSettings = SluiceConfig['limits']['adaptive'];
type Kind = 'requests' | 'tokens';

/** What a deployment said it had left of one limit, and until when that stands. */
interface Left {
  remaining: number;
  /** When it was said (epoch ms, the invoker's clock). */
  at: number;
  /** When the upstream's bucket is full again (x-ratelimit-reset-*, or a 429's Retry-After). */
  resetAt: number;
}

/** What one deployment's answers taught. */
export interface Learned {
  /** Its own per-minute limits, as it states them (x-ratelimit-limit-*). */
  stated: Partial<Record<Kind, number>>;
  /** What it had left, by the latest answer that said so. */
  left: Partial<Record<Kind, Left>>;
  /** The fraction of its target the rate is backed off to, as of `factorAt`; it recovers with time. */
  factor: number;
  factorAt: number;
  /** The last 429 that backed the rate off: one back-off per `backoffEveryMs`. */
  backedOffAt?: number;
  /** The latest observation; a deployment not heard of for `forgetAfterMs` limits nothing. */
  heardAt: number;
}

/** Learned state by deployment name. */
export type AdaptiveState = Readonly<Record<string, Learned>>;

export const initialState: AdaptiveState = {};

/** A 429 that says nothing of when to come back holds the upstream empty for this long. */
const DEFAULT_THROTTLE_MS = 1000;

/** The back-off factor at `now`: `recovery` of the target regained per `recoveryEveryMs` since it was set, up to 1. */
export function factorAt(learned: Learned, settings: AdaptiveSettings, now: number): number {
  const elapsed = Math.max(0, now - learned.factorAt);
  return Math.min(1, learned.factor + (settings.recovery * elapsed) / settings.recoveryEveryMs);
}

/**
 * Folds one observation of `deployment`, made at `at`, into the state. A stated limit is taken
 * as it is; what is left replaces an older report of it; a 429 multiplies the factor by
 * `backoff` (not below `floor`) unless the last back-off was less than `backoffEveryMs` ago:
 * the 429s of requests already in flight when the rate came down say nothing new, and counting
 * each would collapse the rate to the floor after one burst.
 *
 * @example
 * let s = initialState;
 * s = evolve(s, 'primary', { deployment: 'primary', status: 429, throttled: true, retryAfterMs: 500 }, now, settings);
 */
export function evolve(state: AdaptiveState, deployment: string, obs: Observation, at: number, settings: AdaptiveSettings): AdaptiveState {
  const before = state[deployment];
  const learned: Learned = before
    ? { ...before, stated: { ...before.stated }, left: { ...before.left }, heardAt: Math.max(before.heardAt, at) }
    : { stated: {}, left: {}, factor: 1, factorAt: at, heardAt: at };
  if (obs.limitRequests !== undefined && obs.limitRequests > 0) learned.stated.requests = obs.limitRequests;
  if (obs.limitTokens !== undefined && obs.limitTokens > 0) learned.stated.tokens = obs.limitTokens;
  note(learned, 'requests', obs.remainingRequests, obs.resetRequestsMs, at);
  note(learned, 'tokens', obs.remainingTokens, obs.resetTokensMs, at);
  if (obs.throttled) {
    // a 429 without the headers still says the upstream has nothing left until it lifts
    if (obs.remainingRequests === undefined && obs.remainingTokens === undefined) {
      note(learned, 'requests', 0, obs.retryAfterMs ?? DEFAULT_THROTTLE_MS, at);
    }
    if (learned.backedOffAt === undefined || at - learned.backedOffAt >= settings.backoffEveryMs) {
      learned.factor = Math.max(settings.floor, factorAt(learned, settings, at) * settings.backoff);
      learned.factorAt = at;
      learned.backedOffAt = at;
    }
  }
  return { ...state, [deployment]: learned };
}

function note(learned: Learned, kind: Kind, remaining: number | undefined, resetMs: number | undefined, at: number): void {
  if (remaining === undefined) return;
  const known = learned.left[kind];
  // answers reach the stream out of order (several invokers, concurrent calls): the newest stands
  if (known && known.at > at) return;
  learned.left[kind] = { remaining, at, resetAt: at + (resetMs ?? DEFAULT_THROTTLE_MS) };
}

/** The global layer's limits: a rate, and a ceiling on its buckets' levels while an upstream has little left. */
export interface GlobalLimit {
  rate: Rate;
  /** Caps the bucket's levels (below its per-minute rate) at what the upstreams say they have left now. */
  ceiling?: { requests: number; tokens: number };
  /** The deployments whose observations shaped it; empty when it is the configured limit. */
  learnedFrom: string[];
  /** For a throttle's reason, when what was learned is below the configured limit. */
  note?: string;
}

/**
 * The global limit at `now`: the configured `limits.global`, or less where the upstreams said
 * so. The limiter admits a request before the router picks its deployment, so it can only bound
 * the total: the sum, over the deployments models route to, of what each can take — its stated
 * limit (or its share of the configured limit when it states none) times its back-off factor.
 * A deployment with nothing learned (never heard of, or forgotten) could take anything, so the
 * sum is then unbounded and the configured limit stands. The same sum of what each has left,
 * refilled since at its stated limit until its reset, caps the bucket's level: after a burst
 * the global bucket holds no more than the upstreams do.
 *
 * @example
 * const { rate, ceiling } = globalLimit(state, config, Date.now());
 */
export function globalLimit(state: AdaptiveState, config: SluiceConfig, now: number): GlobalLimit {
  const configured = config.limits.global;
  const settings = config.limits.adaptive;
  const deployments = routed(config);
  if (!settings.enabled || deployments.length === 0) return { rate: configured, learnedFrom: [] };
  const sum = { requests: 0, tokens: 0 };
  const left = { requests: 0, tokens: 0 };
  for (const name of deployments) {
    const learned = state[name];
    if (!learned || now - learned.heardAt > settings.forgetAfterMs) return { rate: configured, learnedFrom: [] };
    const factor = factorAt(learned, settings, now);
    for (const kind of ['requests', 'tokens'] as const) {
      const perMinute = kind === 'requests' ? configured.requestsPerMinute : configured.tokensPerMinute;
      const stated = learned.stated[kind];
      sum[kind] += (stated ?? perMinute / deployments.length) * factor;
      left[kind] += leftAt(learned.left[kind], stated, now);
    }
  }
  const rate = {
    requestsPerMinute: Math.max(1, Math.min(configured.requestsPerMinute, Math.floor(sum.requests))),
    tokensPerMinute: Math.max(1, Math.min(configured.tokensPerMinute, Math.floor(sum.tokens))),
  };
  const capped = left.requests < rate.requestsPerMinute || left.tokens < rate.tokensPerMinute;
  const ceiling = capped ? { requests: Math.min(left.requests, rate.requestsPerMinute), tokens: Math.min(left.tokens, rate.tokensPerMinute) } : undefined;
  const below = rate.requestsPerMinute < configured.requestsPerMinute || rate.tokensPerMinute < configured.tokensPerMinute;
  const note = below || ceiling ? noteOf(state, deployments, settings, now, ceiling) : undefined;
  return { rate, ...(ceiling ? { ceiling } : {}), learnedFrom: deployments, ...(note ? { note } : {}) };
}

/**
 * What a deployment has left of one limit at `now`: what it last said, refilled at its stated
 * per-minute limit since (without one, as it was) until its reset; past the reset, or never
 * said, it bounds nothing.
 */
function leftAt(left: Left | undefined, stated: number | undefined, now: number): number {
  if (!left || now >= left.resetAt) return Number.POSITIVE_INFINITY;
  const refilled = stated === undefined ? 0 : (stated * Math.max(0, now - left.at)) / 60_000;
  return stated === undefined ? left.remaining : Math.min(stated, left.remaining + refilled);
}

/** e.g. `global limit learned from primary (states 120 requests/min, backed off to 70 %); 0 requests left upstream now`. */
function noteOf(state: AdaptiveState, deployments: string[], settings: AdaptiveSettings, now: number, ceiling?: { requests: number; tokens: number }): string {
  const each = deployments.map((name) => {
    const l = state[name]!;
    const parts = [
      ...(l.stated.requests !== undefined ? [`states ${l.stated.requests} requests/min`] : []),
      ...(l.stated.tokens !== undefined ? [`${l.stated.tokens} tokens/min`] : []),
    ];
    const factor = factorAt(l, settings, now);
    if (factor < 1) parts.push(`backed off to ${Math.round(factor * 100)} %`);
    return parts.length ? `${name} (${parts.join(', ')})` : name;
  });
  const left = ceiling ? `; ${Math.floor(ceiling.requests)} requests left upstream now` : '';
  return `global limit learned from ${each.join(', ')}${left}`;
}

const routedOf = new WeakMap<SluiceConfig, string[]>();

/** The deployments some model routes to, once per config. */
function routed(config: SluiceConfig): string[] {
  let names = routedOf.get(config);
  if (!names) routedOf.set(config, (names = [...new Set(Object.values(config.models).flatMap((m) => m.deployments))].sort()));
  return names;
}

/** Forgets deployments not heard of for `forgetAfterMs` (they limit nothing any more). */
export function forget(state: AdaptiveState, settings: AdaptiveSettings, now: number): AdaptiveState {
  const stale = Object.entries(state).filter(([, l]) => now - l.heardAt > settings.forgetAfterMs);
  if (stale.length === 0) return state;
  const next = { ...state };
  for (const [name] of stale) delete next[name];
  return next;
}
