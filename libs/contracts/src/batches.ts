import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Subjects } from './subjects.js';
import type { Endpoint } from './request.js';

/** The endpoints a batch may run, by the paths OpenAI names them with. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/responses', '/v1/embeddings'] as const;
export const BatchEndpoint = Type.Union(BATCH_ENDPOINTS.map((e) => Type.Literal(e)));
export type BatchEndpoint = Static<typeof BatchEndpoint>;

/** Each endpoint's path: the URL OpenAI serves it at, which a batch's lines name. */
export const PATH_OF_ENDPOINT = {
  'chat.completions': '/v1/chat/completions',
  responses: '/v1/responses',
  embeddings: '/v1/embeddings',
} as const satisfies Record<Endpoint, BatchEndpoint>;
/** The endpoint served at each path (`PATH_OF_ENDPOINT` turned round). */
export const ENDPOINT_OF_PATH = Object.fromEntries(Object.entries(PATH_OF_ENDPOINT).map(([endpoint, path]) => [path, endpoint])) as Readonly<
  Record<BatchEndpoint, Endpoint>
>;

/** OpenAI's batch statuses. `failed`, `completed`, `expired` and `cancelled` are final. */
export const BatchStatus = Type.Union(
  (['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'] as const).map((s) => Type.Literal(s)),
);
export type BatchStatus = Static<typeof BatchStatus>;

/** One problem of an input file, as OpenAI lists them in a failed batch's `errors.data` (`line` 1-based, null for the file as a whole). */
export const BatchLineError = Type.Object({
  code: Type.String(),
  message: Type.String(),
  param: Type.Union([Type.String(), Type.Null()]),
  line: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
});
export type BatchLineError = Static<typeof BatchLineError>;

export const BatchRequestCounts = Type.Object({
  total: Type.Integer({ minimum: 0 }),
  completed: Type.Integer({ minimum: 0 }),
  failed: Type.Integer({ minimum: 0 }),
});
export type BatchRequestCounts = Static<typeof BatchRequestCounts>;

/** Tokens of the batch's answered lines (OpenAI's `usage` of a batch). */
export const BatchUsage = Type.Object({
  input_tokens: Type.Integer({ minimum: 0 }),
  input_tokens_details: Type.Object({ cached_tokens: Type.Integer({ minimum: 0 }) }),
  output_tokens: Type.Integer({ minimum: 0 }),
  output_tokens_details: Type.Object({ reasoning_tokens: Type.Integer({ minimum: 0 }) }),
  total_tokens: Type.Integer({ minimum: 0 }),
});
export type BatchUsage = Static<typeof BatchUsage>;

const Stamp = Type.Union([Type.Integer(), Type.Null()]);
const FileId = Type.Union([Type.String(), Type.Null()]);

/**
 * A batch as `sluice_batches` keeps it (key = its id, `batch_` + 24 base32): OpenAI's Batch object
 * (timestamps in epoch seconds, null until reached) and what the runner needs to go on after a
 * restart. Only ever written by compare-and-set on the revision it was read at.
 */
export const BatchRecord = Type.Object({
  id: Type.String({ pattern: '^batch_[a-z2-7]{24}$' }),
  object: Type.Literal('batch'),
  endpoint: BatchEndpoint,
  /** The model the first line names (null until validated, or when no line names one). */
  model: Type.Union([Type.String(), Type.Null()]),
  errors: Type.Union([Type.Object({ object: Type.Literal('list'), data: Type.Array(BatchLineError) }), Type.Null()]),
  input_file_id: Type.String(),
  completion_window: Type.Literal('24h'),
  status: BatchStatus,
  output_file_id: FileId,
  error_file_id: FileId,
  created_at: Type.Integer(),
  expires_at: Type.Integer(),
  in_progress_at: Stamp,
  finalizing_at: Stamp,
  completed_at: Stamp,
  failed_at: Stamp,
  expired_at: Stamp,
  cancelling_at: Stamp,
  cancelled_at: Stamp,
  request_counts: BatchRequestCounts,
  usage: BatchUsage,
  metadata: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
  /** The tenant that created it: the only one that sees it, and whose requests its lines are. */
  tenant: Type.String(),
  /** The virtual key it was created with: its lines go with that key's limits, budget and models. */
  keyId: Type.Optional(Type.String()),
  /** Lines in the input file (0 until validated). */
  lines: Type.Integer({ minimum: 0 }),
  /** Lines published as `chat.requested` so far, in file order: where the runner goes on after a restart. */
  submitted: Type.Integer({ minimum: 0 }),
  /**
   * The ingress replica running the batch and until when (epoch ms): another replica takes it only
   * once that has passed, so each batch is driven by one replica at a time (renewed while it runs).
   */
  runner: Type.Optional(Type.Object({ id: Type.String(), until: Type.Number() })),
});
export type BatchRecord = Static<typeof BatchRecord>;

const recordCheck = TypeCompiler.Compile(BatchRecord);

/** True for a well-formed batch record (what `sluice_batches` holds). */
export function isBatchRecord(value: unknown): value is BatchRecord {
  return recordCheck.Check(value);
}

/** The Batch object as OpenAI sends it: the record without what only Sluice needs. */
export type BatchObject = Omit<BatchRecord, 'tenant' | 'keyId' | 'lines' | 'submitted' | 'runner'>;

/** The OpenAI Batch object of a record. */
export function toBatchObject(record: BatchRecord): BatchObject {
  const { tenant: _tenant, keyId: _keyId, lines: _lines, submitted: _submitted, runner: _runner, ...batch } = record;
  return batch;
}

/** Statuses in which a batch still has work (the runner drives these). */
export const RUNNING_BATCH_STATUSES: ReadonlySet<BatchStatus> = new Set(['validating', 'in_progress', 'finalizing', 'cancelling']);

/**
 * Where a batch line's answer is stored: a result subject (`sluice.results.batch.<batchId>.<line>`,
 * line 0-based), so the terminal stage's reply is kept in SLUICE_RESULTS with the tenant header,
 * one message per line. `batchResultsOf` is the filter of every line of a batch.
 */
export const batchResultSubject = (batchId: string, line: number) => Subjects.result(`batch.${batchId}.${line}`);
export const batchResultsOf = (batchId: string) => Subjects.result(`batch.${batchId}.>`);
