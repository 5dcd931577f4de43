import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { signWebhook, verifySignature } from './webhooks.js';

const SECRET = 'whsec_test';
const BODY = JSON.stringify({ id: 'alert.t.b.2026-11.500:budget.threshold_crossed', data: { threshold: 0.5, note: 'é' } });
const NOW = Date.UTC(2026, 10, 30, 12);

describe('webhook signatures', () => {
  it('signs "<t>.<body>" with HMAC-SHA256 as Stripe does', () => {
    const t = Math.floor(NOW / 1000);
    const expected = createHmac('sha256', SECRET).update(`${t}.${BODY}`).digest('hex');
    expect(signWebhook(SECRET, BODY, NOW)).toBe(`t=${t},v1=${expected}`);
  });

  it('accepts its own signature, over the string or the raw bytes', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    expect(verifySignature(SECRET, header, BODY, 300, NOW)).toBe(true);
    expect(verifySignature(SECRET, header, new TextEncoder().encode(BODY), 300, NOW + 299_000)).toBe(true);
  });

  it('refuses another secret, a changed body, an old or future time', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    expect(verifySignature('whsec_other', header, BODY, 300, NOW)).toBe(false);
    expect(verifySignature(SECRET, header, BODY.replace('0.5', '0.9'), 300, NOW)).toBe(false);
    expect(verifySignature(SECRET, header, BODY, 300, NOW + 301_000)).toBe(false);
    expect(verifySignature(SECRET, header, BODY, 300, NOW - 301_000)).toBe(false);
  });

  it('accepts a header with several v1 signatures when one matches (a secret being rotated)', () => {
    const good = signWebhook(SECRET, BODY, NOW);
    const other = signWebhook('whsec_old', BODY, NOW).split(',')[1];
    expect(verifySignature(SECRET, `${good},${other}`, BODY, 300, NOW)).toBe(true);
    expect(verifySignature(SECRET, `${good.split(',')[0]},${other}`, BODY, 300, NOW)).toBe(false);
  });

  it('is false, never a throw, for malformed headers and an empty secret', () => {
    for (const h of [undefined, '', 't=1', 'v1=abc', 'garbage', 't=x,v1=' + 'a'.repeat(64), ['t=1,v1=' + 'a'.repeat(64)], 't=1,v1=' + 'z'.repeat(64)]) {
      expect(verifySignature(SECRET, h as string | undefined, BODY, 300, NOW)).toBe(false);
    }
    expect(verifySignature('', signWebhook('', BODY, NOW), BODY, 300, NOW)).toBe(false);
  });
});
