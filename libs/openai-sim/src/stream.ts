import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChatPlan, choicesOf, SYSTEM_FINGERPRINT, usageOf } from './completion.js';

/** Content chunks carry at least this many tokens (fewer only for the last). */
export const TOKENS_PER_CHUNK = 3;

/** Groups the reply's pieces into chunk texts of about {@link TOKENS_PER_CHUNK} tokens. */
export function chunkTexts(plan: Pick<ChatPlan, 'pieces'>): string[] {
  const out: string[] = [];
  let text = '';
  let tokens = 0;
  for (const p of plan.pieces) {
    text += p.text;
    tokens += p.tokens;
    if (tokens >= TOKENS_PER_CHUNK) {
      out.push(text);
      text = '';
      tokens = 0;
    }
  }
  if (text !== '') out.push(text);
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
export function streamFrames(plan: ChatPlan, id: string, created: number): string[] {
  // Serialise the constant envelope once; only the choices part differs per chunk.
  const head = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(plan.model)},"service_tier":"default","system_fingerprint":"${SYSTEM_FINGERPRINT}","choices":`;
  const tail = plan.includeUsage ? ',"usage":null}\n\n' : '}\n\n';
  const frames: string[] = [];
  const choices = choicesOf(plan);
  for (let index = 0; index < choices.length; index++) {
    const c = choices[index] as (typeof choices)[number];
    const choice = (delta: object, finish: string | null): string =>
      `${head}[${JSON.stringify({ index, delta, logprobs: null, finish_reason: finish })}]${tail}`;
    const call = c.toolCall;
    if (call === undefined) {
      frames.push(choice({ role: 'assistant', content: '', refusal: null }, null));
      for (const text of chunkTexts(c)) frames.push(choice({ content: text }, null));
    } else {
      // OpenAI's indexed tool-call deltas: id, type and name first, then argument fragments.
      const opening = { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
      frames.push(choice({ role: 'assistant', content: null, tool_calls: [opening], refusal: null }, null));
      for (const text of chunkTexts(c)) frames.push(choice({ tool_calls: [{ index: 0, function: { arguments: text } }] }, null));
    }
    frames.push(choice({}, c.finishReason));
  }
  if (plan.includeUsage) frames.push(`${head}[],"usage":${JSON.stringify(usageOf(plan))}}\n\n`);
  frames.push('data: [DONE]\n\n');
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

/**
 * Writes the frames, pausing `tokenLatencyMs` between them. Resolves true only
 * if the whole stream, `[DONE]` included, was handed to the socket.
 */
export async function writeStream(res: ServerResponse, frames: readonly string[], tokenLatencyMs: number): Promise<boolean> {
  if (tokenLatencyMs <= 0) {
    if (res.destroyed) return false;
    // One write keeps a zero-latency stream as cheap as a plain answer.
    res.end(frames.join(''));
    return true;
  }
  for (let i = 0; i < frames.length; i++) {
    if (res.destroyed) return false;
    const frame = frames[i] as string;
    if (i === frames.length - 1) {
      res.end(frame);
      return true;
    }
    res.write(frame);
    if (!(await waitUnlessClosed(res, tokenLatencyMs))) return false;
  }
  return false;
}
