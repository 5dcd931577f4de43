import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { storeResult, type Bus, type FileStore } from '@sluice/bus';
import {
  batchResultsOf,
  batchResultSubject,
  isAccepted,
  isError,
  makeEvent,
  parseReply,
  ServiceName,
  Topology,
  type BatchRecord,
  type ChatReply,
  type EventType,
  type SluiceEvent,
} from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import { parseBatchInput, type BatchTask } from './batch-input.js';
import { batchOutput, lineRequestId } from './batch-output.js';
import { nextStep } from './batch-step.js';
import type { BatchStore, Revised } from './batch-store.js';
import { submitLine, type SubmitDeps } from './batch-submit.js';
import { continueTrace } from './ids.js';
import type { OverloadGate } from './overload-gate.js';

/** What the runner needs: the batches, the files, the bus for results, and ingress's own deps. */
export interface BatchRunnerDeps extends Omit<SubmitDeps, 'storeResult'> {
  store: BatchStore;
  files: FileStore;
  bus: Bus;
  log: Logger;
  /** While the request path's backlog is over `ingress.maxBacklog`, no line goes in (docs/input-bounds.md, Overload). */
  overload: Pick<OverloadGate, 'backlogOver'>;
}

const DEFAULT_MAX_IN_FLIGHT = 32;
const DEFAULT_POLL_MS = 250;
/** Stored answers read at once when a batch is counted or finished. */
const READS_AT_ONCE = 32;
/** How often a running batch's answered lines are listed from the stream whole. */
const RESYNC_MS = 5000;
/** How long a replica's hold on a batch lasts unless renewed (at half of it): a replica killed stalls its batches this long at most. */
const LEASE_MS = 5000;
/** Times a line is sent in all when the limiter keeps throttling it; the last throttle is its answer. */
const MAX_ATTEMPTS = 10;
const MIN_RETRY_WAIT_MS = 100;
const MAX_RETRY_WAIT_MS = 60_000;
/** At most this many input-file problems go in `batch.failed` (the batch record has them all). */
const MAX_ERRORS_IN_EVENT = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A throttled line to send again: the attempt to publish, when, and whether it has been. */
interface Retry {
  attempt: number;
  dueAt: number;
  published: boolean;
}

/** The lines of one batch this replica has read: its input and which lines were answered how. */
interface Known {
  tasks?: BatchTask[];
  /** Line → answered with a 200 (true) or an error (false), for good. */
  outcomes: Map<number, boolean>;
  /** Lines the limiter throttled (429 `rate_limit_exceeded`), sent again after its Retry-After. */
  retries: Map<number, Retry>;
  /** Lines with an answer stored: from the stream (every RESYNC_MS) and from the answers as they come. */
  stored?: Set<number>;
  syncedAt: number;
}

/**
 * Runs the batches of `sluice_batches` (docs/batches.md). Every `batches.pollMs` it takes each
 * batch that still has work and does its next step (`nextStep`): validates the input file, puts
 * the next lines into the pipeline (`submitLine`, at most `batches.maxInFlight` in flight per
 * batch), or writes the output and error files and ends it. Progress is what SLUICE_RESULTS holds
 * under the batch's result subjects; the record moves only by compare-and-set, so a step another
 * replica took first is simply lost here, and one replica at a time holds a batch (`runner`, a
 * lease of LEASE_MS). A replica killed at any point leaves a record the next round (here or
 * elsewhere, once its lease ran out) goes on from: lines published past the recorded cursor are
 * published again under the same ids, and the stream drops them as duplicates.
 */
export function startBatchRunner(d: BatchRunnerDeps): { stop(): Promise<void> } {
  const me = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const known = new Map<string, Known>();
  const busy = new Map<string, Promise<void>>();
  let stopped = false;
  const submit: SubmitDeps = { ...d, storeResult: (tenant, subject, reply) => storeResult(d.bus, tenant, subject, reply, `${subject}:answer`) };

  /** Batches to step again as soon as their current step ends (an answer arrived meanwhile). */
  const again = new Set<string>();
  const run = (revised: Revised) => {
    const id = revised.record.id;
    if (stopped) return;
    if (busy.has(id)) {
      again.add(id);
      return;
    }
    const k = known.get(id) ?? { outcomes: new Map(), retries: new Map(), syncedAt: 0 };
    known.set(id, k);
    const p = hold(revised)
      .then((held) => held && advance(held, k))
      .catch((err: unknown) => d.log.error({ err, batch: id }, 'batch step failed; trying again next round'))
      .finally(() => {
        busy.delete(id);
        const next = again.delete(id) ? d.store.running().find((r) => r.record.id === id) : undefined;
        if (next) run(next);
      });
    busy.set(id, p);
  };
  const round = () => {
    if (stopped) return;
    for (const revised of d.store.running()) if (!busy.has(revised.record.id)) run(revised);
    timer = setTimeout(round, d.config().batches?.pollMs ?? DEFAULT_POLL_MS);
  };
  let timer = setTimeout(round, 0);
  // an answer stored for a line frees a place in its batch's window: step that batch now, not at the next round
  const answers = d.bus.nc.subscribe(batchResultsOf('*'), {
    callback: (err, msg) => {
      if (err) return;
      const [, , , id, line] = msg.subject.split('.');
      known.get(id!)?.stored?.add(Number(line));
      const revised = d.store.running().find((r) => r.record.id === id);
      if (revised) run(revised);
    },
  });

  /**
   * The batch with this replica's lease on it (taken or renewed by compare-and-set), or undefined
   * while another replica's lease runs: one replica drives a batch at a time, and a replica that
   * died is replaced once its lease has run out.
   */
  async function hold({ record, revision }: Revised): Promise<Revised | undefined> {
    const now = d.now();
    const held = record.runner;
    if (held && held.id !== me && held.until > now) return undefined;
    if (held?.id === me && held.until - now > LEASE_MS / 2) return { record, revision };
    const mine: BatchRecord = { ...record, runner: { id: me, until: now + LEASE_MS } };
    const next = await d.store.write(mine, revision);
    return next === undefined ? undefined : { record: mine, revision: next };
  }

  async function advance({ record, revision }: Revised, k: Known): Promise<void> {
    const now = d.now();
    const stored = record.status === 'validating' ? new Set<number>() : await storedLines(record, k, now);
    if (stored.size > 0) await learnOutcomes(record, stored, k, now);
    if (record.status === 'in_progress') await sendAgain(record, k, now);
    else for (const [line, retry] of k.retries) if (!retry.published) settle(k, line, false);
    // a line waiting to be sent again, or sent again and not answered yet, is still in flight
    const answered = new Set([...stored].filter((line) => !k.retries.has(line)));
    // overloaded: a batch waits (its window is hours), its lines are not shed
    const room = d.overload.backlogOver(now) ? 0 : (d.config().batches?.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const step = nextStep(record, answered, now, room);
    const counts = countsOf(record, k);
    switch (step.kind) {
      case 'validate':
        return validate(record, revision, k);
      case 'submit': {
        const tasks = await tasksOf(record, k);
        await Promise.all(step.lines.map((line) => submitLine(submit, record, tasks[line]!, line)));
        await d.store.write({ ...record, submitted: step.submitted, request_counts: counts }, revision);
        return;
      }
      case 'finish':
        return finish(record, revision, step.to, answered, k);
      case 'wait':
        // the counts a client polls for move while the lines in flight are answered
        if (!sameCounts(counts, record.request_counts)) await d.store.write({ ...record, request_counts: counts }, revision);
        return;
      default: {
        const _exhaustive: never = step;
        return _exhaustive;
      }
    }
  }

  async function validate(record: BatchRecord, revision: number, k: Known): Promise<void> {
    const content = await d.files.content(record.tenant, record.input_file_id);
    const parsed =
      content === undefined
        ? { errors: [{ code: 'file_not_found', message: `No such File object: ${record.input_file_id}`, param: 'input_file_id', line: null }] }
        : parseBatchInput(decoder.decode(content), record.endpoint);
    const now = d.now();
    const at = Math.floor(now / 1000);
    if ('errors' in parsed) {
      const { errors } = parsed;
      await publish(record, 'batch.failed', `the input file has ${errors.length} problem(s), the first: ${errors[0]!.message}`, {
        errors: errors.slice(0, MAX_ERRORS_IN_EVENT),
        total: errors.length,
      });
      await d.store.write({ ...record, status: 'failed', failed_at: at, errors: { object: 'list', data: errors } }, revision);
      return;
    }
    k.tasks = parsed.tasks;
    const lines = parsed.tasks.length;
    await publish(record, 'batch.validated', `${lines} line(s) go into the batch lane`, { lines, model: parsed.model });
    await d.store.write(
      { ...record, status: 'in_progress', in_progress_at: at, model: parsed.model, lines, request_counts: { total: lines, completed: 0, failed: 0 } },
      revision,
    );
  }

  async function finish(record: BatchRecord, revision: number, to: 'completed' | 'cancelled' | 'expired', answered: ReadonlySet<number>, k: Known) {
    let rev = revision;
    let current = record;
    const at = () => Math.floor(d.now() / 1000);
    if (to === 'completed' && record.status === 'in_progress') {
      current = { ...record, status: 'finalizing', finalizing_at: at() };
      const next = await d.store.write(current, rev);
      if (next === undefined) return;
      rev = next;
    }
    const tasks = current.lines > 0 ? await tasksOf(current, k) : [];
    const answers = await readAnswers(d.bus, current.id, [...answered]);
    const out = batchOutput(
      current.id,
      tasks.map((t) => t.customId),
      answers,
      to,
    );
    const put = async (kind: 'output' | 'error', lines: string[]) =>
      lines.length === 0
        ? null
        : (
            await d.files.put(current.tenant, {
              filename: `${current.id}_${kind}.jsonl`,
              purpose: 'batch_output',
              data: encoder.encode(lines.map((l) => `${l}\n`).join('')),
            })
          ).id;
    const outputFileId = await put('output', out.output);
    const errorFileId = await put('error', out.errors);
    const data = { requestCounts: out.counts, usage: out.usage, outputFileId, errorFileId };
    const { completed, failed, total } = out.counts;
    await publish(current, `batch.${to}`, `${completed} of ${total} line(s) answered, ${failed} failed`, data);
    const ended: BatchRecord = {
      ...current,
      status: to,
      [`${to}_at`]: at(),
      output_file_id: outputFileId,
      error_file_id: errorFileId,
      request_counts: out.counts,
      usage: out.usage,
    };
    if ((await d.store.write(ended, rev)) !== undefined) known.delete(current.id);
  }

  async function tasksOf(record: BatchRecord, k: Known): Promise<BatchTask[]> {
    if (k.tasks) return k.tasks;
    const content = await d.files.content(record.tenant, record.input_file_id);
    const parsed = content === undefined ? undefined : parseBatchInput(decoder.decode(content), record.endpoint);
    // validated once already: a file deleted or changed since cannot be run from
    if (!parsed || 'errors' in parsed || parsed.tasks.length !== record.lines) throw new Error(`the input file ${record.input_file_id} is gone or changed`);
    k.tasks = parsed.tasks;
    return parsed.tasks;
  }

  /**
   * Reads the answers of lines newly answered, once each, to keep the counts a poll sees, and
   * again those of lines sent again, until the new attempt's answer replaces the throttle. A line
   * the limiter throttled is sent again (up to MAX_ATTEMPTS) instead of ending as a 429: a batch
   * waits for its quota rather than failing its lines.
   */
  async function learnOutcomes(record: BatchRecord, stored: ReadonlySet<number>, k: Known, now: number): Promise<void> {
    const waiting = [...k.retries].filter(([, r]) => r.published).map(([line]) => line);
    const fresh = [...stored].filter((l) => !k.outcomes.has(l) && !k.retries.has(l));
    if (fresh.length + waiting.length === 0) return;
    const tasks = await tasksOf(record, k);
    for (const [line, reply] of await readAnswers(d.bus, record.id, [...fresh, ...waiting])) {
      const customId = tasks[line]!.customId;
      const retry = k.retries.get(line);
      // still the throttle of the attempt before: the one sent again has not been answered
      if (retry && reply.requestId !== lineRequestId(record.id, customId, retry.attempt)) continue;
      const attempt = retry?.attempt ?? attemptOf(record.id, customId, reply.requestId);
      if (isError(reply) && reply.error.code === 'rate_limit_exceeded' && attempt + 1 < MAX_ATTEMPTS) {
        const wait = Math.min(MAX_RETRY_WAIT_MS, Math.max(MIN_RETRY_WAIT_MS, reply.error.retryAfterMs ?? MIN_RETRY_WAIT_MS));
        k.retries.set(line, { attempt: attempt + 1, dueAt: now + wait, published: false });
        continue;
      }
      settle(k, line, !isError(reply) && !isAccepted(reply));
    }
  }

  /**
   * The lines answered so far. Listing a batch's subjects costs a message per line, so it is read
   * whole only when this replica takes the batch and every RESYNC_MS (answers a core subscription
   * may have missed); in between the answers as they arrive are added.
   */
  async function storedLines(record: BatchRecord, k: Known, now: number): Promise<Set<number>> {
    if (k.stored && now - k.syncedAt < RESYNC_MS) return k.stored;
    const listed = await answeredLines(d.bus, record.id);
    for (const line of k.stored ?? []) listed.add(line);
    k.stored = listed;
    k.syncedAt = now;
    return listed;
  }

  /** Publishes the throttled lines whose wait is over, each under its next attempt's request id. */
  async function sendAgain(record: BatchRecord, k: Known, now: number): Promise<void> {
    const due = [...k.retries].filter(([, r]) => !r.published && r.dueAt <= now);
    if (due.length === 0) return;
    const tasks = await tasksOf(record, k);
    await Promise.all(
      due.map(async ([line, r]) => {
        await submitLine(submit, record, tasks[line]!, line, r.attempt);
        r.published = true;
      }),
    );
  }

  function publish<T extends EventType>(record: BatchRecord, type: T, reason: string, data: SluiceEvent<T>['data']): Promise<void> {
    const event = makeEvent(type, { requestId: record.id, tenant: record.tenant, service: ServiceName.Ingress, at: d.now(), reason }, data);
    return d.publish(event, continueTrace(undefined));
  }

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      answers.unsubscribe();
      await Promise.all(busy.values());
      // hand the batches over at once rather than after the lease runs out
      for (const { record, revision } of d.store.running()) {
        if (record.runner?.id !== me) continue;
        const { runner: _runner, ...released } = record;
        await d.store.write(released, revision).catch(() => undefined);
      }
    },
  };
}

function settle(k: Known, line: number, ok: boolean): void {
  k.retries.delete(line);
  k.outcomes.set(line, ok);
}

/** Which attempt of a line a stored answer is (0 when it is none of the first MAX_ATTEMPTS: answered as sent first). */
function attemptOf(batchId: string, customId: string, requestId: string | undefined): number {
  for (let a = 0; a < MAX_ATTEMPTS; a++) if (lineRequestId(batchId, customId, a) === requestId) return a;
  return 0;
}

function countsOf(record: BatchRecord, k: Known): BatchRecord['request_counts'] {
  let completed = 0;
  for (const ok of k.outcomes.values()) if (ok) completed++;
  return { total: record.lines, completed, failed: k.outcomes.size - completed };
}

function sameCounts(a: BatchRecord['request_counts'], b: BatchRecord['request_counts']): boolean {
  return a.total === b.total && a.completed === b.completed && a.failed === b.failed;
}

/** The lines of a batch with an answer stored: the subjects SLUICE_RESULTS holds under the batch's filter (one request). */
async function answeredLines(bus: Pick<Bus, 'jsm'>, batchId: string): Promise<Set<number>> {
  const info = await bus.jsm.streams.info(Topology.results.name, { subjects_filter: batchResultsOf(batchId) });
  const prefix = batchResultSubject(batchId, 0).slice(0, -1);
  const lines = new Set<number>();
  for (const subject of Object.keys(info.state.subjects ?? {})) lines.add(Number(subject.slice(prefix.length)));
  return lines;
}

/** The stored answers of `lines`, a few requests at a time (direct gets, last by subject). */
async function readAnswers(bus: Pick<Bus, 'jsm'>, batchId: string, lines: number[]): Promise<Map<number, ChatReply>> {
  const answers = new Map<number, ChatReply>();
  for (let i = 0; i < lines.length; i += READS_AT_ONCE) {
    await Promise.all(
      lines.slice(i, i + READS_AT_ONCE).map(async (line) => {
        const m = await bus.jsm.streams.getMessage(Topology.results.name, { last_by_subj: batchResultSubject(batchId, line) });
        if (m) answers.set(line, parseReply(m.data));
      }),
    );
  }
  return answers;
}
