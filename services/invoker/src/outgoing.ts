import { isJsonObject } from '@sluice/contracts';
import type { Endpoint, RequestContext, SluiceConfig, Variant } from '@sluice/contracts';

/** The upstream path of each endpoint, under the deployment's base URL (`.../v1`). */
const UPSTREAM_PATHS = { 'chat.completions': '/chat/completions', responses: '/responses', embeddings: '/embeddings' } as const satisfies Record<
  Endpoint,
  string
>;

/** Body fields that are Sluice's own hints (read by ingress): OpenAI refuses unknown parameters. */
const SLUICE_HINTS = ['feature', 'priority'] as const;

/** What Sluice decided for one attempt: the upstream's model name and the degrade level's output cap. */
export interface Decisions {
  model: string;
  maxTokens?: number;
  stream: boolean;
  /** The canary variant the router chose (`ctx.variant`), its settings read from the live config by `variantOf`. */
  variant?: Pick<Variant, 'name' | 'system' | 'params'>;
}

/**
 * The settings of the request's canary variant in the live config, found by canary id and variant
 * name; undefined without a variant, or when the config no longer has it (it changed since the
 * router chose: the request goes as the client sent it).
 *
 * @example
 * outgoing(endpoint, body, { model, stream, variant: variantOf(control.config(), ctx.variant) })
 */
export function variantOf(config: Pick<SluiceConfig, 'canaries'>, chosen: RequestContext['variant']): Variant | undefined {
  if (!chosen) return undefined;
  return config.canaries?.find((c) => c.id === chosen.canary)?.variants.find((v) => v.name === chosen.name);
}

/** The request sent upstream: the client's body with Sluice's decisions applied, and each change in words. */
export interface Outgoing {
  path: string;
  body: Record<string, unknown>;
  stream: boolean;
  /** For the attempt's timeline reason: `model auto -> gpt-4o-mini`, ... */
  changes: string[];
  /** Sluice asked for the usage chunk the client did not: it is not forwarded. */
  addedUsage: boolean;
}

/**
 * The client's body as it goes upstream: unchanged (unknown fields included) except what Sluice
 * decided, each change listed. `model` becomes the deployment's model; the degrade cap lowers
 * the output cap in the field the client used (`max_completion_tokens`, else `max_tokens` when
 * that is the one sent; `max_output_tokens` for Responses), never raising it; a streamed chat
 * asks for the usage chunk Sluice bills from; Sluice's hint fields are removed. A canary variant's
 * `system` replaces the client's leading system (or developer) message or goes first (Responses:
 * `instructions`), and its `params` are set (`max_tokens` in the field the client used), before
 * the degrade cap. Embeddings take neither. The client's body is not mutated. Pure.
 *
 * @example
 * outgoing('chat.completions', { model: 'auto', messages, tools }, { model: 'gpt-4o-mini', stream: false })
 * // { path: '/chat/completions', body: { model: 'gpt-4o-mini', messages, tools }, changes: ['model "auto" -> "gpt-4o-mini"'], ... }
 */
export function outgoing(endpoint: Endpoint, client: Record<string, unknown>, d: Decisions): Outgoing {
  const body: Record<string, unknown> = { ...client };
  const changes: string[] = [];
  if (body.model !== d.model) {
    changes.push(`model ${JSON.stringify(body.model)} -> ${JSON.stringify(d.model)}`);
    body.model = d.model;
  }
  if (d.variant && endpoint !== 'embeddings') applyVariant(endpoint, body, d.variant, changes);
  if (d.maxTokens !== undefined) {
    for (const field of capFields(endpoint, body)) {
      const value = body[field];
      const sent = typeof value === 'number' ? value : undefined;
      const capped = Math.min(sent ?? d.maxTokens, d.maxTokens);
      if (capped === sent) continue;
      changes.push(`${field} ${sent ?? 'unset'} -> ${capped} (degrade cap)`);
      body[field] = capped;
    }
  }
  let addedUsage = false;
  if (endpoint === 'chat.completions' && d.stream) {
    const options = isJsonObject(body.stream_options) ? body.stream_options : {};
    if (options.include_usage !== true) {
      body.stream_options = { ...options, include_usage: true };
      addedUsage = true;
      changes.push('stream_options.include_usage -> true (Sluice bills from the usage chunk; not forwarded)');
    }
  }
  const hints = SLUICE_HINTS.filter((k) => k in body);
  for (const k of hints) delete body[k];
  if (hints.length) changes.push(`${hints.join(', ')} removed (Sluice's hints)`);
  return { path: UPSTREAM_PATHS[endpoint], body, stream: d.stream && endpoint !== 'embeddings', changes, addedUsage };
}

function applyVariant(endpoint: Endpoint, body: Record<string, unknown>, v: NonNullable<Decisions['variant']>, changes: string[]): void {
  const tag = `(variant ${v.name})`;
  if (v.system !== undefined) {
    if (endpoint === 'responses') {
      body.instructions = v.system;
      changes.push(`instructions -> the variant's ${tag}`);
    } else {
      const messages = Array.isArray(body.messages) ? [...(body.messages as unknown[])] : [];
      const first = messages[0];
      const replaces = isJsonObject(first) && (first.role === 'system' || first.role === 'developer');
      if (replaces) messages[0] = { role: first.role, content: v.system };
      else messages.unshift({ role: 'system', content: v.system });
      body.messages = messages;
      changes.push(`${replaces ? `${String(first.role)} message replaced by` : 'system message put first:'} the variant's ${tag}`);
    }
  }
  const { max_tokens, ...sampling } = v.params ?? {};
  for (const [field, value] of Object.entries(sampling)) {
    if (body[field] === value) continue;
    changes.push(`${field} ${JSON.stringify(body[field] ?? 'unset')} -> ${value} ${tag}`);
    body[field] = value;
  }
  if (max_tokens !== undefined) {
    for (const field of capFields(endpoint, body)) {
      if (body[field] === max_tokens) continue;
      changes.push(`${field} ${JSON.stringify(body[field] ?? 'unset')} -> ${max_tokens} ${tag}`);
      body[field] = max_tokens;
    }
  }
}

/** The output-cap fields a cap is written to: the ones the client used, else the current name. */
function capFields(endpoint: Endpoint, body: Record<string, unknown>): string[] {
  if (endpoint === 'embeddings') return [];
  if (endpoint === 'responses') return ['max_output_tokens'];
  const used = ['max_completion_tokens', 'max_tokens'].filter((k) => body[k] !== undefined && body[k] !== null);
  return used.length ? used : ['max_completion_tokens'];
}
