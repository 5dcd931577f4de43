import { describe, expect, it } from 'vitest';
import { decodeEntry, encodeEntry, semanticKeyOf, type SemanticEntry } from './entry.js';

const NOW = 1_700_000_000_000;
const KEY = `acme.${'ab'.repeat(32)}`;

function entry(overrides: Partial<SemanticEntry> = {}): SemanticEntry {
  const vector = new Float32Array([0.6, 0, -0.8, 0]);
  return {
    tenant: 'acme',
    partition: `acme//text-embedding-3-small/4/${'0'.repeat(64)}`,
    text: 'turn on dark mode',
    vector,
    cacheKey: KEY,
    requestId: 'r1',
    storedAt: NOW,
    expiresAt: NOW + 3_600_000,
    ...overrides,
  };
}

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const stored = () => JSON.parse(new TextDecoder().decode(encodeEntry(entry()))) as Record<string, unknown>;

describe('semantic entry codec', () => {
  it('given an entry, when encoded and decoded, then every field and the exact float32 values come back', () => {
    const e = entry({ vector: new Float32Array([0.1, -0.2, 0.3, Math.sqrt(1 - 0.14)]) });
    expect(decodeEntry(encodeEntry(e))).toEqual(e);
  });

  it('given an entry, then the bucket holds its vector as base64 of little-endian float32', () => {
    const raw = Buffer.from(stored().vector as string, 'base64');
    expect(raw.length).toBe(16);
    expect(raw.readFloatLE(0)).toBeCloseTo(0.6, 6);
    expect(raw.readFloatLE(8)).toBeCloseTo(-0.8, 6);
  });

  it('given a vector that is not unit length, then it decodes renormalised (the index scores by inner product)', () => {
    const v = stored();
    const raw = Buffer.alloc(8);
    raw.writeFloatLE(3, 0);
    raw.writeFloatLE(4, 4);
    expect(Array.from(decodeEntry(bytes({ ...v, vector: raw.toString('base64') }))!.vector)).toEqual([Math.fround(0.6), Math.fround(0.8)]);
  });

  it.each<[string, (v: Record<string, unknown>) => unknown]>([
    ['not JSON', () => 'not json {'],
    ['null', () => null],
    ['a missing tenant', ({ tenant: _, ...v }) => v],
    ['an empty tenant', (v) => ({ ...v, tenant: '' })],
    ['a numeric text', (v) => ({ ...v, text: 7 })],
    ['a missing cacheKey', ({ cacheKey: _, ...v }) => v],
    ['expiresAt as a string', (v) => ({ ...v, expiresAt: String(NOW) })],
    ['a vector as a number array', (v) => ({ ...v, vector: [0.6, 0.8] })],
    ['a vector not whole float32s', (v) => ({ ...v, vector: Buffer.alloc(6).toString('base64') })],
    ['an empty vector', (v) => ({ ...v, vector: '' })],
    ['a vector of zeros', (v) => ({ ...v, vector: Buffer.alloc(16).toString('base64') })],
    ['a NaN in the vector', (v) => ({ ...v, vector: Buffer.from(new Float32Array([NaN, 1]).buffer).toString('base64') })],
    ['an Infinity in the vector', (v) => ({ ...v, vector: Buffer.from(new Float32Array([Infinity, 1]).buffer).toString('base64') })],
    ['a vector outside the base64 alphabet', (v) => ({ ...v, vector: 'AAAA*AAA' })],
  ])('given a value with %s, then it decodes to undefined without throwing', (_what, make) => {
    const value = make(stored());
    const raw = typeof value === 'string' ? new TextEncoder().encode(value) : bytes(value);
    expect(decodeEntry(raw)).toBeUndefined();
  });

  it('given arbitrary bytes, then decoding never throws', () => {
    expect(decodeEntry(new Uint8Array([0xff, 0xfe, 0x00, 0x7b]))).toBeUndefined();
    expect(decodeEntry(new Uint8Array())).toBeUndefined();
  });

  it('given an exact cache key, then the entry is stored under that key, whose first token is the tenant', () => {
    expect(semanticKeyOf(KEY)).toBe(KEY);
    expect(semanticKeyOf(KEY).split('.')[0]).toBe('acme');
  });
});
