import {
  CACHE_NAMESPACE_PATTERN,
  isJsonObject,
  Priority,
  type ChatRequest,
  type Endpoint,
  type SluiceConfig,
  type Tenant,
  type VirtualKey,
} from '@sluice/contracts';
import { bodyFactsAsync, cacheKey } from '@sluice/facts';
import { checkChatBody } from './chat-body.js';
import { optionalText, text, type Json } from './checks.js';
import { checkEmbeddingsBody } from './embeddings-body.js';
import { invalid, RequestRejected } from './rejection.js';
import { checkResponsesBody } from './responses-body.js';
import { applyTokenBudget, tokenBudgetFor } from './token-budget.js';
import { checkKeyModel } from './keys.js';
import { resolveLane, type LaneChoice } from './lanes.js';

/**
 * Request facts that arrive outside the JSON body: HTTP `x-sluice-*` headers, NATS headers.
 * `param` is what an error names (the header), since the caller did not put it in the body.
 */
export interface ChatHints {
  feature?: { value: string; param: string };
  priority?: { value: string; param: string };
  cache?: { value: string; param: string };
  /** `x-sluice-cache-ttl` / `sluice-cache-ttl`: seconds, as sent. */
  cacheTtl?: { value: string; param: string };
  /** `x-sluice-cache-namespace` / `sluice-cache-namespace`, as sent. */
  cacheNamespace?: { value: string; param: string };
}

/** What an endpoint's body check reads from the body. */
export interface BodyChoices {
  /** As requested; `auto` when the body names none. */
  model: string;
  stream: boolean;
  user?: string;
  /** Chat's `stream_options.include_usage`: HTTP then keeps the usage chunk before `[DONE]`. */
  includeUsage: boolean;
}

/** The client's choices Sluice acts on, before the facts are counted. */
type RequestChoices = Pick<ChatRequest, 'endpoint' | 'model' | 'user' | 'feature' | 'priority' | 'stream' | 'cache' | 'cacheTtlSeconds' | 'cacheNamespace'>;

export interface CheckedBody {
  /** `priority` is what the request asked for (`standard` when nothing): `validateRequest` resolves the lane. */
  choices: RequestChoices;
  /** The priority the request asked for, if it asked (`x-sluice-priority` or `priority`). */
  requestedPriority?: Priority;
  /** The client's body: the very object it sent, nothing removed or rewritten. */
  body: Json;
  includeUsage: boolean;
}

export interface Normalised {
  /** The request's facts, carried by every event of the pipeline. */
  request: ChatRequest;
  /** The client's body as sent (or as its token budget changed it); written to the stream once, in `chat.requested`. */
  body: Json;
  includeUsage: boolean;
  /** What a token budget changed in the body, for `chat.requested`'s reason; absent when nothing. */
  tokenBudget?: string;
  /** The request's lane (`request.priority`) and where it came from (lanes.ts). */
  lane: LaneChoice;
}

// the contracts' own union, so a priority added there is accepted here
const PRIORITIES: ReadonlySet<string> = new Set(Priority.anyOf.map((p) => p.const));

/**
 * The longest cache TTL a request may ask for: a year. Ingress only bounds it; the cache clamps
 * it to the tenant's and the bucket's TTL and says so on the timeline, so a config change never
 * turns yesterday's valid header into a refusal.
 */
const MAX_CACHE_TTL_SECONDS = 31_536_000;

/**
 * Checks a request body of one endpoint for what Sluice relies on and reads the client's choices
 * from it and from the hints (`feature`, `priority`: a header wins over the body; the cache
 * hint, and with it a cache TTL and namespace, headers only, neither read nor checked when the
 * hint is `skip`). Both front doors use it. It never drops, adds or rewrites a field: unknown fields,
 * today's and next month's, reach the upstream as sent. `null` means absent.
 *
 * @throws RequestRejected invalid_request, naming the field's path in `param`.
 * @example
 * const { choices, body } = checkBody('chat.completions', { messages: [{ role: 'user', content: 'hi' }] }, {}, { maxMessages: 256 });
 * // choices.model === 'auto', choices.priority === 'standard', body is the object passed in
 */
export function checkBody(endpoint: Endpoint, body: unknown, hints: ChatHints, limits: { maxMessages: number }): CheckedBody {
  if (!isJsonObject(body)) throw invalid('body', 'The request body must be a JSON object.');
  const read = bodyChoices(endpoint, body, limits);
  const requestedPriority = priority(hints.priority ?? fromBody(body, 'priority'));
  const choices: RequestChoices = {
    endpoint,
    model: read.model,
    priority: requestedPriority ?? 'standard',
    stream: read.stream,
    cache: cache(hints.cache),
  };
  if (choices.cache !== 'skip') {
    if (hints.cacheTtl) choices.cacheTtlSeconds = cacheTtl(hints.cacheTtl);
    if (hints.cacheNamespace) choices.cacheNamespace = cacheNamespace(hints.cacheNamespace);
  }
  if (read.user !== undefined) choices.user = read.user;
  const feature = hints.feature ? text(hints.feature.value, hints.feature.param) : optionalText(body, 'feature');
  if (feature !== undefined) choices.feature = feature;
  return { choices, body, includeUsage: read.includeUsage, ...(requestedPriority !== undefined ? { requestedPriority } : {}) };
}

function bodyChoices(endpoint: Endpoint, body: Json, limits: { maxMessages: number }): BodyChoices {
  switch (endpoint) {
    case 'chat.completions':
      return checkChatBody(body, limits);
    case 'responses':
      return checkResponsesBody(body, limits);
    case 'embeddings':
      return checkEmbeddingsBody(body);
    default: {
      const _exhaustive: never = endpoint;
      return _exhaustive;
    }
  }
}

/**
 * Checks that the model exists and that the tenant may use it (`auto` always may: the router
 * picks among the configured tiers).
 *
 * @throws RequestRejected model_not_found | model_not_allowed
 */
export function checkModel(choices: Pick<ChatRequest, 'model' | 'user'>, tenant: Tenant, config: SluiceConfig): void {
  const { model, user } = choices;
  if (model === 'auto') return;
  const known = { model, ...(user !== undefined ? { user } : {}) };
  if (!Object.prototype.hasOwnProperty.call(config.models, model)) {
    throw new RequestRejected(
      'model_not_found',
      `The model ${JSON.stringify(model)} does not exist; GET /v1/models lists the models you may use.`,
      'model',
      known,
    );
  }
  if (tenant.models && !tenant.models.includes(model)) {
    throw new RequestRejected('model_not_allowed', `Tenant ${tenant.id} may not use the model ${JSON.stringify(model)}.`, 'model', known);
  }
}

/**
 * Everything both front doors check after authentication (`checkBody`, `checkModel`, and
 * `checkKeyModel` for a virtual key's models), then the
 * request's token budget (the first of `config.tokenBudgets` matching its tenant, feature and
 * `key`: output cap, model, input trimmed or refused), then the facts later stages need, counted
 * once here on the body as it will be sent: prompt tokens, output cap, choices, complexity
 * (`@sluice/facts`, long texts off the event loop) and, unless the cache hint is `skip`, the
 * cache key (the cache namespace hashed in).
 *
 * The lane (`request.priority`) is resolved here too (`resolveLane`): the key's, the request's,
 * its feature's, its tenant's or `standard`.
 *
 * @param key the virtual key the request came with, when it came with one (its models narrow the tenant's; token budgets may name it; its lane is forced).
 * @throws RequestRejected as `checkBody`, `checkModel` and `checkKeyModel` do; token_budget_exceeded.
 * @example
 * const { request, body } = await validateRequest('embeddings', { model: 'small', input: 'hi' }, {}, tenant, config);
 */
export async function validateRequest(
  endpoint: Endpoint,
  raw: unknown,
  hints: ChatHints,
  tenant: Tenant,
  config: SluiceConfig,
  key?: Pick<VirtualKey, 'id' | 'lane' | 'models'>,
): Promise<Normalised> {
  const { choices, body: sent, includeUsage, requestedPriority } = checkBody(endpoint, raw, hints, config.ingress);
  checkModel(choices, tenant, config);
  // the model the client named, before a token budget may set another: the rule is the operator's
  checkKeyModel(key, choices.model, choices.user);
  const lane = resolveLane({ requested: requestedPriority, feature: choices.feature, keyLane: key?.lane, tenantLane: tenant.lane }, config);
  choices.priority = lane.lane;
  // a token budget changes the body before anything counts it (token-budget.ts); no rule, no cost
  const rule = tokenBudgetFor(config.tokenBudgets, { tenant: tenant.id, feature: choices.feature, key: key?.id });
  const count = (b: Json) => bodyFactsAsync(endpoint, b);
  const { body, facts, model, note } = rule
    ? await applyTokenBudget(endpoint, sent, rule, choices, count)
    : { body: sent, facts: await count(sent), model: undefined, note: undefined };
  if (model !== undefined) choices.model = model;
  const request: ChatRequest = {
    ...choices,
    promptTokens: facts.promptTokens,
    choices: facts.choices,
    complexity: facts.complexity,
  };
  if (facts.maxOutputTokens !== undefined) request.maxOutputTokens = facts.maxOutputTokens;
  if (choices.cache !== 'skip') request.cacheKey = cacheKey(tenant.id, endpoint, body, choices.cacheNamespace);
  return { request, body, includeUsage, lane, ...(note !== undefined ? { tokenBudget: note } : {}) };
}

/**
 * Deepest nesting of arrays and objects a body may have. A chat request needs 4 levels
 * (body, messages, message, content parts); JSON schemas in fields Sluice passes over need a
 * few more. JSON.parse builds deep nesting ~25 times slower than flat text (90 ms for 1 MB
 * of "[[[…", docs/input-bounds.md), so deeper bodies are refused before parsing.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a request body's text; both front doors read bodies with it.
 *
 * @throws RequestRejected invalid_json | invalid_request (nested deeper than MAX_JSON_DEPTH)
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim().length === 0) throw new RequestRejected('invalid_json', 'The request body is empty; send a JSON object.', 'body');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new RequestRejected('invalid_request', `The request body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep.`, 'body');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RequestRejected('invalid_json', `The request body is not valid JSON: ${(e as Error).message}`, 'body');
  }
}

/**
 * Whether JSON text nests arrays and objects deeper than `max`, brackets inside strings aside.
 * One pass, no allocation: a string is skipped with indexOf to its closing quote, so a body
 * that is mostly prompt text costs ~0.1 ms a megabyte. Malformed text is left to JSON.parse.
 */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // to the closing quote: the next one not escaped by an odd run of backslashes
      for (;;) {
        const end = text.indexOf('"', i + 1);
        if (end < 0) return false;
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        i = end;
        if (slashes % 2 === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

function priority(v: { value: unknown; param: string } | undefined): Priority | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || !PRIORITIES.has(v.value)) throw invalid(v.param, `${v.param} must be one of ${[...PRIORITIES].join(', ')}.`);
  return v.value as Priority;
}

function cache(v: { value: string; param: string } | undefined): ChatRequest['cache'] {
  if (v === undefined || v.value === 'default') return 'default';
  if (v.value === 'skip') return 'skip';
  throw invalid(v.param, `${v.param} must be "skip" (or absent).`);
}

/** Whole seconds, digits only (no sign, exponent or fraction: `1e3` and `60.0` are refused, not guessed at). */
function cacheTtl(v: { value: string; param: string }): number {
  const seconds = /^[0-9]{1,9}$/.test(v.value) ? Number(v.value) : NaN;
  if (!(seconds >= 1 && seconds <= MAX_CACHE_TTL_SECONDS)) {
    throw invalid(v.param, `${v.param} must be a whole number of seconds from 1 to ${MAX_CACHE_TTL_SECONDS}; got ${JSON.stringify(v.value.slice(0, 40))}.`);
  }
  return seconds;
}

function cacheNamespace(v: { value: string; param: string }): string {
  if (!CACHE_NAMESPACE_PATTERN.test(v.value)) {
    throw invalid(v.param, `${v.param} must be 1 to 64 letters, digits, "_", "." or "-"; got ${JSON.stringify(v.value.slice(0, 80))}.`);
  }
  return v.value;
}

function fromBody(body: Json, field: string): { value: unknown; param: string } | undefined {
  const value = body[field];
  return value === undefined || value === null ? undefined : { value, param: field };
}
