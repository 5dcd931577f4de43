import type { KV } from '@nats-io/kv';
import { getJson, readRequested, type Bus } from '@sluice/bus';
import type { EmbeddingUse, SemanticLookup, SluiceConfig, SluiceEvent } from '@sluice/contracts';
import { asEntry, type CacheEntry } from '../entry.js';
import type { Embedder } from './embed.js';
import { encodeEntry, semanticKeyOf, type SemanticEntry } from './entry.js';
import type { SemanticIndex } from './index.js';
import { semanticParts } from './text.js';
import { judge } from './verdict.js';

export interface SemanticDeps {
  /** Reads the request's body back from the stream (`ctx.requestSeq`). */
  bus: Pick<Bus, 'jsm'>;
  /** `sluice_cache`: the matched entry's answer. */
  cache: KV;
  /** `sluice_semantic`: this request's entry, written on a miss; every replica's index follows it. */
  semantic: KV;
  index: SemanticIndex;
  embedder: Embedder;
}

/** What the semantic step decided: a stored answer to a similar question, or why there is none. */
export type SemanticOutcome =
  | { hit: { key: string; entry: CacheEntry; similarity: number; threshold: number }; embedding?: EmbeddingUse }
  | { miss: SemanticLookup; embedding?: EmbeddingUse };

/** Time kept back from the deadline for the rest of the pipeline: embedding into the last ms only makes a late miss. */
const DEADLINE_MARGIN_MS = 50;

/**
 * The semantic step of a lookup, after the exact one missed (docs/caching.md): reads the body,
 * splits it into the last user turn and the context that must match exactly (`semanticParts`),
 * embeds the turn through Sluice's deployments, searches the tenant's partition of the index for
 * the nearest `candidates`, and takes the first one at or above `threshold` that the guard lets
 * through and whose answer is still in the cache. On a miss the request's own entry is written to
 * `sluice_semantic` (pointing at its exact key, whose answer the store writes when it comes), so
 * the next similar question finds it on every replica.
 */
export async function lookupSemantic(
  deps: SemanticDeps,
  config: SluiceConfig,
  admitted: SluiceEvent<'chat.admitted'>,
  threshold: number,
  ttlSeconds: number,
  now: () => number,
): Promise<SemanticOutcome> {
  const { ctx } = admitted.data;
  const { request } = ctx;
  const key = request.cacheKey;
  const settings = config.cache.semantic;
  if (key === undefined) return { miss: { skipped: 'cache bypassed on request' } };
  if (ctx.requestSeq === undefined) return { miss: { skipped: "the request's body is not in the stream" } };
  let body: unknown;
  try {
    body = (await readRequested(deps.bus, ctx.requestSeq, admitted.requestId)).data.body;
  } catch (err) {
    return { miss: { skipped: `the request's body could not be read: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300) } };
  }
  const parts = semanticParts(request.endpoint, body, request.cacheNamespace, settings.maxTextChars);
  if ('ineligible' in parts) return { miss: { skipped: parts.ineligible } };
  const embedded = await deps.embedder.embed(config, parts.text, Math.min(settings.timeoutMs, ctx.deadline - now() - DEADLINE_MARGIN_MS));
  if ('error' in embedded) return { miss: { skipped: embedded.error } };
  const embedding = embedded.use;
  const partition = `${admitted.tenant}/${request.cacheNamespace ?? ''}/${settings.model}/${settings.dimensions}/${parts.contextHash}`;
  let candidates = deps.index.search(partition, embedded.vector, settings.candidates, now());
  let best: SemanticLookup = { threshold };
  // a candidate whose answer is gone (expired, not stored by policy, not yet answered) is passed over for the next
  while (candidates.length > 0) {
    const verdict = judge(
      parts.text,
      candidates.map((c) => ({ text: c.entry.text, similarity: c.similarity })),
      threshold,
    );
    if (best.similarity === undefined && candidates[0]) {
      best = { threshold, similarity: candidates[0].similarity, matchedRequestId: candidates[0].entry.requestId, matchedKey: candidates[0].entry.cacheKey };
    }
    if (verdict.hit === undefined) {
      if (verdict.vetoed) best = { ...best, vetoed: verdict.vetoed };
      break;
    }
    const chosen = candidates[verdict.hit]!;
    const matchedKey = chosen.entry.cacheKey;
    const entry = matchedKey.startsWith(`${admitted.tenant}.`) ? asEntry((await getJson<unknown>(deps.cache, matchedKey))?.value) : undefined;
    if (entry && (entry.expiresAt === undefined || entry.expiresAt > now())) {
      return { hit: { key: matchedKey, entry, similarity: chosen.similarity, threshold }, embedding };
    }
    candidates = candidates.filter((c) => c !== chosen);
  }
  const at = now();
  const own: SemanticEntry = {
    tenant: admitted.tenant,
    partition,
    text: parts.text,
    vector: embedded.vector,
    cacheKey: key,
    requestId: admitted.requestId,
    storedAt: at,
    expiresAt: at + ttlSeconds * 1000,
  };
  await deps.semantic.put(semanticKeyOf(key), encodeEntry(own));
  return { miss: best, embedding };
}
