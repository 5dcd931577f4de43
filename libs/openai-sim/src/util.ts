/** 32-bit FNV-1a; only needs to be stable and cheap, not strong. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** True for a plain JSON object. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One page of a cursor-paginated OpenAI list: `{ object: 'list', data, first_id, last_id, has_more }`. */
export interface Page<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/**
 * Cuts a page out of `items` (already in list order): those after the item whose id is `after`
 * (from the start when `after` is undefined or unknown), at most `limit` of them.
 */
export function pageOf<T extends { id: string }, R>(items: readonly T[], after: string | undefined, limit: number, show: (item: T) => R): Page<R> {
  const start = after === undefined ? 0 : items.findIndex((x) => x.id === after) + 1;
  const slice = items.slice(start, start + limit);
  return {
    object: 'list',
    data: slice.map(show),
    first_id: slice[0]?.id ?? null,
    last_id: slice.at(-1)?.id ?? null,
    has_more: start + limit < items.length,
  };
}
