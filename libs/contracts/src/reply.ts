import { Type, type Static } from '@sinclair/typebox';

export const ChatMessage = Type.Object({
  role: Type.Union([Type.Literal('system'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('developer'), Type.Literal('tool')]),
  content: Type.String(),
  name: Type.Optional(Type.String()),
});
export type ChatMessage = Static<typeof ChatMessage>;

export const Usage = Type.Object({
  prompt_tokens: Type.Integer({ minimum: 0 }),
  completion_tokens: Type.Integer({ minimum: 0 }),
  total_tokens: Type.Integer({ minimum: 0 }),
});
export type Usage = Static<typeof Usage>;

/**
 * What a client receives on its reply inbox. Exactly one final message (a result or an error)
 * ends every request; with `stream: true` chunk messages come before it.
 */
export interface ChatResult {
  requestId: string;
  model: string;
  message: ChatMessage;
  finishReason: string;
  usage: Usage;
  cached: boolean;
  /** Unix seconds. */
  created: number;
}

export interface ChatChunk {
  requestId: string;
  model: string;
  chunk: { content: string; role?: 'assistant' };
  /**
   * True on chunks of an answer served from the cache. HTTP ingress sends its `x-sluice-cache`
   * header with the first chunk, before the final result says whether the answer was cached.
   */
  cached?: boolean;
}

export interface ChatErrorReply {
  requestId?: string;
  error: { code: string; message: string; status: number; retryAfterMs?: number };
}

export type ChatReply = ChatResult | ChatChunk | ChatErrorReply;

export function isChunk(reply: ChatReply): reply is ChatChunk {
  return 'chunk' in reply;
}
export function isError(reply: ChatReply): reply is ChatErrorReply {
  return 'error' in reply;
}
