import { type ApiError, invalidRequest, modelNotFound } from './errors.js';
import { countText } from './tokens.js';
import { fnv1a, isRecord } from './util.js';

export const DEFAULT_DIMENSIONS = 256;
const MAX_DIMENSIONS = 4096;
const MAX_INPUTS = 2048;

/** One input: text, or a pre-tokenised array of token ids. */
export type EmbeddingInput = string | readonly number[];

/** A validated embeddings request. */
export interface EmbeddingPlan {
  model: string;
  inputs: EmbeddingInput[];
  dimensions: number;
  base64: boolean;
  promptTokens: number;
}

/** Validates an OpenAI embeddings request body. */
export function planEmbeddings(body: unknown, models: ReadonlySet<string>): EmbeddingPlan | ApiError {
  if (!isRecord(body)) return invalidRequest('The request body must be a JSON object.');
  const { model, input, dimensions, encoding_format: format } = body;
  if (model === undefined || model === null || model === '') {
    return invalidRequest('you must provide a model parameter');
  }
  if (typeof model !== 'string') return invalidRequest("Invalid type for 'model': expected a string.", 'model', 'invalid_type');
  if (input === undefined || input === null) {
    return invalidRequest("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');
  }
  const inputs = normaliseInput(input);
  if (inputs === null) return invalidRequest("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'input');

  let dims = DEFAULT_DIMENSIONS;
  if (dimensions !== undefined && dimensions !== null) {
    if (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) {
      return invalidRequest(`Invalid 'dimensions': expected an integer between 1 and ${MAX_DIMENSIONS}.`, 'dimensions', 'invalid_value');
    }
    dims = dimensions;
  }
  if (format !== undefined && format !== null && format !== 'float' && format !== 'base64') {
    return invalidRequest("Invalid value for 'encoding_format': expected 'float' or 'base64'.", 'encoding_format', 'invalid_value');
  }
  if (!models.has(model)) return modelNotFound(model);

  let promptTokens = 0;
  for (const i of inputs) promptTokens += typeof i === 'string' ? countText(i) : i.length;
  return { model, inputs, dimensions: dims, base64: format === 'base64', promptTokens };
}

/**
 * A deterministic unit vector: a signed, hashed bag of lower-cased words, so
 * texts sharing words have a higher cosine similarity. Token-id inputs use
 * the ids as the words.
 */
export function embed(input: EmbeddingInput, dimensions: number): Float32Array {
  const v = new Float64Array(dimensions);
  let features = 0;
  const add = (h: number): void => {
    // Two buckets per feature soften the damage of a single collision.
    const h2 = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
    v[h % dimensions]! += h & 0x80000000 ? -1 : 1;
    v[h2 % dimensions]! += h2 & 0x80000000 ? -0.5 : 0.5;
    features++;
  };
  if (typeof input === 'string') {
    for (const m of input.toLowerCase().matchAll(/[\p{L}\p{N}]+/gu)) add(fnv1a(m[0]));
  } else {
    for (const id of input) add(fnv1a(`#${id}`));
  }
  let norm = 0;
  for (let i = 0; i < dimensions; i++) norm += v[i]! * v[i]!;
  const out = new Float32Array(dimensions);
  if (features === 0 || norm === 0) {
    // Punctuation-only text, or features that cancelled out: still a unit vector.
    out[fnv1a(typeof input === 'string' ? input : input.join(',')) % dimensions] = 1;
    return out;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) out[i] = v[i]! * inv;
  return out;
}

/** The `list` response body of POST /v1/embeddings. */
export function embeddingsBody(plan: EmbeddingPlan): object {
  const data = plan.inputs.map((input, index) => {
    const vec = embed(input, plan.dimensions);
    const embedding = plan.base64 ? Buffer.from(vec.buffer, vec.byteOffset, vec.byteLength).toString('base64') : Array.from(vec);
    return { object: 'embedding', index, embedding };
  });
  return {
    object: 'list',
    data,
    model: plan.model,
    usage: { prompt_tokens: plan.promptTokens, total_tokens: plan.promptTokens },
  };
}

function normaliseInput(input: unknown): EmbeddingInput[] | null {
  if (typeof input === 'string') return input.length > 0 ? [input] : null;
  if (!Array.isArray(input) || input.length === 0 || input.length > MAX_INPUTS) return null;
  if (input.every(isTokenId)) return [input as number[]];
  const out: EmbeddingInput[] = [];
  for (const item of input) {
    if (typeof item === 'string' && item.length > 0) out.push(item);
    else if (Array.isArray(item) && item.length > 0 && item.every(isTokenId)) out.push(item as number[]);
    else return null;
  }
  return out;
}

function isTokenId(x: unknown): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}
