import { makeEvent, ServiceName, type Candidate, type SluiceEvent } from '@sluice/contracts';
import { answer as answerOf, chatRequest } from '@sluice/contracts/testing';
import { startAttempts, type AttemptOutcome, type AttemptState, type Invocation, type Step } from './attempts.js';
import { closedCircuit, decide, type Circuit } from './circuit.js';
import type { InvokerSettings } from './plan.js';
import type { DeliveryCount } from './replay.js';
import type { Failure } from './retry.js';
import { step } from './step.js';
import type { UpstreamAnswer } from './upstream.js';

/** Test fixtures for the unit specs of the attempt loop. */
export const T0 = 1_700_000_000_000;
export const DEADLINE = T0 + 60_000;
export const settings: InvokerSettings = {
  maxAttemptsPerDeployment: 2,
  baseBackoffMs: 100,
  maxBackoffMs: 2000,
  circuitFailureThreshold: 3,
  circuitOpenMs: 30_000,
  concurrency: 8,
};
export const A: Candidate = { model: 'gpt-4o-mini', deployment: 'a' };
export const B: Candidate = { model: 'gpt-4o', deployment: 'b' };

function routed(candidates: Candidate[]): SluiceEvent<'chat.routed'> {
  const ctx = {
    request: chatRequest({ model: 'auto', promptTokens: 12 }),
    replyTo: '_INBOX.r1',
    frontDoor: 'nats' as const,
    receivedAt: T0 - 100,
    deadline: DEADLINE,
  };
  return makeEvent(
    'chat.routed',
    { requestId: 'r1', tenant: 'acme', service: ServiceName.Router, at: T0 - 50, reason: 'routed' },
    { ctx, tier: 'small', lane: 'standard', candidates, degradeLevel: 0, cacheKey: 'acme.k' },
  );
}

/** A request for these candidates on deployments `a` and `b`; random 1 makes backoff its ceiling. */
export function invocation(candidates: Candidate[] = [A, B], over: Partial<Invocation> & { delivery?: DeliveryCount } = {}): Invocation {
  const deployments = { a: { baseUrl: 'http://a', timeoutMs: 1000 }, b: { baseUrl: 'http://b', timeoutMs: 1000 } };
  return { event: routed(candidates), delivery: {}, settings, deployments, maxPayload: 8 * 1024 * 1024, random: () => 1, ...over };
}

export const answered = (content = 'Paris.', latencyMs = 120): Extract<AttemptOutcome, { kind: 'answered' }> => ({
  kind: 'answered',
  answer: answer(content),
  latencyMs,
});
export const failed = (failure: Partial<Failure> = {}, latencyMs = 80): AttemptOutcome => ({
  kind: 'failed',
  failure: { kind: 'status', status: 500, message: 'boom', retryable: true, ...failure },
  latencyMs,
});

/** A chat completion saying `content` (12 prompt and 3 completion tokens), as the upstream answered it. */
function answer(content: string): UpstreamAnswer {
  const { body, usage } = answerOf('gpt-4o-mini', 12, 3, content);
  return { status: 200, body, usage, remaining: { requests: '99', tokens: '9000' } };
}

export function openCircuit(openedAt: number, failures = 3): Circuit {
  return { state: 'open', failures, openedAt, trialInFlight: false, transitions: 1 };
}

/** A step, with the circuits as they stand after the interpreter applied its changes (and claimed its trial). */
export type Stepped = Step & { after: Record<string, Circuit> };

/**
 * Steps through outcomes as the interpreter does with one replica: each step at its time, its
 * circuit changes applied (`decide`) and its trial claimed, carried over to the next. Returns
 * every step; the last one is what the test looks at.
 */
export function run(inv: Invocation, outcomes: Array<[AttemptOutcome, number]>, circuits: Record<string, Circuit> = {}): Stepped[] {
  let state: AttemptState = { ...startAttempts(inv), circuits };
  const steps: Stepped[] = [];
  for (const [outcome, now] of outcomes) {
    const s = step(inv, state, outcome, now);
    const after = { ...state.circuits };
    // as the store does: a decision that changes nothing is not written
    const apply = (deployment: string, input: Parameters<typeof decide>[1]) => {
      const current = after[deployment] ?? closedCircuit;
      const { circuit } = decide(current, input, now, inv.settings);
      if (circuit !== current) after[deployment] = circuit;
    };
    for (const { deployment, input } of s.circuits) apply(deployment, input);
    if (s.next.kind === 'call' && s.next.trial !== undefined) apply(s.next.candidate.deployment, { kind: 'trial', trial: s.next.trial });
    steps.push({ ...s, after });
    state = { ...s.state, circuits: after };
  }
  return steps;
}
