import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { type ChatPlan, completionBody, planChat } from './completion.js';
import { isApiError } from './errors.js';
import { MAX_TOP_LOGPROBS, tokenLogprobs, type TokenLogprob } from './logprobs.js';
import { streamFrames } from './stream.js';

const MODELS = new Set(['gpt-4o-mini']);
const messages = [{ role: 'user', content: 'Tell me about the rivers of Europe' }];
const plan = (extra: object): ChatPlan => {
  const p = planChat({ model: 'gpt-4o-mini', messages, ...extra }, MODELS);
  if (isApiError(p)) throw new Error(JSON.stringify(p.body));
  return p;
};
type Choice = { logprobs: { content: TokenLogprob[] | null; refusal: null } | null; message: { content: string } };
const choiceOf = (p: ChatPlan): Choice => (completionBody(p, 'chatcmpl-x', 1) as { choices: Choice[] }).choices[0] as Choice;

describe('tokenLogprobs', () => {
  it('has one entry per o200k token, whose texts and bytes rebuild the text', () => {
    const text = 'Echo: Tell me about {"city":"Paris"} river stone';
    const entries = tokenLogprobs(text, 2).map((p) => p.entry);
    expect(entries.length).toBe(encode(text).length);
    expect(entries.map((e) => e.token).join('')).toBe(text);
    expect(Buffer.from(entries.flatMap((e) => e.bytes)).toString('utf8')).toBe(text);
    for (const e of entries) expect(e.logprob).toBeLessThanOrEqual(0);
  });

  it('lists the chosen token first among top_logprobs, then distinct, ever less likely alternatives', () => {
    for (const { entry } of tokenLogprobs('Echo: river stone light water', MAX_TOP_LOGPROBS)) {
      const top = entry.top_logprobs;
      expect(top.length).toBe(MAX_TOP_LOGPROBS);
      expect(top[0]).toEqual({ token: entry.token, logprob: entry.logprob, bytes: entry.bytes });
      expect(new Set(top.map((t) => t.token)).size).toBe(top.length);
      for (let k = 1; k < top.length; k++) expect((top[k] as TokenLogprob).logprob).toBeLessThan((top[k - 1] as TokenLogprob).logprob);
    }
  });

  it('is deterministic', () => {
    expect(tokenLogprobs('same text twice', 3)).toEqual(tokenLogprobs('same text twice', 3));
  });
});

describe('chat logprobs', () => {
  it('is null without logprobs, and one entry per completion token with it', () => {
    expect(choiceOf(plan({})).logprobs).toBeNull();
    const p = plan({ logprobs: true, top_logprobs: 3 });
    const c = choiceOf(p);
    expect(c.logprobs?.refusal).toBeNull();
    const content = c.logprobs?.content ?? [];
    expect(content.length).toBe(p.completionTokens);
    expect(content.map((e) => e.token).join('')).toBe(c.message.content);
    for (const e of content) expect(e.top_logprobs.length).toBe(3);
    expect(choiceOf(plan({ logprobs: true })).logprobs?.content?.[0]?.top_logprobs).toEqual([]);
  });

  it('streams the logprobs of each delta, adding up to the whole answer', () => {
    const p = plan({ logprobs: true, top_logprobs: 2, stream: true });
    const chunks = streamFrames(p, 'chatcmpl-x', 1)
      .map((f) => f.text.slice(6, -2))
      .filter((t) => t !== '[DONE]')
      .map((t) => (JSON.parse(t) as { choices: { delta: { content?: string }; logprobs: { content: TokenLogprob[] } | null }[] }).choices[0]);
    const streamed: TokenLogprob[] = [];
    for (const c of chunks) {
      if (c?.delta.content === undefined || c.delta.content === '') continue;
      const mine = c.logprobs?.content ?? [];
      expect(mine.map((e) => e.token).join('')).toBe(c.delta.content);
      streamed.push(...mine);
    }
    expect(streamed).toEqual(choiceOf({ ...p, stream: false }).logprobs?.content);
  });

  it('rejects top_logprobs out of 0..20 or without logprobs', () => {
    expect(planChat({ model: 'gpt-4o-mini', messages, logprobs: true, top_logprobs: 21 }, MODELS)).toMatchObject({
      status: 400,
      body: { error: { param: 'top_logprobs', code: 'integer_above_max_value' } },
    });
    expect(planChat({ model: 'gpt-4o-mini', messages, top_logprobs: 2 }, MODELS)).toMatchObject({ status: 400, body: { error: { param: 'top_logprobs' } } });
    expect(planChat({ model: 'gpt-4o-mini', messages, logprobs: 'yes' }, MODELS)).toMatchObject({ status: 400, body: { error: { param: 'logprobs' } } });
  });
});
