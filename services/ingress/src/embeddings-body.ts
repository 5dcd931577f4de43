import { invalid } from './rejection.js';
import { absent, integer, model, optionalText, type Json } from './checks.js';
import type { BodyChoices } from './validate.js';

/** OpenAI's cap on the inputs of one embeddings request. */
const MAX_INPUTS = 2048;
const ENCODINGS: ReadonlySet<string> = new Set(['float', 'base64']);

/**
 * Checks an embeddings body (`POST /v1/embeddings`, OpenAI's "Create embeddings"): `input` is a
 * non-empty string, or at most 2048 strings, tokens (integers) or token arrays; `model` is required
 * and never `auto`; `encoding_format`,
 * `dimensions`, `user`. An embedding is never streamed. The rest passes as sent.
 *
 * @throws RequestRejected invalid_request naming the field's path in `param`.
 */
export function checkEmbeddingsBody(body: Json): BodyChoices {
  const requested = model(body.model);
  // OpenAI requires it; and the router's tiers are chat models, so `auto` has nothing to pick
  if (absent(body.model) || requested === 'auto')
    throw invalid('model', 'model is required for embeddings: name an embedding model (GET /v1/models lists them).');
  input(body.input);
  const format = body.encoding_format;
  if (!absent(format) && (typeof format !== 'string' || !ENCODINGS.has(format)))
    throw invalid('encoding_format', `encoding_format must be one of ${[...ENCODINGS].join(', ')}.`);
  integer(body, 'dimensions', 1);
  const user = optionalText(body, 'user');
  return { model: requested, stream: false, includeUsage: false, ...(user !== undefined ? { user } : {}) };
}

function input(v: unknown): void {
  if (absent(v)) throw invalid('input', 'input is required: a string, an array of strings, or tokens.');
  if (typeof v === 'string') {
    if (v.length === 0) throw invalid('input', 'input must not be empty.');
    return;
  }
  if (!Array.isArray(v) || v.length === 0) throw invalid('input', 'input must be a non-empty string, or a non-empty array of strings, tokens or token arrays.');
  if (v.length > MAX_INPUTS) throw invalid('input', `input has ${v.length} entries; at most ${MAX_INPUTS} are allowed.`);
  const token = (t: unknown) => typeof t === 'number' && Number.isInteger(t) && t >= 0;
  // one kind throughout, as OpenAI takes it: strings, tokens, or arrays of tokens
  const first: unknown = v[0];
  const ok =
    typeof first === 'string'
      ? v.every((s) => typeof s === 'string' && s.length > 0)
      : token(first)
        ? v.every(token)
        : v.every((a) => Array.isArray(a) && a.length > 0 && a.every(token));
  if (!ok) throw invalid('input', 'input must be strings (none empty), tokens (integers), or non-empty arrays of tokens, one kind throughout.');
}
