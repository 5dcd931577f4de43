import type { Json } from './shapes.js';
import type { Tally } from './tally.js';

/**
 * Walks an Embeddings body (OpenAI API reference, "Create embeddings"): `input` is a string,
 * an array of strings, an array of token ids (each one token) or an array of arrays of token
 * ids; the tokens are their sum, with no framing. Anything else in the array is skipped.
 */
export function walkEmbeddings(body: Json, tally: Tally): void {
  const input = body.input;
  if (!Array.isArray(input)) return tally.add(input, false);
  for (const element of input) {
    if (typeof element === 'number') tally.fixed++;
    else if (Array.isArray(element)) tally.fixed += element.length;
    else tally.add(element, false);
  }
}
