import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type OpenAI from 'openai';
import { toFile } from 'openai/uploads';
import { answer, createOnce, decodeJson, encodeJson, publishEvent, resultMark, updateOnce, type ResultMark, type ServiceContext } from '@sluice/bus';
import { makeEvent, PATH_OF_ENDPOINT, ServiceName, Topology, type AnyEvent, type ChatReply, type SluiceConfig } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { streamBodies, Unsendable, type BodyReader } from './body.js';
import { outgoing, variantOf } from './outgoing.js';
import { kvResultStore, type ResultStore } from './results.js';
import { ClientPool } from './upstream.js';
import { ENDED_STATUSES, gather, groupId, jsonlLine, mapBack, pollDelay, ungrouped, type UpstreamGroup } from './upstream-batch.js';
import { concludeLine } from './upstream-batch-answer.js';
import { UpstreamBatchStore } from './upstream-batch-store.js';

/** The runner's lease in `sluice_leases`: one invoker replica at a time drives the upstream batches. */
const LEASE_KEY = 'upstream-batches';
const LEASE_MS = 6000;
/** How often the leader gathers lines and looks for groups to drive. */
const TICK_MS = 200;
/** How many lines' answers are published at once. */
const ANSWER_CONCURRENCY = 32;
/** How far back the upstream's batches are searched for one created before a crash (its input file names it). */
const MAX_SEARCHED_BATCHES = 1000;

interface RunnerDeps {
  store: UpstreamBatchStore;
  leases: KV;
  config: () => SluiceConfig;
  /** The SDK client of a deployment (its base URL and key). */
  client: (deployment: string) => OpenAI;
  readBody: BodyReader;
  results: ResultStore;
  publish: (event: AnyEvent) => Promise<unknown>;
  /** Sends a line's answer; resolves once a stored one (its result subject) has the stream's ack (bus `answer`). */
  reply: (replyTo: string | undefined, reply: ChatReply, mark?: ResultMark) => Promise<void> | void;
  /** Resolves once what was published on the connection (the replies) reached the server. */
  flush: () => Promise<void>;
  maxPayload: () => number;
  log: Logger;
  holder?: string;
  now?: () => number;
}

/** The running loop; `stop` hands the lease back and lets the groups in flight be taken over. */
export interface UpstreamBatches {
  stop(): Promise<void>;
}

/**
 * Drives the batch lines the invoker recorded for deployments with `batchApi` (batch-route.ts)
 * through the upstream's own Batch API, on one invoker replica at a time (a lease in
 * `sluice_leases`, renewed every third of its 6 s). Each round the leader gathers a Sluice batch's
 * quiet lines into a group (`gather`), and drives every group one step at a time, each step a
 * compare-and-set of the group's record first or after it, so a SIGKILL anywhere resumes where the
 * record says:
 *
 *   gathered -> JSONL built from the lines' bodies, uploaded (`files.create`, purpose batch) -> uploaded
 *   uploaded -> `creating` recorded, then `batches.create` -> submitted (upstream_batch.submitted)
 *   creating (found after a crash) -> the upstream's batches searched for this input file; created only if none
 *   submitted -> polled with backoff until it ends; output and error files read; each line ended as the
 *     invoker would end it (chat.completed / chat.failed, its reply to ctx.replyTo, sluice_results),
 *     skipping lines already answered -> answered (upstream_batch.completed)
 *   answered -> the line records, then the group's, deleted
 *
 * An upload repeated after a crash leaves an unused file upstream; a batch is never created twice.
 */
async function startUpstreamBatchRunner(deps: RunnerDeps): Promise<UpstreamBatches> {
  const now = deps.now ?? Date.now;
  const holder = deps.holder ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const { store, log } = deps;
  const driving = new Set<string>();
  /** A group whose step failed waits before the next try: ms, by group id. */
  const retryAt = new Map<string, { at: number; failures: number }>();
  let until: number | undefined;
  let beatAt = 0;
  let stopped = false;
  let revision = 0;

  const leading = () => !stopped && until !== undefined && now() < until - LEASE_MS / 3;

  const beat = async () => {
    try {
      const e = await deps.leases.get(LEASE_KEY);
      const current = e && e.operation === 'PUT' && e.length > 0 ? decodeJson<{ holder?: unknown; until?: unknown }>(e.value) : undefined;
      const at = now();
      if (current && current.holder !== holder && typeof current.until === 'number' && current.until > at) {
        until = undefined;
        return;
      }
      const next = encodeJson({ holder, until: at + LEASE_MS });
      // Once: of replicas that read one revision only one takes it, on a cluster too (docs/cluster.md)
      revision = e ? await updateOnce(deps.leases, LEASE_KEY, next, e.revision) : await createOnce(deps.leases, LEASE_KEY, next);
      if (until === undefined) log.info({ holder }, 'took the upstream batches lease: driving upstream batches');
      until = at + LEASE_MS;
    } catch (err) {
      // a lost race or NATS away: following (a leader stops before its record ends)
      log.debug({ err }, 'upstream batches lease: beat failed');
      if (!leading()) until = undefined;
    }
  };

  const drive = async (id: string): Promise<void> => {
    for (;;) {
      const seen = store.groups.get(id);
      if (!seen || !leading()) return;
      const g = seen.group;
      switch (g.state) {
        case 'gathered':
          await upload(g);
          break;
        case 'uploaded':
          await store.updateGroup({ ...g, state: 'creating' });
          await create(g, false);
          break;
        case 'creating':
          await create(g, true);
          break;
        case 'submitted':
          if (!(await pollAndAnswer(g))) return;
          break;
        case 'answered':
          for (const line of g.lines) await store.deleteLine(line);
          await store.deleteGroup(g.id);
          retryAt.delete(g.id);
          return;
        default: {
          const _exhaustive: never = g.state;
          return _exhaustive;
        }
      }
    }
  };

  const upload = async (g: UpstreamGroup) => {
    const config = deps.config();
    const texts = await Promise.all(
      g.lines.map(async (requestId) => {
        const line = store.lines.get(requestId);
        if (!line) throw new Error(`line ${requestId} of group ${g.id} is not recorded`);
        const { ctx, candidates, maxTokens } = line.event.data;
        let body: Record<string, unknown>;
        try {
          body = await deps.readBody(ctx, requestId);
        } catch (e) {
          // left out: the line comes back failed ("without an answer") when the batch ends
          if (e instanceof Unsendable) return undefined;
          throw e;
        }
        const candidate = candidates[0]!;
        const variant = variantOf(config, ctx.variant);
        const model = config.deployments[candidate.deployment]?.upstreamModel ?? candidate.model;
        const sent = outgoing(ctx.request.endpoint, body, {
          model,
          stream: false,
          ...(maxTokens !== undefined ? { maxTokens } : {}),
          ...(variant ? { variant } : {}),
        });
        return jsonlLine(requestId, ctx.request.endpoint, sent.body);
      }),
    );
    const jsonl = texts.filter((t) => t !== undefined).join('\n') + '\n';
    const file = await deps.client(g.deployment).files.create({ file: await toFile(Buffer.from(jsonl), `${g.id}.jsonl`), purpose: 'batch' });
    await store.updateGroup({ ...g, state: 'uploaded', inputFileId: file.id });
  };

  const create = async (g: UpstreamGroup, recovering: boolean) => {
    const client = deps.client(g.deployment);
    const inputFileId = g.inputFileId!;
    const found = recovering ? await findBatch(client, inputFileId) : undefined;
    const batch =
      found ??
      (await client.batches.create({
        input_file_id: inputFileId,
        endpoint: PATH_OF_ENDPOINT[g.endpoint],
        completion_window: '24h',
        metadata: { sluice_group: g.id, sluice_batch: g.batchId },
      }));
    await store.updateGroup({ ...store.groups.get(g.id)!.group, state: 'submitted', upstreamBatchId: batch.id });
    const reason = `${g.lines.length} lines of ${g.batchId} sent to ${g.deployment}'s Batch API as ${batch.id}${found ? ' (found after a restart)' : ''}`;
    await deps.publish(
      makeEvent(
        'upstream_batch.submitted',
        { requestId: g.batchId, tenant: g.tenant, service: ServiceName.Invoker, at: now(), reason, suffix: g.id },
        { group: g.id, deployment: g.deployment, upstreamBatchId: batch.id, inputFileId, lines: g.lines.length },
      ),
    );
  };

  /** Polls until the upstream batch ends, then answers its lines; false when the lease was lost meanwhile. */
  const pollAndAnswer = async (g: UpstreamGroup): Promise<boolean> => {
    const client = deps.client(g.deployment);
    for (let polls = 0; ; polls++) {
      const batch = await client.batches.retrieve(g.upstreamBatchId!);
      if (ENDED_STATUSES.has(batch.status)) {
        await answer(g, batch);
        return true;
      }
      await sleep(pollDelay(polls, deps.config().batches?.upstream ?? DEFAULT_POLL));
      if (!leading()) return false;
    }
  };

  const answer = async (g: UpstreamGroup, batch: OpenAI.Batch) => {
    const client = deps.client(g.deployment);
    const read = async (fileId: string | null | undefined) => (fileId ? await (await client.files.content(fileId)).text() : '');
    const [output, errors] = await Promise.all([read(batch.output_file_id), read(batch.error_file_id)]);
    const results = mapBack(g.lines, output, errors, batch.status);
    const config = deps.config();
    const at = now();
    const counts = { completed: 0, failed: 0 };
    const one = async (requestId: string) => {
      const line = store.lines.get(requestId);
      // answered before a crash: its answer is stored, the line is not sent to its client again
      const stored = line ? await deps.results.get(requestId) : undefined;
      if (!line || stored) {
        counts[stored?.event.type === 'chat.completed' ? 'completed' : 'failed']++;
        return;
      }
      const { events, conclude } = concludeLine(line, results.get(requestId)!, config, deps.maxPayload(), at, at - g.createdAt);
      await Promise.all([...events, conclude.terminal].map((e) => deps.publish(e)));
      const { ctx } = line.event.data;
      await deps.reply(ctx.replyTo, conclude.reply, resultMark(line.event.tenant, ctx));
      await deps.results.put({ requestId, tenant: line.event.tenant, result: conclude.reply, completedAt: conclude.terminal.at, event: conclude.terminal });
      counts[conclude.terminal.type === 'chat.completed' ? 'completed' : 'failed']++;
    };
    for (let i = 0; i < g.lines.length; i += ANSWER_CONCURRENCY) await Promise.all(g.lines.slice(i, i + ANSWER_CONCURRENCY).map(one));
    // the replies to the lines' result subjects are core publishes: on the server before the group says answered
    await deps.flush();
    const reason = `${batch.id} ended ${batch.status}: ${counts.completed} lines answered, ${counts.failed} failed`;
    await deps.publish(
      makeEvent(
        'upstream_batch.completed',
        { requestId: g.batchId, tenant: g.tenant, service: ServiceName.Invoker, at: now(), reason, suffix: g.id },
        { group: g.id, deployment: g.deployment, upstreamBatchId: batch.id, status: batch.status, ...counts },
      ),
    );
    await store.updateGroup({ ...store.groups.get(g.id)!.group, state: 'answered' });
  };

  const round = async () => {
    if (now() >= beatAt) {
      beatAt = now() + LEASE_MS / 3;
      await beat();
    }
    if (!leading()) return;
    const settings = deps.config().batches?.upstream ?? DEFAULT_GATHER;
    const groups = [...store.groups.values()].map((s) => s.group);
    for (const set of gather(ungrouped([...store.lines.values()], groups), now(), settings)) {
      const lines = set.lines.map((l) => l.event.requestId);
      await store.createGroup({ ...set, id: groupId(set.lines), lines, state: 'gathered', createdAt: now() });
    }
    for (const id of store.groups.keys()) {
      const wait = retryAt.get(id);
      if (driving.has(id) || (wait && wait.at > now())) continue;
      driving.add(id);
      void drive(id)
        .catch((err: unknown) => {
          const failures = (retryAt.get(id)?.failures ?? 0) + 1;
          const ms = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
          retryAt.set(id, { at: now() + ms, failures });
          log.warn({ err, group: id, retryInMs: ms }, 'upstream batch step failed; tried again later');
        })
        .finally(() => driving.delete(id));
    }
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = round()
        .catch((err: unknown) => log.warn({ err }, 'upstream batches round failed'))
        .finally(schedule);
    }, TICK_MS);
  };
  await store.start();
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      store.stop();
      if (until === undefined) return;
      until = undefined;
      // handed back: another replica takes over at its next beat, not a lease later
      await updateOnce(deps.leases, LEASE_KEY, encodeJson({ holder, until: 0 }), revision).catch(() => undefined);
    },
  };
}

const DEFAULT_GATHER = { gatherMs: 2000, maxLines: 1000 };
const DEFAULT_POLL = { pollMs: 1000, maxPollMs: 30_000 };

/** The upstream batch made from this input file, among the newest `MAX_SEARCHED_BATCHES`. */
async function findBatch(client: OpenAI, inputFileId: string): Promise<OpenAI.Batch | undefined> {
  let seen = 0;
  for await (const b of client.batches.list({ limit: 100 })) {
    if (b.input_file_id === inputFileId) return b;
    if (++seen >= MAX_SEARCHED_BATCHES) return undefined;
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The runner on the service's adapters: its own clients, bodies from the stream, answers as the invoker sends them. */
export async function startUpstreamBatches(svc: Pick<ServiceContext, 'bus' | 'buckets' | 'control' | 'log' | 'env'>): Promise<UpstreamBatches> {
  const { bus, buckets, control, log } = svc;
  const clients = new ClientPool(svc.env);
  return startUpstreamBatchRunner({
    store: new UpstreamBatchStore(buckets.upstreamBatches, log),
    leases: buckets.leases,
    config: control.config,
    client: (name) => clients.get(name, control.config().deployments[name]!),
    readBody: streamBodies(bus),
    results: kvResultStore(buckets.results),
    publish: (e) => publishEvent(bus.js, e),
    reply: (replyTo, reply, mark) => answer(bus, replyTo, reply, mark),
    flush: () => bus.nc.flush(),
    maxPayload: () => bus.nc.info?.max_payload ?? Topology.maxPayloadBytes,
    log,
  });
}
