import type { Candidate, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import type { AttemptOutcome } from './attempts.js';
import { admit, type Circuit } from './circuit.js';

/**
 * A deployment's latency as this replica knows it: a number (its EWMA, ms), `unmeasured` (never
 * measured, or not for `STALE_MS`: it counts as the best, so it gets a request and is measured),
 * or `probing` (a request was just sent to measure it: it ties with anything, so weights decide).
 */
type Latency = number | 'unmeasured' | 'probing';

/** One deployment of a model's block, as the choice sees it. */
export interface Option {
  deployment: string;
  /** `deployments[d].weight`: its share of the model's traffic. */
  weight: number;
  latency: Latency;
  /** false: its circuit is open or it is paused; it goes last, where pickCandidate skips it. */
  healthy: boolean;
}

/** How a model's block is ordered: its config's `balance` and `sticky`, and the request's user. */
export interface Policy {
  balance: 'weighted' | 'ordered';
  sticky: boolean;
  user?: string | undefined;
  model: string;
}

/**
 * Two EWMAs count as a tie, settled by weight, while the slower is within 1.5 times the faster or
 * 50 ms of it: the noise of a few ms (a GC pause, a busy event loop) and LLM latencies swinging
 * with the answer's length should not override the weights. The cost: a deployment up to 1.5
 * times (or 50 ms) slower keeps its full weighted share.
 */
const TIE_RATIO = 1.5;
const TIE_MS = 50;

/**
 * A deployment whose EWMA is more than 3 times the best healthy one's and over 200 ms above it is
 * slow: it leaves the draw (tried after the others, before the unhealthy ones) until a fresh
 * measurement says otherwise. Power of two choices alone cannot take traffic from a heavy
 * deployment (at 9:1 both draws are the heavy one 81 % of the time); this can. The bands are
 * wide because load moves latency too: the deployment with the most traffic is measured slower.
 */
const SLOW_RATIO = 3;
const SLOW_MS = 200;

/**
 * A latency older than this counts as unmeasured again, so a deployment that lost its traffic for
 * being slow (or for one unlucky sample) gets a request and is measured again. Costs about one
 * request per slow deployment per 2 s per replica, at the slow deployment's latency.
 */
const STALE_MS = 2_000;

/**
 * The order a model's block of deployments is tried in, and the reason for its first choice.
 * `ordered`: config order. Otherwise the healthy ones that are not slow (`SLOW_RATIO`) first:
 * with `sticky` and a user, by rendezvous hashing of (user, model, deployment) weighted by
 * weight, so a user keeps one deployment while it is healthy and only the users of a failed one
 * move; else by power of two choices: two draws by weight (with replacement), the one with the
 * lower latency EWMA taken, a tie to the first draw, so comparable latencies give the weights'
 * split exactly and a faster deployment wins the mixed pairs. An unmeasured one counts as the
 * fastest, so it gets measured. Then the slow ones (fastest first), then the open or paused ones
 * in config order, where pickCandidate skips them. Weight 0 (a spare) comes after every weighted
 * one, slow ones included, so it takes traffic only when they are open or paused. Pure.
 *
 * @example
 * orderBlock([{ deployment: 'east', weight: 9, latency: 120, healthy: true }, { deployment: 'west', weight: 1, latency: 200, healthy: true }],
 *   { balance: 'weighted', sticky: false, model: 'm' }, random)
 * // { order: [0, 1], reason: 'm@east chosen of east, west by weight 9:1 and latency 120 ms vs 200 ms (p2c)' }
 */
export function orderBlock(options: readonly Option[], policy: Policy, random: () => number): { order: number[]; reason?: string } {
  const all = options.map((_, i) => i);
  if (options.length < 2) return { order: all };
  const names = options.map((o) => o.deployment).join(', ');
  if (policy.balance === 'ordered') return { order: all, reason: `${policy.model}@${options[0]!.deployment} first of ${names} (ordered)` };
  const healthy = all.filter((i) => options[i]!.healthy);
  const unhealthy = all.filter((i) => !options[i]!.healthy);
  if (healthy.length === 0) return { order: all };
  const best = Math.min(...healthy.map((i) => options[i]!.latency).filter((l): l is number => typeof l === 'number'));
  const isSlow = (i: number) => {
    const l = options[i]!.latency;
    return typeof l === 'number' && l > best + Math.max(SLOW_MS, (SLOW_RATIO - 1) * best);
  };
  const order: number[] = [];
  const notes: string[] = [];
  let why: string | undefined;
  // weight 0 is a spare: after every weighted one, slow ones included ("none unless the others are down")
  for (const group of [healthy.filter((i) => options[i]!.weight > 0), healthy.filter((i) => options[i]!.weight <= 0)]) {
    const drawn = group.filter((i) => !isSlow(i));
    const slow = group.filter(isSlow).sort((a, b) => (options[a]!.latency as number) - (options[b]!.latency as number));
    if (policy.sticky && policy.user !== undefined) {
      const key = `${policy.user}\n${policy.model}`;
      order.push(...[...drawn].sort((a, b) => rendezvous(key, options[a]!) - rendezvous(key, options[b]!)));
      if (drawn.length) why ??= 'for its user (sticky)';
    } else {
      for (let rest = drawn; rest.length;) {
        const next = p2c(options, rest, random);
        why ??= next.why;
        order.push(next.index);
        rest = rest.filter((i) => i !== next.index);
      }
    }
    why ??= slow.length ? 'as the fastest of the slow' : undefined;
    order.push(...slow);
    for (const i of slow) notes.push(`${options[i]!.deployment} slow (${show(options[i]!.latency)} vs ${show(best)})`);
  }
  if (unhealthy.length) notes.push(`${unhealthy.map((i) => options[i]!.deployment).join(', ')} open or paused`);
  const reason = `${policy.model}@${options[order[0]!]!.deployment} chosen of ${names} ${why!}${notes.map((n) => `; ${n}`).join('')}`;
  return { order: [...order, ...unhealthy], reason };
}

/** Power of two choices over `pool` (indexes of options in the draw): the pick and why, for the timeline. */
function p2c(options: readonly Option[], pool: readonly number[], random: () => number): { index: number; why: string } {
  if (pool.length === 1) return { index: pool[0]!, why: 'as the only choice' };
  const a = sample(options, pool, random);
  const b = sample(options, pool, random);
  const [oa, ob] = [options[a]!, options[b]!];
  if (a === b) return { index: a, why: `drawn twice by weight ${weights(options, pool)} (p2c)` };
  const cmp = compare(oa.latency, ob.latency);
  const index = cmp <= 0 ? a : b;
  const [win, lose] = index === a ? [oa, ob] : [ob, oa];
  const tie = cmp === 0 ? ', a tie: the first draw' : '';
  return { index, why: `by weight ${fmt(win.weight)}:${fmt(lose.weight)} and latency ${show(win.latency)} vs ${show(lose.latency)} (p2c${tie})` };
}

const weights = (options: readonly Option[], pool: readonly number[]) => pool.map((i) => fmt(options[i]!.weight)).join(':');

/** One index of `pool`, drawn by weight (uniformly when every weight there is 0). */
function sample(options: readonly Option[], pool: readonly number[], random: () => number): number {
  const total = pool.reduce((s, i) => s + options[i]!.weight, 0);
  if (total <= 0) return pool[Math.min(pool.length - 1, Math.floor(random() * pool.length))]!;
  let r = random() * total;
  for (const i of pool) {
    r -= options[i]!.weight;
    if (r < 0) return i;
  }
  // rounding: the last one with weight
  return [...pool].reverse().find((i) => options[i]!.weight > 0)!;
}

/** Negative when `a` is better, positive when `b` is, 0 for a tie. */
function compare(a: Latency, b: Latency): number {
  if (a === 'unmeasured' || b === 'unmeasured') return a === b ? 0 : a === 'unmeasured' ? -1 : 1;
  if (a === 'probing' || b === 'probing') return 0;
  const [fast, slow] = a <= b ? [a, b] : [b, a];
  if (slow <= fast * TIE_RATIO || slow - fast <= TIE_MS) return 0;
  return a - b;
}

/** Rendezvous score (lower wins): -ln(u)/weight, the weighted form of highest-random-weight hashing. */
function rendezvous(key: string, o: Option): number {
  const u = (hash32(`${key}\n${o.deployment}`) + 0.5) / 2 ** 32;
  return o.weight > 0 ? -Math.log(u) / o.weight : Number.MAX_VALUE * u;
}

/** FNV-1a, then murmur3's finaliser so close keys spread. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const fmt = (n: number) => String(Math.round(n * 100) / 100);
const show = (l: Latency) => (typeof l === 'number' ? `${Math.round(l)} ms` : l);

interface Measured {
  ewmaMs?: number;
  /** When it was last measured, or last sent a request to be measured (epoch ms). */
  at: number;
}

/**
 * This replica's balancing: the latency EWMA of each deployment from the attempts it makes, and the
 * order of each request's candidates. Kept per replica on purpose: latency as seen from here is
 * what matters here, and sharing it would cost a KV write per request.
 */
export class Balancer {
  private readonly latency = new Map<string, Measured>();

  constructor(private readonly random: () => number = Math.random) {}

  /**
   * The request's candidates reordered within each model's block (a model's deployments are
   * contiguous; fallback models stay after, in order), and the reason of each choice for the
   * first attempt's timeline entry (undefined when no block had a choice to make). `circuitOf`
   * is only asked whether a deployment would be admitted now; no half-open trial is taken here.
   */
  order(
    event: SluiceEvent<'chat.routed'>,
    config: SluiceConfig,
    circuitOf: (deployment: string) => Circuit,
    now: number,
  ): { event: SluiceEvent<'chat.routed'>; note?: string } {
    const { candidates, ctx } = event.data;
    const out: Candidate[] = [];
    const notes: string[] = [];
    for (let i = 0; i < candidates.length;) {
      const model = candidates[i]!.model;
      let j = i;
      while (j < candidates.length && candidates[j]!.model === model) j++;
      const block = candidates.slice(i, j);
      i = j;
      if (block.length < 2) {
        out.push(...block);
        continue;
      }
      const m = config.models[model];
      const options = block.map((c) => this.option(c.deployment, config, circuitOf, now));
      const policy = { balance: m?.balance ?? 'weighted', sticky: m?.sticky ?? false, user: ctx.request.user, model };
      const { order, reason } = orderBlock(options, policy, this.random);
      if (reason !== undefined) notes.push(reason);
      const chosen = options[order[0]!]!;
      // the first choice is about to be measured: the next requests do not all rush to it
      if (chosen.latency === 'unmeasured') this.latency.set(chosen.deployment, { ...this.latency.get(chosen.deployment), at: now });
      out.push(...order.map((k) => block[k]!));
    }
    const note = notes.length ? notes.join('; ') : undefined;
    return { event: { ...event, data: { ...event.data, candidates: out } }, ...(note !== undefined ? { note } : {}) };
  }

  /** Learns from one attempt: an answer's latency, or a timeout's (the wait was the deployment's). */
  observe(deployment: string, outcome: AttemptOutcome, settings: Pick<SluiceConfig['invoker'], 'latencyEwmaAlpha'>, now = Date.now()): void {
    const sample = outcome.kind === 'answered' || (outcome.kind === 'failed' && outcome.failure.kind === 'timeout') ? outcome.latencyMs : undefined;
    if (sample === undefined) return;
    const alpha = settings.latencyEwmaAlpha ?? 0.3;
    const prev = this.latency.get(deployment)?.ewmaMs;
    this.latency.set(deployment, { ewmaMs: prev === undefined ? sample : alpha * sample + (1 - alpha) * prev, at: now });
  }

  private option(deployment: string, config: SluiceConfig, circuitOf: (d: string) => Circuit, now: number): Option {
    const d = config.deployments[deployment];
    const healthy = d !== undefined && admit(circuitOf(deployment), now, config.invoker).allow;
    const m = this.latency.get(deployment);
    const fresh = m !== undefined && now - m.at < STALE_MS;
    const latency: Latency = !fresh ? 'unmeasured' : m.ewmaMs === undefined ? 'probing' : m.ewmaMs;
    return { deployment, weight: d?.weight ?? 1, latency, healthy };
  }
}
