import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { BudgetLimit, Priority, Rate, VirtualKey } from './spend.js';

/**
 * The admin API's request bodies (`/admin/v1/keys`, on the ledger's HTTP port) and the checks
 * both its writer (the ledger) and its reader (ingress, watching `sluice_keys`) run. Closed
 * objects: an unknown field is refused with its path.
 */

const closed = { additionalProperties: false } as const;

/** When a key stops working: epoch ms, or an ISO 8601 date-time. */
const Instant = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1, maxLength: 64 })]);

/** `POST /admin/v1/keys`. */
export const CreateKeyRequest = Type.Object(
  {
    tenant: Type.String({ minLength: 1 }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    models: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 256 })),
    limits: Type.Optional(Rate),
    budget: Type.Optional(BudgetLimit),
    lane: Type.Optional(Priority),
    /** The webhook (an `alerts.webhooks` id of the tenant) this key's async answers are POSTed to when a request names none. */
    webhook: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    expiresAt: Type.Optional(Instant),
    metadata: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), { maxProperties: 32 })),
  },
  closed,
);
export type CreateKeyRequest = Static<typeof CreateKeyRequest>;

/** Longest rotation grace period: a week (the old key works this long after a rotation). */
export const MAX_GRACE_SECONDS = 7 * 86_400;

/** `POST /admin/v1/keys/:id/rotate`. */
export const RotateKeyRequest = Type.Object({ graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_GRACE_SECONDS })) }, closed);
export type RotateKeyRequest = Static<typeof RotateKeyRequest>;

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();

/**
 * The first problem of a value against a schema, as `path: message` with the path in dots
 * (`budget.limitUsd: Expected number`, `colour: Unexpected property`); undefined when it fits.
 *
 * @example
 * schemaProblem(CreateKeyRequest, { tenant: 'dev' }) // 'name: Expected required property'
 */
export function schemaProblem(schema: TSchema, value: unknown): { path: string; message: string } | undefined {
  let check = checks.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    checks.set(schema, check);
  }
  if (check.Check(value)) return undefined;
  const e = check.Errors(value).First();
  return { path: (e?.path ?? '').replace(/^\//, '').replaceAll('/', '.'), message: e?.message ?? 'invalid' };
}

/** Whether a `sluice_keys` record is a well-formed `VirtualKey`. */
export function isVirtualKey(value: unknown): value is VirtualKey {
  return schemaProblem(VirtualKey, value) === undefined;
}
