import { describe, expect, it } from 'vitest';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { backoffMs, CallAborted, classifyError, parseRetryAfter, redact, remainingOf } from './retry.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');
const headers = (h: Record<string, string>) => new Headers(h);

describe('parseRetryAfter', () => {
  it('reads delta seconds', () => {
    expect(parseRetryAfter(headers({ 'retry-after': '3' }), NOW)).toBe(3000);
    expect(parseRetryAfter(headers({ 'retry-after': '0.25' }), NOW)).toBe(250);
  });
  it('reads an HTTP date relative to now, never negative', () => {
    expect(parseRetryAfter(headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:07 GMT' }), NOW)).toBe(7000);
    expect(parseRetryAfter(headers({ 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }), NOW)).toBe(0);
  });
  it('prefers retry-after-ms, rounding up', () => {
    expect(parseRetryAfter(headers({ 'retry-after-ms': '1234.2', 'retry-after': '2' }), NOW)).toBe(1235);
  });
  it('ignores missing and garbage values', () => {
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
    expect(parseRetryAfter(headers({}), NOW)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after': 'soon' }), NOW)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after-ms': '-5', 'retry-after': '1' }), NOW)).toBe(1000);
  });
});

describe('backoffMs', () => {
  const s = { baseBackoffMs: 100, maxBackoffMs: 1000 };
  it('grows exponentially up to the cap, at the top of the jitter range', () => {
    expect([1, 2, 3, 4, 5, 10].map((n) => backoffMs(n, s, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('is full jitter: zero at the bottom of the range, within bounds everywhere', () => {
    expect(backoffMs(4, s, () => 0)).toBe(0);
    for (let i = 0; i < 200; i++) {
      const n = 1 + (i % 8);
      const d = backoffMs(n, s, Math.random);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(1000, 100 * 2 ** (n - 1)));
    }
  });
});

describe('classifyError', () => {
  it('keeps status, message and Retry-After of an HTTP error', () => {
    const e = APIError.generate(429, { error: { message: 'Rate limit reached' } }, undefined, headers({ 'retry-after-ms': '800' }));
    expect(classifyError(e, NOW)).toEqual({
      kind: 'status',
      status: 429,
      message: 'Rate limit reached',
      retryable: true,
      retryAfterMs: 800,
      upstream: { status: 429, type: 'rate_limit_error', code: null, param: null, message: 'Rate limit reached' },
    });
  });
  it("keeps the upstream's own error: type, code and param, as OpenAI's SDKs read them", () => {
    const error = {
      message: "This model's maximum context length is 8 tokens.",
      type: 'invalid_request_error',
      code: 'context_length_exceeded',
      param: 'messages',
    };
    const e = APIError.generate(400, { error }, undefined, headers({}));
    expect(classifyError(e, NOW).upstream).toEqual({ status: 400, ...error });
  });
  it('marks client errors not retryable', () => {
    const e = APIError.generate(400, { error: { message: "Invalid 'temperature'" } }, undefined, headers({}));
    expect(classifyError(e, NOW)).toMatchObject({ kind: 'status', status: 400, retryable: false });
  });
  it('masks a key the upstream echoes back', () => {
    const e = APIError.generate(
      401,
      { error: { message: 'Incorrect API key provided: sk-proj-abcdef123456. You can find your key at ...' } },
      undefined,
      headers({}),
    );
    const f = classifyError(e, NOW);
    expect(f.message).not.toContain('abcdef123456');
    expect(f.message).toContain('sk-***');
    expect(f.upstream?.message).toBe(f.message);
  });
  it('treats timeouts, our own aborts and connection errors as retryable', () => {
    expect(classifyError(new APIConnectionTimeoutError(), NOW)).toMatchObject({ kind: 'timeout', retryable: true });
    expect(classifyError(new CallAborted('deadline reached during the call'), NOW)).toEqual({
      kind: 'timeout',
      message: 'deadline reached during the call',
      retryable: true,
    });
    expect(classifyError(new APIConnectionError({ cause: new Error('ECONNREFUSED') }), NOW)).toMatchObject({ kind: 'connection', retryable: true });
  });
  it('treats an error event inside a stream as retryable, anything else as a protocol failure', () => {
    expect(classifyError(new APIError(undefined, { message: 'overloaded' }, undefined, undefined), NOW)).toMatchObject({
      kind: 'protocol',
      retryable: true,
      message: 'overloaded',
    });
    expect(classifyError(new Error('upstream answered without usage'), NOW)).toMatchObject({ kind: 'protocol', retryable: false });
  });
  it('treats a body that broke off as a lost connection', () => {
    const cause = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    expect(classifyError(new TypeError('terminated', { cause }), NOW)).toEqual({
      kind: 'connection',
      message: 'connection lost mid-answer (terminated: other side closed)',
      retryable: true,
    });
  });
});

describe('remainingOf', () => {
  it('reads the rate-limit headroom the upstream sent, if any', () => {
    expect(remainingOf(headers({ 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-remaining-tokens': '9000' }))).toEqual({
      requests: '59',
      tokens: '9000',
    });
    expect(remainingOf(headers({ 'x-ratelimit-remaining-tokens': '0' }))).toEqual({ tokens: '0' });
    expect(remainingOf(headers({}))).toBeUndefined();
  });
});

describe('redact', () => {
  it('masks bearer tokens and key-shaped words', () => {
    expect(redact('Authorization: Bearer abc.def')).toBe('Authorization: Bearer ***');
    expect(redact('key sk-1234567890abcdef used')).toBe('key sk-*** used');
  });
});
