import { makeEvent, ServiceName, type AnyEvent, type Complexity, type RequestContext, type SluiceEvent } from '@sluice/contracts';

/**
 * A recorded scenario with a known answer, for the what-if specs: six requests of tenant `acme`
 * one second apart from `t0`, and the events the pipeline recorded for them. Prices: m-small
 * $1/$2 per MTok in/out on d1, m-big $10/$20 on d2; tier `small` (complexity ≤ 0.5) is m-small.
 *
 *   r1  m-small, key K1            completed on d1, 1000 + 500 tokens     $0.002
 *   r2  m-small, key K1            exact cache hit (r1's answer)          saved $0.002
 *   r3  m-big, key K2, user u1     completed on d2, 2000 + 1000 tokens    $0.04
 *   r4  auto (complexity 0.2), K3  tier small: completed on d1, 500 + 100  $0.0007
 *   r5  m-small, key K4            completed on d1, 1000 + 1000 tokens    $0.003
 *   r6  m-small, key K4            exact cache hit (r5's answer)          saved $0.003
 *
 * Actual: 4 completed, 2 exact hits, $0.0457 billed, $0.005 saved. `semantic` adds an embedding
 * model `emb` ($1 per MTok in) and opts acme in at threshold 0.9, for steps with a `lookup`.
 */
export function scenarioConfig(opts: { semantic?: boolean } = {}): Record<string, unknown> {
  const rate = { requestsPerMinute: 1000, tokensPerMinute: 10_000_000 };
  const semantic = opts.semantic ? { cache: { semantic: { enabled: true, threshold: 0.9 } } } : {};
  return {
    tenants: [{ id: 'acme', keySha256: ['0'.repeat(64)], ...semantic }],
    limits: { global: rate, tenantDefault: rate, userDefault: rate },
    deployments: {
      d1: { baseUrl: 'http://127.0.0.1:1/v1' },
      d2: { baseUrl: 'http://127.0.0.1:1/v1' },
      d3: { baseUrl: 'http://127.0.0.1:1/v1' },
    },
    models: {
      'm-small': { deployments: ['d1'], price: { inputPerMTok: 1, outputPerMTok: 2 } },
      'm-big': { deployments: ['d2'], price: { inputPerMTok: 10, outputPerMTok: 20 } },
      ...(opts.semantic ? { emb: { deployments: ['d1'], price: { inputPerMTok: 1, outputPerMTok: 0 } } } : {}),
    },
    tiers: [
      { name: 'small', model: 'm-small', maxComplexity: 0.5 },
      { name: 'big', model: 'm-big', maxComplexity: 1 },
    ],
    router: {},
    invoker: {},
    cache: opts.semantic ? { semantic: { model: 'emb' } } : {},
    degrader: {},
    ingress: {},
  };
}

/** The cache key of the scenario's n-th distinct question. */
export const KEY = (n: number) => `acme.${String(n).repeat(64)}`;

/** A semantic lookup as recorded: the best candidate's similarity and key, and the embedding's tokens. */
interface Lookup {
  similarity: number;
  matchedKey: string;
  embeddingTokens: number;
}

/** One request of a scenario and how it ended. */
export interface Step {
  id: string;
  model: string;
  key: string;
  user?: string;
  complexity?: number;
  /**
   * Completed with these tokens (after a semantic miss, when `lookup` is set); a hit on the answer
   * of the request named (semantic when `lookup` is set); or coalesced with the request named.
   */
  end:
    | { usage: [number, number]; answeredBy: { model: string; deployment: string; tier: string }; lookup?: Lookup }
    | { hitOf: string; lookup?: Lookup }
    | { coalescedWith: string };
}

export const STEPS: Step[] = [
  { id: 'r1', model: 'm-small', key: KEY(1), end: { usage: [1000, 500], answeredBy: { model: 'm-small', deployment: 'd1', tier: 'explicit' } } },
  { id: 'r2', model: 'm-small', key: KEY(1), end: { hitOf: 'r1' } },
  { id: 'r3', model: 'm-big', key: KEY(2), user: 'u1', end: { usage: [2000, 1000], answeredBy: { model: 'm-big', deployment: 'd2', tier: 'explicit' } } },
  { id: 'r4', model: 'auto', key: KEY(3), complexity: 0.2, end: { usage: [500, 100], answeredBy: { model: 'm-small', deployment: 'd1', tier: 'small' } } },
  { id: 'r5', model: 'm-small', key: KEY(4), end: { usage: [1000, 1000], answeredBy: { model: 'm-small', deployment: 'd1', tier: 'explicit' } } },
  { id: 'r6', model: 'm-small', key: KEY(4), end: { hitOf: 'r5' } },
];

/** The scenario's events in the order the pipeline published them: request i arrives at t0 + i s and, when it goes upstream, completes 500 ms later. */
export function scenarioEvents(t0: number, steps: readonly Step[] = STEPS): AnyEvent[] {
  const events: AnyEvent[] = [];
  const answers = new Map<string, { answer: SluiceEvent<'chat.completed'>['data']['answer']; storedAt: number }>();
  steps.forEach((s, i) => {
    const at = t0 + i * 1000;
    const complexity: Complexity = { score: s.complexity ?? 0, promptTokens: 10, turns: 1, code: false, keywords: [] };
    const ctx: RequestContext = {
      request: {
        endpoint: 'chat.completions',
        model: s.model,
        priority: 'standard',
        stream: false,
        cache: 'default',
        promptTokens: 10,
        maxOutputTokens: 100,
        choices: 1,
        complexity,
        cacheKey: s.key,
        ...(s.user !== undefined ? { user: s.user } : {}),
      },
      frontDoor: 'http',
      receivedAt: at,
      deadline: at + 60_000,
    };
    const meta = (service: ServiceName, ms: number) => ({ requestId: s.id, tenant: 'acme', service, at: at + ms, reason: 'scenario' });
    events.push(makeEvent('chat.requested', meta(ServiceName.Ingress, 0), { ctx, body: { model: s.model, messages: [{ role: 'user', content: s.id }] } }));
    events.push(makeEvent('chat.admitted', meta(ServiceName.Limiter, 1), { ctx: { ...ctx, requestSeq: 1 }, estimatedTokens: 110 }));
    const embeddingOf = (l: Lookup) => ({
      model: 'emb',
      deployment: 'd1',
      usage: { prompt_tokens: l.embeddingTokens, total_tokens: l.embeddingTokens },
      latencyMs: 5,
    });
    if ('hitOf' in s.end) {
      const { answer, storedAt } = answers.get(s.end.hitOf)!;
      const { lookup } = s.end;
      const hit = lookup
        ? { key: lookup.matchedKey, kind: 'semantic' as const, similarity: lookup.similarity, embedding: embeddingOf(lookup) }
        : { key: s.key, kind: 'exact' as const };
      events.push(makeEvent('cache.hit', meta(ServiceName.Cache, 2), { ctx, answer, storedAt, ...hit }));
      return;
    }
    if ('coalescedWith' in s.end) {
      const { answer } = answers.get(s.end.coalescedWith)!;
      events.push(makeEvent('cache.coalesced', meta(ServiceName.Cache, 300), { ctx, key: s.key, answer, leaderRequestId: s.end.coalescedWith, waitedMs: 298 }));
      return;
    }
    const { answeredBy } = s.end;
    const [prompt, completion] = s.end.usage;
    const answer = {
      model: answeredBy.model,
      body: { object: 'chat.completion', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: `answer to ${s.id}` } }] },
      usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
    };
    answers.set(s.id, { answer, storedAt: at + 500 });
    const candidates = [{ model: answeredBy.model, deployment: answeredBy.deployment }];
    const { lookup } = s.end;
    const semantic = lookup
      ? { semantic: { similarity: lookup.similarity, threshold: 0.9, matchedKey: lookup.matchedKey }, embedding: embeddingOf(lookup) }
      : {};
    events.push(makeEvent('cache.missed', meta(ServiceName.Cache, 2), { ctx, key: s.key, estimatedTokens: 110, ...semantic }));
    events.push(
      makeEvent('chat.routed', meta(ServiceName.Router, 3), { ctx, tier: answeredBy.tier, lane: 'standard', candidates, degradeLevel: 0, cacheKey: s.key }),
    );
    events.push(
      makeEvent('chat.completed', meta(ServiceName.Invoker, 500), {
        ctx,
        answer,
        deployment: answeredBy.deployment,
        attempts: 1,
        upstreamLatencyMs: 490,
        cacheKey: s.key,
      }),
    );
  });
  return events;
}
