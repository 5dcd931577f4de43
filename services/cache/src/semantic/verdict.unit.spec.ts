import { describe, expect, it } from 'vitest';
import { judge } from './verdict.js';

describe('judge', () => {
  it('given a candidate at the threshold the guard accepts, then it is the hit', () => {
    expect(judge('How do I reset my password?', [{ text: 'how can I reset my password', similarity: 0.9 }], 0.9)).toEqual({ hit: 0, similarity: 0.9 });
  });

  it('given the best candidate vetoed, then the next one above the threshold is the hit', () => {
    const v = judge(
      'Turn on dark mode',
      [
        { text: 'Turn off dark mode', similarity: 0.95 },
        { text: 'please turn on dark mode', similarity: 0.92 },
      ],
      0.9,
    );
    expect(v).toEqual({ hit: 1, similarity: 0.92 });
  });

  it('given every candidate above the threshold vetoed, then no hit, the best similarity and the first reason', () => {
    const v = judge(
      'Turn on dark mode',
      [
        { text: 'Turn off dark mode', similarity: 0.95 },
        { text: 'Turn on dark mode tomorrow', similarity: 0.91 },
        { text: 'Turn on the lights', similarity: 0.5 },
      ],
      0.9,
    );
    expect(v).toEqual({ hit: undefined, best: 0.95, vetoed: 'polarity differs: "Turn on" vs "Turn off"' });
  });

  it('given candidates below the threshold, then no hit and no veto: the guard is not asked', () => {
    expect(judge('Turn on dark mode', [{ text: 'Turn off dark mode', similarity: 0.89 }], 0.9)).toEqual({ hit: undefined, best: 0.89 });
  });

  it('given no candidates, then no hit and nothing to report', () => {
    expect(judge('anything', [], 0.9)).toEqual({ hit: undefined });
  });

  it('given a NaN similarity, then it never hits', () => {
    expect(judge('How do I reset my password?', [{ text: 'How do I reset my password?', similarity: Number.NaN }], 0.9).hit).toBeUndefined();
  });
});
