import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { sendReply } from '@sluice/bus';
import { Headers, SluiceError, Subjects, type Endpoint, type RequestContext, type Tenant, type VirtualKey } from '@sluice/contracts';
import { SpanAttributes, tagActiveSpan, traceProcess, tracingOn, withTrace, type MessageFacts } from '@sluice/telemetry';
import type { IngressDeps } from './deps.js';
import { rejectedEvent, requestedEvent } from './events.js';
import { continueTrace, newRequestId } from './ids.js';
import { invalid, RequestRejected } from './rejection.js';
import { checkFits } from './fits.js';
import { answerShedNats } from './overload-shed.js';
import { requestKey } from './keys.js';
import { authenticate } from './tenants.js';
import { parseJsonBody, validateRequest, type ChatHints } from './validate.js';
import { asyncAsked, queuedNotice, webhookAsked } from './async.js';
import { claimOrReplay, idempotencyKeyOf, requestFingerprint } from './idempotency.js';
import { busUnavailable } from './unavailable.js';
import { mayCarryRefusal, replyAllowed, type ReplyRule } from './reply-subject.js';

/** Replicas share the front-door subject; NATS hands each request to one of them. */
const INGRESS_QUEUE = 'ingress';

const ENDPOINTS: Readonly<Record<string, Endpoint>> = { 'chat.completions': 'chat.completions', responses: 'responses', embeddings: 'embeddings' };

const decoder = new TextDecoder();

/**
 * The NATS front door: requests on `sluice.chat.<tenant>` with the key in the `sluice-key`
 * header and an OpenAI body: chat completions, or the API the `sluice-endpoint` header names
 * (`responses`, `embeddings`). A valid request goes into the pipeline with the caller's reply subject as
 * `ctx.replyTo`, so the terminal stage answers the caller directly and ingress stays out of the
 * answer path. A refused one is published as `chat.rejected` and answered here. The reply subject
 * must be one `replies` allows for the tenant (reply-subject.ts): any other is refused
 * (`invalid_reply_subject`), never passed on, and answered only where that cannot hurt.
 */
export function openNatsDoor(nc: NatsConnection, deps: IngressDeps, replies: ReplyRule = 'tenant-or-default-inbox'): { stop(): Promise<void> } {
  const inFlight = new Set<Promise<void>>();
  const sub = nc.subscribe(Subjects.chatAll, {
    queue: INGRESS_QUEUE,
    callback: (err, msg) => {
      if (err) {
        deps.log.error({ err }, 'front door subscription failed');
        return;
      }
      // a place under ingress.maxInFlight until published; none: answered 503 at once
      const place = deps.overload.enter(deps.now());
      const replyOk = msg.reply !== undefined && replyAllowed(msg.reply, tenantOf(msg), replies);
      if (place.kind === 'shed') return answerShedNats(nc, deps, msg, place, replyOk);
      // concurrently: awaiting each publish ack before taking the next request caps throughput
      const run = () => handle(nc, deps, msg, replyOk);
      // with tracing on the request is the root span (or continues the caller's traceparent)
      const p = (tracingOn() ? traceProcess(doorSpan(msg), incomingTrace(msg), run) : run()).catch((e: unknown) =>
        deps.log.error({ err: e }, 'front door request failed'),
      );
      inFlight.add(p);
      void p.finally(() => {
        inFlight.delete(p);
        place.release();
      });
    },
  });
  return {
    async stop() {
      await sub.drain().catch(() => undefined);
      await Promise.all(inFlight);
    },
  };
}

/** The tenant a request subject names (`sluice.chat.<tenant>`); its key must then prove it. */
const tenantOf = (msg: Msg) => msg.subject.slice(msg.subject.lastIndexOf('.') + 1);

/** A reply subject for a log line: a hostile one may be long. */
const shown = (subject: string) => (subject.length > 160 ? `${subject.slice(0, 160)}…` : subject);

async function handle(nc: NatsConnection, deps: IngressDeps, msg: Msg, replyOk: boolean): Promise<void> {
  const receivedAt = deps.now();
  const requestId = newRequestId();
  tagActiveSpan({ [SpanAttributes.requestId]: requestId });
  const traceparent = continueTrace(msg.headers?.get(Headers.traceparent) || undefined);
  const claimed = tenantOf(msg);
  const log = withTrace(deps.log, traceparent, { requestId });
  const replyTo = msg.reply;
  if (!replyTo) {
    log.warn({ subject: msg.subject }, 'dropping a chat request without a reply subject: there is nobody to answer');
    return;
  }

  const config = deps.config();
  let tenant: Tenant | undefined;
  let key: VirtualKey | undefined;
  const known: { model?: string; user?: string } = {};
  try {
    // before anything is answered: every answer below (and the pipeline's) goes to replyTo
    if (!replyOk) {
      throw new RequestRejected(
        'invalid_reply_subject',
        `The reply subject is not an inbox of tenant ${claimed}: connect with inboxPrefix "${Subjects.inbox(claimed)}".`,
      );
    }
    ({ tenant, key } = authenticate(deps.tenants(), msg.headers?.get(Headers.tenantKey) || undefined, claimed, deps.keys(), receivedAt));
    const limit = config.ingress.maxBodyBytes;
    if (msg.data.length > limit) throw new RequestRejected('body_too_large', `The request body is larger than ${limit} bytes.`, 'body');
    const endpoint = endpointOf(msg);
    const raw = parseJsonBody(decoder.decode(msg.data));
    const { request, body, tokenBudget, lane } = await validateRequest(endpoint, raw, hintsFrom(msg), tenant, config, key);
    known.model = request.model;
    if (request.user !== undefined) known.user = request.user;
    // async: answered on its result subject, the client told so at once
    const later = asyncAsked(msg.headers?.get(Headers.async) || undefined, Headers.async, request.stream);
    const webhook = webhookAsked(msg.headers?.get(Headers.webhook) || undefined, Headers.webhook, later, tenant.id, config, key?.webhook);
    const idempotencyKey = idempotencyKeyOf(msg.headers?.get(Headers.idempotencyKey) || undefined, Headers.idempotencyKey);
    const ctx: RequestContext = {
      request,
      replyTo: later ? Subjects.result(requestId) : replyTo,
      frontDoor: 'nats',
      receivedAt,
      deadline: receivedAt + config.ingress.defaultDeadlineMs,
    };
    if (key) ctx.key = requestKey(key);
    if (webhook !== undefined) ctx.webhook = webhook;
    if (idempotencyKey !== undefined) ctx.keepResult = true;
    const event = requestedEvent(requestId, tenant.id, ctx, body, tokenBudget, lane.reason);
    checkFits(event, msg.data.length, deps.maxPayload());
    let release: (() => Promise<void>) | undefined;
    if (idempotencyKey !== undefined) {
      const mine = { requestId, fingerprint: requestFingerprint(endpoint, raw), deadline: ctx.deadline };
      const claim = await claimOrReplay(deps, tenant.id, idempotencyKey, mine, Headers.idempotencyKey, { log });
      // a NATS requester that gave up is not seen (no signal given): only the HTTP door's client leaves
      if (claim.kind === 'left') return;
      if (claim.kind === 'replay') {
        // the first try's answer again (its request id): nothing is published, nothing runs twice
        log.info({ replayed: claim.requestId }, 'answered with the stored answer of the same idempotency key');
        sendReply(nc, replyTo, claim.reply);
        return;
      }
      release = claim.release;
    }
    const notice = later ? queuedNotice(requestId, receivedAt) : undefined;
    let sent = false;
    try {
      // stored before the request goes: its answer replaces the notice, never the other way round
      if (notice) await deps.storeNotice(tenant.id, notice);
      sent = true;
      await deps.publish(event, traceparent);
    } catch (err) {
      // the key is freed only when the request never went out: one not acked may still be stored
      if (!sent) await release?.().catch(() => undefined);
      log.error({ err }, 'could not publish chat.requested');
      throw busUnavailable('The request could not be queued');
    }
    if (notice) sendReply(nc, replyTo, notice);
    log.debug({ tenant: tenant.id, endpoint, model: request.model, stream: request.stream, async: later }, 'chat requested');
  } catch (e) {
    if (!(e instanceof SluiceError)) throw e;
    if (e instanceof RequestRejected) {
      // a wrong key for a real tenant is that tenant's business; one for a made-up tenant is nobody's
      const eventTenant = tenant?.id ?? (config.tenants.some((t) => t.id === claimed) ? claimed : undefined);
      log.info({ code: e.code, param: e.param, tenant: eventTenant }, 'request rejected');
      try {
        // a refused reply subject is not recorded as one to answer on
        const facts = { tenant: eventTenant, receivedAt, ...(replyOk ? { replyTo } : {}), ...known };
        await deps.publish(rejectedEvent(requestId, e, facts, deps.now()), traceparent);
      } catch (err) {
        log.error({ err }, 'could not publish chat.rejected');
      }
    }
    if (!replyOk && !mayCarryRefusal(replyTo)) {
      log.warn({ replyTo: shown(replyTo), tenant: claimed }, 'refused a reply subject inside sluice.* or $*: not answered there');
      return;
    }
    const param = e instanceof RequestRejected && e.param !== undefined ? { param: e.param } : {};
    const retryAfter = e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {};
    sendReply(nc, replyTo, { requestId, error: { code: e.code, message: e.message, status: e.status, ...param, ...retryAfter } });
  }
}

function doorSpan(msg: Msg): MessageFacts {
  return { name: 'process chat request', destination: msg.subject };
}

function incomingTrace(msg: Msg) {
  return { traceparent: msg.headers?.get(Headers.traceparent) || undefined, tracestate: msg.headers?.get(Headers.tracestate) || undefined };
}

/** The cache headers; `feature` and `priority` come in the body at this door. An empty header is an absent one (NATS tells them apart by nothing). */
function hintsFrom(msg: Msg): ChatHints {
  const hints: ChatHints = {};
  for (const [key, name] of [
    ['cache', Headers.cache],
    ['cacheTtl', Headers.cacheTtl],
    ['cacheNamespace', Headers.cacheNamespace],
  ] as const) {
    const value = msg.headers?.get(name);
    if (value) hints[key] = { value: value.trim(), param: name };
  }
  return hints;
}

/** The API the body is for, from the `sluice-endpoint` header (chat completions when absent). */
function endpointOf(msg: Msg): Endpoint {
  const name = msg.headers?.get(Headers.endpoint)?.trim();
  if (!name) return 'chat.completions';
  const endpoint = Object.prototype.hasOwnProperty.call(ENDPOINTS, name) ? ENDPOINTS[name] : undefined;
  if (!endpoint) throw invalid(Headers.endpoint, `${Headers.endpoint} must be one of ${Object.keys(ENDPOINTS).join(', ')}.`);
  return endpoint;
}
