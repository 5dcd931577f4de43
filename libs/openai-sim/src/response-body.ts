import type { Answer } from './answer.js';
import type { ResponsePlan } from './responses.js';
import { chunksOf, type Frame } from './stream.js';

/** The Responses API usage block. */
interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

type Status = 'in_progress' | 'completed' | 'incomplete';

/**
 * A Responses plan as an {@link Answer} under `id` (`resp_<hex>`): the
 * `response` object whole, or streamed as OpenAI's typed SSE events.
 */
export function responseAnswer(plan: ResponsePlan, id: string, createdAt: number): Answer {
  return {
    model: plan.model,
    stream: plan.stream,
    promptTokens: plan.promptTokens,
    completionTokens: plan.reply.completionTokens,
    body: () => responseObject(plan, id, createdAt, finalStatus(plan)),
    frames: () => responseFrames(plan, id, createdAt),
  };
}

function finalStatus(plan: ResponsePlan): Status {
  return plan.reply.finishReason === 'length' ? 'incomplete' : 'completed';
}

/** The `response` object; `in_progress` is the snapshot of the opening events: no output, no usage yet. */
export function responseObject(plan: ResponsePlan, id: string, createdAt: number, status: Status): object {
  const e = plan.echo;
  const done = status !== 'in_progress';
  return {
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    completed_at: status === 'completed' ? createdAt : null,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: e.instructions,
    max_output_tokens: e.maxOutputTokens,
    max_tool_calls: null,
    model: plan.model,
    output: done ? [outputItem(plan, id, status)] : [],
    parallel_tool_calls: e.parallelToolCalls,
    previous_response_id: e.previousResponseId,
    prompt_cache_key: null,
    reasoning: { effort: null, summary: null },
    safety_identifier: null,
    service_tier: 'default',
    store: plan.store,
    temperature: e.temperature,
    text: { format: e.textFormat, verbosity: 'medium' },
    tool_choice: e.toolChoice,
    tools: e.tools,
    top_logprobs: 0,
    top_p: e.topP,
    truncation: 'disabled',
    usage: done ? usageOf(plan) : null,
    user: null,
    metadata: e.metadata,
  };
}

function usageOf(plan: ResponsePlan): ResponseUsage {
  const out = plan.reply.completionTokens;
  return {
    input_tokens: plan.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: out,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: plan.promptTokens + out,
  };
}

/** The one output item: a function call when the reply is one, else an assistant message. */
function outputItem(plan: ResponsePlan, id: string, status: Status): object {
  const r = plan.reply;
  const hex = id.slice('resp_'.length);
  if (r.toolCall !== undefined) {
    return {
      id: `fc_${hex}`,
      type: 'function_call',
      status,
      arguments: status === 'in_progress' ? '' : r.content,
      call_id: r.toolCall.id,
      name: r.toolCall.name,
    };
  }
  return {
    id: `msg_${hex}`,
    type: 'message',
    status,
    content: status === 'in_progress' ? [] : [contentPart(plan, r.content)],
    role: 'assistant',
  };
}

/** The message's one content part: `output_text`, or `refusal` when the reply refuses. */
function contentPart(plan: ResponsePlan, text: string): object {
  return plan.reply.refusal ? { type: 'refusal', refusal: text } : { type: 'output_text', annotations: [], logprobs: [], text };
}

/**
 * OpenAI's event sequence: response.created, response.in_progress,
 * output_item.added, then for a message content_part.added, output_text.delta
 * (chunks of about 3 tokens; refusal.delta for a refusal), output_text.done
 * (refusal.done), content_part.done, or for a
 * function call function_call_arguments.delta / .done; output_item.done, and
 * response.completed (response.incomplete when cut by max_output_tokens) with
 * the whole response, usage included. No `[DONE]` line: Responses streams end
 * with their last event. Every event carries `sequence_number` from 0.
 */
export function responseFrames(plan: ResponsePlan, id: string, createdAt: number): Frame[] {
  const frames: Frame[] = [];
  const event = (type: string, data: object, tokens = 0): void => {
    const payload = JSON.stringify({ type, sequence_number: frames.length, ...data });
    frames.push({ text: `event: ${type}\ndata: ${payload}\n\n`, tokens });
  };
  const status = finalStatus(plan);
  const r = plan.reply;
  const item_id = `${r.toolCall === undefined ? 'msg' : 'fc'}_${id.slice('resp_'.length)}`;
  const at = { item_id, output_index: 0 };

  event('response.created', { response: responseObject(plan, id, createdAt, 'in_progress') });
  event('response.in_progress', { response: responseObject(plan, id, createdAt, 'in_progress') });
  event('response.output_item.added', { output_index: 0, item: outputItem(plan, id, 'in_progress') });
  if (r.toolCall === undefined) {
    const part = { ...at, content_index: 0 };
    event('response.content_part.added', { ...part, part: contentPart(plan, '') });
    if (r.refusal) {
      for (const c of chunksOf(r)) event('response.refusal.delta', { ...part, delta: c.text }, c.tokens);
      event('response.refusal.done', { ...part, refusal: r.content });
    } else {
      for (const c of chunksOf(r)) event('response.output_text.delta', { ...part, delta: c.text, logprobs: [] }, c.tokens);
      event('response.output_text.done', { ...part, text: r.content, logprobs: [] });
    }
    event('response.content_part.done', { ...part, part: contentPart(plan, r.content) });
  } else {
    for (const c of chunksOf(r)) event('response.function_call_arguments.delta', { ...at, delta: c.text }, c.tokens);
    event('response.function_call_arguments.done', { ...at, name: r.toolCall.name, arguments: r.content });
  }
  event('response.output_item.done', { output_index: 0, item: outputItem(plan, id, status) });
  event(`response.${status}`, { response: responseObject(plan, id, createdAt, status) });
  return frames;
}
