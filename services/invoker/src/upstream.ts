import OpenAI, { AzureOpenAI } from 'openai';
import type { Stream } from 'openai/streaming';
import type { Deployment, Endpoint, SluiceConfig, Usage } from '@sluice/contracts';
import { wholeAnswer, type StreamReader } from './answer.js';
import { createAgents, createHttpFetch } from './http-fetch.js';
import { createJsonPost, type JsonPost } from './json-call.js';
import type { Outgoing } from './outgoing.js';
import { readLimits, type UpstreamLimits } from './observe-limits.js';
import { CallAborted, CallCancelled, remainingOf, type HeaderReader, type Remaining } from './retry.js';

/** A placeholder key: the simulator and many self-hosted upstreams ignore it, the SDK insists on one. */
const NO_KEY = 'sk-none';
/** Azure's `api-version` when the deployment names none (parseConfig fills the same default). */
const AZURE_API_VERSION = '2024-10-21';
/** The paths Azure serves under `/deployments/{name}` (the SDK's list, of what we call); the rest sit at the resource. */
const AZURE_DEPLOYMENT_PATHS = new Set(['/chat/completions', '/embeddings', '/completions']);

/**
 * One SDK client per deployment, rebuilt when its settings (or its key's value) change. The
 * SDK's own retries are off: retries, backoff and fallbacks are ours, so they show on the timeline.
 */
export class ClientPool {
  private readonly clients = new Map<string, { fingerprint: string; client: OpenAI }>();
  private readonly agents = createAgents();
  private readonly fetch = createHttpFetch(this.agents);
  /** Whole (not streamed) calls, without the SDK's request pipeline (json-call.ts). */
  readonly post: JsonPost = createJsonPost(this.agents);

  constructor(private readonly env: Record<string, string | undefined>) {}

  get(name: string, d: Deployment): OpenAI {
    const apiKey = (d.apiKeyEnv ? this.env[d.apiKeyEnv] : undefined) || NO_KEY;
    // the key is part of the fingerprint so a rotated key takes effect; the fingerprint is never logged
    const fingerprint = JSON.stringify([d.kind, d.baseUrl, d.timeoutMs, d.azureDeployment, d.apiVersion, apiKey]);
    const cached = this.clients.get(name);
    if (cached?.fingerprint === fingerprint) return cached.client;
    const options = { apiKey, maxRetries: 0, timeout: d.timeoutMs, fetch: this.fetch };
    // Azure: the resource's `/openai` as the base URL (not `endpoint`, which the SDK refuses beside an OPENAI_BASE_URL in the env)
    const client =
      d.kind === 'azure'
        ? new AzureOpenAI({
            ...options,
            baseURL: `${d.baseUrl.replace(/\/+$/, '')}/openai`,
            apiVersion: d.apiVersion ?? AZURE_API_VERSION,
            ...(d.azureDeployment !== undefined ? { deployment: d.azureDeployment } : {}),
          })
        : new OpenAI({ ...options, baseURL: d.baseUrl });
    this.clients.set(name, { fingerprint, client });
    return client;
  }

  /** Forgets clients of deployments the config no longer has. */
  prune(config: SluiceConfig): void {
    for (const name of this.clients.keys()) if (!config.deployments[name]) this.clients.delete(name);
  }
}

export interface UpstreamCall {
  /** Streamed calls go through the SDK's client (its SSE reader)... */
  client: OpenAI;
  /** ...whole ones through the direct JSON call, to the client's base URL with its key. */
  post: JsonPost;
  endpoint: Endpoint;
  requestId: string;
  /** What to send (outgoing.ts): the client's body with Sluice's decisions applied. */
  request: Outgoing;
  /**
   * Sent as the Idempotency-Key header: the same for every delivery of the same call (request,
   * deployment, model), so an upstream that honours it answers a call repeated after our crash
   * from its record instead of serving (and charging) it twice.
   */
  idempotencyKey?: string;
  /** Abort after this long without progress (headers, or the next streamed chunk). */
  idleTimeoutMs: number;
  deadline: number;
  now: () => number;
  /** Aborted when the client cancels: the call stops at once (the upstream sees its connection close). */
  cancel?: AbortSignal;
  /** Streaming only: reads each upstream item; `forward` gets what of it goes to the client. */
  reader?: StreamReader;
  forward?: (chunk: unknown) => void;
}

export interface UpstreamAnswer {
  status: number;
  /** The upstream's OpenAI object, whole (assembled from the chunks of a stream). */
  body: unknown;
  usage: Usage;
  /**
   * The upstream's own id of a chat completion (`body.id` is Sluice's `chatcmpl-<requestId>`):
   * the span's `gen_ai.response.id`, to find the call in the provider's logs.
   */
  upstreamId?: string;
  /** x-ratelimit-remaining-* as the upstream sent them. */
  remaining?: Remaining;
  /** All six x-ratelimit-* headers, read (observe-limits.ts). */
  limits?: UpstreamLimits;
}

/**
 * One call of one endpoint against one deployment: a whole answer through the direct JSON call
 * (json-call.ts), a streamed one through the SDK's generic `post` (its typed methods add fields
 * of their own: `embeddings.create` asks for base64); either sends the body exactly as given.
 * Throws whatever the SDK throws (json-call.ts throws the same; classify with `classifyError`),
 * CallAborted when the idle timeout or the deadline cut the call short, CallCancelled when the
 * client cancelled.
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamAnswer> {
  const timer = new AbortTimer(call);
  try {
    const { path, stream } = call.request;
    const body = azureBody(call.client, path, call.request.body);
    const headers = call.idempotencyKey !== undefined ? { 'Idempotency-Key': call.idempotencyKey } : undefined;
    const ms = timer.arm();
    if (!stream || !call.reader) {
      const { baseURL, apiKey } = call.client;
      const target = call.client instanceof AzureOpenAI ? azureTarget(call.client, path, body) : { path };
      const got = await call.post({ baseURL, ...target, apiKey, body, signal: timer.signal, ...(headers ? { headers } : {}) });
      timer.throwIfAborted();
      return { status: got.status, ...wholeAnswer(call.endpoint, call.requestId, got.data), ...chatId(call.endpoint, got.data), ...withRemaining(got.headers) };
    }
    // the SDK's header timeout a little later than ours, so ours wins and names the reason
    const options = { body, stream, signal: timer.signal, timeout: ms + 50, ...(headers ? { headers } : {}) };
    const { data, response } = await call.client.post<Stream<unknown>>(path, options).withResponse();
    let id: { upstreamId?: string } = {};
    for await (const item of data) {
      timer.arm();
      if (id.upstreamId === undefined) id = chatId(call.endpoint, item);
      const chunk = call.reader.take(item);
      if (chunk !== undefined) call.forward?.(chunk);
    }
    // the SDK ends the iteration quietly when the call is aborted
    timer.throwIfAborted();
    return { status: response.status, ...call.reader.finish(Math.floor(call.now() / 1000)), ...id, ...withRemaining(response.headers) };
  } catch (e) {
    timer.throwIfAborted();
    throw e;
  } finally {
    timer.close();
  }
}

/**
 * Where the direct JSON call sends an Azure request, as the SDK's AzureOpenAI client would:
 * chat completions and embeddings under `/deployments/{azureDeployment, else the body's model}`,
 * the rest (Responses) at the resource; `?api-version=`, and the key in an `api-key` header.
 */
function azureTarget(client: AzureOpenAI, path: string, body: unknown): { path: string; query: Record<string, string>; auth: 'api-key' } {
  const model = (body as { model?: unknown } | undefined)?.model;
  const deployment = client.deploymentName ?? (typeof model === 'string' ? model : undefined);
  const under = AZURE_DEPLOYMENT_PATHS.has(path) && deployment !== undefined ? `/deployments/${deployment}${path}` : path;
  return { path: under, query: { 'api-version': client.apiVersion }, auth: 'api-key' };
}

/**
 * Azure's Responses API reads the deployment from the body's `model` (the SDK puts only the
 * deployment-path endpoints under the deployment), so a configured `azureDeployment` goes there.
 */
function azureBody(client: OpenAI, path: string, body: unknown): unknown {
  if (!(client instanceof AzureOpenAI) || client.deploymentName === undefined || AZURE_DEPLOYMENT_PATHS.has(path)) return body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  return { ...(body as Record<string, unknown>), model: client.deploymentName };
}

/** The `id` of a chat completion (or of its chunk) as the upstream sent it, before Sluice rewrites it. */
function chatId(endpoint: Endpoint, data: unknown): { upstreamId?: string } {
  const id = endpoint === 'chat.completions' ? (data as { id?: unknown } | null)?.id : undefined;
  return typeof id === 'string' ? { upstreamId: id } : {};
}

function withRemaining(h: HeaderReader): { remaining?: Remaining; limits?: UpstreamLimits } {
  const remaining = remainingOf(h);
  const limits = readLimits(h);
  return { ...(remaining ? { remaining } : {}), ...(limits ? { limits } : {}) };
}

/**
 * Aborts the call after `idleTimeoutMs` without progress or at the deadline, whichever is
 * first, or at once when the client cancels. The SDK's own timeout only covers the wait for
 * response headers; this one also covers a stream that stalls.
 */
class AbortTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private why: string | undefined;
  private cancelled = false;
  private readonly onCancel = () => {
    this.cancelled = true;
    this.controller.abort();
  };

  constructor(private readonly call: UpstreamCall) {
    if (call.cancel?.aborted) this.onCancel();
    else call.cancel?.addEventListener('abort', this.onCancel, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** (Re)starts the timer; returns its length so the SDK's header timeout can match it. */
  arm(): number {
    this.clear();
    const toDeadline = this.call.deadline - this.call.now();
    const ms = Math.max(1, Math.min(this.call.idleTimeoutMs, toDeadline));
    const why = toDeadline <= this.call.idleTimeoutMs ? 'deadline reached during the call' : `no progress for ${this.call.idleTimeoutMs} ms`;
    this.timer = setTimeout(() => {
      this.why = why;
      this.controller.abort();
    }, ms);
    return ms;
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The call is over: no timer, and a later cancel is not this call's. */
  close(): void {
    this.clear();
    this.call.cancel?.removeEventListener('abort', this.onCancel);
  }

  throwIfAborted(): void {
    if (this.cancelled) throw new CallCancelled('cancelled by the client');
    if (this.why !== undefined) throw new CallAborted(this.why);
  }
}
