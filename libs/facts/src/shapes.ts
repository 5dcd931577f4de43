/** A JSON object (not an array, not null): the only thing a body's fields are read from. */
export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A finite number ≥ 0, else undefined (a bad value is validation's to reject, not ours). */
export function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * JSON text of a value for counting, '' for what cannot be written (a nesting deeper than the
 * engine's stack): counting must never throw on a bad shape.
 */
export function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}
