import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { casUpdate, createOnce, encodeJson, getJson, type Buckets } from '@sluice/bus';
import {
  KEY_ID_PATTERN,
  RotateKeyRequest,
  schemaProblem,
  SluiceError,
  type EventType,
  type SluiceConfig,
  type SluiceEvent,
  type VirtualKey,
} from '@sluice/contracts';
import { checkCreate, createdKey, keyEvent, keyView, newChangeId, newKeyId, newSecret, revokedKey, rotatedKey } from './admin-keys.js';
import { BadParam } from './params.js';

/** What the admin API writes to: the keys bucket, and the event stream its changes are published on. */
export interface AdminDeps {
  keys: Buckets['keys'];
  /** Publishes an event and resolves on its ack. */
  publish(event: SluiceEvent<EventType>): Promise<void>;
}

/** Admin bodies are a few fields; anything larger is refused unread. */
export const ADMIN_MAX_BODY_BYTES = 64 * 1024;
const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;

/**
 * The admin API, `/admin/v1/keys` (README "Virtual keys and the admin API", docs/keys-and-admin.md).
 * The caller registers it under its prefix after the admin-key check (http.ts).
 *
 * Each change is a compare-and-set write of the key's record in `sluice_keys` (what ingress
 * replicas watch, so it applies everywhere within milliseconds), then its `key.*` event. The
 * write decides: when the event cannot be published after it, the change stands and the failure
 * is logged (answering an error would lose the only copy of a new key).
 */
export function adminRoutes(deps: AdminDeps & { config(): SluiceConfig; now(): number }): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: ADMIN_MAX_BODY_BYTES }, (_request, text, done) => {
      if (text === '') return done(null, undefined);
      try {
        done(null, JSON.parse(text as string));
      } catch (e) {
        done(new SluiceError('invalid_json', `The request body is not valid JSON: ${(e as Error).message}`));
      }
    });

    const announce = async (request: FastifyRequest, event: SluiceEvent<EventType>) => {
      try {
        await deps.publish(event);
      } catch (err) {
        request.log.error({ err, event: event.id }, 'key changed, but its event could not be published');
      }
    };

    app.post('/keys', async (request, reply) => {
      const now = deps.now();
      const req = checkCreate(request.body, deps.config());
      const secret = newSecret();
      const key = createdKey(req, { id: newKeyId(), secret }, now);
      await createOnce(deps.keys, key.id, encodeJson(key));
      await announce(request, keyEvent('key.created', key, now));
      return reply.status(201).send({ ...keyView(key, now), key: secret });
    });

    app.get('/keys', async (request) => {
      const q = request.query as Record<string, unknown>;
      const tenant = one(q, 'tenant');
      const after = one(q, 'after');
      const limitText = one(q, 'limit');
      const limit = limitText === undefined ? DEFAULT_PAGE : Number(limitText);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new BadParam('limit', `limit must be an integer from 1 to ${MAX_PAGE}`);
      const now = deps.now();
      // ids in order, then records until a page is full: an admin listing, not a hot path
      const ids: string[] = [];
      for await (const id of await deps.keys.keys()) if (after === undefined || id > after) ids.push(id);
      ids.sort();
      const page: VirtualKey[] = [];
      let more = false;
      for (const id of ids) {
        const k = (await getJson<VirtualKey>(deps.keys, id))?.value;
        if (!k || (tenant !== undefined && k.tenant !== tenant)) continue;
        if (page.length === limit) {
          more = true;
          break;
        }
        page.push(k);
      }
      const data = page.map((k) => keyView(k, now));
      return { object: 'list', data, has_more: more, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
    });

    app.get<{ Params: { id: string } }>('/keys/:id', async (request) => keyView(await existing(deps.keys, request.params.id), deps.now()));

    app.post<{ Params: { id: string } }>('/keys/:id/rotate', async (request, reply: FastifyReply) => {
      const problem = schemaProblem(RotateKeyRequest, request.body ?? {});
      if (problem) throw new BadParam(problem.path || 'body', `${problem.path || 'body'}: ${problem.message}`);
      const grace = (request.body as RotateKeyRequest | undefined)?.graceSeconds ?? 0;
      const now = deps.now();
      const secret = newSecret();
      await existing(deps.keys, request.params.id);
      const key = await casUpdate<VirtualKey>(deps.keys, request.params.id, (current) => rotatedKey(found(current, request.params.id), secret, grace, now));
      await announce(request, keyEvent('key.rotated', key, now, newChangeId()));
      return reply.status(200).send({ ...keyView(key, now), key: secret });
    });

    app.delete<{ Params: { id: string } }>('/keys/:id', async (request) => {
      const now = deps.now();
      const before = await existing(deps.keys, request.params.id);
      if (before.revokedAt !== undefined) return keyView(before, now);
      const key = await casUpdate<VirtualKey>(deps.keys, request.params.id, (current) => revokedKey(found(current, request.params.id), now));
      if (key.revokedAt === now) await announce(request, keyEvent('key.revoked', key, now));
      return keyView(key, now);
    });
  };
}

async function existing(kv: Buckets['keys'], id: string): Promise<VirtualKey> {
  const k = KEY_ID_PATTERN.test(id) ? await getJson<VirtualKey>(kv, id) : undefined;
  return found(k?.value, id);
}

function found(k: VirtualKey | undefined, id: string): VirtualKey {
  if (!k) throw new SluiceError('not_found', `No virtual key ${id}.`);
  return k;
}

function one(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new BadParam(name, `${name} may be given once, not empty`);
  return v;
}
