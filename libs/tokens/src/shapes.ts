/**
 * Texts of the shapes that make tokenizers slow, and ordinary ones to compare, generated from a
 * seed so that tests and the benchmark (scripts/bench-input.ts) see the same text every run.
 */

/** A deterministic pseudo-random source (a linear congruential generator). */
export function seeded(seed = 1): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS = (
  'the of and to in is that it for on with as was by this be are from at or an which but not have has had were can ' +
  'all their will one would there what so if about out up into than them some could other more these time only may ' +
  'then its also new use two how our first well way even because any most over such through where much after between ' +
  'request tenant gateway latency budget tokenizer throughput replica consumer partition backpressure idempotent ' +
  'deterministic reconciliation observability misconfigured unbelievably internationalization'
).split(' ');

/** English-like prose of about `chars` chars: sentences of words, commas, numbers, paragraphs. */
export function prose(chars: number, seed = 1): string {
  const rnd = seeded(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const n = 5 + Math.floor(rnd() * 15);
    const words = Array.from({ length: n }, () => WORDS[Math.floor(rnd() * WORDS.length)]!);
    if (rnd() < 0.2) words.splice(1 + Math.floor(rnd() * (n - 1)), 0, String(Math.floor(rnd() * 100_000)));
    let sentence = words.join(rnd() < 0.3 ? ', ' : ' ');
    sentence = `${sentence[0]!.toUpperCase()}${sentence.slice(1)}.${rnd() < 0.1 ? '\n\n' : ' '}`;
    parts.push(sentence);
    length += sentence.length;
  }
  return parts.join('').slice(0, chars);
}

/** `chars` chars drawn from `alphabet`. */
export function drawn(alphabet: string, chars: number, seed = 1): string {
  const rnd = seeded(seed);
  const out = new Array<string>(chars);
  for (let i = 0; i < chars; i++) out[i] = alphabet[Math.floor(rnd() * alphabet.length)]!;
  return out.join('');
}

/** `chars` CJK ideographs, no spaces or punctuation: one pre-tokenizer piece. */
function cjk(chars: number, seed = 1): string {
  const rnd = seeded(seed);
  return Array.from({ length: chars }, () => String.fromCharCode(0x4e00 + Math.floor(rnd() * 4_000))).join('');
}

/** Runs of 500 to 2,000 spaces, each ended by a letter. */
function spaceRuns(chars: number, seed = 1): string {
  const rnd = seeded(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const run = `${' '.repeat(500 + Math.floor(rnd() * 1_500))}a`;
    parts.push(run);
    length += run.length;
  }
  return parts.join('').slice(0, chars);
}

/**
 * Each shape as message text of about `bytes` UTF-8 bytes. `word x` and `word random` are one
 * long word; `combining` is one letter and its marks (2 bytes each); `cjk` is one long run of
 * ideographs (3 bytes each).
 */
export const TEXT_SHAPES: Record<string, (bytes: number) => string> = {
  prose: (bytes) => prose(bytes),
  'word x': (bytes) => 'x'.repeat(bytes),
  'word random': (bytes) => drawn('abcdefghijklmnopqrstuvwxyz', bytes),
  'words random': (bytes) => drawn('abcdefghijklmnopqrstuvwxyz     ', bytes),
  spaces: (bytes) => ' '.repeat(bytes),
  'spaces then a': (bytes) => `${' '.repeat(bytes - 1)}a`,
  'space runs': (bytes) => spaceRuns(bytes),
  'whitespace mixed': (bytes) => drawn('   \t\n\r', bytes),
  punctuation: (bytes) => drawn('!@#$%^&*()-=+[]{};:,.<>/?|~', bytes),
  combining: (bytes) => `a${'\u0301'.repeat(Math.floor(bytes / 2) - 1)}`,
  cjk: (bytes) => cjk(Math.floor(bytes / 3)),
  emoji: (bytes) => '😀'.repeat(Math.floor(bytes / 4)),
};
