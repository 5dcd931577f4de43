/** A query parameter that cannot be used; the API answers 400 `invalid_request` naming it. */
export class BadParam extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

const CostDimensions = ['tenant', 'user', 'model', 'feature', 'day'] as const;
export type CostDimension = (typeof CostDimensions)[number];

const CacheDimensions = ['tenant', 'model', 'day', 'kind'] as const;
export type CacheDimension = (typeof CacheDimensions)[number];

const SloDimensions = ['model', 'tenant'] as const;
export type SloDimension = (typeof SloDimensions)[number];

export interface CostsQuery {
  from: Date;
  to: Date;
  groupBy: CostDimension[];
  tenant?: string;
}

export interface CacheQuery {
  from: Date;
  to: Date;
  groupBy: CacheDimension[];
  tenant?: string;
}

export interface SloQuery {
  window: string;
  from: Date;
  to: Date;
  groupBy?: SloDimension;
  tenant?: string;
}

type Query = Record<string, unknown>;
const DAY_MS = 86_400_000;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: DAY_MS } as const;
const MAX_WINDOW_MS = 366 * DAY_MS;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function one(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParam(name, `${name} may be given once`);
  return v;
}

function date(q: Query, name: string): Date | undefined {
  const v = one(q, name);
  if (v === undefined) return undefined;
  const t = ISO_DATE.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new BadParam(name, `${name} must be an ISO 8601 date, e.g. 2025-01-31T00:00:00Z`);
  return new Date(t);
}

function list<T extends string>(q: Query, name: string, allowed: readonly T[]): T[] | undefined {
  const v = one(q, name);
  if (v === undefined) return undefined;
  const items = [...new Set(v.split(',').map((s) => s.trim()))];
  const bad = items.find((s) => !(allowed as readonly string[]).includes(s));
  if (bad !== undefined || items.length === 0) throw new BadParam(name, `${name} takes a comma-separated list of ${allowed.join(', ')}; got "${bad ?? v}"`);
  return items as T[];
}

/** `/v1/costs` parameters: from/to default to the last 24 hours, groupBy to tenant. */
export function parseCostsQuery(q: Query, now: number): CostsQuery {
  const to = date(q, 'to') ?? new Date(now);
  const from = date(q, 'from') ?? new Date(to.getTime() - DAY_MS);
  if (from.getTime() >= to.getTime()) throw new BadParam('from', 'from must be before to');
  const groupBy = list(q, 'groupBy', CostDimensions) ?? ['tenant'];
  const tenant = one(q, 'tenant');
  if (tenant === '') throw new BadParam('tenant', 'tenant must not be empty');
  return { from, to, groupBy, ...(tenant ? { tenant } : {}) };
}

/** `/v1/cache` parameters: as `/v1/costs`'s (from/to default to the last 24 hours), grouped by tenant, model, day and kind (default tenant,model,day). */
export function parseCacheQuery(q: Query, now: number): CacheQuery {
  const { from, to, tenant } = parseCostsQuery({ ...q, groupBy: undefined }, now);
  const groupBy = list(q, 'groupBy', CacheDimensions) ?? ['tenant', 'model', 'day'];
  return { from, to, groupBy, ...(tenant ? { tenant } : {}) };
}

/** `/v1/slo` parameters: a window like 15m, 1h, 24h or 7d (default 1h) ending now, optionally grouped, optionally one tenant's. */
export function parseSloQuery(q: Query, now: number): SloQuery {
  const window = one(q, 'window') ?? '1h';
  const m = /^(\d{1,6})([mhd])$/.exec(window);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : 0;
  if (ms <= 0 || ms > MAX_WINDOW_MS) throw new BadParam('window', 'window must be a positive duration up to 366d in m, h or d, e.g. 15m, 1h, 7d');
  const groupBy = list(q, 'groupBy', SloDimensions);
  if (groupBy && groupBy.length > 1) throw new BadParam('groupBy', 'groupBy takes one of model, tenant');
  const tenant = one(q, 'tenant');
  if (tenant === '') throw new BadParam('tenant', 'tenant must not be empty');
  return { window, from: new Date(now - ms), to: new Date(now), ...(groupBy ? { groupBy: groupBy[0]! } : {}), ...(tenant ? { tenant } : {}) };
}
