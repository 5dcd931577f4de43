import { describe, expect, it } from 'vitest';
import { idempotencyBucketKey, idempotencyKeyOf, MAX_IDEMPOTENCY_KEY_CHARS, replayable, requestFingerprint } from './idempotency.js';
import { RequestRejected } from './rejection.js';

describe('idempotencyKeyOf', () => {
  it('takes 1 to 255 printable ASCII characters, inner spaces included', () => {
    for (const ok of ['a', '550e8400-e29b-41d4-a716-446655440000', 'order 42/retry', 'k'.repeat(MAX_IDEMPOTENCY_KEY_CHARS)])
      expect(idempotencyKeyOf(ok, 'p')).toBe(ok);
    expect(idempotencyKeyOf(undefined, 'p')).toBeUndefined();
  });

  it('refuses empty, too long, control and non-ASCII keys, naming the header', () => {
    for (const bad of ['', ' ', ' lead', 'trail ', 'k'.repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1), 'nul\0', 'tab\t', 'café', '\ud800']) {
      let thrown: unknown;
      try {
        idempotencyKeyOf(bad, 'idempotency-key');
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(RequestRejected);
      expect(thrown).toMatchObject({ code: 'invalid_request', param: 'idempotency-key' });
    }
  });
});

describe('replayable', () => {
  const error = (status: number, code = 'x') => ({ requestId: 'r', error: { code, message: 'm', status } });
  it('replays answers and errors a retry would meet again, not those a retry may mend', () => {
    expect(replayable({ requestId: 'r', status: 'held', resultSubject: 's', at: 1 })).toBe(true);
    expect(replayable(error(400, 'invalid_request'))).toBe(true);
    expect(replayable(error(404, 'model_not_found'))).toBe(true);
    for (const mended of [error(429), error(500), error(502), error(503), error(504, 'deadline_exceeded'), error(499, 'request_cancelled'), error(408)])
      expect([mended.error.status, replayable(mended)]).toEqual([mended.error.status, false]);
  });
});

describe('fingerprints and bucket keys', () => {
  it('tell requests apart by endpoint and body, and keys apart by tenant', () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
    expect(requestFingerprint('chat.completions', body)).toBe(requestFingerprint('chat.completions', structuredClone(body)));
    expect(requestFingerprint('chat.completions', body)).not.toBe(requestFingerprint('responses', body));
    expect(requestFingerprint('chat.completions', body)).not.toBe(requestFingerprint('chat.completions', { ...body, stream: true }));
    expect(idempotencyBucketKey('acme', 'k')).not.toBe(idempotencyBucketKey('beta', 'k'));
    expect(idempotencyBucketKey('acme', 'k')).toMatch(/^[0-9a-f]{64}$/);
  });
});
