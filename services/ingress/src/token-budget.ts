import { isJsonObject, type Endpoint, type TokenBudget } from '@sluice/contracts';
import type { BodyFacts } from '@sluice/facts';
import type { Json } from './checks.js';
import { RequestRejected } from './rejection.js';

// Token budgets (issue 11, item 4; the seeds' budget controller): config.tokenBudgets rules cap a
// request's input (trim its oldest turns, or refuse), its output, and may set its model. Ingress
// applies them to the body before `chat.requested` is written, so the body goes to the stream
// once, already changed, and the facts are counted on what the upstream will see.

/** Who a request is, in the terms a rule names. */
export interface BudgetSubject {
  tenant: string;
  feature?: string | undefined;
  /** The virtual key's id; absent for a tenant's config key. */
  key?: string | undefined;
}

/**
 * The first rule whose given fields (tenant, feature, key) all match; a rule that gives none
 * matches every request. A loop over the rules and nothing else: no rule, no cost.
 *
 * @example
 * tokenBudgetFor([{ id: 'summaries', feature: 'summarize', maxOutputTokens: 500 }], { tenant: 'dev', feature: 'summarize' }) // that rule
 */
export function tokenBudgetFor(rules: readonly TokenBudget[], who: BudgetSubject): TokenBudget | undefined {
  return rules.find(
    (r) =>
      (r.tenant === undefined || r.tenant === who.tenant) &&
      (r.feature === undefined || r.feature === who.feature) &&
      (r.key === undefined || r.key === who.key),
  );
}

/** What the client asked for: its model (`auto` when it named none) and user. */
export type Asked = { model: string; user?: string };

/** Counts a body's facts as `@sluice/facts` does (ingress passes `bodyFactsAsync`). */
export type CountFacts = (body: Json) => Promise<BodyFacts>;

export interface Budgeted {
  /** The body to write to the stream: the client's own object when nothing changed, else a copy. */
  body: Json;
  /** Counted on `body`. */
  facts: BodyFacts;
  /** The rule's model, when it replaced the requested one. */
  model?: string;
  /** Each change, for `chat.requested`'s reason; absent when the rule changed nothing. */
  note?: string;
}

/**
 * Applies a token budget to a checked body: the output cap (`maxOutputTokens`), the model, then
 * the input size (`maxInputTokens`). Counting is the caller's `count`; the body is counted once
 * when it fits, and trimming counts each removed turn alone, then what is left.
 *
 * Embeddings are never trimmed (each input is embedded whole; dropping one would change the
 * answer's shape): over the size they are refused, and output and model rules do not apply.
 *
 * @param asked the client's model (`auto` when it named none) and user, for the note and a refusal's event.
 * @throws RequestRejected token_budget_exceeded, naming the rule and the sizes, with `param` `messages` or `input`.
 * @example
 * const { body, facts, note } = await applyTokenBudget('chat.completions', body, rule, { model: 'gpt-4o' }, (b) => bodyFactsAsync('chat.completions', b));
 * // note: 'token budget chat: trimmed 4 oldest turns (8 messages), 3210 -> 1980 prompt tokens; max_completion_tokens 4000 -> 500'
 */
export async function applyTokenBudget(endpoint: Endpoint, sent: Json, rule: TokenBudget, asked: Asked, count: CountFacts): Promise<Budgeted> {
  const changes: string[] = [];
  let body = sent;
  let model: string | undefined;
  if (endpoint !== 'embeddings') {
    if (rule.maxOutputTokens !== undefined) {
      const capped = capOutput(endpoint, body, rule.maxOutputTokens);
      body = capped.body;
      changes.push(...capped.changes);
    }
    if (rule.model !== undefined && rule.model !== asked.model) {
      body = { ...body, model: rule.model };
      model = rule.model;
      changes.push(`model ${asked.model} -> ${rule.model}`);
    }
  }
  let facts = await count(body);
  if (rule.maxInputTokens !== undefined && facts.promptTokens > rule.maxInputTokens) {
    const trimmed = await trimToFit(endpoint, body, facts, rule, asked, count);
    ({ body, facts } = trimmed);
    changes.unshift(trimmed.change);
  }
  return { body, facts, ...(model !== undefined ? { model } : {}), ...(changes.length ? { note: `token budget ${rule.id}: ${changes.join('; ')}` } : {}) };
}

/**
 * Lowers the output cap to `max` where it is absent or larger: chat's `max_completion_tokens`
 * and `max_tokens`, whichever the client used (`max_completion_tokens` when neither: `max_tokens`
 * is deprecated and refused by reasoning models), Responses' `max_output_tokens`.
 */
export function capOutput(endpoint: 'chat.completions' | 'responses', body: Json, max: number): { body: Json; changes: string[] } {
  const set = (field: string) => body[field] !== undefined && body[field] !== null;
  const fields = endpoint === 'responses' ? ['max_output_tokens'] : ['max_completion_tokens', 'max_tokens'].filter(set);
  if (fields.length === 0) fields.push('max_completion_tokens');
  const changes: string[] = [];
  const next = { ...body };
  for (const field of fields) {
    const was = set(field) ? (body[field] as number) : undefined;
    if (was !== undefined && was <= max) continue;
    next[field] = max;
    changes.push(`${field} ${was ?? 'unset'} -> ${max}`);
  }
  return changes.length ? { body: next, changes } : { body, changes };
}

/**
 * A conversation's turns that may be removed, oldest first, as indices into its messages (chat)
 * or input items (Responses). A turn starts at a user message and runs to the next one (what
 * comes before the first user message is a turn of its own). Never removable: system and
 * developer messages, and the last user turn (the last user message and everything after it:
 * the tool calls and results of the exchange in progress). With no user message nothing is.
 *
 * Removing whole turns keeps each assistant message with `tool_calls` (a Responses
 * `function_call`) together with its tool results: both belong to the turn of the user message
 * they answer, and OpenAI refuses a tool result whose call is gone.
 */
export function removableTurns(items: readonly unknown[]): number[][] {
  const roleOf = (item: unknown) => (isJsonObject(item) && typeof item.role === 'string' ? item.role : undefined);
  let lastUser = -1;
  items.forEach((item, i) => {
    if (roleOf(item) === 'user') lastUser = i;
  });
  const turns: number[][] = [];
  let turn: number[] = [];
  for (let i = 0; i < lastUser; i++) {
    const role = roleOf(items[i]);
    if (role === 'user' && turn.length > 0) {
      turns.push(turn);
      turn = [];
    }
    if (role !== 'system' && role !== 'developer') turn.push(i);
  }
  if (turn.length > 0) turns.push(turn);
  return turns;
}

/** Chat trims `messages`, Responses its `input` array; a string input is one turn, the last. */
function turnField(endpoint: Endpoint, body: Json): { field: 'messages' | 'input'; items: unknown[] } | undefined {
  const field = endpoint === 'chat.completions' ? 'messages' : 'input';
  const items = body[field];
  return endpoint !== 'embeddings' && Array.isArray(items) ? { field, items } : undefined;
}

async function trimToFit(
  endpoint: Endpoint,
  body: Json,
  facts: BodyFacts,
  rule: TokenBudget,
  asked: Asked,
  count: CountFacts,
): Promise<{ body: Json; facts: BodyFacts; change: string }> {
  const max = rule.maxInputTokens!;
  const before = facts.promptTokens;
  const param = endpoint === 'chat.completions' ? 'messages' : 'input';
  const refuse = (why: string) =>
    new RequestRejected(
      'token_budget_exceeded',
      `Token budget ${rule.id} allows ${max} input tokens; this request has ${before}${why}. Send a shorter ${param === 'messages' ? 'conversation' : 'input'}.`,
      param,
      { model: asked.model, ...(asked.user !== undefined ? { user: asked.user } : {}) },
    );
  if (endpoint === 'embeddings') throw refuse(' (embeddings input is never trimmed)');
  if (rule.onOverflow === 'refuse') throw refuse('');
  const list = turnField(endpoint, body);
  const turns = list ? removableTurns(list.items) : [];
  if (!list || turns.length === 0) throw refuse(', and nothing in it may be trimmed (only system messages and the last user turn)');

  // A count adds up message by message (framing and content: @sluice/facts), so each oldest
  // turn is counted alone until enough would go; the recount of what is left decides.
  const sub = (items: unknown[]) => count({ [list.field]: items });
  const empty = (await sub([])).promptTokens;
  let removing = 0;
  for (let saved = 0; removing < turns.length && before - saved > max; removing++) {
    saved += (await sub(turns[removing]!.map((i) => list.items[i]))).promptTokens - empty;
  }
  for (;;) {
    const gone = new Set(turns.slice(0, removing).flat());
    const next = { ...body, [list.field]: list.items.filter((_, i) => !gone.has(i)) };
    const left = await count(next);
    if (left.promptTokens <= max) {
      const unit = param === 'messages' ? 'message' : 'item';
      const change = `trimmed ${plural(removing, 'oldest turn')} (${plural(gone.size, unit)}), ${before} -> ${left.promptTokens} prompt tokens`;
      return { body: next, facts: left, change };
    }
    if (removing === turns.length)
      throw refuse(`, ${left.promptTokens} with every turn removed but the system messages and the last user turn (${rule.id} trims oldest turns first)`);
    removing++;
  }
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
