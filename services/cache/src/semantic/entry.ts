/**
 * One question the semantic cache can answer from: its embedding, and the exact key under which
 * `sluice_cache` holds (or will hold) the answer. Stored in `sluice_semantic` under
 * `semanticKeyOf(cacheKey)`; every replica's `SemanticIndex` follows that bucket.
 */
export interface SemanticEntry {
  tenant: string;
  /**
   * `${tenant}/${namespace ?? ''}/${embeddingModel}/${dimensions}/${contextHash}`: only the same
   * partition is ever searched, so tenants, namespaces, models and conversations never mix.
   */
  partition: string;
  /** The semantic text (the last user turn), for the guard. */
  text: string;
  /** Unit length, `dimensions` long; in the bucket as base64 little-endian float32. */
  vector: Float32Array;
  /** The exact key whose answer in `sluice_cache` this entry points to. */
  cacheKey: string;
  requestId: string;
  /** Epoch ms. */
  storedAt: number;
  /** Epoch ms: after it the entry is ignored by searches and dropped by sweeps. */
  expiresAt: number;
}

/** The JSON shape in the bucket: the entry with its vector as base64. */
type Stored = Omit<SemanticEntry, 'vector'> & { vector: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A vector whose length is off by more than this is renormalised on decode (float32 rounding stays well under it). */
const UNIT_TOLERANCE = 1e-3;
/** Far above any embedding model's width; a longer vector is a corrupt value, not an entry. */
const MAX_DIMENSIONS = 8192;

/**
 * The bucket key of the entry for an exact cache key: the key itself (`<tenant>.<sha256 hex>`), so
 * one request has at most one entry, a newer answer for the same key replaces it, and the tenant
 * is the key's first token (which the follower checks against `entry.tenant`).
 *
 * @example
 * await kv.put(semanticKeyOf(request.cacheKey), encodeEntry(entry));
 */
export function semanticKeyOf(cacheKey: string): string {
  return cacheKey;
}

/**
 * The entry as the bucket stores it: JSON, the vector as base64 of little-endian float32 (about
 * 1.37 kB for 256 dimensions, against ~3.5 kB as a JSON number array).
 *
 * @example
 * const bytes = encodeEntry({ tenant: 'dev', partition, text: 'turn on dark mode', vector, cacheKey, requestId, storedAt: now, expiresAt: now + 3_600_000 });
 */
export function encodeEntry(entry: SemanticEntry): Uint8Array {
  const { vector, ...rest } = entry;
  const stored: Stored = { ...rest, vector: vectorToBase64(vector) };
  return encoder.encode(JSON.stringify(stored));
}

/**
 * An entry read back from the bucket, or undefined for anything malformed (not JSON, a field
 * missing or of the wrong type, a vector that is empty, not whole float32s, too long, not finite
 * or all zeros). Never throws: a bad value written by anyone is skipped, not a crash. A vector
 * that is not unit length is renormalised, since the index scores by inner product.
 */
export function decodeEntry(bytes: Uint8Array): SemanticEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<Record<keyof Stored, unknown>>;
  if (
    typeof v.tenant !== 'string' ||
    v.tenant === '' ||
    typeof v.partition !== 'string' ||
    typeof v.text !== 'string' ||
    typeof v.cacheKey !== 'string' ||
    typeof v.requestId !== 'string' ||
    typeof v.vector !== 'string' ||
    !Number.isFinite(v.storedAt) ||
    !Number.isFinite(v.expiresAt)
  ) {
    return undefined;
  }
  const vector = vectorFromBase64(v.vector);
  if (!vector) return undefined;
  return {
    tenant: v.tenant,
    partition: v.partition,
    text: v.text,
    vector,
    cacheKey: v.cacheKey,
    requestId: v.requestId,
    storedAt: v.storedAt as number,
    expiresAt: v.expiresAt as number,
  };
}

function vectorToBase64(vector: Float32Array): string {
  const bytes = new Uint8Array(vector.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < vector.length; i++) view.setFloat32(i * 4, vector[i]!, true);
  return Buffer.from(bytes).toString('base64');
}

function vectorFromBase64(text: string): Float32Array | undefined {
  // Buffer skips characters outside the alphabet instead of failing: check the alphabet first
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length === 0 || bytes.length % 4 !== 0 || bytes.length > MAX_DIMENSIONS * 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vector = new Float32Array(bytes.length / 4);
  let norm = 0;
  for (let i = 0; i < vector.length; i++) {
    const x = view.getFloat32(i * 4, true);
    if (!Number.isFinite(x)) return undefined;
    vector[i] = x;
    norm += x * x;
  }
  if (norm === 0) return undefined;
  norm = Math.sqrt(norm);
  if (Math.abs(norm - 1) > UNIT_TOLERANCE) for (let i = 0; i < vector.length; i++) vector[i]! /= norm;
  return vector;
}
