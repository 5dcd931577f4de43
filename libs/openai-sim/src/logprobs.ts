import { decode, encode } from 'gpt-tokenizer';
import { fnv1a } from './util.js';
import { VOCAB } from './vocab.js';

/** OpenAI's upper bound for `top_logprobs`. */
export const MAX_TOP_LOGPROBS = 20;

/** One alternative token, as in `top_logprobs`. */
interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

/** One output token's entry of `choices[i].logprobs.content`. */
export interface TokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

/** An output token with where it starts in the reply text, so streamed chunks can take theirs. */
export interface PositionedLogprob {
  start: number;
  entry: TokenLogprob;
}

/**
 * One entry per o200k_base token of `text`, deterministic: the chosen token's
 * logprob is drawn from a hash of its position and text in (-2, 0], and its
 * `top` alternatives (the chosen token first, then filler words) are each less
 * likely than the one before, as a sampler at temperature 0 would see them.
 */
export function tokenLogprobs(text: string, top: number): PositionedLogprob[] {
  const out: PositionedLogprob[] = [];
  let start = 0;
  const ids = encode(text);
  for (let i = 0; i < ids.length; i++) {
    const token = decode([ids[i] as number]);
    const h = fnv1a(`${i}\0${token}`);
    const logprob = -round((h % 2000) / 1000);
    const alternatives: TopLogprob[] = [];
    for (let k = 0; k < top; k++) {
      if (k === 0) {
        alternatives.push(entry(token, logprob));
        continue;
      }
      const word = ' ' + (VOCAB[(h + k * 7919) % VOCAB.length] as string);
      alternatives.push(entry(word === token ? ' sim' : word, round(logprob - k - ((h >>> (k % 16)) % 100) / 100)));
    }
    out.push({ start, entry: { ...entry(token, logprob), top_logprobs: alternatives } });
    start += token.length;
  }
  return out;
}

function entry(token: string, logprob: number): TopLogprob {
  return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
