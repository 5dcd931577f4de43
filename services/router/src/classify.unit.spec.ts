import { describe, expect, it } from 'vitest';
import type { StaticAnswer } from '@sluice/contracts';
import { classify, lastUserTurn } from './classify.js';

const answers: StaticAnswer[] = [
  { category: 'billing', keywords: ['refund', 'invoice', 'charged twice'], answer: 'Billing help: https://example.com/billing' },
  { category: 'account', keywords: ['password', 'log in', 'login', 'invoice'], answer: 'Account help: https://example.com/account' },
  { category: 'support', keywords: ['human', 'agent'], answer: 'Write to support@example.com' },
];

describe('classify', () => {
  it('given a question with one category’s keyword, then that category and the keyword', () => {
    expect(classify('How do I get a REFUND for last month?', answers)).toEqual({
      category: 'billing',
      answer: 'Billing help: https://example.com/billing',
      matched: ['refund'],
    });
  });

  it('given keywords of two categories, then the one with more distinct matches wins', () => {
    expect(classify('I cannot log in: my password reset mail never came. Also an invoice question.', answers)).toMatchObject({
      category: 'account',
      matched: ['password', 'log in', 'invoice'],
    });
  });

  it('given a tie, then the category first in config order', () => {
    // "invoice" is a keyword of billing and of account: one match each
    expect(classify('Where is my invoice?', answers)?.category).toBe('billing');
    expect(classify('Where is my invoice?', [answers[1]!, answers[0]!])?.category).toBe('account');
  });

  it('matches whole words only, a phrase across any white space, and counts a repeated keyword once', () => {
    expect(classify('Refunds are not my question; passwords neither', answers)).toBeUndefined();
    expect(classify('I was charged\n  twice this month', answers)).toMatchObject({ category: 'billing', matched: ['charged twice'] });
    expect(classify('refund refund refund, and a human please, an agent!', answers)).toMatchObject({ category: 'support', matched: ['human', 'agent'] });
    expect(classify('a refund_id', answers)).toBeUndefined();
    expect(classify('(refund)', answers)?.category).toBe('billing');
  });

  it('given no keyword, then nothing (the caller answers the fallback)', () => {
    expect(classify('What is the capital of France?', answers)).toBeUndefined();
    expect(classify('', answers)).toBeUndefined();
    expect(classify('refund', [])).toBeUndefined();
  });

  it('treats a keyword’s regex characters literally and is Unicode-aware at word edges', () => {
    const tech: StaticAnswer[] = [{ category: 'docs', keywords: ['c++', 'café'], answer: 'Docs' }];
    expect(classify('Is C++ supported?', tech)?.matched).toEqual(['c++']);
    expect(classify('cxx only', tech)).toBeUndefined();
    expect(classify('Le CAFÉ est ouvert', tech)?.matched).toEqual(['café']);
    expect(classify('cafés', tech)).toBeUndefined();
  });

  it('reads only the first 10,000 characters of a long turn', () => {
    expect(classify(`${'x '.repeat(4_000)}refund`, answers)?.category).toBe('billing');
    expect(classify(`${'x '.repeat(6_000)}refund`, answers)).toBeUndefined();
  });
});

describe('lastUserTurn', () => {
  it('given a chat, then the last user message’s text, whatever follows it', () => {
    const body = {
      messages: [
        { role: 'system', content: 'You answer refund questions' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'an answer' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'my password' },
            { type: 'image_url', image_url: { url: 'data:' } },
            { type: 'text', text: 'please' },
          ],
        },
        { role: 'assistant', content: 'prefill' },
      ],
    };
    expect(lastUserTurn('chat.completions', body)).toBe('my password\nplease');
  });

  it('given a Responses request, then its string input or its last user item', () => {
    expect(lastUserTurn('responses', { input: 'a refund?' })).toBe('a refund?');
    const input = [
      { role: 'user', content: 'older' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'newest' }] },
      { type: 'function_call_output', call_id: 'c1', output: 'tool says refund' },
    ];
    expect(lastUserTurn('responses', { input })).toBe('newest');
  });

  it('given no user text, then undefined (never throws)', () => {
    expect(lastUserTurn('embeddings', { input: 'refund' })).toBeUndefined();
    expect(lastUserTurn('chat.completions', { messages: 'refund' })).toBeUndefined();
    expect(lastUserTurn('chat.completions', { messages: [{ role: 'system', content: 'refund' }] })).toBeUndefined();
    expect(lastUserTurn('chat.completions', { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).toBeUndefined();
    expect(lastUserTurn('chat.completions', null)).toBeUndefined();
    expect(lastUserTurn('responses', [])).toBeUndefined();
  });
});
