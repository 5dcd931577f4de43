import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cacheKey, bodyFacts, bodyFactsAsync } from '@sluice/facts';
import { parseConfig, type Endpoint, type TokenBudget } from '@sluice/contracts';
import type { Json } from './checks.js';
import { RequestRejected } from './rejection.js';
import { applyTokenBudget, capOutput, removableTurns, tokenBudgetFor } from './token-budget.js';
import { validateRequest } from './validate.js';

const count = (endpoint: Endpoint) => (b: Json) => bodyFactsAsync(endpoint, b);
const chat = (body: Json, rule: TokenBudget, model = 'auto') => applyTokenBudget('chat.completions', body, rule, { model }, count('chat.completions'));
const tokens = (endpoint: Endpoint, body: Json) => bodyFacts(endpoint, body).promptTokens;

async function refusal(p: Promise<unknown>): Promise<RequestRejected> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (e instanceof RequestRejected) return e;
  throw new Error(`expected a RequestRejected, got ${String(e)}`);
}

const words = (n: number, word = 'budget') => Array.from({ length: n }, () => word).join(' ');
const system = { role: 'system', content: 'You are terse.' };
const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });
const call = (id: string) => ({
  role: 'assistant',
  content: null,
  tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } }],
});
const result = (id: string, content: string) => ({ role: 'tool', tool_call_id: id, content });

/** system; turn 1 (u1, a1); turn 2 (u2, a tool call, its result, a2); the last user turn. */
const conversation = () => [
  system,
  user(`first ${words(100)}`),
  assistant(`answer one ${words(100)}`),
  user(`second ${words(100)}`),
  call('call_1'),
  result('call_1', `tool output ${words(200)}`),
  assistant(`answer two ${words(50)}`),
  user('and now?'),
];

/** No tool result without its call, and no call whose results were dropped. */
function toolPairsIntact(messages: Json[]): void {
  const calls = new Set(messages.flatMap((m) => ((m.tool_calls as Json[] | undefined) ?? []).map((c) => c.id)));
  const answered = new Set(messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id));
  expect([...answered].every((id) => calls.has(id))).toBe(true);
  expect([...calls].every((id) => answered.has(id))).toBe(true);
}

describe('tokenBudgetFor', () => {
  const rules: TokenBudget[] = [
    { id: 'acme-summaries', tenant: 'acme', feature: 'summarize', maxOutputTokens: 100 },
    { id: 'one-key', key: 'key_AAAAAAAAAAAAAAAAAAAA', maxInputTokens: 50 },
    { id: 'summaries', feature: 'summarize', maxOutputTokens: 500 },
  ];

  it('given rules, when every field a rule gives matches, then the first such rule applies', () => {
    expect(tokenBudgetFor(rules, { tenant: 'acme', feature: 'summarize' })?.id).toBe('acme-summaries');
    expect(tokenBudgetFor(rules, { tenant: 'beta', feature: 'summarize' })?.id).toBe('summaries');
    expect(tokenBudgetFor(rules, { tenant: 'acme', feature: 'summarize', key: 'key_AAAAAAAAAAAAAAAAAAAA' })?.id).toBe('acme-summaries');
    expect(tokenBudgetFor(rules, { tenant: 'beta', key: 'key_AAAAAAAAAAAAAAAAAAAA' })?.id).toBe('one-key');
  });

  it('given a field the request lacks, then the rule does not apply; no rules, no budget', () => {
    expect(tokenBudgetFor(rules, { tenant: 'acme' })).toBeUndefined();
    expect(tokenBudgetFor(rules, { tenant: 'acme', feature: 'chat', key: 'key_BBBBBBBBBBBBBBBBBBBB' })).toBeUndefined();
    expect(tokenBudgetFor([], { tenant: 'acme', feature: 'summarize' })).toBeUndefined();
  });

  it('given a rule that names nothing, then it applies to every request', () => {
    expect(tokenBudgetFor([{ id: 'all', maxOutputTokens: 1 }], { tenant: 'x' })?.id).toBe('all');
  });
});

describe('capOutput', () => {
  it('given no cap, then max_completion_tokens is set (max_tokens is deprecated)', () => {
    const body = { messages: [user('hi')] };
    expect(capOutput('chat.completions', body, 500)).toEqual({
      body: { messages: [user('hi')], max_completion_tokens: 500 },
      changes: ['max_completion_tokens unset -> 500'],
    });
    expect(body).toEqual({ messages: [user('hi')] });
  });

  it('given the field the client used, then that one is lowered, and a smaller cap is kept as it is', () => {
    expect(capOutput('chat.completions', { max_tokens: 4000 }, 500)).toEqual({ body: { max_tokens: 500 }, changes: ['max_tokens 4000 -> 500'] });
    const small = { max_completion_tokens: 20 };
    expect(capOutput('chat.completions', small, 500)).toEqual({ body: small, changes: [] });
    expect(capOutput('chat.completions', small, 500).body).toBe(small);
    expect(capOutput('chat.completions', { max_tokens: 600, max_completion_tokens: 400, max_output_tokens: 9 }, 500).body).toEqual({
      max_tokens: 500,
      max_completion_tokens: 400,
      max_output_tokens: 9,
    });
    expect(capOutput('chat.completions', { max_tokens: null }, 7).body).toEqual({ max_tokens: null, max_completion_tokens: 7 });
  });

  it('given a Responses body, then max_output_tokens is capped', () => {
    expect(capOutput('responses', { input: 'x', max_output_tokens: 9000 }, 300)).toEqual({
      body: { input: 'x', max_output_tokens: 300 },
      changes: ['max_output_tokens 9000 -> 300'],
    });
  });
});

describe('removableTurns', () => {
  it('given a conversation, then turns are oldest first, without system messages or the last user turn', () => {
    expect(removableTurns(conversation())).toEqual([
      [1, 2],
      [3, 4, 5, 6],
    ]);
  });

  it('given messages before the first user message and a system message mid-conversation, then the first are a turn and the system one stays', () => {
    const messages = [assistant('hello!'), system, user('a'), { role: 'developer', content: 'mind' }, assistant('b'), user('c')];
    expect(removableTurns(messages)).toEqual([[0], [2, 4]]);
  });

  it('given an exchange in progress after the last user message, then none of it is removable', () => {
    expect(removableTurns([user('a'), assistant('b'), user('c'), call('c1'), result('c1', 'out')])).toEqual([[0, 1]]);
  });

  it('given no user message or only one, then nothing is removable', () => {
    expect(removableTurns([system, assistant('x')])).toEqual([]);
    expect(removableTurns([system, user('only')])).toEqual([]);
    expect(removableTurns([])).toEqual([]);
  });
});

describe('applyTokenBudget: trimming chat', () => {
  const messages = conversation();
  const full = tokens('chat.completions', { messages });

  it('given a conversation over the limit, when one turn is enough, then only the oldest turn goes', async () => {
    const without1 = tokens('chat.completions', { messages: [messages[0]!, ...messages.slice(3)] });
    const rule: TokenBudget = { id: 'chat', maxInputTokens: without1 };
    const body = { model: 'small', messages };
    const out = await chat(body, rule, 'small');
    expect(out.body.messages).toEqual([messages[0], ...messages.slice(3)]);
    expect(out.facts.promptTokens).toBe(without1);
    expect(out.note).toBe(`token budget chat: trimmed 1 oldest turn (2 messages), ${full} -> ${without1} prompt tokens`);
    // the client's object is not changed
    expect(body.messages).toHaveLength(8);
  });

  it('given a tighter limit, then the turn with the tool call goes whole: the call with its result', async () => {
    const rule: TokenBudget = { id: 'chat', maxInputTokens: tokens('chat.completions', { messages: [system, user('and now?')] }) + 5 };
    const out = await chat({ messages }, rule);
    expect(out.body.messages).toEqual([system, user('and now?')]);
    toolPairsIntact(out.body.messages as Json[]);
    expect(out.note).toMatch(/^token budget chat: trimmed 2 oldest turns \(6 messages\), \d+ -> \d+ prompt tokens$/);
  });

  it('given a limit the system prompt and last user turn alone exceed, then it is refused naming the rule and the sizes', async () => {
    const kept = tokens('chat.completions', { messages: [system, user('and now?')] });
    const e = await refusal(chat({ model: 'large', messages, user: 'u1' }, { id: 'tiny', maxInputTokens: kept - 1 }, 'large'));
    expect(e.code).toBe('token_budget_exceeded');
    expect(e.status).toBe(400);
    expect(e.param).toBe('messages');
    expect(e.message).toContain('Token budget tiny allows');
    expect(e.message).toContain(`${kept - 1} input tokens; this request has ${full}, ${kept} with every turn removed`);
    expect(e.known.model).toBe('large');
  });

  it("given onOverflow 'refuse', then it is refused at once, untrimmed", async () => {
    const e = await refusal(chat({ messages }, { id: 'strict', maxInputTokens: full - 1, onOverflow: 'refuse' }));
    expect(e.code).toBe('token_budget_exceeded');
    expect(e.message).toBe(`Token budget strict allows ${full - 1} input tokens; this request has ${full}. Send a shorter conversation.`);
  });

  it('given a single user message over the limit, then there is nothing to trim and it is refused', async () => {
    const e = await refusal(chat({ messages: [system, user(words(300))] }, { id: 'r', maxInputTokens: 50 }));
    expect(e.message).toMatch(/nothing in it may be trimmed/);
  });

  it('given a request within the limit, then the body is the same object and nothing is noted', async () => {
    const body = { messages };
    const out = await chat(body, { id: 'roomy', maxInputTokens: full });
    expect(out.body).toBe(body);
    expect(out.note).toBeUndefined();
    expect(out.facts.promptTokens).toBe(full);
  });

  it('given random conversations, then what is kept fits, keeps every system message and the last user turn, and no tool result loses its call', async () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const seen = { trimmed: 0, refused: 0 };
    for (let round = 0; round < 60; round++) {
      const ms: Json[] = [system];
      const turns = 2 + rand(6);
      for (let t = 0; t < turns; t++) {
        ms.push(user(`turn ${t} ${words(rand(40))}`));
        if (rand(2)) ms.push(call(`c${t}`), result(`c${t}`, words(rand(80), 'out')));
        if (rand(3) === 0) ms.push({ role: 'developer', content: `note ${t}` });
        ms.push(assistant(words(rand(30), 'reply')));
      }
      ms.push(user('last question'));
      if (rand(2)) ms.push(call('now'), result('now', 'pending'));
      const max = 10 + rand(tokens('chat.completions', { messages: ms }));
      const lastTurn = ms.slice(ms.findLastIndex((m) => m.role === 'user'));
      const pinned = ms.filter((m) => m.role === 'system' || m.role === 'developer');
      try {
        const out = await chat({ messages: ms }, { id: 'r', maxInputTokens: max });
        const kept = out.body.messages as Json[];
        expect(out.facts.promptTokens).toBeLessThanOrEqual(max);
        expect(out.facts.promptTokens).toBe(tokens('chat.completions', out.body));
        expect(kept.slice(-lastTurn.length)).toEqual(lastTurn);
        for (const p of pinned) expect(kept).toContain(p);
        toolPairsIntact(kept);
        // oldest first: what is kept of the removable part is a suffix of it
        const removable = ms.slice(0, -lastTurn.length).filter((m) => !pinned.includes(m));
        const keptRemovable = kept.slice(0, -lastTurn.length).filter((m) => !pinned.includes(m));
        expect(removable.slice(removable.length - keptRemovable.length)).toEqual(keptRemovable);
        if (out.note) seen.trimmed++;
      } catch (e) {
        if (!(e instanceof RequestRejected)) throw e;
        seen.refused++;
        expect(tokens('chat.completions', { messages: [...pinned.filter((m) => !lastTurn.includes(m)), ...lastTurn] })).toBeGreaterThan(max);
      }
    }
    // both ways out were taken
    expect(seen.trimmed).toBeGreaterThan(5);
    expect(seen.refused).toBeGreaterThan(2);
  });
});

describe('applyTokenBudget: output, model, other endpoints', () => {
  it('given every kind of change, then each is listed in one note, the trim first', async () => {
    const messages = conversation();
    const rule: TokenBudget = {
      id: 'summaries',
      maxInputTokens: tokens('chat.completions', { messages: [system, ...messages.slice(3)] }),
      maxOutputTokens: 500,
      model: 'small',
    };
    const out = await chat({ model: 'large', messages, max_completion_tokens: 4000 }, rule, 'large');
    expect(out.model).toBe('small');
    expect(out.body.model).toBe('small');
    expect(out.body.max_completion_tokens).toBe(500);
    expect(out.facts.maxOutputTokens).toBe(500);
    expect(out.note).toMatch(
      /^token budget summaries: trimmed 1 oldest turn \(2 messages\), \d+ -> \d+ prompt tokens; max_completion_tokens 4000 -> 500; model large -> small$/,
    );
  });

  it('given a request already on the rule model, then the model is not a change', async () => {
    const out = await chat({ model: 'small', messages: [user('x')] }, { id: 'm', model: 'small' }, 'small');
    expect(out.model).toBeUndefined();
    expect(out.note).toBeUndefined();
  });

  it('given a Responses input array, then its oldest turns go, a function call with its output', async () => {
    const input = [
      { role: 'developer', content: 'be useful' },
      { role: 'user', content: `look it up ${words(80)}` },
      { type: 'function_call', call_id: 'fc_1', name: 'lookup', arguments: '{}' },
      { type: 'function_call_output', call_id: 'fc_1', output: words(200, 'row') },
      { role: 'assistant', content: 'found it' },
      { role: 'user', content: 'thanks, and?' },
    ];
    const kept = [input[0], input[5]];
    const out = await applyTokenBudget(
      'responses',
      { input, instructions: 'short answers' },
      { id: 'resp', maxInputTokens: tokens('responses', { input: kept, instructions: 'short answers' }) },
      { model: 'auto' },
      count('responses'),
    );
    expect(out.body.input).toEqual(kept);
    expect(out.body.instructions).toBe('short answers');
    expect(out.note).toMatch(/trimmed 1 oldest turn \(4 items\)/);
  });

  it('given a Responses string input or embeddings over the limit, then they are refused, never trimmed', async () => {
    const resp = await refusal(applyTokenBudget('responses', { input: words(100) }, { id: 'r', maxInputTokens: 10 }, { model: 'auto' }, count('responses')));
    expect(resp.param).toBe('input');
    const emb = await refusal(
      applyTokenBudget(
        'embeddings',
        { model: 'e', input: [words(50)] },
        { id: 'e', maxInputTokens: 10, onOverflow: 'trim' },
        { model: 'e' },
        count('embeddings'),
      ),
    );
    expect(emb.code).toBe('token_budget_exceeded');
    expect(emb.message).toMatch(/embeddings input is never trimmed/);
  });

  it('given embeddings, then output and model rules do not apply', async () => {
    const body = { model: 'e', input: 'hello' };
    const out = await applyTokenBudget('embeddings', body, { id: 'e', maxOutputTokens: 5, model: 'small' }, { model: 'e' }, count('embeddings'));
    expect(out.body).toBe(body);
    expect(out.note).toBeUndefined();
  });
});

describe('validateRequest with token budgets', () => {
  const base = JSON.parse(readFileSync(new URL('./fixtures/config.json', import.meta.url), 'utf8'));
  const config = parseConfig({
    ...base,
    ingress: { ...base.ingress, maxBodyBytes: 65536 },
    tokenBudgets: [
      { id: 'summaries', feature: 'summarize', maxInputTokens: 60, maxOutputTokens: 50, model: 'small' },
      { id: 'one-key', key: 'key_AAAAAAAAAAAAAAAAAAAA', maxOutputTokens: 7 },
    ],
  });
  const acme = config.tenants.find((t) => t.id === 'acme')!;
  const messages = [user(`first ${words(80)}`), assistant('ok'), user('summarize that')];

  it('given a matching rule, then the facts, the model and the cache key are those of the changed body', async () => {
    const { request, body, tokenBudget } = await validateRequest(
      'chat.completions',
      { model: 'large', messages, max_tokens: 1000 },
      { feature: { value: 'summarize', param: 'x-sluice-feature' } },
      acme,
      config,
    );
    const sent = { model: 'small', messages: [user('summarize that')], max_tokens: 50 };
    expect(body).toEqual(sent);
    expect(request.model).toBe('small');
    expect(request.maxOutputTokens).toBe(50);
    expect(request.promptTokens).toBe(tokens('chat.completions', sent));
    expect(request.cacheKey).toBe(cacheKey('acme', 'chat.completions', sent));
    expect(tokenBudget).toMatch(
      /^token budget summaries: trimmed 1 oldest turn \(2 messages\), \d+ -> \d+ prompt tokens; max_tokens 1000 -> 50; model large -> small$/,
    );
  });

  it('given a rule naming a key, then only a request with that key matches', async () => {
    const body = { messages: [user('hi')] };
    const withKey = await validateRequest('chat.completions', body, {}, acme, config, { id: 'key_AAAAAAAAAAAAAAAAAAAA' });
    expect(withKey.request.maxOutputTokens).toBe(7);
    const without = await validateRequest('chat.completions', body, {}, acme, config);
    expect(without.body).toBe(body);
    expect(without.tokenBudget).toBeUndefined();
    expect(without.request.maxOutputTokens).toBeUndefined();
  });

  it('given a model the tenant may not name, then that is refused before any budget applies', async () => {
    const beta = config.tenants.find((t) => t.id === 'beta')!;
    const e = await refusal(validateRequest('chat.completions', { model: 'large', messages }, { feature: { value: 'summarize', param: 'f' } }, beta, config));
    expect(e.code).toBe('model_not_allowed');
  });
});
