import { describe, expect, it } from 'vitest';
import { chatBody, chatRequest, requestContext } from '@sluice/contracts/testing';
import { requestedEvent } from './events.js';
import { checkFits, requestRoom } from './fits.js';
import { RequestRejected } from './rejection.js';

const MiB = 1024 * 1024;
const event = (content: string, endpoint: 'chat.completions' | 'embeddings' = 'chat.completions') =>
  requestedEvent(
    'req_1',
    'acme',
    requestContext(chatRequest({ endpoint }), { receivedAt: 1 }),
    endpoint === 'embeddings' ? { model: 'm1', input: content } : chatBody(content),
  );
const size = (e: ReturnType<typeof event>) => Buffer.byteLength(JSON.stringify(e));

function refusal(fn: () => void): RequestRejected {
  try {
    fn();
  } catch (e) {
    if (e instanceof RequestRejected) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('checkFits', () => {
  it('leaves only the headers free: the body is written once, in chat.requested', () => {
    expect(requestRoom(8 * MiB)).toBe(8 * MiB - 4096);
    expect(requestRoom(1_000_000)).toBe(1_000_000 - 4096);
  });

  it('accepts chat.requested up to the room, and refuses one byte more with 413 body_too_large', () => {
    const max = 1_000_000;
    const room = requestRoom(max);
    const fits = event('x'.repeat(room - size(event(''))));
    expect(size(fits)).toBe(room);
    expect(() => checkFits(fits, undefined, max)).not.toThrow();
    const over = event('x'.repeat(room - size(event('')) + 1));
    const err = refusal(() => checkFits(over, size(over), max));
    expect(err).toMatchObject({ code: 'body_too_large', status: 413, param: 'messages' });
    expect(err.message).toContain('max_payload 1000000');
    expect(refusal(() => checkFits(event('x'.repeat(room), 'embeddings'), undefined, max)).param).toBe('input');
  });

  it('measures what the body grew into, not the body: invalid UTF-8 expands threefold', () => {
    const max = 1_000_000;
    // 400 KB of bytes that are not UTF-8 are read as U+FFFD, three bytes each
    const invalidUtf8 = event(Buffer.alloc(400_000, 0xff).toString('utf8'));
    expect(() => checkFits(invalidUtf8, 400_100, max)).toThrow(RequestRejected);
    // a small body skips the measurement and is right to
    expect(() => checkFits(event('hello'), 60, max)).not.toThrow();
  });
});
