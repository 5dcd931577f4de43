import { Type, type Static } from '@sinclair/typebox';
import { ChatMessage } from './reply.js';

export const Priority = Type.Union([Type.Literal('critical'), Type.Literal('realtime'), Type.Literal('standard'), Type.Literal('batch'), Type.Literal('low')]);
export type Priority = Static<typeof Priority>;

/** Sampling parameters that change the answer, and so belong in the cache key. */
export const SamplingParams = Type.Object({
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 128000 })),
  stop: Type.Optional(Type.Array(Type.String(), { maxItems: 4 })),
  presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  seed: Type.Optional(Type.Integer()),
});
export type SamplingParams = Static<typeof SamplingParams>;

/** A validated chat request as it travels the pipeline. */
export const ChatRequest = Type.Object({
  /** `auto` lets the router choose. */
  model: Type.String({ minLength: 1 }),
  messages: Type.Array(ChatMessage, { minItems: 1 }),
  user: Type.Optional(Type.String()),
  feature: Type.Optional(Type.String()),
  priority: Priority,
  stream: Type.Boolean(),
  metadata: Type.Optional(Type.Record(Type.String(), Type.String())),
  params: SamplingParams,
  /** `skip` bypasses the cache for lookup and store. */
  cache: Type.Union([Type.Literal('default'), Type.Literal('skip')]),
});
export type ChatRequest = Static<typeof ChatRequest>;

/** The request plus what ingress learned about it; carried by every event on the request path. */
export const RequestContext = Type.Object({
  request: ChatRequest,
  /** Core NATS subject the terminal stage answers on (and streams chunks to). */
  replyTo: Type.Optional(Type.String()),
  frontDoor: Type.Union([Type.Literal('http'), Type.Literal('nats')]),
  /** Epoch ms when ingress accepted the request. */
  receivedAt: Type.Number(),
  /** Epoch ms after which nobody waits for the answer any more. */
  deadline: Type.Number(),
});
export type RequestContext = Static<typeof RequestContext>;
