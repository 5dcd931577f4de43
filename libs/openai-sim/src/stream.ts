import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChatPlan, choicesOf, SYSTEM_FINGERPRINT, usageOf } from './completion.js';
import { tokenLogprobs } from './logprobs.js';

/** Content chunks carry at least this many tokens (fewer only for the last). */
export const TOKENS_PER_CHUNK = 3;

/** One SSE frame and the completion tokens its delta carries (what a cut stream did not send). */
export interface Frame {
  text: string;
  tokens: number;
}

/** Groups the reply's pieces into chunks of about {@link TOKENS_PER_CHUNK} tokens. */
export function chunksOf(plan: Pick<ChatPlan, 'pieces'>): Frame[] {
  const out: Frame[] = [];
  let text = '';
  let tokens = 0;
  for (const p of plan.pieces) {
    text += p.text;
    tokens += p.tokens;
    if (tokens >= TOKENS_PER_CHUNK) {
      out.push({ text, tokens });
      text = '';
      tokens = 0;
    }
  }
  if (text !== '') out.push({ text, tokens });
  return out;
}

/**
 * The SSE frames of a streamed answer in OpenAI's order: per choice (each
 * chunk carries its `index`) a role chunk, content chunks (for a tool call:
 * the call's id/name, then argument fragments), a finish chunk; then the
 * optional usage chunk (`choices: []`), `[DONE]`.
 * With include_usage every chunk carries `usage: null` until the last, as
 * OpenAI does.
 */
export function streamFrames(plan: ChatPlan, id: string, created: number): Frame[] {
  // Serialise the constant envelope once; only the choices part differs per chunk.
  const head = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(plan.model)},"service_tier":"default","system_fingerprint":"${SYSTEM_FINGERPRINT}","choices":`;
  const tail = plan.includeUsage ? ',"usage":null}\n\n' : '}\n\n';
  const frames: Frame[] = [];
  const choices = choicesOf(plan);
  for (let index = 0; index < choices.length; index++) {
    const c = choices[index] as (typeof choices)[number];
    const choice = (delta: object, finish: string | null, tokens = 0, logprobs: object | null = null): Frame => ({
      text: `${head}[${JSON.stringify({ index, delta, logprobs, finish_reason: finish })}]${tail}`,
      tokens,
    });
    const call = c.toolCall;
    if (call === undefined) {
      // A refusal streams like content, in `refusal` deltas.
      const field = c.refusal ? 'refusal' : 'content';
      frames.push(choice(c.refusal ? { role: 'assistant', content: null, refusal: '' } : { role: 'assistant', content: '', refusal: null }, null));
      // Each chunk carries the logprobs of the tokens that start in it.
      const positioned = plan.logprobs === null ? [] : tokenLogprobs(c.content, plan.logprobs);
      let start = 0;
      for (const { text, tokens } of chunksOf(c)) {
        const end = start + text.length;
        const mine = positioned.filter((p) => p.start >= start && p.start < end).map((p) => p.entry);
        const logprobs = plan.logprobs === null ? null : { content: null, refusal: null, [field]: mine };
        frames.push(choice({ [field]: text }, null, tokens, logprobs));
        start = end;
      }
    } else {
      // OpenAI's indexed tool-call deltas: id, type and name first, then argument fragments.
      const opening = { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
      frames.push(choice({ role: 'assistant', content: null, tool_calls: [opening], refusal: null }, null));
      for (const { text, tokens } of chunksOf(c)) frames.push(choice({ tool_calls: [{ index: 0, function: { arguments: text } }] }, null, tokens));
    }
    frames.push(choice({}, c.finishReason));
  }
  if (plan.includeUsage) frames.push({ text: `${head}[],"usage":${JSON.stringify(usageOf(plan))}}\n\n`, tokens: 0 });
  frames.push({ text: 'data: [DONE]\n\n', tokens: 0 });
  return frames;
}

/**
 * Waits `ms` unless the client goes away first. Returns false when the
 * connection is closed, so callers stop work and count nothing.
 */
export async function waitUnlessClosed(res: ServerResponse, ms: number): Promise<boolean> {
  if (res.destroyed) return false;
  if (ms <= 0) return true;
  const ac = new AbortController();
  const onClose = (): void => ac.abort();
  res.once('close', onClose);
  try {
    await sleep(ms, undefined, { signal: ac.signal });
    return true;
  } catch {
    return false;
  } finally {
    res.off('close', onClose);
  }
}

/** How a stream ended: served through its last frame, or cut by the client with `unsentTokens` still to go. */
export type StreamOutcome = { kind: 'served' } | { kind: 'cut'; unsentTokens: number };

/**
 * Writes the frames, pausing `tokenLatencyMs` between them, and stops at once
 * (no further frame is built, written or waited for) when the client closes
 * the connection.
 */
export async function writeStream(res: ServerResponse, frames: readonly Frame[], tokenLatencyMs: number): Promise<StreamOutcome> {
  const unsentFrom = (i: number): StreamOutcome => ({ kind: 'cut', unsentTokens: frames.slice(i).reduce((t, f) => t + f.tokens, 0) });
  if (tokenLatencyMs <= 0) {
    if (res.destroyed) return unsentFrom(0);
    // One write keeps a zero-latency stream as cheap as a plain answer.
    res.end(frames.map((f) => f.text).join(''));
    return { kind: 'served' };
  }
  for (let i = 0; i < frames.length; i++) {
    if (res.destroyed) return unsentFrom(i);
    const frame = (frames[i] as Frame).text;
    if (i === frames.length - 1) {
      res.end(frame);
      return { kind: 'served' };
    }
    res.write(frame);
    if (!(await waitUnlessClosed(res, tokenLatencyMs))) return unsentFrom(i + 1);
  }
  return { kind: 'served' };
}
