import { isJsonObject } from '@sluice/contracts';
import { invalid } from './rejection.js';
import { absent, functionName, integer, metadata, model, optionalBoolean, optionalObjects, optionalString, optionalText, type Json } from './checks.js';
import type { BodyChoices } from './validate.js';

/**
 * Checks a Responses API body (`POST /v1/responses`, OpenAI's "Create a model response") for what
 * Sluice relies on: `input` (a string, or at most `maxMessages` input items), `instructions`,
 * `stream`, `max_output_tokens`, function tools' names, `previous_response_id` (passed through:
 * the upstream that stored the response resolves it), `user`, `metadata`. The rest passes as sent.
 *
 * @throws RequestRejected invalid_request naming the field's path in `param`.
 */
export function checkResponsesBody(body: Json, limits: { maxMessages: number }): BodyChoices {
  const requested = model(body.model);
  input(body.input, limits.maxMessages);
  optionalString(body, 'instructions');
  const stream = optionalBoolean(body, 'stream') ?? false;
  integer(body, 'max_output_tokens', 1);
  (optionalObjects(body, 'tools') ?? []).forEach((tool, i) => {
    // a Responses function tool carries its name at the top, not under `function`
    if (tool.type === 'function') functionName(tool.name, `tools[${i}].name`);
  });
  optionalString(body, 'previous_response_id');
  metadata(body);
  const user = optionalText(body, 'user');
  return { model: requested, stream, includeUsage: false, ...(user !== undefined ? { user } : {}) };
}

function input(v: unknown, max: number): void {
  if (absent(v)) throw invalid('input', 'input is required: a string or an array of input items.');
  if (typeof v === 'string') return;
  if (!Array.isArray(v)) throw invalid('input', 'input must be a string or an array of input items.');
  if (v.length === 0) throw invalid('input', 'input must contain at least one item.');
  if (v.length > max) throw invalid('input', `input has ${v.length} items; at most ${max} are allowed.`);
  v.forEach((item, i) => {
    if (!isJsonObject(item)) throw invalid(`input[${i}]`, `input[${i}] must be an object (an input item).`);
  });
}
