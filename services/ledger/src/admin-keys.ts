import { randomBytes } from 'node:crypto';
import {
  CreateKeyRequest,
  hashKey,
  isTimeZone,
  makeEvent,
  schemaProblem,
  ServiceName,
  type SluiceConfig,
  type SluiceEvent,
  type VirtualKey,
} from '@sluice/contracts';
import { BadParam } from './params.js';

/**
 * The admin API's decisions about virtual keys, pure: what record a create, a rotation or a
 * revocation writes to `sluice_keys`, the event it publishes, and what a caller is shown (never
 * a hash). The key itself exists only in the one answer that creates or rotates it.
 */

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `n` characters of [A-Za-z0-9], uniform (bytes of 248 and above are drawn again: 248 = 4 × 62). */
function base62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248) out += BASE62[b % 62];
      if (out.length === n) break;
    }
  }
  return out;
}

/** A new key: `sk-sluice-` and 43 base62 characters (256 bits). */
export const newSecret = (): string => `sk-sluice-${base62(43)}`;
/** A new key id: `key_` and 20 base62 characters (`KEY_ID_PATTERN`). */
export const newKeyId = (): string => `key_${base62(20)}`;
/** Tells two rotations of one key in the same millisecond apart in their events' ids. */
export const newChangeId = (): string => base62(8);

/** When a key stops working: epoch ms as given, or an ISO 8601 date-time read as epoch ms. */
function instant(value: number | string, param: string, now: number): number {
  const ms = typeof value === 'number' ? value : /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw new BadParam(param, `${param} must be epoch milliseconds or an ISO 8601 date-time, e.g. 2027-01-31T00:00:00Z`);
  if (ms <= now) throw new BadParam(param, `${param} must be in the future`);
  return ms;
}

/**
 * Checks a create request's body: its shape (closed: an unknown field is named), that its tenant
 * is configured, and that its models are ones the tenant may use.
 *
 * @throws BadParam naming the field (400 invalid_request)
 */
export function checkCreate(body: unknown, config: SluiceConfig): CreateKeyRequest {
  const problem = schemaProblem(CreateKeyRequest, body ?? {});
  if (problem) throw new BadParam(problem.path || 'body', `${problem.path || 'body'}: ${problem.message}`);
  const req = body as CreateKeyRequest;
  const tenant = config.tenants.find((t) => t.id === req.tenant);
  if (!tenant) throw new BadParam('tenant', `tenant: no tenant ${JSON.stringify(req.tenant)} is configured`);
  const allowed = tenant.models ?? Object.keys(config.models);
  req.models?.forEach((m, i) => {
    if (!allowed.includes(m)) throw new BadParam(`models.${i}`, `models.${i}: tenant ${tenant.id} may not use the model ${JSON.stringify(m)}`);
  });
  if (req.webhook !== undefined && !config.alerts.webhooks.some((w) => w.id === req.webhook && (w.tenants === undefined || w.tenants.includes(tenant.id)))) {
    throw new BadParam('webhook', `webhook: no webhook ${JSON.stringify(req.webhook)} in alerts.webhooks takes tenant ${tenant.id}'s`);
  }
  if (req.budget?.timeZone !== undefined && !isTimeZone(req.budget.timeZone)) {
    throw new BadParam('budget.timeZone', `budget.timeZone: unknown time zone ${req.budget.timeZone}`);
  }
  return req;
}

/** The record a checked create request writes. */
export function createdKey(req: CreateKeyRequest, ids: { id: string; secret: string }, now: number): VirtualKey {
  return {
    id: ids.id,
    tenant: req.tenant,
    name: req.name,
    sha256: hashKey(ids.secret),
    ...(req.models ? { models: [...new Set(req.models)] } : {}),
    ...(req.limits ? { limits: req.limits } : {}),
    ...(req.budget ? { budget: req.budget } : {}),
    ...(req.lane ? { lane: req.lane } : {}),
    ...(req.webhook !== undefined ? { webhook: req.webhook } : {}),
    ...(req.expiresAt !== undefined ? { expiresAt: instant(req.expiresAt, 'expiresAt', now) } : {}),
    ...(req.metadata ? { metadata: req.metadata } : {}),
    createdAt: now,
  };
}

/**
 * A key after a rotation to `secret`: the previous key keeps working for `graceSeconds` (none by
 * default), then only the new one does. A revoked key is not rotated.
 *
 * @throws BadParam id: the key was revoked
 */
export function rotatedKey(current: VirtualKey, secret: string, graceSeconds: number, now: number): VirtualKey {
  if (current.revokedAt !== undefined) throw new BadParam('id', `key ${current.id} was revoked; create a new key instead`);
  const { previousSha256: _p, previousExpiresAt: _e, ...rest } = current;
  return {
    ...rest,
    sha256: hashKey(secret),
    rotatedAt: now,
    ...(graceSeconds > 0 ? { previousSha256: current.sha256, previousExpiresAt: now + graceSeconds * 1000 } : {}),
  };
}

/** A key revoked at `now`, kept so that it is refused with `key_expired`; revoking twice keeps the first time. */
export function revokedKey(current: VirtualKey, now: number): VirtualKey {
  if (current.revokedAt !== undefined) return current;
  const { previousSha256: _p, previousExpiresAt: _e, ...rest } = current;
  return { ...rest, revokedAt: now };
}

/** A key as the admin API shows it: everything but its hashes. Times are epoch ms. */
export interface KeyView {
  object: 'key';
  id: string;
  tenant: string;
  name: string;
  status: 'active' | 'expired' | 'revoked';
  models: string[] | null;
  limits: VirtualKey['limits'] | null;
  budget: VirtualKey['budget'] | null;
  lane: VirtualKey['lane'] | null;
  webhook: string | null;
  metadata: Record<string, string>;
  createdAt: number;
  expiresAt: number | null;
  rotatedAt: number | null;
  /** Until when the key before the last rotation still works. */
  previousValidUntil: number | null;
  revokedAt: number | null;
}

export function keyView(k: VirtualKey, now: number): KeyView {
  const status = k.revokedAt !== undefined ? 'revoked' : k.expiresAt !== undefined && now >= k.expiresAt ? 'expired' : 'active';
  return {
    object: 'key',
    id: k.id,
    tenant: k.tenant,
    name: k.name,
    status,
    models: k.models ?? null,
    limits: k.limits ?? null,
    budget: k.budget ?? null,
    lane: k.lane ?? null,
    webhook: k.webhook ?? null,
    metadata: k.metadata ?? {},
    createdAt: k.createdAt,
    expiresAt: k.expiresAt ?? null,
    rotatedAt: k.rotatedAt ?? null,
    previousValidUntil: k.previousExpiresAt !== undefined && now < k.previousExpiresAt ? k.previousExpiresAt : null,
    revokedAt: k.revokedAt ?? null,
  };
}

type KeyEventType = 'key.created' | 'key.rotated' | 'key.revoked';

/**
 * The event of a change to a key, on its tenant's subject and no request's timeline. Its id is
 * the key's id, the change's time and `change` (a rotation's `newChangeId()`: a key is created
 * and revoked once, rotated any number of times), so a retried publish of it is deduplicated
 * and two changes never are. No hash, no key.
 */
export function keyEvent(type: KeyEventType, k: VirtualKey, at: number, change?: string): SluiceEvent<KeyEventType> {
  const fields = { requestId: '', tenant: k.tenant, service: ServiceName.Ledger, at, suffix: `${k.id}:${at}${change ? `:${change}` : ''}` };
  switch (type) {
    case 'key.created':
      return makeEvent(type, { ...fields, reason: `admin created key ${k.id} (${k.name}) for tenant ${k.tenant}` }, { keyId: k.id, name: k.name });
    case 'key.rotated': {
      const grace =
        k.previousExpiresAt !== undefined
          ? `; the previous key works until ${new Date(k.previousExpiresAt).toISOString()}`
          : '; the previous key stopped working';
      return makeEvent(
        type,
        { ...fields, reason: `admin rotated key ${k.id} (${k.name})${grace}` },
        { keyId: k.id, name: k.name, ...(k.previousExpiresAt !== undefined ? { previousValidUntil: k.previousExpiresAt } : {}) },
      );
    }
    case 'key.revoked':
      return makeEvent(type, { ...fields, reason: `admin revoked key ${k.id} (${k.name})` }, { keyId: k.id, name: k.name });
    default: {
      const _exhaustive: never = type;
      return _exhaustive;
    }
  }
}
