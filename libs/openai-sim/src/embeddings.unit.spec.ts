import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DIMENSIONS, embed, type EmbeddingPlan, embeddingsBody, planEmbeddings } from './embeddings.js';
import { isApiError } from './errors.js';

const MODELS = new Set(['text-embedding-3-small']);
const M = 'text-embedding-3-small';

const cos = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * (b[i] as number), 0);
const norm = (a: Float32Array): number => Math.sqrt(cos(a, a));

describe('embed', () => {
  it('returns deterministic unit vectors of the requested size', () => {
    for (const text of ['hello world', '!!!', 'a', 'The quick brown fox']) {
      const v = embed(text, 64);
      expect(v).toHaveLength(64);
      expect(norm(v)).toBeCloseTo(1, 5);
      expect(embed(text, 64)).toEqual(v);
    }
    expect(norm(embed([1, 2, 3], 32))).toBeCloseTo(1, 5);
  });

  it('gives texts sharing words a higher cosine than unrelated texts', () => {
    const a = embed('the cat sat on the mat', 256);
    const b = embed('a cat sat on a rug', 256);
    const c = embed('quarterly revenue grew strongly', 256);
    expect(cos(a, b)).toBeGreaterThan(cos(a, c) + 0.2);
    expect(cos(a, embed('The CAT sat on the mat!', 256))).toBeCloseTo(1, 5);
  });

  it('puts a paraphrase sharing stems above 0.8 and unrelated texts below 0.3', () => {
    const q = embed('How do I reset my password?', 256);
    expect(cos(q, embed('how can I reset my password', 256))).toBeGreaterThan(0.8);
    expect(cos(embed('How do I configure the proxy settings?', 256), embed('how can I configure my proxy settings', 256))).toBeGreaterThan(0.8);
    expect(cos(q, embed('What is the capital of France?', 256))).toBeLessThan(0.3);
    expect(cos(q, embed('Summarise this quarterly revenue report', 256))).toBeLessThan(0.3);
    // a different topic sharing the frame lands between the two
    const topic = cos(q, embed('How do I reset my router?', 256));
    expect(topic).toBeGreaterThan(0.3);
    expect(topic).toBeLessThan(0.8);
  });

  it('knows spelling, not meaning: a synonym paraphrase stays far (a real model would put it close)', () => {
    expect(cos(embed('cancel my plan', 256), embed('end my subscription', 256))).toBeLessThan(0.3);
  });

  it('is deterministic across sizes and keeps token-id inputs working', () => {
    expect(embed('Reset my password', 1536)).toEqual(embed('Reset my password', 1536));
    const ids = embed([1212, 318, 257, 1332], 64);
    expect(norm(ids)).toBeCloseTo(1, 5);
    expect(ids).toEqual(embed([1212, 318, 257, 1332], 64));
    expect(cos(ids, embed([1212, 318, 257, 1333], 64))).toBeGreaterThan(cos(ids, embed([7, 8, 9, 10], 64)));
  });
});

describe('planEmbeddings', () => {
  it('accepts a string, string[] and token arrays and counts tokens', () => {
    const one = planEmbeddings({ model: M, input: 'hello there world' }, MODELS) as EmbeddingPlan;
    expect(one.inputs).toEqual(['hello there world']);
    expect(one.promptTokens).toBe(encode('hello there world').length);
    expect(one.dimensions).toBe(DEFAULT_DIMENSIONS);
    const many = planEmbeddings({ model: M, input: ['a b', 'c d e'], dimensions: 8 }, MODELS) as EmbeddingPlan;
    expect(many.promptTokens).toBe(encode('a b').length + encode('c d e').length);
    expect(many.dimensions).toBe(8);
    const ids = planEmbeddings({ model: M, input: [[1, 2, 3], [4]] }, MODELS) as EmbeddingPlan;
    expect(ids.promptTokens).toBe(4);
    const flat = planEmbeddings({ model: M, input: [5, 6] }, MODELS) as EmbeddingPlan;
    expect(flat.inputs).toEqual([[5, 6]]);
  });

  it.each([
    [{ input: 'x' }, 400],
    [{ model: M }, 400],
    [{ model: M, input: '' }, 400],
    [{ model: M, input: [] }, 400],
    [{ model: M, input: ['ok', 3] }, 400],
    [{ model: M, input: 'x', dimensions: 0 }, 400],
    [{ model: M, input: 'x', encoding_format: 'hex' }, 400],
    [{ model: 'nope', input: 'x' }, 404],
  ])('rejects %j with %d', (body, status) => {
    const r = planEmbeddings(body, MODELS);
    expect(isApiError(r) && r.status).toBe(status);
  });
});

describe('embeddingsBody', () => {
  it('encodes base64 as little-endian float32, identical to the float form', () => {
    const plan = planEmbeddings({ model: M, input: ['one', 'two'], dimensions: 16 }, MODELS) as EmbeddingPlan;
    const asFloat = embeddingsBody(plan) as { data: { embedding: number[]; index: number }[]; usage: { prompt_tokens: number } };
    const asB64 = embeddingsBody({ ...plan, base64: true }) as { data: { embedding: string }[] };
    expect(asFloat.data.map((d) => d.index)).toEqual([0, 1]);
    expect(asFloat.usage.prompt_tokens).toBe(plan.promptTokens);
    const buf = Buffer.from(asB64.data[1]?.embedding ?? '', 'base64');
    const decoded = Array.from({ length: 16 }, (_, i) => buf.readFloatLE(i * 4));
    expect(decoded).toEqual(asFloat.data[1]?.embedding);
  });
});
