import OpenAI from 'openai';
import type { ChatCompletionCreateParamsBase, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { ChatRequest, Deployment, SluiceConfig, Usage } from '@sluice/contracts';
import { createHttpFetch } from './http-fetch.js';
import { CallAborted, remainingOf, type Remaining } from './retry.js';

/** A placeholder key: the simulator and many self-hosted upstreams ignore it, the SDK insists on one. */
const NO_KEY = 'sk-none';

/**
 * One SDK client per deployment, rebuilt when its settings (or its key's value) change. The
 * SDK's own retries are off: retries, backoff and fallbacks are ours, so they show on the timeline.
 */
export class ClientPool {
  private readonly clients = new Map<string, { fingerprint: string; client: OpenAI }>();
  private readonly fetch = createHttpFetch();

  constructor(private readonly env: Record<string, string | undefined>) {}

  get(name: string, d: Deployment): OpenAI {
    const apiKey = (d.apiKeyEnv ? this.env[d.apiKeyEnv] : undefined) || NO_KEY;
    // the key is part of the fingerprint so a rotated key takes effect; the fingerprint is never logged
    const fingerprint = JSON.stringify([d.baseUrl, d.timeoutMs, apiKey]);
    const cached = this.clients.get(name);
    if (cached?.fingerprint === fingerprint) return cached.client;
    const client = new OpenAI({ baseURL: d.baseUrl, apiKey, maxRetries: 0, timeout: d.timeoutMs, fetch: this.fetch });
    this.clients.set(name, { fingerprint, client });
    return client;
  }

  /** Forgets clients of deployments the config no longer has. */
  prune(config: SluiceConfig): void {
    for (const name of this.clients.keys()) if (!config.deployments[name]) this.clients.delete(name);
  }
}

export interface UpstreamCall {
  client: OpenAI;
  /** The model name the upstream knows. */
  model: string;
  request: ChatRequest;
  maxTokens?: number;
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
  /** Streaming only: called with each content delta as it arrives. */
  onDelta?: (content: string) => void;
}

export interface UpstreamAnswer {
  status: number;
  content: string;
  finishReason: string;
  usage: Usage;
  /** x-ratelimit-remaining-* as the upstream sent them. */
  remaining?: Remaining;
}

/**
 * One chat completion against one deployment, streamed when the request is. Throws whatever the
 * SDK throws (classify with `classifyError`), or CallAborted when the idle timeout or the
 * deadline cut the call short.
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamAnswer> {
  const timer = new AbortTimer(call);
  try {
    const body = params(call);
    // the SDK's header timeout a little later than ours, so ours wins and names the reason
    const options = {
      signal: timer.signal,
      timeout: timer.arm() + 50,
      ...(call.idempotencyKey !== undefined ? { headers: { 'Idempotency-Key': call.idempotencyKey } } : {}),
    };
    if (!call.request.stream) {
      const { data, response } = await call.client.chat.completions.create({ ...body, stream: false }, options).withResponse();
      const choice = data.choices[0];
      if (!data.usage) throw new Error('upstream answered without usage');
      return {
        status: response.status,
        content: choice?.message.content ?? '',
        finishReason: choice?.finish_reason ?? 'stop',
        usage: pickUsage(data.usage),
        ...withRemaining(response.headers),
      };
    }
    const { data: stream, response } = await call.client.chat.completions
      .create({ ...body, stream: true, stream_options: { include_usage: true } }, options)
      .withResponse();
    let content = '';
    let finishReason: string | undefined;
    let usage: Usage | undefined;
    for await (const chunk of stream) {
      timer.arm();
      if (chunk.usage) usage = pickUsage(chunk.usage);
      const choice = chunk.choices[0];
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      const delta = choice?.delta.content;
      if (delta) {
        content += delta;
        call.onDelta?.(delta);
      }
    }
    // the SDK ends the iteration quietly when the call is aborted
    timer.throwIfAborted();
    if (!usage) throw new Error('upstream stream ended without a usage chunk (does it support stream_options.include_usage?)');
    return { status: response.status, content, finishReason: finishReason ?? 'stop', usage, ...withRemaining(response.headers) };
  } catch (e) {
    timer.throwIfAborted();
    throw e;
  } finally {
    timer.clear();
  }
}

function params(call: UpstreamCall): ChatCompletionCreateParamsBase {
  const { request } = call;
  const p = request.params;
  const maxTokens = call.maxTokens ?? p.max_tokens;
  return {
    model: call.model,
    // our ChatMessage is the plain-text subset of OpenAI's message union
    messages: request.messages as ChatCompletionMessageParam[],
    ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
    ...(p.top_p !== undefined ? { top_p: p.top_p } : {}),
    ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
    ...(p.stop !== undefined ? { stop: p.stop } : {}),
    ...(p.presence_penalty !== undefined ? { presence_penalty: p.presence_penalty } : {}),
    ...(p.frequency_penalty !== undefined ? { frequency_penalty: p.frequency_penalty } : {}),
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(request.user !== undefined ? { user: request.user } : {}),
  };
}

function withRemaining(h: Headers): { remaining?: Remaining } {
  const remaining = remainingOf(h);
  return remaining ? { remaining } : {};
}

function pickUsage(u: OpenAI.CompletionUsage): Usage {
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };
}

/**
 * Aborts the call after `idleTimeoutMs` without progress or at the deadline, whichever is
 * first. The SDK's own timeout only covers the wait for response headers; this one also
 * covers a stream that stalls.
 */
class AbortTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private why: string | undefined;

  constructor(private readonly call: UpstreamCall) {}

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

  throwIfAborted(): void {
    if (this.why !== undefined) throw new CallAborted(this.why);
  }
}
