import { createHash } from 'node:crypto';
import { isJsonObject, PATH_OF_ENDPOINT, type Candidate, type Endpoint, type SluiceConfig, type SluiceEvent, type UpstreamError } from '@sluice/contracts';

/**
 * A batch line waiting for, or inside, an upstream batch: `line.<requestId>` in
 * `sluice_upstream_batches`, written once (create) when the invoker takes its chat.routed and
 * deleted once its answer is stored.
 */
export interface QueuedLine {
  /** The line's chat.routed, its candidates narrowed to the chosen deployment. */
  event: SluiceEvent<'chat.routed'>;
  /** Epoch ms when it was recorded. */
  recordedAt: number;
}

/**
 * Where one upstream batch stands. `gathered`: its lines are chosen (nothing sent); `uploaded`:
 * its JSONL is the upstream file `inputFileId`; `creating`: `batches.create` may have been
 * called (intent recorded first: after a crash the upstream's batches are searched for this
 * input file before creating again); `submitted`: `upstreamBatchId` runs upstream; `answered`:
 * every line's answer is stored, only the records are left to delete.
 */
type GroupState = 'gathered' | 'uploaded' | 'creating' | 'submitted' | 'answered';

/** One upstream batch: `group.<id>` in `sluice_upstream_batches`, moved by compare-and-set. */
export interface UpstreamGroup {
  id: string;
  /** The Sluice batch its lines belong to (every line of a group is of one batch, so of one tenant). */
  batchId: string;
  tenant: string;
  deployment: string;
  endpoint: Endpoint;
  /** Request ids of its lines (each line's `custom_id` upstream). */
  lines: string[];
  state: GroupState;
  inputFileId?: string;
  upstreamBatchId?: string;
  /** Epoch ms. */
  createdAt: number;
}

export type UpstreamBatchSettings = NonNullable<SluiceConfig['batches']>['upstream'];

/**
 * The deployment a batch line goes to through the upstream's Batch API, or undefined when it
 * goes the `batch` lane's way (called like any request): a line of a Sluice batch (`ctx.batch`)
 * whose first model has a deployment with `batchApi` among its candidates (the first such, in the
 * router's order). Fallback models are not used on this route: the upstream batch answers or fails the line.
 */
export function upstreamBatchCandidate(event: SluiceEvent<'chat.routed'>, config: Pick<SluiceConfig, 'deployments'>): Candidate | undefined {
  const { ctx, candidates } = event.data;
  if (ctx.batch === undefined) return undefined;
  const model = candidates[0]!.model;
  return candidates.find((c) => c.model === model && config.deployments[c.deployment]?.batchApi === true);
}

/** A set of lines to send as one upstream batch. */
export interface Gathered {
  batchId: string;
  tenant: string;
  deployment: string;
  endpoint: Endpoint;
  lines: QueuedLine[];
}

/**
 * Which recorded lines (not yet in any group) go upstream now: each Sluice batch's lines per
 * deployment and endpoint, cut every `maxLines`, and the rest once no line of theirs came for
 * `gatherMs` (a batch's lines arrive in a burst, its window's worth at a time). Pure.
 *
 * @example
 * gather(lines, Date.now(), { gatherMs: 2000, maxLines: 1000, pollMs: 1000, maxPollMs: 30000 })
 * // [{ batchId: 'batch_1', deployment: 'openai', endpoint: 'chat.completions', lines: [...] }]
 */
export function gather(lines: readonly QueuedLine[], now: number, settings: Pick<UpstreamBatchSettings, 'gatherMs' | 'maxLines'>): Gathered[] {
  const sets = new Map<string, Gathered>();
  for (const line of [...lines].sort((a, b) => a.recordedAt - b.recordedAt)) {
    const { ctx, candidates } = line.event.data;
    const deployment = candidates[0]!.deployment;
    const key = JSON.stringify([ctx.batch?.id, deployment, ctx.request.endpoint]);
    let set = sets.get(key);
    if (!set) {
      set = { batchId: ctx.batch?.id ?? '', tenant: line.event.tenant, deployment, endpoint: ctx.request.endpoint, lines: [] };
      sets.set(key, set);
    }
    set.lines.push(line);
  }
  const out: Gathered[] = [];
  for (const set of sets.values()) {
    for (let i = 0; i < set.lines.length; i += settings.maxLines) {
      const lines = set.lines.slice(i, i + settings.maxLines);
      const quiet = now - lines[lines.length - 1]!.recordedAt >= settings.gatherMs;
      if (lines.length === settings.maxLines || quiet) out.push({ ...set, lines });
    }
  }
  return out;
}

/** A group's id: the same for the same lines (a hash of their request ids). */
export function groupId(lines: readonly QueuedLine[]): string {
  const h = createHash('sha256');
  for (const l of lines) h.update(`${l.event.requestId}\n`);
  return `ub_${h.digest('hex').slice(0, 24)}`;
}

/** The lines recorded and in no group yet: those to gather. */
export function ungrouped(lines: readonly QueuedLine[], groups: readonly UpstreamGroup[]): QueuedLine[] {
  const taken = new Set(groups.flatMap((g) => g.lines));
  return lines.filter((l) => !taken.has(l.event.requestId));
}

/** What the upstream batch said of one line. */
export type LineResult = { kind: 'answered'; status: number; body: unknown } | { kind: 'failed'; status?: number; message: string; upstream?: UpstreamError };

/**
 * Each line's result by request id (its `custom_id` upstream), from the upstream batch's output
 * and error files (OpenAI's line format: `{custom_id, response: {status_code, body}, error}`). A
 * line in neither file, or whose line is unreadable, fails with why (the upstream batch's
 * `status`: a failed or expired batch leaves lines out). A custom_id that is not one of the
 * group's lines is ignored. Pure.
 *
 * @example
 * mapBack(['req_a', 'req_b'], '{"custom_id":"req_a","response":{"status_code":200,"body":{...}},"error":null}\n', '', 'completed')
 * // Map { 'req_a' => { kind: 'answered', status: 200, body }, 'req_b' => { kind: 'failed', message: '... completed without this line' } }
 */
export function mapBack(lines: readonly string[], output: string, errors: string, status: string): Map<string, LineResult> {
  const wanted = new Set(lines);
  const results = new Map<string, LineResult>();
  for (const text of `${output}\n${errors}`.split('\n')) {
    if (text.trim() === '') continue;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      continue;
    }
    if (!isJsonObject(line) || typeof line.custom_id !== 'string' || !wanted.has(line.custom_id)) continue;
    results.set(line.custom_id, lineResult(line));
  }
  for (const id of lines) {
    if (!results.has(id)) results.set(id, { kind: 'failed', message: `The upstream batch ended ${status} without an answer for this line.` });
  }
  return results;
}

function lineResult(line: Record<string, unknown>): LineResult {
  const response = isJsonObject(line.response) ? line.response : undefined;
  const status = typeof response?.status_code === 'number' ? response.status_code : undefined;
  if (response && status !== undefined && status >= 200 && status < 300) return { kind: 'answered', status, body: response.body };
  if (response && status !== undefined) {
    const body = isJsonObject(response.body) ? response.body : {};
    const err = isJsonObject(body.error) ? body.error : {};
    const message = typeof err.message === 'string' ? err.message : `The upstream answered this line with ${status}.`;
    const upstream: UpstreamError = {
      status,
      type: typeof err.type === 'string' ? err.type : 'invalid_request_error',
      code: typeof err.code === 'string' ? err.code : null,
      param: typeof err.param === 'string' ? err.param : null,
      message,
    };
    return { kind: 'failed', status, message, upstream };
  }
  // no response: the line never ran (`batch_expired`, `batch_cancelled`)
  const err = isJsonObject(line.error) ? line.error : {};
  const code = typeof err.code === 'string' ? err.code : 'unknown';
  return { kind: 'failed', message: `The upstream batch did not run this line (${code}): ${typeof err.message === 'string' ? err.message : 'no message'}` };
}

/** The JSONL line of one request in the upstream batch's input file. */
export function jsonlLine(requestId: string, endpoint: Endpoint, body: Record<string, unknown>): string {
  // a file holds no stream: the line is answered whole
  const { stream: _stream, stream_options: _options, ...whole } = body;
  return JSON.stringify({ custom_id: requestId, method: 'POST', url: PATH_OF_ENDPOINT[endpoint], body: whole });
}

/** The wait before the `polls`-th status poll of an upstream batch (0-based): `pollMs` doubling, at most `maxPollMs`. */
export function pollDelay(polls: number, settings: Pick<UpstreamBatchSettings, 'pollMs' | 'maxPollMs'>): number {
  return Math.min(settings.maxPollMs, settings.pollMs * 2 ** Math.min(polls, 20));
}

/** The upstream batch statuses after which nothing changes. */
export const ENDED_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled']);
