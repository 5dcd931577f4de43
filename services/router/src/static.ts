import { decided, readRequested, type Bus, type Decided, type Emitted, type Received } from '@sluice/bus';
import {
  completionId,
  EventType,
  makeEvent,
  replayChunks,
  ServiceName,
  settledContext,
  STATIC_FALLBACK,
  STATIC_PRICE,
  type ChatReply,
  type ChatResult,
  type Consumers,
  type Endpoint,
  type SluiceConfig,
} from '@sluice/contracts';
import { classify, lastUserTurn } from './classify.js';

type Router = typeof Consumers.router;

/** What level 3 answers with: a category's answer, or the fallback; and why, for the timeline. */
interface StaticChoice {
  content: string;
  /** Set when a category matched. */
  category?: string;
  reason: string;
}

/**
 * Picks level 3's answer for the last user turn (`undefined`: it could not be read, `unread`
 * says why): the category `classify` finds in `config.router.staticAnswers`, else
 * `config.router.staticFallback`. Pure.
 *
 * @example
 * chooseStatic(config, 'Where is my invoice?') // { content: 'See /billing.', category: 'billing', reason: 'category billing (invoice)' }
 */
function chooseStatic(config: SluiceConfig, text: string | undefined, unread?: string): StaticChoice {
  const fallback = config.router.staticFallback;
  if (text === undefined) return { content: fallback, reason: `the fallback answer: ${unread ?? 'no user text to classify'}` };
  const hit = classify(text, config.router.staticAnswers ?? []);
  if (!hit) return { content: fallback, reason: 'the fallback answer: no category matched' };
  return { content: hit.answer, category: hit.category, reason: `category ${hit.category} (${hit.matched.join(', ')})` };
}

/**
 * The last user turn of a request at level 3, read back from its `chat.requested` (one message
 * get, only when categories are configured: the fallback needs no body), or why not. Never throws:
 * a request whose body is gone still gets the fallback rather than an error.
 */
async function questionOf(bus: Pick<Bus, 'jsm'> | undefined, config: SluiceConfig, event: Received<Router>): Promise<{ text?: string; unread?: string }> {
  const { ctx } = event.data;
  if ((config.router.staticAnswers ?? []).length === 0) return { unread: 'no categories configured' };
  if (!bus || ctx.requestSeq === undefined) return { unread: "the request's body is not in the stream" };
  try {
    const body = (await readRequested(bus, ctx.requestSeq, event.requestId)).data.body;
    const text = lastUserTurn(ctx.request.endpoint, body);
    return text === undefined ? { unread: 'no user text to classify' } : { text };
  } catch (err) {
    return { unread: `the request's body could not be read (${err instanceof Error ? err.message : String(err)})`.slice(0, 300) };
  }
}

/**
 * Level 3's answer to a cache miss: the static answer of the question's category (or the
 * fallback), as a terminal `chat.completed` priced at zero (model and deployment
 * `static-fallback`, usage zero, no attempt, `price` STATIC_PRICE: the ledger counts it as a
 * degraded answer) whose reason names the category, and the replies for
 * the client: the result, after the chunks of the same answer when it streams. `routeReason` is
 * the router's (`degraded to level 3 …`); `at` is epoch ms. Costs one message get from the stream
 * when categories are configured.
 *
 * @example
 * case 'static': return answerStatic(deps.bus, config, event, decision.reason, at);
 */
export async function answerStatic(
  bus: Pick<Bus, 'jsm'> | undefined,
  config: SluiceConfig,
  event: Received<Router>,
  routeReason: string,
  at: number,
): Promise<Decided<Emitted<Router>>> {
  const { requestId } = event;
  const { ctx } = event.data;
  const { endpoint } = ctx.request;
  const question = await questionOf(bus, config, event);
  const choice = chooseStatic(config, question.text, question.unread);
  const created = Math.floor(at / 1000);
  const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const answer = { model: STATIC_FALLBACK, body: staticBody(endpoint, choice.content, requestId, created), usage };
  const fields = { requestId, tenant: event.tenant, service: ServiceName.Router, at, reason: `${routeReason}: ${choice.reason}` };
  const completed = makeEvent(EventType.ChatCompleted, fields, {
    ctx: settledContext(ctx),
    answer,
    deployment: STATIC_FALLBACK,
    attempts: 0,
    upstreamLatencyMs: 0,
    price: STATIC_PRICE,
  });
  const rateLimit = ctx.rateLimit ? { rateLimit: ctx.rateLimit } : {};
  const result: ChatResult = { requestId, ...answer, cached: false, created, ...rateLimit };
  // a client streaming sees the same sequence as from an upstream: chunks, then the result
  const chunks: ChatReply[] = ctx.request.stream
    ? replayChunks(endpoint, answer.body, requestId).map((chunk, i) => ({ requestId, model: STATIC_FALLBACK, chunk, ...(i === 0 ? rateLimit : {}) }))
    : [];
  return decided(
    [completed],
    [...chunks, result].map((reply) => ({ to: ctx.replyTo, reply })),
  );
}

/**
 * The OpenAI object of the static answer (degrade level 3), saying `content`: a
 * `chat.completion`, or a completed `response` with one output message. Usage is zero: no
 * upstream was called. Embeddings have no static answer (the router sheds them).
 */
function staticBody(endpoint: Endpoint, content: string, requestId: string, created: number): Record<string, unknown> {
  if (endpoint === 'responses') {
    return {
      id: `resp_${requestId}`,
      object: 'response',
      created_at: created,
      status: 'completed',
      model: STATIC_FALLBACK,
      output: [
        {
          type: 'message',
          id: `msg_${requestId}`,
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: content, annotations: [] }],
        },
      ],
      usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
    };
  }
  return {
    id: completionId(requestId),
    object: 'chat.completion',
    created,
    model: STATIC_FALLBACK,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    system_fingerprint: null,
  };
}
