import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { type ApiError, isApiError } from './errors.js';
import { responseFrames, responseObject } from './response-body.js';
import { MIN_OUTPUT_TOKENS, planResponse, type ResponsePlan, type Turn } from './responses.js';
import { countPromptTokens } from './tokens.js';

const MODELS = new Set(['gpt-4o-mini', 'small']);
const windows = (m: string): number => (m === 'small' ? 40 : Number.POSITIVE_INFINITY);
const stored = new Map<string, Turn[]>([
  [
    'resp_known',
    [
      { role: 'user', content: 'Earlier question about rivers' },
      { role: 'assistant', content: 'Echo: Earlier' },
    ],
  ],
]);
const plan = (body: object): ResponsePlan | ApiError => planResponse({ model: 'gpt-4o-mini', ...body }, MODELS, windows, (id) => stored.get(id));
const ok = (body: object): ResponsePlan => {
  const p = plan(body);
  if (isApiError(p)) throw new Error(JSON.stringify(p.body));
  return p;
};
const weather = {
  type: 'function',
  name: 'get_weather',
  strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 2 } }, required: ['city', 'days'] },
};

interface Event {
  type: string;
  sequence_number: number;
  [k: string]: unknown;
}
const events = (p: ResponsePlan): Event[] =>
  responseFrames(p, 'resp_abc', 1).map((f) => {
    const [head, data] = f.text.split('\n');
    const e = JSON.parse((data ?? '').slice('data: '.length)) as Event;
    expect(head).toBe(`event: ${e.type}`);
    expect(f.text.endsWith('\n\n')).toBe(true);
    return e;
  });

describe('planResponse: input', () => {
  it('reads a string input as one user message, instructions as a system message', () => {
    const p = ok({ input: 'What is the capital of France?', instructions: 'Answer briefly.' });
    expect(p.promptTokens).toBe(
      countPromptTokens([
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'What is the capital of France?' },
      ]),
    );
    expect(p.reply.content.startsWith('Echo: What is the capital of France')).toBe(true);
    expect(p.reply.completionTokens).toBe(encode(p.reply.content).length);
  });

  it('reads message items with text parts, and counts them like chat messages', () => {
    const p = ok({
      input: [
        { role: 'developer', content: 'Be terse.' },
        {
          type: 'message',
          role: 'user',
          content: [
            { type: 'input_text', text: 'Name a river' },
            { type: 'input_file', file_id: 'file_1' },
          ],
        },
      ],
    });
    expect(p.promptTokens).toBe(
      countPromptTokens([
        { role: 'developer', content: 'Be terse.' },
        { role: 'user', content: 'Name a river' },
      ]),
    );
    expect(p.reply.content).toMatch(/^Echo: Name a river/);
  });

  it('counts images of this input and of the stored history, and names the input part that is wrong', () => {
    const withImage = {
      role: 'user',
      content: [
        { type: 'input_text', text: 'Look' },
        { type: 'input_image', file_id: 'file_1', detail: 'auto' },
      ],
    };
    const text = countPromptTokens([{ role: 'user', content: 'Look' }]);
    const first = ok({ input: [withImage] });
    // a file or remote image is not read: it counts as 1024×1024, 765 tokens
    expect(first.promptTokens).toBe(text + 765);
    stored.set('resp_image', first.conversation);
    const next = ok({ input: 'And now?', previous_response_id: 'resp_image' });
    expect(next.promptTokens).toBe(countPromptTokens([...first.conversation, { role: 'user', content: 'And now?' }]) + 765);
    expect(plan({ input: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '', format: 'ogg' } }] }] })).toMatchObject({
      status: 400,
      body: { error: { param: 'input[0].content[0].input_audio.format' } },
    });
  });

  it('rejects an unknown role, item type or part type with the param that is wrong', () => {
    expect(plan({ input: [{ role: 'tool', content: 'x' }] })).toMatchObject({ status: 400, body: { error: { param: 'input[0].role' } } });
    expect(plan({ input: [{ type: 'reasoning_x' }] })).toMatchObject({ status: 400, body: { error: { param: 'input[0].type' } } });
    expect(plan({ input: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }] })).toMatchObject({
      status: 400,
      body: { error: { param: 'input[0].content[0].type' } },
    });
    expect(plan({ input: 42 })).toMatchObject({ status: 400, body: { error: { param: 'input', code: 'invalid_type' } } });
    expect(plan({})).toMatchObject({ status: 400, body: { error: { param: 'input', code: 'missing_required_parameter' } } });
    expect(planResponse({ input: 'x' }, MODELS, windows, () => undefined)).toMatchObject({ status: 400, body: { error: { param: 'model' } } });
    expect(plan({ model: 'nope', input: 'x' })).toMatchObject({ status: 404, body: { error: { code: 'model_not_found' } } });
  });

  it('needs max_output_tokens of at least 16, as OpenAI does', () => {
    expect(plan({ input: 'x', max_output_tokens: MIN_OUTPUT_TOKENS - 1 })).toMatchObject({
      status: 400,
      body: { error: { param: 'max_output_tokens', code: 'integer_below_min_value' } },
    });
    expect(isApiError(plan({ input: 'x', max_output_tokens: MIN_OUTPUT_TOKENS }))).toBe(false);
  });

  it('answers context_length_exceeded on param input past the model window', () => {
    expect(plan({ model: 'small', input: 'word '.repeat(60) })).toMatchObject({
      status: 400,
      body: { error: { param: 'input', code: 'context_length_exceeded', type: 'invalid_request_error' } },
    });
  });
});

describe('planResponse: previous_response_id', () => {
  it('continues a stored conversation: its turns count as input, instructions do not carry over', () => {
    const p = ok({ input: 'And lakes?', previous_response_id: 'resp_known' });
    const turns = [...(stored.get('resp_known') ?? []), { role: 'user', content: 'And lakes?' }];
    expect(p.promptTokens).toBe(countPromptTokens(turns));
    expect(p.echo.previousResponseId).toBe('resp_known');
    expect(p.conversation.slice(0, -1)).toEqual(turns);
    expect(p.conversation.at(-1)).toEqual({ role: 'assistant', content: p.reply.content });
  });

  it('answers previous_response_not_found for an id it does not have', () => {
    expect(plan({ input: 'x', previous_response_id: 'resp_gone' })).toEqual({
      status: 400,
      body: {
        error: {
          message: "Previous response with id 'resp_gone' not found.",
          type: 'invalid_request_error',
          param: 'previous_response_id',
          code: 'previous_response_not_found',
        },
      },
    });
  });
});

describe('planResponse: tools and formats', () => {
  it('calls the first function tool with arguments valid against its schema', () => {
    const p = ok({ input: 'Weather in Paris please', tools: [{ type: 'web_search' }, weather] });
    expect(p.reply.toolCall?.name).toBe('get_weather');
    expect(JSON.parse(p.reply.content)).toEqual({ city: 'Weather', days: 2 });
  });

  it('answers text after a function_call_output, and with tool_choice none', () => {
    const call = { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' };
    const after = ok({
      input: [{ role: 'user', content: 'Weather?' }, call, { type: 'function_call_output', call_id: 'call_1', output: '21C' }],
      tools: [weather],
    });
    expect(after.reply.toolCall).toBeUndefined();
    expect(after.reply.content).toMatch(/^Echo: Weather/);
    expect(ok({ input: 'Weather?', tools: [weather], tool_choice: 'none' }).reply.toolCall).toBeUndefined();
    expect(plan({ input: 'x', tools: [weather], tool_choice: { type: 'function', name: 'other' } })).toMatchObject({
      status: 400,
      body: { error: { param: 'tool_choice' } },
    });
  });

  it('answers JSON valid against text.format json_schema, and any JSON object for json_object', () => {
    const schema = { type: 'object', properties: { name: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'tags'] };
    const p = ok({ input: 'Describe the Seine', text: { format: { type: 'json_schema', name: 'river', schema, strict: true } } });
    expect(JSON.parse(p.reply.content)).toEqual({ name: 'Describe', tags: ['the'] });
    expect(JSON.parse(ok({ input: 'Describe it', text: { format: { type: 'json_object' } } }).reply.content)).toEqual({ answer: 'Describe it' });
    expect(plan({ input: 'x', text: { format: { type: 'json_schema', schema } } })).toMatchObject({ body: { error: { param: 'text.format.name' } } });
  });
});

describe('response object', () => {
  it('is a completed response with a message item and Responses usage, without output_text on the wire', () => {
    const p = ok({ input: 'Hello there', metadata: { run: '7' } });
    const r = responseObject(p, 'resp_abc', 1, 'completed') as Record<string, unknown>;
    expect(r).toMatchObject({
      id: 'resp_abc',
      object: 'response',
      status: 'completed',
      model: 'gpt-4o-mini',
      metadata: { run: '7' },
      store: true,
      output: [
        { id: 'msg_abc', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: p.reply.content, annotations: [] }] },
      ],
      usage: {
        input_tokens: p.promptTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: p.reply.completionTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: p.promptTokens + p.reply.completionTokens,
      },
    });
    expect('output_text' in r).toBe(false);
  });
});

describe('responseFrames', () => {
  it("streams a message in OpenAI's event order with sequence numbers from 0", () => {
    const p = ok({ input: 'Stream me something long enough to split', stream: true });
    const es = events(p);
    expect(es.map((e) => e.sequence_number)).toEqual(es.map((_, i) => i));
    const types = es.map((e) => e.type);
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    expect(deltas).toBeGreaterThan(1);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array<string>(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(es[0]).toMatchObject({ response: { status: 'in_progress', output: [], usage: null } });
    expect(es[2]).toMatchObject({ item: { type: 'message', status: 'in_progress', content: [] } });
    const text = es
      .filter((e) => e.type === 'response.output_text.delta')
      .map((e) => e.delta)
      .join('');
    expect(text).toBe(p.reply.content);
    expect(es.at(-1)).toMatchObject({ response: { status: 'completed', usage: { output_tokens: p.reply.completionTokens } } });
  });

  it('streams a function call as argument deltas, and carries every output token in some frame', () => {
    const p = ok({ input: 'Weather in Paris please', tools: [weather], stream: true });
    const frames = responseFrames(p, 'resp_abc', 1);
    expect(frames.reduce((t, f) => t + f.tokens, 0)).toBe(p.reply.completionTokens);
    const es = events(p);
    expect(es[2]).toMatchObject({ item: { type: 'function_call', id: 'fc_abc', arguments: '', name: 'get_weather' } });
    const args = es.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta);
    expect(args.join('')).toBe(p.reply.content);
    expect(es.find((e) => e.type === 'response.function_call_arguments.done')).toMatchObject({ arguments: p.reply.content, name: 'get_weather' });
  });

  it('ends with response.incomplete (reason max_output_tokens) when the reply is cut', () => {
    // a prompt whose natural reply is longer than 16 tokens
    const input =
      ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'].find((w) => ok({ input: w }).reply.completionTokens > MIN_OUTPUT_TOKENS) ?? '';
    const p = ok({ input, max_output_tokens: MIN_OUTPUT_TOKENS, stream: true });
    expect(p.reply.completionTokens).toBe(MIN_OUTPUT_TOKENS);
    const last = events(p).at(-1);
    expect(last).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
  });
});
