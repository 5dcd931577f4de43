import { describe, expect, it } from 'vitest';
import { contentOf, withContent, withoutContent } from './content.js';
import { T0, cachedRequest, coalescedRequest, completedRequest, priceOf, requested, semanticHitRequest } from './fixtures.js';
import { project } from './project.js';

const r = { id: 'r1', tenant: 'acme', at: T0 };

describe('the ledger never stores a conversation', () => {
  it('given chat.completed, cache.hit (exact or semantic) and cache.coalesced, then their rows keep model and usage but not the answer body', () => {
    for (const events of [
      completedRequest(r, 'gpt-4o-mini', 10, 5, 100),
      cachedRequest(r, 'gpt-4o-mini', 10, 5, 100),
      semanticHitRequest(r, 'gpt-4o-mini', 10, 5, 100, { matched: 'r0', similarity: 0.93, embeddingTokens: 4 }),
      coalescedRequest(r, 'gpt-4o-mini', 10, 5, 100, 'r0'),
    ]) {
      const terminal = events.at(-1)!;
      expect(['chat.completed', 'cache.hit', 'cache.coalesced']).toContain(terminal.type);
      // the text is put back from the stream for tenants that opted in
      expect(contentOf(terminal)?.answerBody).toBeDefined();
      const data = project(9, terminal, priceOf).event.data as { answer: Record<string, unknown> };
      expect(data.answer.body).toBeUndefined();
      expect(data.answer).toMatchObject({ model: 'gpt-4o-mini', usage: { prompt_tokens: 10, completion_tokens: 5 } });
      expect(JSON.stringify(data)).not.toContain('"message"');
    }
  });

  it("given chat.requested, then its row has no body (the client's prompt)", () => {
    expect((project(1, requested(r), priceOf).event.data as Record<string, unknown>).body).toBeUndefined();
  });

  it('given a row stored before, with an answer body, then serving strips it', () => {
    const old = { answer: { model: 'm', usage: { prompt_tokens: 1 }, body: { choices: [{ message: { content: 'secret' } }] } }, deployment: 'd' };
    expect(withoutContent('chat.completed', old)).toEqual({ answer: { model: 'm', usage: { prompt_tokens: 1 } }, deployment: 'd' });
    expect(withoutContent('chat.requested', { ctx: 1, body: { messages: [] } })).toEqual({ ctx: 1 });
    expect(withoutContent('invoke.failed', { error: 'x', body: 'kept: not a conversation event' })).toEqual({
      error: 'x',
      body: 'kept: not a conversation event',
    });
    expect(withoutContent('chat.completed', 'not an object')).toBe('not an object');
  });

  it('given the event from the stream, then its text goes back on the row where it was', () => {
    const [requestedEvent] = completedRequest(r, 'gpt-4o-mini', 10, 5, 100);
    const completed = completedRequest(r, 'gpt-4o-mini', 10, 5, 100).at(-1)!;
    const body = contentOf(requestedEvent!);
    expect(body).toEqual({ body: (requestedEvent as { data: { body: unknown } }).data.body });
    expect(withContent({ ctx: 1 }, body!)).toEqual({ ctx: 1, body: body!.body });
    const answer = contentOf(completed)!;
    const row = project(9, completed, priceOf).event.data as { answer: object };
    expect(answer.answerBody).toBeDefined();
    expect(withContent(row, answer)).toEqual({ ...row, answer: { ...row.answer, body: answer.answerBody } });
    expect(contentOf(completedRequest(r, 'gpt-4o-mini', 1, 1, 1)[1]!)).toBeUndefined();
  });
});
