import type { Endpoint, RequestContext } from '@sluice/contracts';

/** Kept free for the envelopes, the usage and the reply subject around the answer. */
const ENVELOPE_BYTES = 16 * 1024;
/** Cuts of one string before moving on to the next longest (each cut re-measures). */
const CUTS_PER_STRING = 4;

type Path = Array<string | number>;

/** An answer's body, cut if it had to be, and what was cut. */
export interface FittedBody {
  body: unknown;
  /** The strings cut, longest first: where, and their length before and after. */
  cuts: Array<{ path: string; from: number; to: number }>;
}

/**
 * Makes an upstream's answer fit the messages that carry it, so a request the upstream served is
 * always billed. The largest of them is the stored answer (`sluice_results`): the request context,
 * then the answer body twice (in `chat.completed` and in the client's result). An answer over
 * that is cut rather than lost with its usage: the body is opaque, so its longest strings (a
 * message's content, a tool call's arguments, an output text) are cut, longest first, at a
 * character boundary, and the answer says it stopped short (a chat choice's `finish_reason`
 * `length`, a response's `status` `incomplete`); the caller says so on the timeline. A body
 * whose bulk is not text (huge logprobs arrays) may still not fit: then the publish fails. Pure.
 *
 * @example
 * fitBody(completion, 'chat.completions', ctx, 8 * 1024 * 1024) // { body: completion, cuts: [] }
 */
export function fitBody(body: unknown, endpoint: Endpoint, ctx: RequestContext, maxPayload: number): FittedBody {
  const room = Math.floor((maxPayload - Buffer.byteLength(JSON.stringify(ctx)) - ENVELOPE_BYTES) / 2);
  let size = Buffer.byteLength(JSON.stringify(body) ?? '');
  if (size <= room) return { body, cuts: [] };
  const cut = structuredClone(body);
  const cuts: FittedBody['cuts'] = [];
  for (const { path, value } of strings(cut).sort((a, b) => b.value.length - a.value.length)) {
    let text = value;
    for (let i = 0; i < CUTS_PER_STRING && size > room && text.length > 0; i++) {
      const bytes = Buffer.byteLength(JSON.stringify(text));
      // keep the share of characters that leaves the excess out; the next round re-measures
      const keep = Math.max(0, Math.floor((text.length * (bytes - (size - room))) / bytes) - 1);
      text = sliceAtBoundary(text, keep);
      size -= bytes - Buffer.byteLength(JSON.stringify(text));
    }
    if (text.length < value.length) {
      set(cut, path, text);
      cuts.push({ path: path.join('.'), from: value.length, to: text.length });
      markShort(cut, endpoint, path);
    }
    if (size <= room) break;
  }
  return { body: cut, cuts };
}

/** Every string in a JSON value, with its path. */
function strings(value: unknown, path: Path = [], out: Array<{ path: Path; value: string }> = []): Array<{ path: Path; value: string }> {
  if (typeof value === 'string') out.push({ path, value });
  else if (Array.isArray(value)) value.forEach((v, i) => strings(v, [...path, i], out));
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) strings(v, [...path, k], out);
  return out;
}

function set(root: unknown, path: Path, value: unknown): void {
  let at = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path[path.length - 1]!] = value;
}

/** The answer says it stopped short where it was cut: the choice's finish_reason, the response's status. */
function markShort(body: unknown, endpoint: Endpoint, path: Path): void {
  const b = body as Record<string, unknown>;
  if (endpoint === 'chat.completions' && path[0] === 'choices' && typeof path[1] === 'number') {
    const choice = (b.choices as Array<Record<string, unknown>>)[path[1]];
    if (choice) choice.finish_reason = 'length';
  } else if (endpoint === 'responses' && path[0] === 'output') {
    b.status = 'incomplete';
    b.incomplete_details = { reason: 'max_output_tokens' };
  }
}

/** The first `end` characters, never splitting a surrogate pair. */
function sliceAtBoundary(text: string, end: number): string {
  const code = text.charCodeAt(end - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? end - 1 : end);
}
