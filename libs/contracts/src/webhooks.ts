import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * How Sluice signs the alerts it POSTs to webhooks, and how a receiver checks them: Stripe's
 * scheme. The body is signed as sent, with the time it was sent, so a receiver can refuse both a
 * forged body and a replay of an old one:
 *
 *   x-sluice-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   x-sluice-event-id: <the event's id> (the same on every retry: deduplicate on it)
 */
export const WebhookHeaders = {
  signature: 'x-sluice-signature',
  eventId: 'x-sluice-event-id',
} as const;

/** How far a signature's time may be from the receiver's clock by default, in seconds (Stripe's default). */
export const DEFAULT_SIGNATURE_TOLERANCE_SEC = 300;

/** The hex HMAC-SHA256 of `<t>.<body>` under `secret`. */
function hmac(secret: string, t: number, body: string | Uint8Array): string {
  const h = createHmac('sha256', secret).update(`${t}.`, 'utf8');
  return (typeof body === 'string' ? h.update(body, 'utf8') : h.update(body)).digest('hex');
}

/**
 * The `x-sluice-signature` header for a body sent at `nowMs`.
 *
 * @example
 * signWebhook('whsec_…', JSON.stringify(event), Date.now()) // 't=1764547200,v1=5f2b…'
 */
export function signWebhook(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${hmac(secret, t, body)}`;
}

/**
 * Checks an `x-sluice-signature` header against the raw body as received (the exact bytes, not
 * a re-serialized parse) and the shared secret: true when one of its `v1` signatures matches
 * and its time `t` is within `toleranceSec` of `nowMs`. Never throws; a malformed header is false.
 * Comparison is constant-time.
 *
 * @example
 * // in a node:http receiver, after reading the body into `raw`
 * if (!verifySignature(process.env.ALERTS_SECRET!, req.headers['x-sluice-signature'], raw, 300)) res.writeHead(400).end();
 */
export function verifySignature(
  secret: string,
  header: string | string[] | undefined,
  body: string | Uint8Array,
  toleranceSec = DEFAULT_SIGNATURE_TOLERANCE_SEC,
  nowMs = Date.now(),
): boolean {
  if (typeof header !== 'string' || secret.length === 0) return false;
  let t: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return false;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === 't') t = /^\d{1,12}$/.test(value) ? Number(value) : undefined;
    else if (name === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (t === undefined || signatures.length === 0) return false;
  if (Math.abs(nowMs / 1000 - t) > toleranceSec) return false;
  const expected = Buffer.from(hmac(secret, t, body), 'hex');
  return signatures.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected));
}
