import { performance } from 'node:perf_hooks';
import { isJsonObject, type Deployment, type Endpoint } from '@sluice/contracts';
import {
  GenAiBuckets,
  GenAiOperation,
  GenAiProvider,
  GenAiTokenType,
  meter,
  Metrics,
  metricsOn,
  SpanAttributes as A,
  startClientSpan,
  tracingOn,
  type OpenSpan,
  type SpanAttrs,
} from '@sluice/telemetry';
import type { Failure } from './retry.js';
import type { UpstreamAnswer } from './upstream.js';

/** What is known of one upstream call before it is sent. */
export interface GenAiCall {
  endpoint: Endpoint;
  /** The model named in the body sent upstream (the deployment's `upstreamModel`, else Sluice's model). */
  model: string;
  /** The deployment's name in the config. */
  deployment: string;
  target: Pick<Deployment, 'kind' | 'baseUrl'>;
  requestId: string;
  tenant: string;
}

/**
 * The semconv facts of a call known before it is sent, as the span and every metric point carry
 * them: operation (`chat` for chat completions and Responses, `embeddings`), provider
 * (`azure.ai.openai` for an `azure` deployment, else `openai`), the model sent, the upstream's
 * host and port, and Sluice's tenant and deployment. Pure.
 */
export function callAttributes(call: GenAiCall): SpanAttrs {
  const server = serverOf(call.target.baseUrl);
  return {
    [A.genAiOperation]: operationOf(call.endpoint),
    [A.genAiProvider]: call.target.kind === 'azure' ? GenAiProvider.azureOpenai : GenAiProvider.openai,
    [A.genAiRequestModel]: call.model,
    [A.serverAddress]: server?.address,
    [A.serverPort]: server?.port,
    [A.tenant]: call.tenant,
    [A.deployment]: call.deployment,
  };
}

/** Span name per semconv: `{gen_ai.operation.name} {gen_ai.request.model}`, e.g. `chat gpt-4o-mini`. */
export function spanName(call: Pick<GenAiCall, 'endpoint' | 'model'>): string {
  return `${operationOf(call.endpoint)} ${call.model}`;
}

/**
 * What an answer says of itself: the model that answered, the upstream's id for it (`upstreamId`
 * when Sluice rewrote the body's, else the body's `id`), why it stopped (chat: each choice's
 * `finish_reason`; Responses: `stop` when completed, else `incomplete_details.reason`), and the
 * billed tokens (no output tokens for embeddings). Pure.
 */
export function answerAttributes(endpoint: Endpoint, answer: Pick<UpstreamAnswer, 'body' | 'usage' | 'upstreamId'>): SpanAttrs {
  const body = isJsonObject(answer.body) ? answer.body : {};
  const id = answer.upstreamId ?? (typeof body.id === 'string' ? body.id : undefined);
  return {
    [A.genAiResponseModel]: typeof body.model === 'string' ? body.model : undefined,
    [A.genAiResponseId]: id,
    [A.genAiFinishReasons]: finishReasons(endpoint, body),
    [A.genAiInputTokens]: answer.usage.prompt_tokens,
    [A.genAiOutputTokens]: endpoint === 'embeddings' ? undefined : answer.usage.completion_tokens,
  };
}

/**
 * `error.type` of a failed call: the upstream's HTTP status (`429`, `503`), else the kind of
 * failure (`timeout`, `connection`, `protocol`); `cancelled` when the client gave up.
 */
export function errorTypeOf(failure: Pick<Failure, 'kind' | 'status'> | 'cancelled'): string {
  if (failure === 'cancelled') return 'cancelled';
  return failure.kind === 'status' && failure.status !== undefined ? String(failure.status) : failure.kind;
}

/** One upstream call being observed: its client span and, when it ends, its metric points. */
export interface GenAiRecord {
  /** Runs the call with its span active (the HTTP client's span becomes its child). */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** The first streamed chunk arrived (`gen_ai.client.operation.time_to_first_chunk`). */
  firstChunk(): void;
  answered(answer: UpstreamAnswer): void;
  failed(failure: Failure): void;
  cancelled(): void;
}

const NOTHING: GenAiRecord = { run: (fn) => fn(), firstChunk: () => undefined, answered: () => undefined, failed: () => undefined, cancelled: () => undefined };

/**
 * Starts observing one upstream call: a `chat {model}` CLIENT span under the active one (tracing
 * on), and, when the call ends, `gen_ai.client.operation.duration`, `gen_ai.client.token.usage`
 * (an answer's input and output tokens) and, for a streamed call that got a chunk,
 * `gen_ai.client.operation.time_to_first_chunk` (metrics on). With both off it does nothing.
 */
export function startGenAiCall(call: GenAiCall): GenAiRecord {
  const recording = metricsOn();
  const tracing = tracingOn();
  if (!recording && !tracing) return NOTHING;
  const base = callAttributes(call);
  const span = tracing ? startClientSpan(spanName(call), { ...base, [A.requestId]: call.requestId }) : undefined;
  // each record() hashes its attributes (~2.6 us for 8 of them): built once, without the undefined ones
  const points = recording ? defined(base) : {};
  const started = performance.now();
  let firstChunkS: number | undefined;
  const record = (outcome: Record<string, string>, tokens?: { input: number; output: number | undefined }) => {
    const i = instruments();
    const attributes = { ...points, ...outcome };
    i.duration.record((performance.now() - started) / 1000, attributes);
    if (firstChunkS !== undefined) i.firstChunk.record(firstChunkS, attributes);
    if (!tokens) return;
    i.tokens.record(tokens.input, { ...attributes, [A.genAiTokenType]: GenAiTokenType.input });
    if (tokens.output !== undefined) i.tokens.record(tokens.output, { ...attributes, [A.genAiTokenType]: GenAiTokenType.output });
  };
  const failedWith = (errorType: string, message?: string) => {
    if (span) {
      // the upstream's (masked) message, not an Error: a stack of this line would tell nothing
      if (message !== undefined) span.fail(message);
      end(span, { [A.errorType]: errorType });
    }
    if (recording) record({ [A.errorType]: errorType });
  };
  return {
    run: (fn) => (span ? span.run(fn) : fn()),
    firstChunk: () => void (firstChunkS ??= (performance.now() - started) / 1000),
    answered(answer) {
      if (span) end(span, answerAttributes(call.endpoint, answer));
      if (!recording) return;
      const model = isJsonObject(answer.body) && typeof answer.body.model === 'string' ? answer.body.model : undefined;
      const output = call.endpoint === 'embeddings' ? undefined : answer.usage.completion_tokens;
      record(model !== undefined ? { [A.genAiResponseModel]: model } : {}, { input: answer.usage.prompt_tokens, output });
    },
    failed: (failure) => failedWith(errorTypeOf(failure), failure.message),
    cancelled: () => failedWith(errorTypeOf('cancelled')),
  };
}

function end(span: OpenSpan, attributes: SpanAttrs): void {
  span.set(attributes);
  span.end();
}

type Instruments = ReturnType<typeof createInstruments>;
let cached: Instruments | undefined;
/** Made on first use, after the preload (or a test) started the metrics SDK: a meter taken before would be the no-op one. */
const instruments = (): Instruments => (cached ??= createInstruments());

function createInstruments() {
  const m = meter('sluice.invoker');
  const seconds = { unit: Metrics.genAiOperationDuration.unit, advice: { explicitBucketBoundaries: [...GenAiBuckets.seconds] } };
  return {
    tokens: m.createHistogram(Metrics.genAiTokenUsage.name, {
      description: 'Tokens per upstream call, input and output (gen_ai.token.type): what the upstream billed.',
      unit: Metrics.genAiTokenUsage.unit,
      advice: { explicitBucketBoundaries: [...GenAiBuckets.tokens] },
    }),
    duration: m.createHistogram(Metrics.genAiOperationDuration.name, {
      description: 'Seconds from sending an upstream call to its whole answer, its failure (error.type) or its cancel.',
      ...seconds,
    }),
    firstChunk: m.createHistogram(Metrics.genAiTimeToFirstChunk.name, {
      description: 'Seconds from sending a streamed upstream call to its first chunk.',
      ...seconds,
    }),
  };
}

function operationOf(endpoint: Endpoint): string {
  return endpoint === 'embeddings' ? GenAiOperation.embeddings : GenAiOperation.chat;
}

function finishReasons(endpoint: Endpoint, body: Record<string, unknown>): string[] | undefined {
  if (endpoint === 'chat.completions') {
    if (!Array.isArray(body.choices)) return undefined;
    const reasons = body.choices.map((c) => (isJsonObject(c) && typeof c.finish_reason === 'string' ? c.finish_reason : undefined));
    return reasons.every((r) => r !== undefined) && reasons.length > 0 ? reasons : undefined;
  }
  if (endpoint === 'responses') {
    if (body.status === 'completed') return ['stop'];
    const reason = isJsonObject(body.incomplete_details) ? body.incomplete_details.reason : undefined;
    return typeof reason === 'string' ? [reason] : undefined;
  }
  return undefined;
}

const servers = new Map<string, { address: string; port: number } | undefined>();
/** Host and port of a deployment's base URL (the scheme's default port when it names none); remembered per URL. */
function serverOf(baseUrl: string): { address: string; port: number } | undefined {
  if (servers.has(baseUrl)) return servers.get(baseUrl);
  let server: { address: string; port: number } | undefined;
  try {
    const url = new URL(baseUrl);
    server = { address: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
  } catch {
    server = undefined;
  }
  if (servers.size < 1000) servers.set(baseUrl, server);
  return server;
}

/** Metric attributes without the undefined ones (a point's labels are its defined attributes). */
function defined(attributes: SpanAttrs): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const k in attributes) {
    const v = attributes[k as keyof SpanAttrs];
    if (typeof v === 'string' || typeof v === 'number') out[k] = v;
  }
  return out;
}
