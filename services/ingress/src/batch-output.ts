import { createHash } from 'node:crypto';
import { isAccepted, isChunk, isError, openAiErrorBody, type BatchRequestCounts, type BatchUsage, type ChatReply } from '@sluice/contracts';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * A batch line's request id: `req_` + 20 base32 characters of sha256(batchId, custom_id). The same
 * on every submission of the line, so its `chat.requested` (event id `<requestId>:chat.requested`)
 * sent again after a restart is a duplicate the stream drops, and the upstream's idempotency key
 * is the same too. A line sent again after a throttle is a new request: `attempt` (1, 2, ...) is
 * hashed in.
 */
export function lineRequestId(batchId: string, customId: string, attempt = 0): string {
  const digest = createHash('sha256')
    .update(attempt === 0 ? `${batchId}\n${customId}` : `${batchId}\n${customId}\n${attempt}`)
    .digest();
  let id = 'req_';
  for (let i = 0; i < 20; i++) id += BASE32[digest[i]! & 31];
  return id;
}

/** What a batch's lines came to: the two files' lines (JSONL, in input order), the counts and the usage. */
export interface BatchOutput {
  output: string[];
  errors: string[];
  counts: BatchRequestCounts;
  usage: BatchUsage;
}

const UNRUN = {
  cancelled: { code: 'batch_cancelled', message: 'This request was not executed because the batch was cancelled.' },
  expired: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
  completed: { code: 'batch_expired', message: 'This request has no answer.' },
} as const;

/**
 * The output and error files of a batch in OpenAI's line format, from its lines' `custom_id`s (in
 * input order) and the stored answers by line. An answer (200) goes to the output file; an error
 * answer (ingress's 400, a budget's 429, an upstream's refusal...) to the error file with the status
 * and the OpenAI error body the client would have had; a line without an answer (never submitted,
 * or still running when the batch was cancelled or expired) to the error file with `batch_cancelled`
 * or `batch_expired`. So `completed + failed = total` always.
 *
 * @example
 * batchOutput('batch_x', ['a'], new Map([[0, chatResult]]), 'completed').output[0]
 * // '{"id":"batch_req_…","custom_id":"a","response":{"status_code":200,"request_id":"req_…","body":{…}},"error":null}'
 */
export function batchOutput(batchId: string, customIds: readonly string[], answers: ReadonlyMap<number, ChatReply>, end: keyof typeof UNRUN): BatchOutput {
  const output: string[] = [];
  const errors: string[] = [];
  let input = 0;
  let out = 0;
  customIds.forEach((customId, line) => {
    const id = `batch_req_${lineRequestId(batchId, customId).slice('req_'.length)}`;
    const answer = answers.get(line);
    // the attempt that answered (a line throttled and sent again has another request id)
    const requestId = answer?.requestId ?? lineRequestId(batchId, customId);
    if (answer === undefined || isChunk(answer) || isAccepted(answer)) {
      errors.push(JSON.stringify({ id, custom_id: customId, response: null, error: UNRUN[end] }));
      return;
    }
    if (isError(answer)) {
      const { code, message, type, param, status } = answer.error;
      const body = openAiErrorBody(code, message, type, param ?? null);
      errors.push(JSON.stringify({ id, custom_id: customId, response: { status_code: status, request_id: requestId, body }, error: null }));
      return;
    }
    input += answer.usage.prompt_tokens;
    out += answer.usage.completion_tokens;
    output.push(JSON.stringify({ id, custom_id: customId, response: { status_code: 200, request_id: requestId, body: answer.body }, error: null }));
  });
  return {
    output,
    errors,
    counts: { total: customIds.length, completed: output.length, failed: errors.length },
    usage: {
      input_tokens: input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: out,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: input + out,
    },
  };
}
