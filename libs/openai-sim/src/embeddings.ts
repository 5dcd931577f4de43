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
 * A deterministic unit vector for `input`, built so that paraphrases sharing words and stems land
 * close and unrelated texts land far. It is a test stand-in, not a model: it knows spelling, not
 * meaning. "How do I reset my password?" and "how can I reset my password" are close (cosine
 * 0.99); "cancel my plan" and "end my subscription" are far, though a real embedding model puts
 * them together; "turn on dark mode" and "turn off dark mode" are close, as they are for real
 * models too (that is what the cache's meaning guard is for).
 *
 * Features, each hashed with a sign into one of `dimensions` buckets (signed feature hashing), then
 * the vector is L2-normalised:
 * - words, lower-cased and cut to a crude stem by a small suffix stripper (-ing, -ed, -es, -s, -ly,
 *   -ation, -ment...; crude: "creation" and "create" stay apart), weight 1;
 * - bigrams of adjacent stems, function words skipped, weight 0.6, so word order counts a little;
 * - character 3- and 4-grams of each word with its boundaries, together weighing 0.6 a word, so
 *   forms the stripper misses and typos still share something;
 * - a short list of function words ("the", "how", "do", "can", "my"...) counts 0.15 and forms no
 *   bigrams or n-grams, so "How do I" and "How can I" differ little; words that frame a request
 *   ("explain", "tell", "possible", "actually"...) count 0.4.
 * Linear in the text, no model, no network: about 15 µs for a 100-character text. Token-id inputs
 * use `#<id>` as the words (with bigrams, without character n-grams).
 */
export function embed(input: EmbeddingInput, dimensions: number): Float32Array {
  const v = new Float64Array(dimensions);
  let features = 0;
  const add = (feature: string, weight: number): void => {
    const h = mix(fnv1a(feature));
    v[(h >>> 1) % dimensions]! += h & 1 ? -weight : weight;
    features++;
  };
  const words = typeof input === 'string' ? Array.from(input.toLowerCase().matchAll(/[\p{L}\p{N}]+/gu), (m) => m[0]) : input.map((id) => `#${id}`);
  let previous: string | undefined;
  for (const word of words) {
    const stop = STOP_WORDS.has(word);
    const weight = stop ? STOP_WEIGHT : FRAME_WORDS.has(word) ? FRAME_WEIGHT : 1;
    const stem = typeof input === 'string' ? crudeStem(word) : word;
    add(`w ${stem}`, weight);
    if (stop) continue;
    // bigrams skip function words: "reset the router" and "reset my router" share "reset router"
    if (previous !== undefined) add(`b ${previous} ${stem}`, BIGRAM_WEIGHT * weight);
    previous = stem;
    if (typeof input === 'string' && word.length >= 3) {
      const marked = `<${word}>`;
      const grams = marked.length - 2 + marked.length - 3;
      const w = (NGRAM_WEIGHT * weight) / Math.sqrt(grams);
      for (let i = 0; i + 3 <= marked.length; i++) add(`c ${marked.slice(i, i + 3)}`, w);
      for (let i = 0; i + 4 <= marked.length; i++) add(`c ${marked.slice(i, i + 4)}`, w);
    }
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

const BIGRAM_WEIGHT = 0.6;
const NGRAM_WEIGHT = 0.6;
const STOP_WEIGHT = 0.15;
const FRAME_WEIGHT = 0.4;

// Function words that carry little of what a question is about. Negators, numbers and the
// polarity words (on/off, in/out) are deliberately absent: they carry meaning.
const STOP_WORDS = new Set(
  (
    'a an the i me my mine we us our you your it its is are was were be been being am do does did ' +
    'to of for with at by from as about into onto can could should would will shall may might must ' +
    'how what which who whom whose where when why there here this that these those so just please ' +
    'hi hello hey thanks thank some any and or but if then than also s t m d ll re ve way get got'
  )
    .split(' ')
    .filter((w) => w !== ''),
);
// Words that frame a request rather than say what it is about ("Explain X", "Is it possible to X").
const FRAME_WORDS = new Set(
  'explain tell give show help want need know like possible able actually exactly usually really still yet own all some new another'.split(' '),
);

// Longest first; `ies`/`ied` become `y`. A stem keeps at least three letters.
const SUFFIXES: ReadonlyArray<readonly [string, string]> = [
  ['ations', ''],
  ['ation', ''],
  ['ments', ''],
  ['ment', ''],
  ['ingly', ''],
  ['ings', ''],
  ['ing', ''],
  ['edly', ''],
  ['ies', 'y'],
  ['ied', 'y'],
  ['es', ''],
  ['ed', ''],
  ['ly', ''],
  ['s', ''],
];

/** A crude stem: one suffix off, a doubled final consonant undone, a final e dropped ("stopped" → "stop", "configuring" → "configur"). */
function crudeStem(word: string): string {
  let stem = word;
  for (const [suffix, replacement] of SUFFIXES) {
    if (!word.endsWith(suffix) || word.length - suffix.length < 3) continue;
    if (suffix === 's' && (word.endsWith('ss') || word.endsWith('us') || word.endsWith('is'))) continue;
    stem = word.slice(0, -suffix.length) + replacement;
    break;
  }
  const n = stem.length;
  const last = stem[n - 1]!;
  if (stem !== word && n > 3 && last === stem[n - 2] && !'lsz'.includes(last) && !/[aeiou]/.test(last)) stem = stem.slice(0, -1);
  if (stem.length > 3 && stem.endsWith('e')) stem = stem.slice(0, -1);
  return stem;
}

// fnv1a spreads its low bits poorly over short strings; a multiply-xorshift finaliser fixes that.
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
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
