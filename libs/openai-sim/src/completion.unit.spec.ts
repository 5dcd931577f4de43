import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { type ChatPlan, completionBody, planChat } from './completion.js';
import { buildReply, MAX_REPLY_TOKENS, MIN_REPLY_TOKENS, targetTokens } from './reply.js';
import { type ApiError, isApiError } from './errors.js';
import { countPromptTokens } from './tokens.js';

const MODELS = new Set(['gpt-4o-mini']);
const user = (content: unknown) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

// Deterministic pseudo-random prompts that stress tokenizer boundaries.
function* prompts(): Generator<string> {
  yield '';
  yield 'What is the capital of France?';
  yield '!!! ??? ...';
  yield 'camelCaseWords HTTPServer iPhone XMLHttpRequest';
  yield 'supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic';
  yield "don't won't it's they're I'm we'll you'd";
  yield 'naïve café 東京 Москва 12345 6789';
  yield '  leading   and  trailing  spaces  ';
  yield 'a\nb\r\nc\td';
  yield '<|endoftext|> <|im_start|> hello';
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.!?\'"-_\n\téüß漢字';
  let s = 12345;
  for (let i = 0; i < 300; i++) {
    let text = '';
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const len = s % 200;
    for (let j = 0; j < len; j++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      text += alphabet[(s >>> 8) % alphabet.length];
    }
    yield text;
  }
}

describe('buildReply', () => {
  it('has exactly the claimed token count and honours max_tokens, for many prompts', () => {
    let i = 0;
    for (const p of prompts()) {
      const max = i % 3 === 0 ? null : 1 + (i % 70);
      const r = buildReply(p, max);
      const target = targetTokens(p);
      expect(encode(r.content).length, `prompt ${JSON.stringify(p)} max ${max}`).toBe(r.completionTokens);
      expect(r.completionTokens).toBe(max === null ? target : Math.min(target, max));
      expect(r.finishReason).toBe(max !== null && target > max ? 'length' : 'stop');
      expect(r.pieces.map((x) => x.text).join('')).toBe(r.content);
      expect(r.pieces.reduce((a, x) => a + x.tokens, 0)).toBe(r.completionTokens);
      i++;
    }
  });

  it('keeps the natural length within bounds', () => {
    for (const p of prompts()) {
      const t = targetTokens(p);
      expect(t).toBeGreaterThanOrEqual(MIN_REPLY_TOKENS);
      expect(t).toBeLessThanOrEqual(MAX_REPLY_TOKENS);
    }
  });

  it('echoes the first words of the prompt and is deterministic', () => {
    const a = buildReply('Hello there, general Kenobi', null);
    expect(a.content.startsWith('Echo: Hello there general Kenobi')).toBe(true);
    expect(buildReply('Hello there, general Kenobi', null)).toEqual(a);
    expect(buildReply('Hello there, general Grievous', null).content).not.toBe(a.content);
  });

  it('still produces exactly one token when max_tokens is 1', () => {
    const r = buildReply('Hello there', 1);
    expect(r.completionTokens).toBe(1);
    expect(encode(r.content)).toHaveLength(1);
    expect(r.finishReason).toBe('length');
  });
});

describe('planChat', () => {
  const plan = (body: unknown) => planChat(body, MODELS);
  const error = (body: unknown): ApiError => {
    const r = plan(body);
    if (!isApiError(r)) throw new Error('expected an error');
    return r;
  };

  it('plans a valid request with exact prompt tokens from the last user message', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'answer' },
      { role: 'user', content: [{ type: 'text', text: 'second question' }] },
    ];
    const r = plan({ model: 'gpt-4o-mini', messages, max_tokens: 100 }) as ChatPlan;
    expect(isApiError(r)).toBe(false);
    expect(r.promptTokens).toBe(countPromptTokens(messages));
    expect(r.content.startsWith('Echo: second question')).toBe(true);
    expect(r.stream).toBe(false);
  });

  it('prefers max_completion_tokens over max_tokens', () => {
    const r = plan({ ...user('tell me a long story please'), max_tokens: 50, max_completion_tokens: 3 }) as ChatPlan;
    expect(r.completionTokens).toBe(3);
    expect(r.finishReason).toBe('length');
  });

  it('reads stream and include_usage', () => {
    const r = plan({ ...user('x'), stream: true, stream_options: { include_usage: true } }) as ChatPlan;
    expect(r.stream).toBe(true);
    expect(r.includeUsage).toBe(true);
  });

  it.each([
    [{ messages: [] }, null, null],
    [{ model: 'gpt-4o-mini' }, 'messages', 'missing_required_parameter'],
    [{ model: 'gpt-4o-mini', messages: 'hi' }, 'messages', 'invalid_type'],
    [{ model: 'gpt-4o-mini', messages: [] }, 'messages', 'empty_array'],
    [{ model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', 'invalid_value'],
    [{ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content', 'invalid_type'],
    [{ ...user('x'), max_tokens: 0 }, 'max_tokens', 'integer_below_min_value'],
    [{ ...user('x'), max_completion_tokens: 1.5 }, 'max_completion_tokens', 'invalid_type'],
    [{ ...user('x'), n: 129 }, 'n', 'integer_above_max_value'],
    [{ ...user('x'), temperature: 3 }, 'temperature', 'invalid_value'],
    [{ ...user('x'), stream: 'yes' }, 'stream', 'invalid_type'],
    [{ ...user('x'), stream_options: { include_usage: true } }, 'stream_options', null],
  ])('rejects %j with 400 (param %s, code %s)', (body, param, code) => {
    const e = error(body);
    expect(e.status).toBe(400);
    expect(e.body.error).toMatchObject({ type: 'invalid_request_error', param, code });
    expect(e.body.error.message.length).toBeGreaterThan(0);
  });

  it('rejects a non-object body', () => {
    expect(error('nope').status).toBe(400);
    expect(error(undefined).status).toBe(400);
  });

  it('answers 404 model_not_found for an unknown model', () => {
    const e = error({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] });
    expect(e.status).toBe(404);
    expect(e.body.error.code).toBe('model_not_found');
    expect(e.body.error.message).toContain('gpt-9');
  });
});

describe('completionBody', () => {
  it('has the OpenAI chat.completion shape', () => {
    const p = plan();
    const body = completionBody(p, 'chatcmpl-x', 1700000000) as Record<string, unknown>;
    expect(body).toMatchObject({
      id: 'chatcmpl-x',
      object: 'chat.completion',
      created: 1700000000,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: p.content, refusal: null }, logprobs: null, finish_reason: p.finishReason }],
      usage: { prompt_tokens: p.promptTokens, completion_tokens: p.completionTokens, total_tokens: p.promptTokens + p.completionTokens },
    });
    expect(typeof body.system_fingerprint).toBe('string');
  });

  function plan(): ChatPlan {
    return planChat(user('shape check'), MODELS) as ChatPlan;
  }
});
