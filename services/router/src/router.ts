import { Errors, type Candidate, type ChatRequest, type DegradeState, type ErrorCode, type Priority, type SluiceConfig } from '@sluice/contracts';
import type { CanaryRollbacks } from '@sluice/bus';
import { describeComplexity } from '@sluice/facts';
import { chooseVariant } from './canary.js';

/** Where a cache miss goes: upstream candidates, a shed (terminal), or the static answer (terminal). */
export type RouteDecision =
  | {
      kind: 'routed';
      tier: string;
      lane: Priority;
      /** The model's deployments in order, then each fallback model's, without repeats. */
      candidates: Candidate[];
      /** Set only when the router caps the request's own max_tokens (degraded). */
      maxTokens?: number;
      degradeLevel: number;
      /** The canary variant the request took (`ctx.variant`), when a canary matched. */
      variant?: { canary: string; name: string };
      reason: string;
    }
  | { kind: 'shed'; code: ErrorCode; status: number; message: string; retryAfterMs: number; degradeLevel: number; reason: string }
  | { kind: 'static'; content: string; degradeLevel: number; reason: string }
  /** Level 4: kept in the stream (chat.held), answered when the level drops (held.ts). */
  | { kind: 'hold'; degradeLevel: number; reason: string };

export interface RouteInput {
  tenant: string;
  request: ChatRequest;
  /** Set by the limiter when a `downgrade` budget is spent (`RequestContext.downgrade`): the cheapest tier, whatever the model. */
  downgrade?: { budget: string };
}

/** The `tier` of a request that named its model itself. */
const EXPLICIT_TIER = 'explicit';

/**
 * Routes a cache miss. The degrade level acts first: 2 sheds (cached only), 3 answers with the
 * static fallback, 4 holds the request for later (maintenance) — whatever the model. At 1 `auto` takes the
 * cheapest tier and every request's max_tokens is capped. At 0 `auto` takes the first tier
 * whose maxComplexity covers the request's complexity score (computed once, at ingress). A named model must (still)
 * exist and be allowed for the tenant: config may have changed since ingress checked it.
 * A request whose `downgrade` budget is spent takes the cheapest tier whatever it asked for
 * (an embedding keeps its model: the tiers are chat models).
 * At level 0 without a downgrade, a matching canary (canary.ts) picks the request's variant by
 * its user's cohort; the variant's model replaces the route's, its deployment goes first. A
 * degraded or downgraded request takes no variant: it is a fair sample of neither.
 *
 * @example
 * const d = route({ tenant: 'acme', request }, control.config(), control.degrade());
 * if (d.kind === 'routed') publish(d.candidates);
 */
export function route(input: RouteInput, config: SluiceConfig, degrade: DegradeState, rollbacks: CanaryRollbacks = {}): RouteDecision {
  const level = degrade.level;
  const shed = (code: ErrorCode, retryAfterMs: number, reason: string, message: string = Errors[code].message): RouteDecision => ({
    kind: 'shed',
    code,
    status: Errors[code].status,
    message,
    retryAfterMs,
    degradeLevel: level,
    reason,
  });

  if (level >= 4) return { kind: 'hold', degradeLevel: level, reason: `degraded to level ${level} (maintenance): held until the gateway answers again` };
  if (level === 3 && input.request.endpoint === 'embeddings')
    return shed('service_busy', config.router.shedRetryAfterMs, 'degraded to level 3 (static fallback; an embedding has none)');
  if (level === 3) return { kind: 'static', content: config.router.staticFallback, degradeLevel: level, reason: 'degraded to level 3 (static fallback)' };
  if (level === 2) return shed('service_busy', config.router.shedRetryAfterMs, 'degraded to level 2 (cached only)');

  const { request } = input;
  let model: string;
  let tier: string;
  let why: string;
  if (input.downgrade && request.endpoint !== 'embeddings') {
    ({ model, name: tier } = config.tiers[0]!);
    why = `budget ${input.downgrade.budget} is spent: cheapest tier ${tier} (${model}) instead of ${request.model}`;
  } else if (request.model === 'auto') {
    if (level >= 1) {
      ({ model, name: tier } = config.tiers[0]!);
      why = `degrade level ${level}: cheapest tier ${tier} (${model})`;
    } else {
      // ingress always computes it; a request without one (an older event) scores as simple
      const c = request.complexity ?? { score: 0, promptTokens: request.promptTokens, turns: 0, code: false, keywords: [] };
      ({ model, name: tier } = pickTier(config, c.score));
      why = `complexity ${describeComplexity(c)} -> tier ${tier} (${model})`;
    }
  } else {
    model = request.model;
    tier = EXPLICIT_TIER;
    if (!config.models[model]) return shed('model_not_found', 0, `model ${model} is not configured`, `The model ${JSON.stringify(model)} does not exist.`);
    const allowed = config.tenants.find((t) => t.id === input.tenant)?.models;
    if (allowed && !allowed.includes(model)) {
      return shed('model_not_allowed', 0, `tenant ${input.tenant} may not use model ${model}`, `This tenant may not use the model ${JSON.stringify(model)}.`);
    }
    why = `model ${model} named by the client`;
  }

  let choice = level === 0 && !input.downgrade ? chooseVariant(config.canaries ?? [], rollbacks, input.tenant, request) : undefined;
  const allowed = config.tenants.find((t) => t.id === input.tenant)?.models;
  if (choice?.variant.model !== undefined && allowed && !allowed.includes(choice.variant.model)) {
    // a canary does not widen what a tenant may use: its baseline instead
    const baseline = choice.canary.variants.find((v) => v.name === choice!.canary.baseline)!;
    choice = {
      ...choice,
      variant: baseline,
      reason: `${choice.reason}, but tenant ${input.tenant} may not use ${choice.variant.model}: baseline ${baseline.name}`,
    };
  }
  if (choice) {
    why += `; ${choice.reason}`;
    if (choice.variant.model !== undefined) model = choice.variant.model;
  }
  let candidates = candidatesFor(config, model);
  const pinned = choice?.variant.deployment;
  // the variant's one deployment of its model, then the fallbacks as usual
  if (pinned !== undefined) candidates = [{ model, deployment: pinned }, ...candidates.filter((c) => c.model !== model)];
  const decision: RouteDecision = { kind: 'routed', tier, lane: request.priority, candidates, degradeLevel: level, reason: '' };
  if (choice) decision.variant = { canary: choice.canary.id, name: choice.variant.name };
  let capped = '';
  // an embedding writes no tokens: nothing to cap
  if (level >= 1 && request.endpoint !== 'embeddings') {
    const cap = config.router.degradedMaxTokens;
    decision.maxTokens = Math.min(request.maxOutputTokens ?? cap, cap);
    capped = `; degrade level ${level}: max_tokens ${decision.maxTokens}`;
  }
  const list = candidates.map((c) => `${c.model}@${c.deployment}`).join(', ');
  decision.reason = `${why}; lane ${request.priority}; candidates ${list}${capped}`;
  return decision;
}

/** The first tier (cheapest first) whose maxComplexity covers the score, else the last. */
function pickTier(config: SluiceConfig, score: number): SluiceConfig['tiers'][number] {
  return config.tiers.find((t) => t.maxComplexity >= score) ?? config.tiers[config.tiers.length - 1]!;
}

/**
 * The model's deployments, then its fallbacks' breadth first (direct fallbacks before
 * fallbacks of fallbacks), each model once, so a cycle in the config cannot loop.
 */
export function candidatesFor(config: SluiceConfig, model: string): Candidate[] {
  const candidates: Candidate[] = [];
  const seen = new Set<string>([model]);
  const queue = [model];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
    const spec = config.models[m];
    if (!spec) continue;
    for (const deployment of new Set(spec.deployments)) candidates.push({ model: m, deployment });
    for (const f of spec.fallback) {
      if (!seen.has(f)) {
        seen.add(f);
        queue.push(f);
      }
    }
  }
  return candidates;
}
