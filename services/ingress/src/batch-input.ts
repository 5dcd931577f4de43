import { isJsonObject, type BatchEndpoint, type BatchLineError } from '@sluice/contracts';

/** One request line of a batch input file that passed the file's validation. */
export interface BatchTask {
  customId: string;
  /** The line's `body`: a request of the batch's endpoint, checked by ingress when it is submitted. */
  body: Record<string, unknown>;
}

/** OpenAI's cap on requests in one batch. */
const MAX_TASKS = 50_000;

/**
 * Validates a batch input file (JSONL, one `{custom_id, method, url, body}` a line) as OpenAI
 * does while a batch is `validating`: each line JSON, every field present, `custom_id` a unique
 * non-empty string, `method` POST, `url` the batch's endpoint, `body` an object. The bodies
 * themselves are not checked here: a line whose request is bad (no `messages`) passes, and comes
 * back in the error file with the 400 ingress answers it with. Empty lines are skipped.
 * Returns the requests in file order and the first model named, or every problem with its 1-based line.
 *
 * @example
 * parseBatchInput('{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}\n', '/v1/embeddings')
 * // → { tasks: [{ customId: 'a', body: { model: 'm', input: 'x' } }], model: 'm' }
 */
export function parseBatchInput(text: string, endpoint: BatchEndpoint): { tasks: BatchTask[]; model: string | null } | { errors: BatchLineError[] } {
  const tasks: BatchTask[] = [];
  const errors: BatchLineError[] = [];
  const seen = new Set<string>();
  let model: string | null = null;
  for (const [i, raw] of text.split('\n').entries()) {
    if (raw.trim() === '') continue;
    const problem = (code: string, message: string, param: string | null = null): void => void errors.push({ code, message, param, line: i + 1 });
    let req: unknown;
    try {
      req = JSON.parse(raw);
    } catch {
      req = undefined;
    }
    if (!isJsonObject(req)) {
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
    if (!isJsonObject(body)) {
      problem('invalid_type', "Invalid 'body': expected an object.", 'body');
      continue;
    }
    if (typeof body.model === 'string') model ??= body.model;
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
