import { EventType, makeEvent, parseDuration, ServiceName, SYSTEM_TENANT, type AnyEvent, type EventDataOf, type SluiceEvent } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';
import type { HeaderReader } from './retry.js';

type Observed = EventDataOf<'upstream.limits_observed'>;

/** What an upstream's x-ratelimit-* headers said of its own limits (OpenAI's six headers). */
export type UpstreamLimits = Pick<Observed, 'limitRequests' | 'remainingRequests' | 'resetRequestsMs' | 'limitTokens' | 'remainingTokens' | 'resetTokensMs'>;

const HEADERS = [
  ['limitRequests', 'x-ratelimit-limit-requests', 'count'],
  ['remainingRequests', 'x-ratelimit-remaining-requests', 'count'],
  ['resetRequestsMs', 'x-ratelimit-reset-requests', 'duration'],
  ['limitTokens', 'x-ratelimit-limit-tokens', 'count'],
  ['remainingTokens', 'x-ratelimit-remaining-tokens', 'count'],
  ['resetTokensMs', 'x-ratelimit-reset-tokens', 'duration'],
] as const;

/**
 * Reads OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers; undefined when
 * the upstream sent none of them. A header that does not parse (a count that is not a whole
 * number, a reset not in OpenAI's duration form such as `6m0s` or `20ms`) is left out rather
 * than guessed at.
 *
 * @example
 * readLimits(new Headers({ 'x-ratelimit-limit-requests': '60', 'x-ratelimit-reset-requests': '1s' }))
 * // { limitRequests: 60, resetRequestsMs: 1000 }
 */
export function readLimits(headers: HeaderReader | undefined): UpstreamLimits | undefined {
  if (!headers) return undefined;
  const limits: UpstreamLimits = {};
  let any = false;
  for (const [field, name, kind] of HEADERS) {
    const raw = headers.get(name)?.trim();
    if (!raw) continue;
    const value = kind === 'count' ? (/^\d+$/.test(raw) ? Number(raw) : undefined) : parseDuration(raw);
    if (value === undefined || !Number.isSafeInteger(Math.ceil(value))) continue;
    limits[field] = Math.ceil(value);
    any = true;
  }
  return any ? limits : undefined;
}

/** What an attempt's call came back with, as far as the upstream's limits go. */
export interface CallResult {
  status?: number;
  limits?: UpstreamLimits;
  retryAfterMs?: number;
}

/**
 * How often one replica reports a deployment. A report per answer would double the stream;
 * the limiter needs a few a second at most (it backs off once per second, and recovers over
 * tens of seconds). So: a 429 at most every `urgentEveryMs`, and so is an answer whose
 * remaining requests or tokens are below `lowFraction` of the limit; any other answer at most
 * every `everyMs`.
 */
const SAMPLING = { everyMs: 1000, urgentEveryMs: 200, lowFraction: 0.1 } as const;

/** Whether `result` is worth reporting, `lastAt` being when this replica last reported the deployment. Pure. */
export function worthReporting(result: CallResult, lastAt: number | undefined, now: number, sampling = SAMPLING): boolean {
  const throttled = result.status === 429;
  if (!throttled && !result.limits) return false;
  if (lastAt === undefined) return true;
  const l = result.limits ?? {};
  const low = (remaining?: number, limit?: number) => remaining !== undefined && limit !== undefined && remaining < limit * sampling.lowFraction;
  const urgent = throttled || low(l.remainingRequests, l.limitRequests) || low(l.remainingTokens, l.limitTokens);
  return now - lastAt >= (urgent ? sampling.urgentEveryMs : sampling.everyMs);
}

/**
 * The observation event of one call. It belongs to no tenant and no request (it is not on the
 * request's timeline); its id names the deployment, the request whose call it was and the moment.
 */
export function observationOf(deployment: string, requestId: string, result: CallResult, at: number): SluiceEvent<'upstream.limits_observed'> {
  const throttled = result.status === 429;
  const data: Observed = {
    deployment,
    status: result.status ?? 0,
    throttled,
    ...(throttled && result.retryAfterMs !== undefined ? { retryAfterMs: Math.max(0, Math.round(result.retryAfterMs)) } : {}),
    ...result.limits,
  };
  const l = result.limits;
  const left =
    l?.remainingRequests !== undefined ? `; ${l.remainingRequests}${l.limitRequests !== undefined ? ` of ${l.limitRequests}` : ''} requests left` : '';
  const reason = throttled
    ? `${deployment} answered 429${data.retryAfterMs !== undefined ? `, retry after ${data.retryAfterMs} ms` : ''}${left}`
    : `${deployment} rate limits${left}`;
  return makeEvent(
    EventType.UpstreamLimitsObserved,
    {
      requestId: '',
      tenant: SYSTEM_TENANT,
      service: ServiceName.Invoker,
      at,
      reason: `${reason} (request ${requestId})`,
      suffix: `${deployment}:${requestId}:${at}`,
    },
    data,
  );
}

/**
 * Reports what the upstreams say of their own limits as `upstream.limits_observed`, sampled
 * per deployment (see SAMPLING), for the limiters to learn the global limit from. The events
 * are published beside the request's own, not on its timeline: losing one costs nothing (the
 * next says as much), so no request waits for them and a failed publish is only logged.
 */
export class LimitsObserver {
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly publish: (event: AnyEvent) => Promise<unknown>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** After one call of `deployment` for `requestId`; publishes when it is worth reporting. */
  readonly observe = (deployment: string, requestId: string, result: CallResult): void => {
    const at = this.now();
    if (!worthReporting(result, this.lastAt.get(deployment), at)) return;
    this.lastAt.set(deployment, at);
    this.publish(observationOf(deployment, requestId, result, at)).catch((err: unknown) =>
      this.log.warn({ err, deployment }, 'could not publish upstream.limits_observed; the next observation says as much'),
    );
  };
}
