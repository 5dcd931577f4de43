import { describe, expect, it } from 'vitest';
import { type ChatPlan, planChat } from './completion.js';
import { chunksOf, type Frame, streamFrames, TOKENS_PER_CHUNK } from './stream.js';

const MODELS = new Set(['gpt-4o-mini']);
const plan = (extra: object = {}): ChatPlan =>
  planChat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Stream me a reply please' }], stream: true, ...extra }, MODELS) as ChatPlan;

function parse(frames: Frame[]): { chunks: Record<string, unknown>[]; done: boolean } {
  const chunks: Record<string, unknown>[] = [];
  let done = false;
  for (const { text: f } of frames) {
    expect(f.startsWith('data: ')).toBe(true);
    expect(f.endsWith('\n\n')).toBe(true);
    const payload = f.slice(6, -2);
    if (payload === '[DONE]') done = true;
    else chunks.push(JSON.parse(payload) as Record<string, unknown>);
  }
  return { chunks, done };
}

describe('chunksOf', () => {
  it('splits the content into chunks of at least TOKENS_PER_CHUNK tokens, except the last', () => {
    const p = plan();
    const texts = chunksOf(p).map((c) => c.text);
    expect(texts.join('')).toBe(p.content);
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.length).toBeLessThanOrEqual(Math.ceil(p.completionTokens / TOKENS_PER_CHUNK));
  });
});

describe('streamFrames', () => {
  it('follows OpenAI order: role, content, finish, usage, [DONE]', () => {
    const p = plan({ stream_options: { include_usage: true } });
    const { chunks, done } = parse(streamFrames(p, 'chatcmpl-1', 1));
    expect(done).toBe(true);
    for (const c of chunks) expect(c).toMatchObject({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'gpt-4o-mini' });
    const choices = chunks.map((c) => c.choices as { delta: { content?: string; role?: string }; finish_reason: string | null }[]);
    expect(choices[0]?.[0]?.delta).toMatchObject({ role: 'assistant', content: '' });
    const last = chunks.at(-1) as { choices: unknown[]; usage: { completion_tokens: number; prompt_tokens: number } };
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBe(p.completionTokens);
    expect(last.usage.prompt_tokens).toBe(p.promptTokens);
    const finish = choices.at(-2)?.[0];
    expect(finish?.delta).toEqual({});
    expect(finish?.finish_reason).toBe(p.finishReason);
    const content = choices
      .slice(1, -2)
      .map((c) => c[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe(p.content);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
  });

  it('has no usage chunk or usage field without include_usage', () => {
    const { chunks } = parse(streamFrames(plan(), 'chatcmpl-1', 1));
    for (const c of chunks) {
      expect('usage' in c).toBe(false);
      expect((c.choices as unknown[]).length).toBe(1);
    }
  });
});
