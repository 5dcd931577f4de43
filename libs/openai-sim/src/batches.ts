import { randomBytes, randomUUID } from 'node:crypto';
import { type BatchEndpoint, type BatchInputError, type BatchTask, parseBatchInput } from './batch-input.js';
import type { LineAnswer } from './batch-line.js';
import type { FileStore } from './files.js';

type Status = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';
type Stamp = 'in_progress_at' | 'finalizing_at' | 'completed_at' | 'failed_at' | 'expired_at' | 'cancelling_at' | 'cancelled_at';
const STAMPS: readonly Stamp[] = ['in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'cancelling_at', 'cancelled_at'];

/** What `POST /v1/batches` asked for, already checked by the route. */
export interface BatchRequest {
  inputFileId: string;
  endpoint: BatchEndpoint;
  metadata: Record<string, string> | null;
}

/** The pace of one batch, read from the faults when it is created. */
interface Pace {
  delayMs: number;
  windowMs: number;
}

interface Batch {
  id: string;
  request: BatchRequest;
  pace: Pace;
  status: Status;
  /** Unix seconds. */
  createdAt: number;
  stamps: Partial<Record<Stamp, number>>;
  model: string | null;
  tasks: BatchTask[];
  /** How many of `tasks` have run; the rest are still to run (or will never run once the batch stops). */
  done: number;
  completed: number;
  failed: number;
  inputTokens: number;
  outputTokens: number;
  outputLines: string[];
  errorLines: string[];
  errors: BatchInputError[] | null;
  outputFileId: string | null;
  errorFileId: string | null;
  timers: Set<NodeJS.Timeout>;
}

/** Runs one request line of a batch; see answerBatchLine. */
type RunLine = (endpoint: BatchEndpoint, body: Record<string, unknown>) => LineAnswer;

const RUNNING: ReadonlySet<Status> = new Set(['validating', 'in_progress']);
const EXPIRED_MESSAGE = 'This request could not be executed before the completion window expired.';
const CANCELLED_MESSAGE = 'This request was not executed because the batch was cancelled.';

/**
 * The batches of one simulator and their runs. A batch is `validating` when created, then its
 * input file is checked (`failed` with `errors` when invalid) or it goes `in_progress`, its lines
 * running one at a time and finishing evenly over `batchDelayMs`; then `finalizing` while its files
 * are written, then `completed`. Answered lines go to the output file, refused ones (4xx) to the
 * error file, both in OpenAI's line format. A batch still running `batchWindowMs` after creation is
 * `expired`; cancelling makes it `cancelling`, then `cancelled` on the next tick. Either way the
 * lines done so far stay in the files and every line not run goes to the error file
 * (`batch_expired` / `batch_cancelled`), so `completed + failed = total` once a batch has stopped.
 */
export class BatchStore {
  private readonly batches = new Map<string, Batch>();

  constructor(
    private readonly files: FileStore,
    private readonly runLine: RunLine,
  ) {}

  /** Creates a batch and starts it; returns its `batch` object (status `validating`). */
  create(request: BatchRequest, pace: Pace): object {
    const b: Batch = {
      id: `batch_${randomBytes(16).toString('hex')}`,
      request,
      pace,
      status: 'validating',
      createdAt: nowSeconds(),
      stamps: {},
      model: null,
      tasks: [],
      done: 0,
      completed: 0,
      failed: 0,
      inputTokens: 0,
      outputTokens: 0,
      outputLines: [],
      errorLines: [],
      errors: null,
      outputFileId: null,
      errorFileId: null,
      timers: new Set(),
    };
    this.batches.set(b.id, b);
    this.later(b, 0, () => this.validate(b));
    this.later(b, pace.windowMs, () => this.stop(b, 'expired'));
    return batchObject(b);
  }

  /** The `batch` object, or undefined for an unknown id. */
  get(id: string): object | undefined {
    const b = this.batches.get(id);
    return b && batchObject(b);
  }

  /** Every batch, newest first (the order OpenAI lists them in), as `batch` objects with their ids. */
  all(): { id: string; object: object }[] {
    return [...this.batches.values()].reverse().map((b) => ({ id: b.id, object: batchObject(b) }));
  }

  /**
   * Cancels a running batch: `cancelling` now, `cancelled` on the next tick. Returns the `batch`
   * object, undefined for an unknown id, or the status that cannot be cancelled.
   */
  cancel(id: string): object | undefined | { notCancellable: Status } {
    const b = this.batches.get(id);
    if (b === undefined) return undefined;
    if (b.status === 'cancelling') return batchObject(b);
    if (!RUNNING.has(b.status)) return { notCancellable: b.status };
    this.halt(b);
    b.status = 'cancelling';
    b.stamps.cancelling_at = nowSeconds();
    this.later(b, 0, () => this.stop(b, 'cancelled'));
    return batchObject(b);
  }

  /** Stops every run and forgets every batch (their files stay in the FileStore). */
  clear(): void {
    for (const b of this.batches.values()) this.halt(b);
    this.batches.clear();
  }

  private validate(b: Batch): void {
    const input = this.files.get(b.request.inputFileId);
    const parsed =
      input === undefined
        ? { errors: [{ code: 'file_not_found', message: `No such File object: ${b.request.inputFileId}`, param: 'input_file_id', line: null }] }
        : parseBatchInput(input.data.toString('utf8'), b.request.endpoint);
    if ('errors' in parsed) {
      this.halt(b);
      b.errors = parsed.errors;
      b.status = 'failed';
      b.stamps.failed_at = nowSeconds();
      return;
    }
    b.tasks = parsed.tasks;
    b.model = parsed.model;
    b.status = 'in_progress';
    b.stamps.in_progress_at = nowSeconds();
    this.later(b, this.lineDelay(b), () => this.step(b));
  }

  /** Runs the next line, then schedules the one after, or finalizes. */
  private step(b: Batch): void {
    const task = b.tasks[b.done];
    if (b.status !== 'in_progress' || task === undefined) return;
    const answer = this.runLine(b.request.endpoint, task.body);
    b.done++;
    b.inputTokens += answer.promptTokens;
    b.outputTokens += answer.completionTokens;
    const line = JSON.stringify({
      id: `batch_req_${randomBytes(16).toString('hex')}`,
      custom_id: task.customId,
      response: { status_code: answer.statusCode, request_id: randomUUID().replaceAll('-', ''), body: answer.body },
      error: null,
    });
    if (answer.statusCode === 200) {
      b.completed++;
      b.outputLines.push(line);
    } else {
      b.failed++;
      b.errorLines.push(line);
    }
    if (b.done < b.tasks.length) {
      this.later(b, this.lineDelay(b), () => this.step(b));
      return;
    }
    b.status = 'finalizing';
    b.stamps.finalizing_at = nowSeconds();
    this.later(b, 0, () => {
      this.halt(b);
      this.writeFiles(b);
      b.status = 'completed';
      b.stamps.completed_at = nowSeconds();
    });
  }

  /** Ends a batch that did not finish: lines not run go to the error file under `expired`'s or `cancelled`'s code. */
  private stop(b: Batch, to: 'expired' | 'cancelled'): void {
    if (to === 'expired' && !RUNNING.has(b.status)) return;
    this.halt(b);
    const code = to === 'expired' ? 'batch_expired' : 'batch_cancelled';
    const message = to === 'expired' ? EXPIRED_MESSAGE : CANCELLED_MESSAGE;
    for (const task of b.tasks.slice(b.done)) {
      b.failed++;
      const id = `batch_req_${randomBytes(16).toString('hex')}`;
      b.errorLines.push(JSON.stringify({ id, custom_id: task.customId, response: null, error: { code, message } }));
    }
    b.done = b.tasks.length;
    this.writeFiles(b);
    b.status = to;
    b.stamps[to === 'expired' ? 'expired_at' : 'cancelled_at'] = nowSeconds();
  }

  private writeFiles(b: Batch): void {
    const now = Date.now();
    const write = (kind: string, lines: string[]): string | null =>
      lines.length === 0 ? null : this.files.add(`${b.id}_${kind}.jsonl`, 'batch_output', Buffer.from(lines.map((l) => `${l}\n`).join('')), now).id;
    b.outputFileId = write('output', b.outputLines);
    b.errorFileId = write('error', b.errorLines);
  }

  /** Lines finish evenly spread over the batch's delay. */
  private lineDelay(b: Batch): number {
    return b.pace.delayMs / Math.max(1, b.tasks.length);
  }

  private later(b: Batch, ms: number, run: () => void): void {
    const t = setTimeout(() => {
      b.timers.delete(t);
      run();
    }, ms);
    // A batch in flight must not keep a process alive that is otherwise done.
    t.unref();
    b.timers.add(t);
  }

  private halt(b: Batch): void {
    for (const t of b.timers) clearTimeout(t);
    b.timers.clear();
  }
}

/** The Batch API's `batch` object; timestamps not reached yet are null, as OpenAI sends them. */
function batchObject(b: Batch): object {
  const stamps = Object.fromEntries(STAMPS.map((k) => [k, b.stamps[k] ?? null]));
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.request.endpoint,
    model: b.model,
    errors: b.errors === null ? null : { object: 'list', data: b.errors },
    input_file_id: b.request.inputFileId,
    completion_window: '24h',
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: b.createdAt,
    expires_at: b.createdAt + Math.ceil(b.pace.windowMs / 1000),
    ...stamps,
    request_counts: { total: b.tasks.length, completed: b.completed, failed: b.failed },
    usage: {
      input_tokens: b.inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: b.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: b.inputTokens + b.outputTokens,
    },
    metadata: b.request.metadata,
  };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
