import { billedPrice, makeEvent, ServiceName, type Answer, type RequestContext, type SluiceConfig, type SluiceEvent } from '@sluice/contracts';
import { decideLookup, decideStore, policyFor, semanticThreshold, ttlFor, type CacheEntry } from '@sluice/cache/whatif';
import {
  adjust,
  decide,
  estimateTokens,
  evolve,
  forget,
  globalLimit,
  initialState,
  layersOf,
  limitKeys,
  limitsFor,
  type AdaptiveState,
  type Bucket,
  type Buckets,
  type Layer,
} from '@sluice/limiter/whatif';
import { route } from '@sluice/router/whatif';
import { BudgetBook } from './budgets.js';
import { ReplayClock } from './clock.js';
import { upstreamEnd, type RecordedRequest, type Recording } from './record.js';
import { billedUsd, type EmbeddingBill, type Fate } from './summary.js';
import { upstreamCall, type BalanceMode } from './upstream.js';

/** The policy a replay runs under: a candidate config and the replay's own knobs (docs/whatif.md). */
export interface CandidatePolicy {
  config: SluiceConfig;
  /** `off`: no exact, semantic or coalesced answers. Sluice's config has no switch for the exact cache: this knob is the replay's. */
  cache: 'on' | 'off';
  /** Every request routed at this degrade level; undefined: the level each request met, as recorded. */
  degradeLevel?: number;
  balance: BalanceMode;
}

/**
 * Replays the recorded requests in arrival order through the candidate's limiter (budgets, then
 * token buckets), cache, router and prices, with the services' own decision functions, calling no
 * model: the fate of each request, in `recording.requests` order. State (budget spend, token
 * buckets, cache entries, requests in flight) starts empty at the window's start and is simulated
 * in replay order; cache entries stored before the window are known from the recorded hits they
 * served. Approximations: docs/whatif.md. Pure.
 *
 * @example
 * const fates = replay(recordingOf(events, from, to), { config: parseConfig(candidate), cache: 'on', balance: 'recorded' });
 */
export function replay(recording: Recording, policy: CandidatePolicy): Fate[] {
  return new Replay(recording, policy).run();
}

class Replay {
  private readonly config: SluiceConfig;
  private readonly clock: ReplayClock;
  private readonly buckets = new Map<string, Bucket>();
  private readonly entries = new Map<string, CacheEntry>();
  /** Requests that lead their key's coalescing, until their answer: the key's followers get it. */
  private readonly inflight = new Map<string, { leader: string; since: number; until: number; answer: Answer }>();
  /** Every answer the recording has for a cache key: what a request the recording never sent upstream is answered with. */
  private readonly recordedAnswers = new Map<string, Answer>();
  private readonly budgets: BudgetBook;
  /** What the upstreams' recorded rate-limit headers taught the global layer, under the candidate's `limits.adaptive`. */
  private adaptive: AdaptiveState = initialState;

  constructor(
    private readonly recording: Recording,
    private readonly policy: CandidatePolicy,
  ) {
    this.config = policy.config;
    this.clock = new ReplayClock(recording.changes, recording, ({ at, observed }) => {
      // as the limiter's AdaptiveLimits.fold does
      const settings = this.config.limits.adaptive;
      this.adaptive = settings.enabled ? evolve(forget(this.adaptive, settings, at), observed.deployment, observed, at, settings) : initialState;
    });
    this.budgets = new BudgetBook(policy.config);
    for (const r of recording.requests) this.learn(r);
  }

  run(): Fate[] {
    const fates = this.recording.requests.map((r) => {
      this.clock.advance(r.requested.data.ctx.receivedAt);
      return this.fateOf(r);
    });
    this.clock.finish();
    return fates;
  }

  /** Recorded answers by key, and the entries stored before the window that recorded hits were served from. */
  private learn(r: RecordedRequest): void {
    const t = r.terminal;
    if (t?.type === 'chat.completed' && r.requested.data.ctx.request.cacheKey !== undefined)
      this.recordedAnswers.set(r.requested.data.ctx.request.cacheKey, t.data.answer);
    if (t?.type !== 'cache.hit' || t.data.storedAt >= this.recording.from || this.entries.has(t.data.key)) return;
    const ttl = ttlFor(this.config, r.tenant, {}, this.config.cache.ttlSeconds);
    this.entries.set(t.data.key, { answer: t.data.answer, storedAt: t.data.storedAt, requestId: 'before the window', expiresAt: t.data.storedAt + ttl * 1000 });
    this.recordedAnswers.set(t.data.key, t.data.answer);
  }

  private fateOf(r: RecordedRequest): Fate {
    const { ctx } = r.requested.data;
    // a recorded refusal stands: the budget's spend before the window is not in the replay (docs/whatif.md)
    if (r.terminal?.type === 'chat.rejected') return { kind: 'rejected', code: r.terminal.data.code };

    const limiterAt = r.admitted?.at ?? (r.terminal?.type === 'chat.throttled' ? r.terminal.at : ctx.receivedAt);
    // the budgets first, read only: a spent one refuses before any rate limit is debited
    const budgets = this.budgets.check(r.tenant, ctx, limiterAt);
    if (budgets?.verdict.kind === 'spent') return { kind: 'rejected', code: 'insufficient_quota' };
    const { rate, ceiling } = globalLimit(this.adaptive, this.config, limiterAt);
    const limits = limitsFor(this.config, r.tenant, ctx.request.user, ctx.key, { ...rate, ...(ceiling ? { ceiling } : {}) });
    const keys = limitKeys(r.tenant, ctx.request.user, ctx.key?.limits ? ctx.key.id : undefined);
    const estimatedTokens = estimateTokens(ctx.request);
    const layers = layersOf(limits);
    const current: Buckets = {};
    for (const layer of layers) {
      const b = this.buckets.get(keys[layer]!);
      if (b) current[layer] = b;
    }
    const admission = decide(current, { estimatedTokens }, limits, limiterAt);
    if (!admission.admitted) return { kind: 'throttled', layer: admission.layer };
    for (const layer of layers) this.buckets.set(keys[layer]!, admission.buckets[layer]!);
    if (budgets) this.budgets.reserve(budgets);
    const reconcile = (usage: Answer['usage'], at: number) =>
      this.clock.schedule(at, () => {
        const difference = usage.total_tokens - estimatedTokens;
        if (difference === 0) return;
        // the limiter leaves the global layer to refill (handlers.ts, onChatCompleted)
        for (const layer of layers.filter((l): l is Exclude<Layer, 'global'> => l !== 'global')) {
          const key = keys[layer]!;
          this.buckets.set(key, adjust(this.buckets.get(key), limits[layer]!, { tokens: -difference }, at));
        }
      });

    const spent = budgets?.verdict.kind === 'within' ? budgets.verdict.downgrade : undefined;
    const downgrade = spent ? { budget: spent.budget } : r.admitted?.data.ctx.downgrade;
    const { fate, endsAt } = this.afterAdmission(r, { limiterAt, estimatedTokens, downgrade, reconcile });
    if (budgets) this.clock.schedule(endsAt, () => this.budgets.settle(budgets, billedUsd(fate)));
    return fate;
  }

  /** The cache, the router and the upstream, for an admitted request: its fate and when it ends (epoch ms). */
  private afterAdmission(
    r: RecordedRequest,
    admission: {
      limiterAt: number;
      estimatedTokens: number;
      downgrade: RequestContext['downgrade'];
      reconcile: (usage: Answer['usage'], at: number) => void;
    },
  ): { fate: Fate; endsAt: number } {
    const { ctx } = r.requested.data;
    const { limiterAt, estimatedTokens, downgrade, reconcile } = admission;
    const admitted = makeEvent(
      'chat.admitted',
      { requestId: r.requestId, tenant: r.tenant, service: ServiceName.Limiter, at: limiterAt, reason: 'replayed' },
      { ctx: { ...ctx, ...(downgrade ? { downgrade } : {}) }, estimatedTokens },
    );
    // a coalesced request's event is stamped when its leader's answer came, not when it looked
    const cacheAt = r.missed?.at ?? (r.terminal?.type === 'cache.hit' ? r.terminal.at : limiterAt);
    const looked = this.lookup(r, admitted, cacheAt);
    if (looked.fate) return { fate: looked.fate, endsAt: cacheAt };
    const embedding = looked.embedding ? { embedding: looked.embedding } : {};

    const level = this.policy.degradeLevel ?? recordedLevel(r) ?? this.clock.degradeLevel;
    const state = (l: number) => ({ level: l, since: 0, reason: 'replayed' });
    const input = { tenant: r.tenant, request: ctx.request, ...(downgrade ? { downgrade } : {}) };
    let decision = route(input, this.config, state(level), this.clock.rollbacks);
    // a held request is routed again when released, at the level the recording released it at
    if (decision.kind === 'hold' && this.policy.degradeLevel === undefined && r.held && r.routed)
      decision = route(input, this.config, state(r.routed.data.degradeLevel), this.clock.rollbacks);
    switch (decision.kind) {
      case 'hold':
        return { fate: { kind: 'held', ...embedding }, endsAt: cacheAt };
      case 'shed':
        return { fate: { kind: 'shed', code: decision.code, ...embedding }, endsAt: cacheAt };
      case 'static': {
        // the router answers at once: when the recording's static answer was, or at the lookup
        const endsAt = r.terminal?.type === 'chat.completed' && upstreamEnd(r) === undefined ? r.terminal.at : cacheAt;
        reconcile({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, endsAt);
        return { fate: { kind: 'static', ...embedding }, endsAt };
      }
      case 'routed':
        break;
      default: {
        const _exhaustive: never = decision;
        throw new Error(`unknown route ${JSON.stringify(_exhaustive)}`);
      }
    }

    const call = upstreamCall(r, decision.candidates, decision.maxTokens, this.config, {
      answerOf: (key) => this.recordedAnswers.get(key),
      healthy: (d) => this.clock.healthy(d, cacheAt),
      balance: this.policy.balance,
    });
    const tier = { tier: decision.tier, ...embedding };
    if (call.outcome === 'failed') return { fate: { kind: 'failed', code: call.code ?? 'upstream_failed', ...tier }, endsAt: call.endsAt };
    reconcile(call.answer.usage, call.endsAt);
    const key = looked.key;
    // the router passes the key on only for an answer to the request as the client made it
    const storable = key !== undefined && decision.degradeLevel === 0 && !downgrade && !decision.variant && call.outcome === 'completed';
    if (storable) {
      if (this.coalescing()) this.inflight.set(key, { leader: r.requestId, since: cacheAt, until: call.endsAt, answer: call.answer });
      this.clock.schedule(call.endsAt, () => this.store(r, key, call.answer, call.model, call.deployment, call.endsAt));
    }
    const bill = {
      model: call.model,
      deployment: call.deployment,
      usage: call.answer.usage,
      price: billedPrice(this.config.models, call.model, ctx.batch !== undefined),
    };
    if (call.outcome === 'cancelled') return { fate: { kind: 'cancelled', bill, ...tier }, endsAt: call.endsAt };
    return { fate: { kind: 'completed', bill, ...(call.estimated ? { estimated: true } : {}), ...tier }, endsAt: call.endsAt };
  }

  /**
   * The cache's steps, as the service takes them: the exact entry, an identical request in flight,
   * then the semantic index (from the similarity the recording found: no embedding is asked for).
   * A fate when the cache answered; else the key the request may store under and the embedding it paid.
   */
  private lookup(r: RecordedRequest, admitted: SluiceEvent<'chat.admitted'>, now: number): { fate?: Fate; key?: string; embedding?: EmbeddingBill } {
    const { request } = r.requested.data.ctx;
    const key = request.cache === 'skip' || !request.cacheKey?.startsWith(`${r.tenant}.`) ? undefined : request.cacheKey;
    if (this.policy.cache === 'off' || key === undefined) return key === undefined ? {} : { key };
    const exact = decideLookup(admitted, this.entries.get(key), now);
    if (exact.event.type === 'cache.hit') return { fate: this.hit('exact', exact.event.data.answer) };

    const lead = this.inflight.get(key);
    if (this.coalescing() && lead && lead.leader !== r.requestId && lead.until > now && now - lead.since < this.config.cache.coalesce.leaderTimeoutMs)
      return { fate: this.hit('coalesced', lead.answer) };

    const threshold = semanticThreshold(this.config, r.tenant);
    if (threshold === undefined) return { key };
    const t = r.terminal;
    const recordedEmbedding = t?.type === 'cache.hit' ? t.data.embedding : r.missed?.data.embedding;
    const embedding: EmbeddingBill | undefined = recordedEmbedding && {
      model: recordedEmbedding.model,
      tokens: recordedEmbedding.usage.prompt_tokens,
      price: billedPrice(this.config.models, recordedEmbedding.model, false),
    };
    const found =
      t?.type === 'cache.hit' && t.data.kind === 'semantic'
        ? { similarity: t.data.similarity, matchedKey: t.data.key, vetoed: undefined }
        : { similarity: r.missed?.data.semantic?.similarity, matchedKey: r.missed?.data.semantic?.matchedKey, vetoed: r.missed?.data.semantic?.vetoed };
    const entry = found.matchedKey !== undefined ? this.entries.get(found.matchedKey) : undefined;
    const live = entry !== undefined && (entry.expiresAt === undefined || entry.expiresAt > now);
    if (live && found.similarity !== undefined && found.similarity >= threshold && found.vetoed === undefined)
      return { fate: { ...this.hit('semantic', entry.answer), ...(embedding ? { embedding } : {}) } };
    return { key, ...(embedding ? { embedding } : {}) };
  }

  private hit(cache: 'exact' | 'semantic' | 'coalesced', answer: Answer): Fate {
    const saved = { model: answer.model, deployment: '', usage: answer.usage, price: billedPrice(this.config.models, answer.model, false) };
    return { kind: 'cached', cache, saved };
  }

  private coalescing(): boolean {
    return this.policy.cache === 'on' && this.config.cache.coalesce.enabled;
  }

  /** A completion reaches the cache: kept when the tenant's policy keeps it (`decideStore`), for its TTL. */
  private store(r: RecordedRequest, key: string, answer: Answer, model: string, deployment: string, at: number): void {
    if (this.inflight.get(key)?.leader === r.requestId) this.inflight.delete(key);
    const { ctx } = r.requested.data;
    const completed = makeEvent(
      'chat.completed',
      { requestId: r.requestId, tenant: r.tenant, service: ServiceName.Invoker, at, reason: 'replayed' },
      { ctx, answer: { ...answer, model }, deployment, attempts: 1, upstreamLatencyMs: 0, cacheKey: key },
    );
    const decision = decideStore(completed, policyFor(this.config, r.tenant), ttlFor(this.config, r.tenant, ctx.request, this.config.cache.ttlSeconds), at);
    if (decision) this.entries.set(decision.key, decision.entry);
  }
}

/** The degrade level the router met for this request, as recorded (undefined when the recording never routed it). */
function recordedLevel(r: RecordedRequest): number | undefined {
  if (r.held) return r.held.data.degradeLevel;
  if (r.routed) return r.routed.data.degradeLevel;
  if (r.terminal?.type === 'chat.shed') return r.terminal.data.degradeLevel;
  if (r.terminal?.type === 'chat.completed' && upstreamEnd(r) === undefined) return 3;
  return undefined;
}
