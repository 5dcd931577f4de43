import { countMessagesAsync, countText } from '@sluice/tokens';
import type { ChatRequest } from '@sluice/contracts';
import { describe, expect, it } from 'vitest';
import { complexity } from './complexity.js';

const say = (...contents: string[]): Pick<ChatRequest, 'messages'> => ({ messages: contents.map((content) => ({ role: 'user', content })) });

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

  it('uses the count the handler made off the event loop', async () => {
    const request = say('compare these: '.padEnd(300_000, 'ab '));
    const [counted] = await countMessagesAsync(request.messages);
    expect(complexity(request).promptTokens).toBe(counted!.content);
  });
});
