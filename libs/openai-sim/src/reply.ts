import { createHash } from 'node:crypto';
import { valueForSchema } from './schema.js';
import { countText } from './tokens.js';
import { fnv1a } from './util.js';
import { VOCAB } from './vocab.js';

/** A slice of the reply whose token count is known; streamed chunks are made of these. */
interface Piece {
  text: string;
  tokens: number;
}

/** A function tool call as OpenAI returns it (`arguments` is the reply's `content`). */
interface ToolCall {
  id: string;
  name: string;
}

/** The deterministic reply to one prompt (one choice). */
export interface Reply {
  /** The text; for a tool call, the arguments' JSON text (the message's `content` is then null). */
  content: string;
  pieces: Piece[];
  completionTokens: number;
  finishReason: 'stop' | 'length' | 'tool_calls';
  /** Set when the reply is a tool call. */
  toolCall?: ToolCall;
  /** Set when the reply is a refusal: `content` is then the refusal text (the message's `content` is null). */
  refusal?: true;
}

export const MIN_REPLY_TOKENS = 8;
export const MAX_REPLY_TOKENS = 64;
/** A last user message containing this text is refused (`content: null`, `refusal` set), to test refusal handling. */
const REFUSE_MARKER = 'SIM_REFUSE';
export const REFUSAL_TEXT = "I'm sorry, but I can't help with that request.";

const ECHO = 'Echo:';
const ECHO_TOKENS = countText(ECHO);
const MAX_ECHO_WORDS = 8;
const MAX_ECHO_WORD_CHARS = 24;

/** Argument / JSON text is streamed in fragments of this many characters. */
const FRAGMENT_CHARS = 8;
const FALLBACK_WORDS = ['sim'];

/** Natural reply length for a prompt, in [MIN_REPLY_TOKENS, MAX_REPLY_TOKENS]. */
export function targetTokens(lastUserText: string): number {
  return MIN_REPLY_TOKENS + (fnv1a(lastUserText) % (MAX_REPLY_TOKENS - MIN_REPLY_TOKENS + 1));
}

/**
 * The reply to `lastUserText`: "Echo:" plus its first few ASCII words, padded
 * with one-token filler words, cut to `maxTokens`. Only ASCII-letter words are
 * echoed because words separated by single spaces are separate pre-tokens for
 * the o200k tokenizer, so the sum of per-piece counts equals the count of the
 * joined text.
 */
export function buildReply(lastUserText: string, maxTokens: number | null): Reply {
  const hash = fnv1a(lastUserText);
  const target = targetTokens(lastUserText);
  const budget = maxTokens === null ? target : Math.min(target, maxTokens);
  const pieces: Piece[] = [];
  let used = 0;

  if (ECHO_TOKENS <= budget) {
    pieces.push({ text: ECHO, tokens: ECHO_TOKENS });
    used = ECHO_TOKENS;
    const words = /[A-Za-z]+/g;
    for (let n = 0; n < MAX_ECHO_WORDS; n++) {
      const m = words.exec(lastUserText);
      if (m === null) break;
      const text = ' ' + m[0].slice(0, MAX_ECHO_WORD_CHARS);
      const tokens = countText(text);
      if (used + tokens > budget) break;
      pieces.push({ text, tokens });
      used += tokens;
    }
  }

  let state = hash | 1;
  while (used < budget) {
    // xorshift32: a cheap deterministic walk through the filler vocabulary.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const word = VOCAB[(state >>> 0) % VOCAB.length] as string;
    pieces.push({ text: pieces.length === 0 ? word : ' ' + word, tokens: 1 });
    used += 1;
  }

  let content = '';
  for (const p of pieces) content += p.text;
  return {
    content,
    pieces,
    completionTokens: used,
    finishReason: maxTokens !== null && target > maxTokens ? 'length' : 'stop',
  };
}

/** A function the model may call; `parameters` is its JSON schema. */
export interface Tool {
  name: string;
  parameters: unknown;
}

/**
 * The reply of one choice to `text` (the last user message): a refusal when
 * it holds {@link REFUSE_MARKER}, else a call of `tool` when one is due, else
 * JSON when `format` asks for it, else the echo reply.
 */
export function replyTo(text: string, choice: number, cap: number | null, tool: Tool | undefined, format: Format | undefined): Reply {
  if (text.includes(REFUSE_MARKER)) return { ...structuredReply(REFUSAL_TEXT, cap, 'stop'), refusal: true };
  if (tool !== undefined) return toolCallReply(tool, text, choice, cap);
  if (format !== undefined) return jsonReply(format, text, choice, cap);
  return buildReply(choice === 0 ? text : `${text}\n#${choice}`, cap);
}

/** A structured-output format: any JSON object, or JSON valid against `schema`. */
export type Format = { kind: 'json_object' } | { kind: 'json_schema'; schema: unknown };

/** The prompt's first ASCII words, rotated by the choice index so that choices differ. */
function promptWords(text: string, choice: number): string[] {
  const words = (text.match(/[A-Za-z]+/g) ?? []).slice(0, MAX_ECHO_WORDS).map((w) => w.slice(0, MAX_ECHO_WORD_CHARS));
  const list = words.length > 0 ? words : FALLBACK_WORDS;
  const k = choice % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function toolCallReply(tool: Tool, text: string, choice: number, cap: number | null): Reply {
  const args = JSON.stringify(valueForSchema(tool.parameters, promptWords(text, choice)) ?? {});
  const id = `call_${createHash('sha256').update(`${tool.name}\0${args}\0${text}\0${choice}`).digest('hex').slice(0, 24)}`;
  return { ...structuredReply(args, cap, 'tool_calls'), toolCall: { id, name: tool.name } };
}

function jsonReply(format: Format, text: string, choice: number, cap: number | null): Reply {
  const words = promptWords(text, choice);
  const value = format.kind === 'json_object' ? { answer: words.join(' ') } : valueForSchema(format.schema, words);
  return structuredReply(JSON.stringify(value), cap, 'stop');
}

/**
 * A reply whose text is JSON: `completionTokens` is the count of the whole
 * text; cut (to invalid JSON, as OpenAI does) with finish_reason 'length'
 * when it exceeds `cap`. Pieces are fixed-size fragments for streaming.
 */
function structuredReply(json: string, cap: number | null, finish: 'stop' | 'tool_calls'): Reply {
  let content = json;
  let finishReason: Reply['finishReason'] = finish;
  if (cap !== null && countText(json) > cap) {
    // The longest prefix within the cap (token counts grow with the prefix).
    let lo = 0;
    let hi = json.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (countText(json.slice(0, mid)) <= cap) lo = mid;
      else hi = mid - 1;
    }
    content = json.slice(0, lo);
    finishReason = 'length';
  }
  // Fragments cut through tokens, so a fragment's count is the growth of the
  // prefix count: the fragments' counts then add up to the whole text's.
  const pieces: Piece[] = [];
  let before = 0;
  for (let i = 0; i < content.length; i += FRAGMENT_CHARS) {
    const upTo = countText(content.slice(0, i + FRAGMENT_CHARS));
    pieces.push({ text: content.slice(i, i + FRAGMENT_CHARS), tokens: Math.max(0, upTo - before) });
    before = Math.max(before, upTo);
  }
  return { content, pieces, completionTokens: countText(content), finishReason };
}
