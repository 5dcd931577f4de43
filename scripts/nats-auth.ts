// Least privilege on NATS (issue 16): one user per service and one per tenant application, each
// allowed only the subjects it needs, written as a nats-server config. docs/nats-security.md says
// who may do what and which test proves it.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Consumers,
  EventType,
  invokerConsumer,
  LANES,
  LEGACY_INVOKER_DURABLE,
  replayDurable,
  ServiceName,
  Subjects,
  Topology,
  type ConsumerSpec,
} from '@sluice/contracts';

/** A user's rights as nats-server reads them: what it may publish and subscribe to. */
export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

export interface NatsUser {
  user: string;
  password: string;
  /** None: every subject (the operator). */
  permissions?: NatsPermissions;
}

/** The user scripts/stack.ts and scripts/config.ts connect as: creates the topology, writes the config; every right. */
export const OPERATOR_USER = 'operator';

/** The NATS user of a tenant's applications. */
export const appUser = (tenant: string) => `app-${tenant}`;

/**
 * The inbox prefix a tenant's applications connect with (nats.js `inboxPrefix`): answers to
 * `sluice.chat.<tenant>` go to `<prefix>.<id>`, which only that tenant's user may subscribe to.
 * A tenant left on the default `_INBOX` gets no answers: its user may not read `_INBOX.>`,
 * where the services' own replies (and the HTTP door's answers) go.
 *
 * @example
 * const nc = await connect({ servers, user: appUser('acme'), pass, inboxPrefix: tenantInboxPrefix('acme') });
 */
export const tenantInboxPrefix = Subjects.inbox;
const ANY_TENANT_INBOX = Subjects.inboxAll;

const API = '$JS.API';
const EVENTS = Topology.stream.name;
const DLQ = Topology.deadLetters.name;
const RESULTS = Topology.results.name;
const B = Topology.buckets;
const kvStream = (bucket: string) => `KV_${bucket}`;
const FILES_STREAM = `OBJ_${Topology.files.name}`;

/** Every stream Sluice declares; `ensureTopology` asks each service for the info of all of them at start. */
const ALL_STREAMS = [EVENTS, DLQ, RESULTS, ...Object.values(B).map((b) => kvStream(b.name)), FILES_STREAM];

// --- building blocks -------------------------------------------------------------------------

interface Rights {
  pub: string[];
  sub: string[];
}
const rights = (pub: string[], sub: string[] = []): Rights => ({ pub, sub });
const merge = (...all: Rights[]): Rights =>
  rights(
    all.flatMap((r) => r.pub),
    all.flatMap((r) => r.sub),
  );

/** Publishing events of these types, every tenant (and `chat.routed`'s lane token). */
const emits = (types: readonly EventType[]) => rights(types.map((t) => `sluice.evt.${t}.>`));

/** A durable pull consumer of its own: create/update, info, pull, ack; and where it parks what it cannot handle. */
function durable(stream: string, name: string): Rights {
  return rights([
    `${API}.CONSUMER.CREATE.${stream}.${name}`,
    `${API}.CONSUMER.CREATE.${stream}.${name}.>`,
    `${API}.CONSUMER.DURABLE.CREATE.${stream}.${name}`,
    `${API}.CONSUMER.INFO.${stream}.${name}`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.${name}`,
    `$JS.ACK.${stream}.${name}.>`,
  ]);
}

/** A consumer of the event stream as the bus runs it: its durable, its dead letters and their replay consumer. */
function eventConsumer(spec: Pick<ConsumerSpec, 'durable'>): Rights {
  return merge(
    durable(EVENTS, spec.durable),
    durable(DLQ, replayDurable(spec.durable)),
    rights([Subjects.parked(spec.durable)]),
    emits([EventType.EventParked]),
  );
}

/** Reading another service's consumer's state (its backlog), not its messages. */
const consumerInfo = (stream: string, names: readonly string[]) => rights(names.map((n) => `${API}.CONSUMER.INFO.${stream}.${n}`));
const consumerDelete = (stream: string, names: readonly string[]) => rights(names.map((n) => `${API}.CONSUMER.DELETE.${stream}.${n}`));

/** Reading single messages of a stream (KV gets, a request's body by sequence, a stored result). */
const streamGet = (stream: string) => rights([`${API}.DIRECT.GET.${stream}`, `${API}.DIRECT.GET.${stream}.>`, `${API}.STREAM.MSG.GET.${stream}`]);

/**
 * Watching (and listing) a stream through ephemeral ordered consumers whose filter is within
 * `filter`: 2.9's consumer-create subject names the filter, so nothing outside it can be asked
 * for. Their names are random, so the pull and flow-control subjects name the stream only.
 */
function watch(stream: string, filters: readonly string[]): Rights {
  return rights([
    ...filters.map((f) => `${API}.CONSUMER.CREATE.${stream}.*.${f}`),
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.FC.${stream}.>`,
  ]);
}

const kvRead = (bucket: string) => merge(streamGet(kvStream(bucket)), watch(kvStream(bucket), [`$KV.${bucket}.>`]));
const kvWrite = (bucket: string) => merge(kvRead(bucket), rights([`$KV.${bucket}.>`]));

/** The common life of every service (runService): account info, the topology's stream infos, the control bucket's config, its own inboxes. */
const service = merge(rights([`${API}.INFO`, ...ALL_STREAMS.map((s) => `${API}.STREAM.INFO.${s}`)], ['_INBOX.>']), kvRead(B.control.name));

/**
 * Answering a request: the terminal stage replies on the caller's inbox (the HTTP door's
 * `_INBOX.>`, an application's tenant inbox) and keeps answers meant for later on their result
 * subject (SLUICE_RESULTS, captured from core NATS).
 */
const answers = rights([`_INBOX.>`, ANY_TENANT_INBOX, Subjects.resultsAll]);
/** A request's body, read back once by its sequence in the event stream (readRequested). */
const requestBodies = streamGet(EVENTS);
/**
 * Reading the terminal event a duplicate's ack points at (bus `publishEvent`: which end a request
 * already had), for the publishers of terminal events that do not read bodies. Both already see
 * every request's body: ingress publishes it, the limiter consumes it.
 */
const endedAs = rights([`${API}.STREAM.MSG.GET.${EVENTS}`]);

const E = EventType;
const lanes = LANES.map((lane) => invokerConsumer(lane).durable);
/** The consumers whose backlog ingress sheds by and the degrader degrades by. */
const backlogOf = [Consumers.limiter.durable, Consumers.cacheLookup.durable, Consumers.router.durable, ...lanes];

/** What each service may do. A right missing here shows in the nats-server log as a "Publish Violation" or "Subscription Violation" naming the user and subject. */
const SERVICE_RIGHTS: Record<ServiceName, Rights> = {
  ingress: merge(
    service,
    emits([
      E.ChatRequested,
      E.ChatRejected,
      E.ChatShed,
      E.ChatFailed,
      E.BatchCreated,
      E.BatchValidated,
      E.BatchFailed,
      E.BatchCompleted,
      E.BatchCancelled,
      E.BatchExpired,
    ]),
    answers,
    endedAs,
    rights([Subjects.cancelAll], [Subjects.chatAll, Subjects.resultsAll]),
    consumerInfo(EVENTS, backlogOf),
    streamGet(RESULTS),
    // virtual keys: the admin API writes them, ingress alone reads them
    kvRead(B.keys.name),
    // the config's key hashes (KEY_CHECKERS): the operator writes them with the config
    kvRead(B.tenantKeys.name),
    kvWrite(B.idempotency.name),
    kvWrite(B.batches.name),
    // the Files API: chunks and metadata, read through ordered consumers, deleted by purging a file's chunks
    rights([`$O.${Topology.files.name}.>`, `${API}.STREAM.PURGE.${FILES_STREAM}`]),
    streamGet(FILES_STREAM),
    watch(FILES_STREAM, [`$O.${Topology.files.name}.>`]),
  ),
  limiter: merge(
    service,
    emits(Consumers.limiter.emits),
    answers,
    endedAs,
    eventConsumer(Consumers.limiter),
    eventConsumer(Consumers.limiterReconcile),
    eventConsumer(Consumers.limiterReconcileCancelled),
    kvWrite(B.limits.name),
    // budgets: the ledger's spend, read; its own reservations, the `admitted.*` counters, written
    kvRead(B.budgets.name),
    rights([`$KV.${B.budgets.name}.admitted.>`]), // BudgetKeys.admitted
    // ordered consumers: the upstreams' limits (adaptive limit), a redelivered request's decision in its tenant's chat events
    watch(EVENTS, [Subjects.eventsOf(E.UpstreamLimitsObserved), Subjects.familyOf('chat', '*')]),
  ),
  cache: merge(
    service,
    emits([...Consumers.cacheLookup.emits, ...Consumers.cacheStore.emits]),
    answers,
    eventConsumer(Consumers.cacheLookup),
    eventConsumer(Consumers.cacheStore),
    requestBodies,
    kvWrite(B.cache.name),
    kvWrite(B.semantic.name),
    kvWrite(B.inflight.name),
    // coalescing: followers hear their leader's record change and how a leader's request ended (core NATS)
    rights([], [`$KV.${B.inflight.name}.>`, ...[E.ChatFailed, E.ChatShed, E.ChatCancelled, E.ChatHeld].map((t) => Subjects.eventsOf(t))]),
  ),
  router: merge(
    service,
    emits([...Consumers.router.emits, ...Consumers.routerHeld.emits]),
    answers,
    eventConsumer(Consumers.router),
    eventConsumer(Consumers.routerHeld),
    requestBodies,
  ),
  invoker: merge(
    service,
    emits([...invokerConsumer('standard').emits, E.UpstreamBatchQueued, E.UpstreamBatchSubmitted, E.UpstreamBatchCompleted]),
    answers,
    ...LANES.map((lane) => eventConsumer(invokerConsumer(lane))),
    consumerDelete(EVENTS, [LEGACY_INVOKER_DURABLE]),
    rights([], [Subjects.cancelAll]),
    requestBodies,
    kvWrite(B.results.name),
    kvWrite(B.upstreamBatches.name),
    kvWrite(B.circuits.name),
    kvWrite(B.leases.name),
  ),
  ledger: merge(
    service,
    emits([...Consumers.ledger.emits, ...Consumers.ledgerAlerts.emits, E.KeyCreated, E.KeyRotated, E.KeyRevoked, E.ResultDeliveryAttempted]),
    // the ledger recreates its durable from the database's position (rebuild, ack floor ahead)
    eventConsumer(Consumers.ledger),
    consumerDelete(EVENTS, [Consumers.ledger.durable]),
    eventConsumer(Consumers.ledgerAlerts),
    durable(RESULTS, 'ledger-result-webhooks'),
    // gaps in its batches are read from the stream itself
    requestBodies,
    rights([Subjects.alertsAll]),
    consumerInfo(EVENTS, backlogOf),
    // its /metrics: every durable's backlog
    rights([EVENTS, RESULTS].map((stream) => `${API}.CONSUMER.LIST.${stream}`)),
    kvWrite(B.budgets.name),
    kvWrite(B.keys.name),
    // the config's key hashes (KEY_CHECKERS): its read keys and admin keys; written by the operator only
    kvRead(B.tenantKeys.name),
    kvRead(B.circuits.name),
    // canary rollbacks (ControlKeys.canaries); the config key stays the operator's
    rights(['$KV.sluice_control.canaries']),
  ),
  degrader: merge(
    service,
    emits([E.DegradeChanged]),
    // every replica follows attempts and circuit changes with ordered consumers of its own
    watch(EVENTS, [Consumers.degraderInvoke.filter, Consumers.degraderCircuit.filter]),
    consumerDelete(EVENTS, [Consumers.degraderInvoke.durable, Consumers.degraderCircuit.durable]),
    consumerDelete(DLQ, [replayDurable(Consumers.degraderInvoke.durable), replayDurable(Consumers.degraderCircuit.durable)]),
    consumerInfo(EVENTS, backlogOf),
    rights(['$KV.sluice_control.degrade']),
    kvWrite(B.leases.name),
    kvRead(B.circuits.name),
    kvRead(B.budgets.name),
  ),
};

const unique = (xs: string[]) => [...new Set(xs)];

/** A service's rights. */
export function servicePermissions(name: ServiceName): NatsPermissions {
  const r = SERVICE_RIGHTS[name];
  return { publish: { allow: unique(r.pub) }, subscribe: { allow: unique(r.sub) } };
}

/**
 * A tenant application's rights: request on its own chat subject, hear answers on its own inbox
 * prefix and its own budget alerts, cancel a request and read a stored result by its id (a
 * 20-byte random id is the capability; the result's tenant header is checked by the client).
 * No event subject, no bucket, no stream or consumer management.
 */
export function appPermissions(tenant: string): NatsPermissions {
  return {
    publish: { allow: [Subjects.chat(tenant), Subjects.cancelAll, `${API}.DIRECT.GET.${RESULTS}.${Subjects.result('*')}`] },
    subscribe: { allow: [`${tenantInboxPrefix(tenant)}.>`, Subjects.alerts(tenant)] },
  };
}

/** Every user: the operator, the seven services, one application user per tenant. */
export function natsUsers(tenants: readonly string[], passwords: Readonly<Record<string, string>>): NatsUser[] {
  const pass = (user: string) => {
    const p = passwords[user];
    if (!p) throw new Error(`no NATS password for user ${user}`);
    return p;
  };
  return [
    { user: OPERATOR_USER, password: pass(OPERATOR_USER) },
    ...Object.values(ServiceName).map((name) => ({ user: name, password: pass(name), permissions: servicePermissions(name) })),
    ...tenants.map((t) => ({ user: appUser(t), password: pass(appUser(t)), permissions: appPermissions(t) })),
  ];
}

/** The names of every user, for generating their passwords. */
export function natsUserNames(tenants: readonly string[]): string[] {
  return [OPERATOR_USER, ...Object.values(ServiceName), ...tenants.map(appUser)];
}

const q = (s: string) => JSON.stringify(s);
const list = (xs: readonly string[]) => `[${xs.map(q).join(', ')}]`;

/**
 * The nats-server config: JetStream under `storeDir`, Sluice's max_payload, the users. No
 * `http_port`, so no monitoring endpoint is exposed (its /connz and /subsz would show every
 * user's subjects to anyone who can reach it).
 *
 * @example
 * writeFileSync(conf, natsAuthConfig({ storeDir, users: natsUsers(['acme'], passwords) }), { mode: 0o600 });
 */
export function natsAuthConfig(opts: { storeDir: string; users: readonly NatsUser[] }): string {
  return [
    '# Written by scripts/nats-auth.ts (docs/nats-security.md): do not edit, it is regenerated.',
    `max_payload: ${Topology.maxPayloadBytes}`,
    `jetstream { store_dir: ${q(opts.storeDir)} }`,
    ...authorization(opts.users, (u) => q(u.password)),
    '',
  ].join('\n');
}

/** The `authorization { users = [...] }` block; `password` writes a user's password as the config has it. */
function authorization(users: readonly NatsUser[], password: (u: NatsUser) => string): string[] {
  const lines = users.map((u) => {
    const perms = u.permissions
      ? `, permissions: { publish: { allow: ${list(u.permissions.publish.allow)} }, subscribe: { allow: ${list(u.permissions.subscribe.allow)} } }`
      : '';
    return `    { user: ${q(u.user)}, password: ${password(u)}${perms} }`;
  });
  return ['authorization {', '  users = [', ...lines, '  ]', '}'];
}

/**
 * The environment variable a deployed nats-server reads a user's password from: the user's name
 * upper-cased, anything but letters and digits as `_`, then `_PASS` (`INGRESS_PASS`,
 * `APP_DEV_PASS`). In Kubernetes, a key of the `sluice-nats-users` Secret.
 */
export const passwordVar = (user: string) => `${user.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PASS`;

/**
 * `deploy/nats/users.conf`, which the cluster's `nats.conf` includes: the same users and rights
 * as `npm start`'s nats-server (the operator, the seven services, `app-<tenant>` per tenant), each
 * password read from the environment (`passwordVar`), never written. Throws when two users would
 * read one variable (tenants `a-b` and `a_b`).
 *
 * @example
 * writeFileSync('deploy/nats/users.conf', deployUsersConfig(['dev']));
 */
export function deployUsersConfig(tenants: readonly string[]): string {
  const names = natsUserNames(tenants);
  const vars = names.map(passwordVar);
  const clash = vars.find((v, i) => vars.indexOf(v) !== i);
  if (clash) throw new Error(`two NATS users would read their password from ${clash}`);
  const users = natsUsers(tenants, Object.fromEntries(names.map((n) => [n, passwordVar(n)])));
  return [
    '# Written by `npm run nats:users` from scripts/nats-auth.ts (docs/nats-security.md): the users and',
    "# rights npm start's nats-server has, for the tenants of config/sluice.json. Do not edit: add a",
    '# tenant to the config, run `npm run nats:users` again, and give its password to the Secret.',
    `# Passwords come from the environment: ${vars.join(', ')}.`,
    ...authorization(users, (u) => `$${u.password}`),
    '',
  ].join('\n');
}

/**
 * The users' passwords, kept in `<dir>/<user>` (mode 0600): read where they exist, so a restart
 * keeps them, else made (32 random bytes, base64url). Never logged.
 */
export function natsPasswords(dir: string, users: readonly string[]): Record<string, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const out: Record<string, string> = {};
  for (const user of users) {
    const file = join(dir, user);
    let password: string;
    try {
      password = readFileSync(file, 'utf8').trim();
    } catch {
      password = randomBytes(32).toString('base64url');
      writeFileSync(file, `${password}\n`, { mode: 0o600 });
    }
    out[user] = password;
  }
  return out;
}
