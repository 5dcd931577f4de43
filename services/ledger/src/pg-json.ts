/**
 * A JSON document Postgres stores as `jsonb` and expands into `text` columns, whatever strings
 * it carries. A client may send any string (OpenAI accepts them): JSON allows `\u0000` and lone
 * surrogates, Postgres refuses both (22P05 "unsupported Unicode escape sequence", and text
 * columns hold no NUL). Those characters become U+FFFD, the replacement character, in the
 * projections only; the event stays as sent in the stream.
 *
 * Costs: one `JSON.stringify` and a regex scan for the usual document; a document that has such
 * a string (or a literal backslash-u-0000 in some text, a harmless false alarm) is rebuilt once.
 *
 * @example
 * pgJson([{ user: 'a\u0000b' }]) // '[{"user":"a\uFFFDb"}]' (the replacement character, raw)
 */
export function pgJson(value: unknown): string {
  const json = JSON.stringify(value);
  return SUSPECT.test(json) ? JSON.stringify(storable(value)) : json;
}

// how JSON.stringify writes a NUL and a lone surrogate (it escapes every surrogate it cannot pair)
const SUSPECT = /\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** The value with every string (keys included) made storable. */
function storable(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value);
  if (Array.isArray(value)) return value.map(storable);
  // Dates and other objects with toJSON serialize as JSON.stringify would
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [storableText(k), storable(v)]));
  }
  return value;
}

/** A string Postgres accepts in text and jsonb: lone surrogates and NUL become U+FFFD. */
function storableText(s: string): string {
  return s.toWellFormed().replaceAll('\u0000', '\uFFFD');
}
