import { describe, expect, it } from 'vitest';
import { answerAttributes, callAttributes, errorTypeOf, spanName, type GenAiCall } from './genai.js';

const call: GenAiCall = {
  endpoint: 'chat.completions',
  model: 'gpt-4o-mini-2024-07-18',
  deployment: 'openai-main',
  target: { kind: 'openai', baseUrl: 'http://127.0.0.1:8090/v1' },
  requestId: 'req_1',
  tenant: 'acme',
};
const usage = { prompt_tokens: 12, completion_tokens: 34, total_tokens: 46 };

describe('callAttributes', () => {
  it('names a chat call to an OpenAI-compatible deployment as semconv does, with the server behind the base URL and Sluice ids', () => {
    expect(callAttributes(call)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini-2024-07-18',
      'server.address': '127.0.0.1',
      'server.port': 8090,
      'sluice.tenant': 'acme',
      'sluice.deployment': 'openai-main',
    });
    expect(spanName(call)).toBe('chat gpt-4o-mini-2024-07-18');
  });

  it('calls an azure deployment Azure OpenAI, on the scheme default port; embeddings and Responses by their operations', () => {
    const azure = callAttributes({ ...call, endpoint: 'embeddings', target: { kind: 'azure', baseUrl: 'https://acme.openai.azure.com' } });
    expect(azure).toMatchObject({
      'gen_ai.operation.name': 'embeddings',
      'gen_ai.provider.name': 'azure.ai.openai',
      'server.address': 'acme.openai.azure.com',
      'server.port': 443,
    });
    expect(spanName({ endpoint: 'embeddings', model: 'text-embedding-3-small' })).toBe('embeddings text-embedding-3-small');
    expect(spanName({ endpoint: 'responses', model: 'gpt-4o' })).toBe('chat gpt-4o');
  });

  it('leaves the server out when the base URL does not parse', () => {
    const attrs = callAttributes({ ...call, target: { kind: 'openai', baseUrl: 'not a url' } });
    expect(attrs['server.address']).toBeUndefined();
    expect(attrs['server.port']).toBeUndefined();
  });
});

describe('answerAttributes', () => {
  it("reads a chat completion: the upstream's own id over Sluice's, each choice's finish reason, the billed tokens", () => {
    const body = { id: 'chatcmpl-req_1', model: 'gpt-4o-mini-2024-07-18', choices: [{ finish_reason: 'stop' }, { finish_reason: 'length' }] };
    expect(answerAttributes('chat.completions', { body, usage, upstreamId: 'chatcmpl-upstream9' })).toEqual({
      'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
      'gen_ai.response.id': 'chatcmpl-upstream9',
      'gen_ai.response.finish_reasons': ['stop', 'length'],
      'gen_ai.usage.input_tokens': 12,
      'gen_ai.usage.output_tokens': 34,
    });
  });

  it('reads a Responses answer: its id, stop when completed, the reason when incomplete', () => {
    const done = answerAttributes('responses', { body: { id: 'resp_1', model: 'gpt-4o', status: 'completed' }, usage });
    expect(done).toMatchObject({ 'gen_ai.response.id': 'resp_1', 'gen_ai.response.finish_reasons': ['stop'] });
    const cut = answerAttributes('responses', { body: { id: 'resp_2', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } }, usage });
    expect(cut['gen_ai.response.finish_reasons']).toEqual(['max_output_tokens']);
    expect(cut['gen_ai.response.model']).toBeUndefined();
  });

  it('gives embeddings input tokens only, and no finish reasons', () => {
    const attrs = answerAttributes('embeddings', {
      body: { object: 'list', model: 'text-embedding-3-small', data: [] },
      usage: { prompt_tokens: 8, completion_tokens: 0, total_tokens: 8 },
    });
    expect(attrs).toMatchObject({ 'gen_ai.response.model': 'text-embedding-3-small', 'gen_ai.usage.input_tokens': 8 });
    expect(attrs['gen_ai.usage.output_tokens']).toBeUndefined();
    expect(attrs['gen_ai.response.finish_reasons']).toBeUndefined();
  });

  it('reports no finish reasons when a choice has none', () => {
    const attrs = answerAttributes('chat.completions', { body: { choices: [{ finish_reason: 'stop' }, {}] }, usage });
    expect(attrs['gen_ai.response.finish_reasons']).toBeUndefined();
  });
});

describe('errorTypeOf', () => {
  it("is the upstream's status when it answered with one, else the kind of failure, or cancelled", () => {
    expect(errorTypeOf({ kind: 'status', status: 429 })).toBe('429');
    expect(errorTypeOf({ kind: 'timeout' })).toBe('timeout');
    expect(errorTypeOf({ kind: 'connection' })).toBe('connection');
    expect(errorTypeOf({ kind: 'protocol' })).toBe('protocol');
    expect(errorTypeOf('cancelled')).toBe('cancelled');
  });
});
