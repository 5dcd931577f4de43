import { meaningVeto } from './guard.js';

/** A semantic candidate as the verdict sees it: its semantic text and its cosine similarity to the query. */
interface Candidate {
  text: string;
  similarity: number;
}

/** A hit (the index of the candidate whose answer to serve), or why there is none. */
type Verdict = { hit: number; similarity: number } | { hit: undefined; best?: number; vetoed?: string };

/**
 * Picks the semantic hit among `candidates` (best first): the first at or above `threshold` that
 * the meaning guard does not veto. Without one, reports the best similarity seen and the first
 * veto's reason, for the timeline. Candidates below the threshold are never given to the guard.
 *
 * @example
 * judge('Turn on dark mode', [{ text: 'Turn off dark mode', similarity: 0.93 }, { text: 'turn on dark mode please', similarity: 0.91 }], 0.9)
 * // { hit: 1, similarity: 0.91 }
 */
export function judge(query: string, candidates: readonly Candidate[], threshold: number): Verdict {
  let vetoed: string | undefined;
  for (const [i, c] of candidates.entries()) {
    if (!(c.similarity >= threshold)) continue;
    const veto = meaningVeto(query, c.text);
    if (veto === undefined) return { hit: i, similarity: c.similarity };
    vetoed ??= veto;
  }
  const best = candidates.reduce<number | undefined>((m, c) => (m === undefined || c.similarity > m ? c.similarity : m), undefined);
  return { hit: undefined, ...(best !== undefined && { best }), ...(vetoed !== undefined && { vetoed }) };
}
