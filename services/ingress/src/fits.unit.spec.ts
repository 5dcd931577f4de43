import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '@sluice/contracts';
import { checkFits, requestRoom } from './fits.js';
import { RequestRejected } from './rejection.js';

const MiB = 1024 * 1024;
const request = (content: string): ChatRequest => ({
  model: 'auto',
  messages: [{ role: 'user', content }],
  priority: 'standard',
  stream: false,
  params: {},
  cache: 'default',
});
const size = (r: ChatRequest) => Buffer.byteLength(JSON.stringify(r));

describe('checkFits', () => {
  it('leaves half of max_payload for the answer', () => {
    expect(requestRoom(8 * MiB)).toBe(4 * MiB - 4096);
    expect(requestRoom(1_000_000)).toBe(500_000 - 4096);
  });

  it('accepts a request up to the room, and refuses one byte more with 413 body_too_large', () => {
    const max = 1_000_000;
    const room = requestRoom(max);
    const fits = request('x'.repeat(room - size(request(''))));
    expect(size(fits)).toBe(room);
    expect(() => checkFits(fits, undefined, max)).not.toThrow();
    const over = request('x'.repeat(room - size(request('')) + 1));
    const err = (() => {
      try {
        checkFits(over, size(over), max);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RequestRejected);
    expect(err).toMatchObject({ code: 'body_too_large', status: 413, param: 'messages' });
    expect((err as Error).message).toContain('max_payload 1000000');
  });

  it('measures what the body grew into, not the body: escapes and invalid UTF-8 expand', () => {
    const max = 1_000_000;
    // 200 KB of control characters travel as \u0001 (six bytes each) however they arrived
    const controls = request('\u0001'.repeat(200_000));
    expect(() => checkFits(controls, 200_100, max)).toThrow(RequestRejected);
    // a small body skips the measurement and is right to
    expect(() => checkFits(request('hello'), 60, max)).not.toThrow();
  });
});
