import { decided, encodeJson, getJson, NOTHING, pastDeadline, type Decided, type Emitted, type Received } from '@sluice/bus';
import { ServiceName, type Consumers, type SluiceConfig } from '@sluice/contracts';
import type { KV } from '@nats-io/kv';
import { decideCoalesced, decideLookup, decideMiss, decideSemanticHit, decideStore, type MissFindings } from './cache.js';
import type { Coalescer } from './coalesce.js';
import { asEntry } from './entry.js';
import { policyFor, semanticThreshold, ttlFor } from './policy.js';
import { semanticKeyOf } from './semantic/entry.js';
import { lookupSemantic, type SemanticDeps } from './semantic/lookup.js';

type Lookup = typeof Consumers.cacheLookup;
type Store = typeof Consumers.cacheStore;

export interface CacheDeps {
  /** `sluice_cache`: entries under `<tenant>.<sha256>`. */
  cache: KV;
  /** The bucket TTL in force (`followCacheTtl`): the longest an entry is kept. */
  ttlSeconds: () => number;
  /** The live config: coalescing, the tenants' semantic opt-in, TTLs and policies. */
  config: () => SluiceConfig;
  /** Identical requests in flight (docs/caching.md, Coalescing); absent: none. */
  coalescer?: Coalescer;
  /** The semantic step's parts; absent: exact lookups only. */
  semantic?: SemanticDeps;
  now?: () => number;
}

/**
 * chat.admitted -> cache.hit (exact, then semantic) | cache.coalesced (an identical request in
 * flight answered this one) | cache.missed (the request goes on; it leads its key's coalescing).
 * Terminal decisions answer ctx.replyTo. Steps, each only when the one before found nothing:
 * 1. the exact key (one KV read);
 * 2. coalescing: lead the key, or wait for the leader's answer (`Coalescer.join`);
 * 3. the semantic index, for tenants that opted in (`lookupSemantic`).
 * A leader answered by step 3 hands that answer to its followers.
 */
export function onChatAdmitted(deps: CacheDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Lookup>): Promise<Decided<Emitted<Lookup>>> => {
    const { ctx } = event.data;
    const key = ctx.request.cache === 'skip' ? undefined : ctx.request.cacheKey;
    // the key was computed at ingress and names its tenant: never read another tenant's entry
    const mine = key?.startsWith(`${event.tenant}.`) ? key : undefined;
    const readEntry = async () => (mine ? asEntry((await getJson<unknown>(deps.cache, mine))?.value) : undefined);
    const config = deps.config();
    // the answering model's price is recorded on a hit: the ledger computes its saving with it
    const exact = decideLookup(event, await readEntry(), now(), config.models);
    if (exact.event.type === 'cache.hit' || mine === undefined)
      return decided(
        [exact.event],
        exact.replies.map((reply) => ({ to: ctx.replyTo, reply })),
      );

    const findings: MissFindings = { reason: exact.event.reason };
    if (deps.coalescer && config.cache.coalesce.enabled) {
      const joined = await deps.coalescer.join(mine, event.requestId, ctx.deadline);
      if (joined.role === 'follower') {
        const d = decideCoalesced(event, joined, now(), config.models);
        return decided(
          [d.event],
          d.replies.map((reply) => ({ to: ctx.replyTo, reply })),
        );
      }
      if (joined.role === 'expired') {
        const expired = pastDeadline(event, ServiceName.Cache, Math.max(now(), ctx.deadline))!;
        return decided([expired.event], [{ to: expired.replyTo, reply: expired.reply }]);
      }
      if (joined.revision > 0) findings.leads = joined.revision;
      if (joined.takeover) findings.takeover = joined.takeover;
      if (joined.takeover && joined.revision > 0) {
        // the leader it took over from may have stored its answer since the first read
        const again = decideLookup(event, await readEntry(), now(), config.models);
        if (again.event.type === 'cache.hit') {
          await deps.coalescer.answered(mine, event.requestId, joined.revision, again.event.data.answer);
          return decided(
            [again.event],
            again.replies.map((reply) => ({ to: ctx.replyTo, reply })),
          );
        }
      }
    }

    const threshold = deps.semantic ? semanticThreshold(config, event.tenant) : undefined;
    if (deps.semantic && threshold !== undefined) {
      const ttl = ttlFor(config, event.tenant, ctx.request, deps.ttlSeconds());
      const outcome = await lookupSemantic(deps.semantic, config, event, threshold, ttl, now);
      if ('hit' in outcome) {
        const d = decideSemanticHit(event, outcome.hit, outcome.embedding, now(), config.models);
        if (findings.leads !== undefined) await deps.coalescer?.answered(mine, event.requestId, findings.leads, outcome.hit.entry.answer);
        return decided(
          [d.event],
          d.replies.map((reply) => ({ to: ctx.replyTo, reply })),
        );
      }
      findings.semantic = outcome.miss;
      if (outcome.embedding) findings.embedding = outcome.embedding;
    }
    return decided([decideMiss(event, findings, now())]);
  };
}

/**
 * chat.completed -> the entry written (when the tenant's policy keeps the answer), then
 * cache.stored; and, for a request that led its key's coalescing, its answer handed to the
 * requests waiting for it (stored or not: they asked the same thing at the same time).
 */
export function onChatCompleted(deps: CacheDeps) {
  const now = deps.now ?? Date.now;
  return async (event: Received<Store>): Promise<Decided<Emitted<Store>>> => {
    const { ctx, answer } = event.data;
    const config = deps.config();
    const ttl = ttlFor(config, event.tenant, ctx.request, deps.ttlSeconds());
    const decision = decideStore(event, policyFor(config, event.tenant), ttl, now());
    const key = ctx.request.cacheKey;
    // the entry is the cache's own state, written before the event that says it was stored
    if (decision) await deps.cache.put(decision.key, encodeJson(decision.entry));
    else if (deps.semantic && key?.startsWith(`${event.tenant}.`) && semanticThreshold(config, event.tenant) !== undefined) {
      // the lookup wrote this request's semantic entry on its miss; with no answer to point at it would only cost lookups
      await deps.semantic.semantic.delete(semanticKeyOf(key));
    }
    if (deps.coalescer && ctx.coalesce && key) await deps.coalescer.answered(key, event.requestId, ctx.coalesce.revision, answer);
    return decision ? decided([decision.event]) : NOTHING;
  };
}
