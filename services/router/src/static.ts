import { completionId, STATIC_FALLBACK, type Endpoint } from '@sluice/contracts';

/**
 * The OpenAI object of the static answer (degrade level 3), saying `content`: a
 * `chat.completion`, or a completed `response` with one output message. Usage is zero: no
 * upstream was called. Embeddings have no static answer (the router sheds them).
 */
export function staticBody(endpoint: Endpoint, content: string, requestId: string, created: number): Record<string, unknown> {
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
