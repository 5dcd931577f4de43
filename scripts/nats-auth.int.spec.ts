import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ensureTopology, putConfig, watchControl } from '@sluice/bus';
import { freePort, natsServerOnPath } from '@sluice/bus/nats-server';
import { eventually, minimalConfig } from '@sluice/bus/testing';
import {
  Consumers,
  ControlKeys,
  hashKey,
  invokerConsumer,
  KEY_CHECKERS,
  KeyHashKeys,
  LANES,
  ServiceName,
  Subjects,
  Topology,
  type ConsumerSpec,
} from '@sluice/contracts';
import { createLogger } from '@sluice/telemetry';
import { appUser, OPERATOR_USER, tenantInboxPrefix } from './nats-auth.js';
import { startAuthNats, type AuthNats } from './nats-auth-server.js';

// A real nats-server with the generated users: each right is shown by doing it, each refusal by
// the server's "Permissions Violation" for exactly that subject.
const TENANTS = ['acme', 'beta'];
const B = Topology.buckets;
/** Every key hash the config declares: the tenants' API and read keys, the admin key. */
const HASHES = [...TENANTS.flatMap((id) => [hashKey(`sk-${id}`), hashKey(`rk-${id}`)]), hashKey('sk-admin')];
let dir: string;
let nats: AuthNats;
const open: NatsConnection[] = [];

interface As {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The permission errors the server sent this connection so far. */
  violations: PermissionViolationError[];
}

/** A connection as `user`; an application's with its tenant's inbox prefix. */
async function as(user: string, inboxPrefix?: string): Promise<As> {
  const nc = await connect({ servers: nats.url, user, pass: nats.passwords[user]!, ...(inboxPrefix ? { inboxPrefix } : {}) });
  open.push(nc);
  const violations: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
  })();
  // checkAPI off: an application may not ask for the account's JetStream info
  return { nc, js: jetstream(nc, { timeout: 3000 }), jsm: await jetstreamManager(nc, { checkAPI: false, timeout: 3000 }), violations };
}
const app = (tenant: string) => as(appUser(tenant), tenantInboxPrefix(tenant));

/** Resolves once the server refused `op` on `subject` for this connection. */
async function refused(c: As, op: 'publish' | 'subscription', subject: string): Promise<void> {
  await eventually(() => c.violations.some((v) => v.operation === op && v.subject === subject), 3000, {
    what: `a permissions violation for ${op} to ${subject}`,
  });
}

/** The promise rejects with the server's permission error (a request whose subject is refused fails at once). */
async function rejectsAsDenied(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(String(err)).toMatch(/permissions violation/i);
}

const subscribeRefused = async (c: As, subject: string) => {
  const sub = c.nc.subscribe(subject);
  await refused(c, 'subscription', subject);
  sub.unsubscribe();
};

const eventCount = async (subject: string) => {
  const op = await as(OPERATOR_USER);
  const info = await op.jsm.streams.info(Topology.stream.name, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-nats-auth-'));
  nats = await startAuthNats({ dir, port: await freePort(), tenants: TENANTS });
  // what scripts/stack.ts does as the operator before any service starts
  const op = await as(OPERATOR_USER);
  const buckets = await ensureTopology({ nc: op.nc, js: op.js, jsm: op.jsm });
  await putConfig(buckets, {
    ...minimalConfig(TENANTS.map((id) => ({ id, keySha256: [hashKey(`sk-${id}`)], readKeySha256: [hashKey(`rk-${id}`)] }))),
    admin: { keySha256: [hashKey('sk-admin')] },
  });
  await buckets.keys.put('vk1', '{"secret":"hash of a virtual key"}');
  await buckets.cache.put('acme.k1', '{"answer":"acme only"}');
});
afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => undefined)));
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the generated config', () => {
  it('is one nats-server -t accepts, and it exposes no monitoring endpoint', () => {
    const r = spawnSync(natsServerOnPath()!, ['-c', nats.confPath, '-t'], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('is valid');
    expect(readFileSync(nats.confPath, 'utf8')).not.toMatch(/http|monitor/);
    expect(readFileSync(nats.logPath, 'utf8')).not.toMatch(/http monitor|monitoring/i);
  });

  it('lets no one in without a user, or with a wrong password', async () => {
    await expect(connect({ servers: nats.url, reconnect: false })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: nats.url, user: 'ingress', pass: 'guess', reconnect: false })).rejects.toThrow(/authorization/i);
  });
});

describe('a tenant application', () => {
  it('cannot publish any event, on core NATS or JetStream', async () => {
    const acme = await app('acme');
    await rejectsAsDenied(acme.js.publish(Subjects.event('chat.completed', 'acme'), '{}'));
    acme.nc.publish(Subjects.event('chat.requested', 'acme'), '{}');
    await refused(acme, 'publish', Subjects.event('chat.requested', 'acme'));
    expect(await eventCount(Subjects.event('chat.requested', 'acme'))).toBe(0);
  });

  it("cannot request on another tenant's subject, or listen to its inbox, alerts, results or the services' inboxes", async () => {
    const acme = await app('acme');
    acme.nc.publish(Subjects.chat('beta'), '{}');
    await refused(acme, 'publish', Subjects.chat('beta'));
    for (const s of [
      `${tenantInboxPrefix('beta')}.>`,
      'sluice.inbox.>',
      '_INBOX.>',
      Subjects.alerts('beta'),
      Subjects.resultsAll,
      'sluice.results.*',
      Subjects.chatAll,
      '>',
    ])
      await subscribeRefused(acme, s);
  });

  it("cannot read the virtual keys, the config's key hashes, the cache, the config or a request body", async () => {
    const acme = await app('acme');
    for (const bucket of [B.keys.name, B.tenantKeys.name, B.cache.name, B.control.name]) {
      await rejectsAsDenied(acme.jsm.direct.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.vk1` }));
      await rejectsAsDenied(acme.jsm.streams.getMessage(`KV_${bucket}`, { seq: 1 }));
    }
    await rejectsAsDenied(acme.jsm.streams.getMessage(Topology.stream.name, { seq: 1 }));
    await rejectsAsDenied(acme.jsm.consumers.add(Topology.stream.name, { name: 'peek', filter_subject: Subjects.allEvents, ack_policy: AckPolicy.None }));
  });

  it('cannot create, delete or purge a stream', async () => {
    const acme = await app('acme');
    await rejectsAsDenied(acme.jsm.streams.add({ name: 'MINE', subjects: ['mine.>'] }));
    await rejectsAsDenied(acme.jsm.streams.delete(Topology.stream.name));
    await rejectsAsDenied(acme.jsm.streams.purge(`KV_${B.cache.name}`));
    await rejectsAsDenied(acme.jsm.streams.purge(Topology.stream.name));
  });

  it('gets the answer to its request on its own inbox, where the other tenant cannot listen', async () => {
    const ingress = await as('ingress');
    const invoker = await as('invoker');
    // ingress takes the request; the terminal stage (here the invoker) answers on its reply subject
    ingress.nc.subscribe(Subjects.chatAll, { queue: 'ingress', callback: (_e, m) => invoker.nc.publish(m.reply!, `answer for ${m.subject}`) });
    await ingress.nc.flush();
    const [acme, beta] = [await app('acme'), await app('beta')];
    const answer = await acme.nc.request(Subjects.chat('acme'), '{}', { timeout: 3000 });
    expect(answer.string()).toBe('answer for sluice.chat.acme');
    expect(answer.subject.startsWith(`${tenantInboxPrefix('acme')}.`)).toBe(true);
    await subscribeRefused(beta, `${tenantInboxPrefix('acme')}.>`);
    // an application on the default _INBOX prefix hears nothing: that prefix is the services'
    const plain = await as(appUser('acme'));
    await rejectsAsDenied(plain.nc.request(Subjects.chat('acme'), '{}', { timeout: 3000 }));
  });

  it('reads a stored result by its id and cancels by id', async () => {
    const invoker = await as('invoker');
    await invoker.js.publish(Subjects.result('req_1'), '{"requestId":"req_1"}');
    const acme = await app('acme');
    const stored = await acme.jsm.direct.getMessage(Topology.results.name, { last_by_subj: Subjects.result('req_1') });
    expect(stored?.string()).toBe('{"requestId":"req_1"}');
    acme.nc.publish(Subjects.cancel('req_1'));
    await acme.nc.flush();
    expect(acme.violations).toEqual([]);
  });
});

describe('the services', () => {
  it('ingress cannot publish chat.completed (or any later stage’s event)', async () => {
    const ingress = await as('ingress');
    for (const type of ['chat.completed', 'chat.admitted', 'cache.hit', 'budget.threshold_crossed'] as const)
      await rejectsAsDenied(ingress.js.publish(Subjects.event(type, 'acme'), '{}'));
    expect(await eventCount(Subjects.event('chat.completed', 'acme'))).toBe(0);
  });

  it('only ingress and the ledger (which writes them) can read the virtual keys', async () => {
    for (const name of Object.values(ServiceName)) {
      const s = await as(name);
      // a compare-and-set bucket: read through its stream's leader (the message get), as the services read it
      const get = s.jsm.streams.getMessage(`KV_${B.keys.name}`, { last_by_subj: `$KV.${B.keys.name}.vk1` });
      if (name === 'ingress' || name === 'ledger') expect((await get)?.string(), name).toContain('hash of a virtual key');
      else await rejectsAsDenied(get);
    }
  });

  it("only ingress and the ledger can read the tenants' key hashes; the config every service reads carries none", async () => {
    const stored = (await (
      await as(OPERATOR_USER)
    ).jsm.direct.getMessage(`KV_${B.control.name}`, { last_by_subj: `$KV.${B.control.name}.${ControlKeys.config}` }))!;
    for (const hash of HASHES) expect(stored.string()).not.toContain(hash);
    for (const name of Object.values(ServiceName)) {
      const s = await as(name);
      const get = s.jsm.direct.getMessage(`KV_${B.tenantKeys.name}`, { last_by_subj: `$KV.${B.tenantKeys.name}.${KeyHashKeys.config}` });
      const watch = s.jsm.consumers.add(`KV_${B.tenantKeys.name}`, {
        name: `peek-${name}`,
        filter_subject: `$KV.${B.tenantKeys.name}.>`,
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.LastPerSubject,
      });
      if (KEY_CHECKERS.includes(name)) {
        const text = (await get)!.string();
        for (const hash of HASHES) expect(text, name).toContain(hash);
        expect((await watch).name).toBe(`peek-${name}`);
        await s.jsm.consumers.delete(`KV_${B.tenantKeys.name}`, `peek-${name}`);
      } else {
        await rejectsAsDenied(get);
        await rejectsAsDenied(watch);
        await rejectsAsDenied(s.jsm.streams.getMessage(`KV_${B.tenantKeys.name}`, { seq: 1 }));
      }
    }
  });

  it('no service can delete or purge a stream', async () => {
    for (const name of Object.values(ServiceName)) {
      const s = await as(name);
      await rejectsAsDenied(s.jsm.streams.delete(Topology.stream.name));
      await rejectsAsDenied(s.jsm.streams.purge(Topology.stream.name));
    }
  });

  it('each can start as runService does: the topology it finds, the config it watches (with key hashes for ingress and the ledger only)', async () => {
    for (const name of Object.values(ServiceName)) {
      const s = await as(name);
      const buckets = await ensureTopology({ nc: s.nc, js: s.js, jsm: s.jsm });
      const checks = KEY_CHECKERS.includes(name);
      const control = await watchControl(buckets.control, createLogger(name, 'silent'), checks ? { keyHashes: buckets.tenantKeys } : {});
      expect(control.config().tenants.map((t) => t.id)).toEqual(TENANTS);
      const seen = JSON.stringify(control.config());
      for (const hash of HASHES) expect(seen.includes(hash), `${name} sees ${hash}`).toBe(checks);
      control.stop();
      expect(s.violations, name).toEqual([]);
    }
  });

  // every consumer in the routing table, run by its own service's user: it can create its
  // durable, pull what it receives, ack it and publish each event it emits
  const consumers: ConsumerSpec[] = [...Object.values(Consumers).filter((c) => c.service !== 'degrader'), ...LANES.map((l) => invokerConsumer(l))];
  it.each(consumers.map((c) => [c.durable, c] as const))(
    '%s: its service creates, pulls and acks its durable and publishes what it emits',
    async (_d, spec) => {
      const op = await as(OPERATOR_USER);
      const s = await as(spec.service);
      await s.jsm.consumers.add(Topology.stream.name, {
        durable_name: spec.durable,
        filter_subject: spec.filter,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
      });
      const subject = spec.filter.replaceAll('*', 'acme').replace('>', 'x.acme');
      await op.js.publish(subject, '{}');
      const m = await (await s.js.consumers.get(Topology.stream.name, spec.durable)).next({ expires: 3000 });
      expect(m?.subject).toBe(subject);
      await m?.ackAck();
      for (const type of spec.emits) await s.js.publish(type === 'chat.routed' ? Subjects.routed('standard', 'acme') : Subjects.event(type, 'acme'), '{}');
      expect(s.violations).toEqual([]);
    },
  );

  it("each reads and writes its own buckets and not another's", async () => {
    const own: Record<ServiceName, Array<keyof typeof B>> = {
      ingress: ['idempotency', 'batches'],
      limiter: ['limits'],
      cache: ['cache', 'semantic', 'inflight'],
      router: [],
      invoker: ['results', 'upstreamBatches', 'circuits', 'leases'],
      ledger: ['budgets', 'keys'],
      degrader: ['leases'],
    };
    for (const name of Object.values(ServiceName)) {
      const s = await as(name);
      const buckets = await ensureTopology({ nc: s.nc, js: s.js, jsm: s.jsm });
      for (const bucket of own[name]) {
        await buckets[bucket].put(`t.${name}`, 'v');
        expect((await buckets[bucket].get(`t.${name}`))?.string(), `${name} ${bucket}`).toBe('v');
      }
      for (const bucket of Object.keys(B).filter((b) => !own[name].includes(b as keyof typeof B)))
        await rejectsAsDenied(s.js.publish(`$KV.${B[bucket as keyof typeof B].name}.t`, 'v'));
    }
  });

  it('only the operator writes the config; the degrader writes the level, the ledger the canary rollbacks', async () => {
    const control = `$KV.${B.control.name}`;
    for (const name of Object.values(ServiceName)) await rejectsAsDenied((await as(name)).js.publish(`${control}.${ControlKeys.config}`, '{}'));
    await (await as('degrader')).js.publish(`${control}.${ControlKeys.degrade}`, '{}');
    await (await as('ledger')).js.publish(`${control}.${ControlKeys.canaries}`, '{}');
    await rejectsAsDenied((await as('ledger')).js.publish(`${control}.${ControlKeys.degrade}`, '{}'));
  });

  it('the degrader follows attempts and circuit changes, and cannot follow other events', async () => {
    const degrader = await as('degrader');
    for (const filter of [Consumers.degraderInvoke.filter, Consumers.degraderCircuit.filter]) {
      const c = await degrader.js.consumers.get(Topology.stream.name, { filter_subjects: filter });
      await c.delete();
    }
    await rejectsAsDenied(degrader.jsm.consumers.add(Topology.stream.name, { name: 'peek', filter_subject: Subjects.allEvents, ack_policy: AckPolicy.None }));
    await rejectsAsDenied(
      degrader.jsm.consumers.add(Topology.stream.name, { name: 'peek', filter_subject: Subjects.eventsOf('chat.requested'), ack_policy: AckPolicy.None }),
    );
  });
});
