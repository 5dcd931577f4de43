import { isRecord } from './util.js';

/** The endpoints a batch can target in this simulator (OpenAI has more; the sim serves these three). */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/responses', '/v1/embeddings'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** One request line of a batch input file, validated. */
export interface BatchTask {
  customId: string;
  body: Record<string, unknown>;
}

/** One entry of a failed batch's `errors.data`, as OpenAI reports input file problems. `line` is 1-based. */
export interface BatchInputError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** OpenAI's cap on requests in one batch. */
const MAX_TASKS = 50_000;

/**
 * Validates a batch input file (JSONL, one `{custom_id, method, url, body}` request a line) for
 * `endpoint`, as OpenAI does while a batch is `validating`. Returns the requests in file order and
 * the model they share, or every problem found (each with its line), which makes the batch `failed`.
 * Empty lines are skipped, so a trailing newline is fine.
 *
 * @example
 * parseBatchInput('{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}\n', '/v1/embeddings')
 * // → { tasks: [{ customId: 'a', body: { model: 'm', input: 'x' } }], model: 'm' }
 */
export function parseBatchInput(text: string, endpoint: BatchEndpoint): { tasks: BatchTask[]; model: string | null } | { errors: BatchInputError[] } {
  const tasks: BatchTask[] = [];
  const errors: BatchInputError[] = [];
  const seen = new Set<string>();
  let model: string | null = null;
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    if (raw.trim() === '') continue;
    const line = i + 1;
    const problem = (code: string, message: string, param: string | null = null): void => void errors.push({ code, message, param, line });
    let req: unknown;
    try {
      req = JSON.parse(raw);
    } catch {
      req = undefined;
    }
    if (!isRecord(req)) {
      problem('invalid_json_line', 'This line is not parseable as valid JSON.');
      continue;
    }
    const missing = ['custom_id', 'method', 'url', 'body'].find((k) => req[k] === undefined || req[k] === null);
    if (missing !== undefined) {
      problem('missing_required_parameter', `Missing required parameter: '${missing}'.`, missing);
      continue;
    }
    const { custom_id: customId, method, url, body } = req;
    if (typeof customId !== 'string' || customId === '') {
      problem('invalid_type', "Invalid 'custom_id': expected a non-empty string.", 'custom_id');
      continue;
    }
    if (seen.has(customId)) {
      problem(
        'duplicate_custom_id',
        'The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each individual request in a batch.',
        'custom_id',
      );
      continue;
    }
    seen.add(customId);
    if (method !== 'POST') {
      problem('invalid_value', `Invalid value for 'method': only 'POST' is supported, got ${JSON.stringify(method)}.`, 'method');
      continue;
    }
    if (url !== endpoint) {
      problem('url_mismatch', `The URL provided for this request (${JSON.stringify(url)}) does not match the batch endpoint ${endpoint}.`, 'url');
      continue;
    }
    if (!isRecord(body)) {
      problem('invalid_type', "Invalid 'body': expected an object.", 'body');
      continue;
    }
    // OpenAI runs a batch on one model; the first model named is the batch's.
    if (typeof body.model === 'string') {
      model ??= body.model;
      if (body.model !== model) {
        problem(
          'model_mismatch',
          `The model for this request (${body.model}) does not match the model of the other requests in the batch (${model}).`,
          'body.model',
        );
        continue;
      }
    }
    tasks.push({ customId, body });
  }
  if (errors.length === 0 && tasks.length === 0) errors.push({ code: 'empty_file', message: 'The batch input file is empty.', param: null, line: null });
  if (tasks.length > MAX_TASKS) {
    errors.push({
      code: 'too_many_tasks',
      message: `The batch input file has ${tasks.length} requests; at most ${MAX_TASKS} are allowed.`,
      param: null,
      line: null,
    });
  }
  return errors.length > 0 ? { errors } : { tasks, model };
}
