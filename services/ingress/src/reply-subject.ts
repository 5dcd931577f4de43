import { Subjects } from '@sluice/contracts';

/**
 * Which reply subjects the NATS door takes. A request's reply subject becomes `ctx.replyTo`, and
 * the stage that ends the request publishes the answer there with its own NATS rights, which
 * include event subjects and answers to every tenant: taken unchecked, a tenant could have its
 * answer published into another tenant's inbox or forge an event (`sluice.evt.…`).
 *
 * - `tenant-inbox`: only `sluice.inbox.<tenant>.…`, the one prefix the asking tenant's NATS user
 *   may subscribe to. For NATS with Sluice's generated users (scripts/nats-auth.ts), where an
 *   application cannot hear `_INBOX.` anyway.
 * - `tenant-or-default-inbox` (the default): also nats.js's default `_INBOX.…`, and `_R_.…`, the
 *   reply subject nats-server makes for a request that came through a service import (the
 *   `APPS` account of deploy/nats/nats.conf). For NATS without users, where any client can read
 *   any subject and the default prefix is what every client library uses.
 */
export type ReplyRule = 'tenant-inbox' | 'tenant-or-default-inbox';

/** The environment variable that says NATS runs with Sluice's generated users (`1`), as `startStack({ natsAuth })` sets it. */
const NATS_USERS_ENV = 'SLUICE_NATS_USERS';

/**
 * The rule from the environment: `SLUICE_NATS_USERS=1` → `tenant-inbox`; unset, empty or `0` →
 * `tenant-or-default-inbox`. Anything else throws, naming the variable, so a typo does not
 * quietly leave the door open.
 */
export function replyRuleFrom(env: NodeJS.ProcessEnv): ReplyRule {
  const value = env[NATS_USERS_ENV]?.trim() ?? '';
  if (value === '1') return 'tenant-inbox';
  if (value === '' || value === '0') return 'tenant-or-default-inbox';
  throw new Error(`${NATS_USERS_ENV} must be 1 (NATS runs with Sluice's users: tenant inboxes only) or 0/unset, not ${JSON.stringify(value)}`);
}

const DEFAULT_PREFIXES = ['_INBOX.', '_R_.'];

/** A subject token: not empty, not a wildcard, no space or control character (those end a subject in NATS's protocol). */
const plainToken = (token: string) => token.length > 0 && token !== '*' && token !== '>' && ![...token].some((c) => c <= ' ' || c === '\x7f');

/** True when `subject` is under one of `prefixes` and is a plain subject: tokens separated by single dots. */
function under(subject: string, prefixes: readonly string[]): boolean {
  const prefix = prefixes.find((p) => subject.startsWith(p));
  if (prefix === undefined || subject.length === prefix.length) return false;
  return subject.split('.').every(plainToken);
}

/**
 * Whether the door may answer `tenant`'s request on `replyTo` (and pass it on as `ctx.replyTo`).
 * `tenant` is the one the request subject names (`sluice.chat.<tenant>`), which its key must
 * then prove.
 *
 * @example
 * replyAllowed('sluice.inbox.acme.x1.7', 'acme', 'tenant-inbox'); // true
 * replyAllowed('sluice.inbox.beta.x1.7', 'acme', 'tenant-inbox'); // false: another tenant's inbox
 * replyAllowed('sluice.evt.chat.completed.acme', 'acme', 'tenant-or-default-inbox'); // false
 */
export function replyAllowed(replyTo: string, tenant: string, rule: ReplyRule): boolean {
  const own = `${Subjects.inbox(tenant)}.`;
  return under(replyTo, rule === 'tenant-inbox' ? [own] : [own, ...DEFAULT_PREFIXES]);
}

/**
 * Whether a refused reply subject may still carry the refusal (`invalid_reply_subject`), so that
 * a client with a wrong inbox prefix learns why it hears nothing. Never one under `sluice.` (an
 * event, another tenant's inbox, a stored result, a cancel) nor `$` (the JetStream, KV and
 * system APIs: an error published to `$JS.API.STREAM.DELETE.<stream>` would be a delete request
 * sent with ingress's rights); those are dropped.
 */
export function mayCarryRefusal(replyTo: string): boolean {
  return !replyTo.startsWith('sluice.') && !replyTo.startsWith('$') && under(replyTo, ['']);
}
