import OpenAI from 'openai';
import { billedPrice, type EmbeddingUse, type SluiceConfig } from '@sluice/contracts';

/** A placeholder key: the simulator and many self-hosted upstreams ignore it, the SDK insists on one. */
const NO_KEY = 'sk-none';

/** An embedding and what it cost, or why there is none. */
export type Embedded = { vector: Float32Array; use: EmbeddingUse } | { error: string };

/**
 * Embeds a question for the semantic cache through Sluice's own deployments of the embedding
 * model (`config.cache.semantic.model`): each deployment in config order, one try each, with the
 * real `openai` SDK (its retries off, the time bounded by `timeoutMs` and the request's deadline).
 * A failure is never the request's: the lookup goes on as a miss, and says why on the timeline.
 * The vector comes back unit length (OpenAI's are; a deployment's that are not are normalised).
 */
export class Embedder {
  private readonly clients = new Map<string, { fingerprint: string; client: OpenAI }>();

  constructor(private readonly env: Record<string, string | undefined>) {}

  /**
   * @param budgetMs at most this long in all (the smaller of `timeoutMs` and the time to the deadline).
   * @example
   * const e = await embedder.embed(config, 'How do I reset my password?', 2000);
   * if ('vector' in e) index.search(partition, e.vector, 4, Date.now());
   */
  async embed(config: SluiceConfig, text: string, budgetMs: number): Promise<Embedded> {
    const { model, dimensions } = config.cache.semantic;
    const spec = config.models[model];
    if (!spec) return { error: `the embedding model ${model} is not configured` };
    const until = Date.now() + budgetMs;
    const errors: string[] = [];
    for (const name of spec.deployments) {
      const deployment = config.deployments[name];
      const left = until - Date.now();
      if (!deployment || left <= 0) break;
      const started = performance.now();
      try {
        const answer = await this.client(name, deployment.baseUrl, deployment.apiKeyEnv).embeddings.create(
          { model: deployment.upstreamModel ?? model, input: text, dimensions },
          { timeout: left },
        );
        const vector = unit(answer.data[0]?.embedding);
        if (!vector || vector.length !== dimensions) throw new Error(`it answered a vector of ${vector?.length ?? 0} dimensions, not ${dimensions}`);
        const usage = { prompt_tokens: answer.usage.prompt_tokens, total_tokens: answer.usage.total_tokens };
        // its price as configured now: the ledger bills the embedding with it (docs/ledger.md)
        const price = billedPrice(config.models, model, false);
        return { vector, use: { model, deployment: name, usage, latencyMs: Math.round((performance.now() - started) * 10) / 10, price } };
      } catch (err) {
        errors.push(`${name}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200));
      }
    }
    return { error: errors.length ? `embedding failed (${errors.join('; ')})` : 'no time left to embed the question' };
  }

  private client(name: string, baseUrl: string, apiKeyEnv: string | undefined): OpenAI {
    const apiKey = (apiKeyEnv ? this.env[apiKeyEnv] : undefined) || NO_KEY;
    // the key is part of the fingerprint so a rotated key takes effect; the fingerprint is never logged
    const fingerprint = JSON.stringify([baseUrl, apiKey]);
    const known = this.clients.get(name);
    if (known?.fingerprint === fingerprint) return known.client;
    const client = new OpenAI({ baseURL: baseUrl, apiKey, maxRetries: 0 });
    this.clients.set(name, { fingerprint, client });
    return client;
  }
}

/** A Float32Array of unit length, or undefined for an empty or zero vector. */
function unit(values: readonly number[] | undefined): Float32Array | undefined {
  if (!values || values.length === 0) return undefined;
  const v = Float32Array.from(values);
  let norm = 0;
  for (let i = 0; i < v.length; i++) norm += v[i]! * v[i]!;
  if (!(norm > 0) || !Number.isFinite(norm)) return undefined;
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i]! *= inv;
  return v;
}
