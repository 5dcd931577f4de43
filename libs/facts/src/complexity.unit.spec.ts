import { countText } from '@sluice/tokens';
import { describe, expect, it } from 'vitest';
import { bodyFacts, bodyFactsAsync, describeComplexity, type Complexity } from './mod.js';

// Moved from the router (complexity.unit.spec.ts and router.unit.spec.ts), on bodies.
const say = (...contents: string[]) => ({ model: 'auto', messages: contents.map((content) => ({ role: 'user', content })) });
const complexity = (body: Record<string, unknown>): Complexity => bodyFacts('chat.completions', body).complexity;

const hard = `Analyze and compare these two designs, explain why one is faster, step by step:\n\`\`\`ts\n${'const a = [1, 2, 3].map((x) => x * 2);\n'.repeat(40)}\`\`\``;

describe('complexity', () => {
  it('scores a short question near zero and an analytical code request high', () => {
    expect(complexity(say('What is the capital of France?')).score).toBeLessThan(0.05);
    const c = complexity(say(hard));
    expect(c.code).toBe(true);
    expect(c.keywords).toEqual(['analyze', 'compare', 'explain why', 'step by step']);
    expect(c.score).toBeGreaterThan(0.5);
    expect(c.score).toBeLessThanOrEqual(1);
  });

  it('grows with turns and length, and ignores hard words in the system prompt', () => {
    const oneTurn = complexity(say('hi')).score;
    const manyTurns = complexity(say(...Array.from({ length: 9 }, () => 'hi'))).score;
    expect(manyTurns).toBeGreaterThan(oneTurn);
    expect(complexity(say('word '.repeat(4000))).score).toBeGreaterThanOrEqual(0.35);
    const system = complexity({
      messages: [
        { role: 'system', content: 'Analyze and compare, step by step.' },
        { role: 'user', content: 'hi' },
      ],
    });
    expect(system.keywords).toEqual([]);
  });

  it('reads user text parts, and not the assistant, tools or tool results', () => {
    const c = complexity({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Please refactor:' },
            { type: 'text', text: '```js\nx()\n```' },
          ],
        },
        {
          role: 'assistant',
          content: 'I will analyze it.',
          tool_calls: [{ id: '1', type: 'function', function: { name: 'debug', arguments: '{"prove":1}' } }],
        },
        { role: 'tool', tool_call_id: '1', content: 'compare' },
      ],
      tools: [{ type: 'function', function: { name: 'optimize', description: 'evaluate' } }],
    });
    expect(c).toMatchObject({ turns: 1, code: true, keywords: ['refactor'] });
  });

  it('reads a Responses string input, or its user items', () => {
    const text = bodyFacts('responses', { instructions: 'Always analyze.', input: 'Compare A and B' }).complexity;
    expect(text).toMatchObject({ turns: 1, keywords: ['compare'] });
    const items = bodyFacts('responses', {
      input: [
        { role: 'developer', content: 'Derive everything.' },
        { role: 'user', content: [{ type: 'input_text', text: 'debug this' }] },
        { type: 'message', role: 'user', content: 'then critique it' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'proof: ...' }] },
      ],
    }).complexity;
    expect(items).toMatchObject({ turns: 2, keywords: ['critique', 'debug'] });
  });

  it('counts the length of every role but no framing', () => {
    const c = complexity({
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'hi', name: 'ana' },
      ],
    });
    expect(c.promptTokens).toBe(countText('You are terse.') + countText('hi'));
  });

  it('is zero for embeddings', () => {
    expect(bodyFacts('embeddings', { input: 'Analyze ```code``` step by step' }).complexity).toEqual({
      score: 0,
      promptTokens: 0,
      turns: 0,
      code: false,
      keywords: [],
    });
  });
});

describe('complexity on hostile text', () => {
  it('finds a hard phrase whose words are parted by long whitespace runs', () => {
    const c = complexity(say(`please step${' '.repeat(200_000)}by\n${'\t'.repeat(100_000)}step, then explain${'\n'.repeat(50_000)}why`));
    expect(c.keywords).toEqual(['explain why', 'step by step']);
  });

  it('finds nothing in long runs of whitespace, a long word or many combining marks', () => {
    for (const text of [' '.repeat(1_048_576), `step${' '.repeat(1_048_576)}x`, 'x'.repeat(1_048_576), `a${'\u0301'.repeat(500_000)}`]) {
      expect(complexity(say(text)).keywords).toEqual([]);
    }
  });

  it('scores a 1 MB word by its bounded token count', () => {
    const word = 'analyze'.padEnd(1_048_576, 'x');
    const c = complexity(say(word));
    expect(c.promptTokens).toBe(countText(word));
    expect(c.keywords).toEqual(['analyze']);
    expect(c.score).toBe(0.45);
  });

  it('is the same counted off the event loop', async () => {
    const body = say('compare these: '.padEnd(300_000, 'ab '));
    expect((await bodyFactsAsync('chat.completions', body)).complexity).toEqual(complexity(body));
  });
});

describe('describeComplexity', () => {
  it('gives the score and its signals', () => {
    expect(describeComplexity({ score: 0.42, promptTokens: 812, turns: 3, code: true, keywords: ['refactor'] })).toBe(
      '0.42 (812 tokens, 3 turns, code, refactor)',
    );
    expect(describeComplexity({ score: 0, promptTokens: 2, turns: 1, code: false, keywords: [] })).toBe('0.00 (2 tokens, 1 turn)');
  });
});
