import { describe, expect, it } from 'vitest';
import type { AnyEvent, ChatErrorReply, ChatResult } from '@sluice/contracts';
import { A, answered, B, DEADLINE, failed, invocation, openCircuit, run, settings, T0, type Stepped } from './fixtures.js';
import { answer, chatResult, contentOf } from '@sluice/contracts/testing';
import { step, unsendable } from './step.js';
import { closedCircuit } from './circuit.js';
import { startAttempts } from './attempts.js';

const start = { kind: 'start' } as const;
const waited = { kind: 'waited' } as const;
const last = (steps: Stepped[]) => steps[steps.length - 1]!;
const kinds = (events: AnyEvent[]) => events.map((e) => e.type);

describe('step: the first call', () => {
  it('given a new request, when it starts, then the first candidate is called as attempt 1 and nothing is published yet', () => {
    const s = last(run(invocation(), [[start, T0]]));
    expect(s.next).toEqual({ kind: 'call', candidate: A, attempt: 1, suffix: 1 });
    expect(s.events).toEqual([]);
    // a closed circuit needs no claim: a healthy request writes nothing to the shared circuits
    expect(s.circuits).toEqual([]);
  });

  it('given a redelivery, when it calls, then attempt ids are numbered <delivery>.<attempt> and the first event says why', () => {
    const inv = invocation([A], { delivery: { deliveryCount: 2 } });
    const steps = run(inv, [
      [start, T0],
      [answered(), T0 + 120],
    ]);
    expect(steps[0]!.next).toMatchObject({ kind: 'call', attempt: 1, suffix: '2.1' });
    const [attempted] = steps[1]!.events;
    expect(attempted).toMatchObject({ id: 'r1:invoke.attempted:2.1', data: { attempt: 1 } });
    expect(attempted!.reason).toMatch(/^delivery 2: no stored answer, calling the upstream again; gpt-4o-mini@a answered 200/);
  });
});

describe('step: an answer', () => {
  it('given a call, when the upstream answers, then the attempt is published and the request concludes with chat.completed and the result', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [answered('Paris.', 120), T0 + 120],
      ]),
    );
    expect(s.events).toHaveLength(1);
    expect(s.events[0]).toMatchObject({
      id: 'r1:invoke.attempted:1',
      at: T0 + 120,
      data: { attempt: 1, ok: true, status: 200, deployment: 'a', model: 'gpt-4o-mini', latencyMs: 120 },
    });
    expect(s.events[0]!.reason).toBe('gpt-4o-mini@a answered 200 in 120 ms; upstream remaining: requests 99, tokens 9000');
    if (s.next.kind !== 'conclude') throw new Error(`expected conclude, got ${s.next.kind}`);
    expect(s.next.terminal).toMatchObject({
      id: 'r1:chat.completed',
      reason: 'answered by gpt-4o-mini@a after 1 attempt',
      data: {
        deployment: 'a',
        attempts: 1,
        upstreamLatencyMs: 120,
        cacheKey: 'acme.k',
        answer: answer('gpt-4o-mini', 12, 3, 'Paris.'),
      },
    });
    expect(s.next.reply).toEqual<ChatResult>(chatResult('r1', answer('gpt-4o-mini', 12, 3, 'Paris.'), { created: Math.floor((T0 + 120) / 1000) }));
  });

  it('given the body was sent with changes, then the attempt says which, and the result carries the request limits', () => {
    const inv = invocation([A]);
    const rateLimit = { requests: { limit: 10, remaining: 9, resetMs: 6000 }, tokens: { limit: 1000, remaining: 990, resetMs: 600 } };
    inv.event.data.ctx.rateLimit = rateLimit;
    const s = last(
      run(inv, [
        [start, T0],
        [{ ...answered(), sent: ['model "auto" -> "gpt-4o-mini"', "feature removed (Sluice's hints)"] }, T0 + 120],
      ]),
    );
    expect(s.events[0]!.reason).toMatch(/^sent with model "auto" -> "gpt-4o-mini", feature removed \(Sluice's hints\); gpt-4o-mini@a answered 200/);
    expect(s.next).toMatchObject({ kind: 'conclude', reply: { rateLimit } });
  });

  it('given an answer too large for max_payload, then it is cut, billed in full, and finishes with length', () => {
    const inv = invocation([A], { maxPayload: 100_000 });
    const s = last(
      run(inv, [
        [start, T0],
        [answered('x'.repeat(60_000)), T0 + 100],
      ]),
    );
    if (s.next.kind !== 'conclude' || s.next.terminal.type !== 'chat.completed') throw new Error('expected chat.completed');
    const { answer } = s.next.terminal.data;
    const body = answer.body as { choices: Array<{ finish_reason: string }> };
    expect(body.choices[0]!.finish_reason).toBe('length');
    const content = contentOf(body)!;
    expect(content.length).toBeLessThan(60_000);
    expect(answer.usage.total_tokens).toBe(15);
    expect(s.next.terminal.reason).toBe(
      `answer's choices.0.message.content of 60000 characters cut to ${content.length} to fit NATS max_payload; answered by gpt-4o-mini@a after 1 attempt`,
    );
    expect(s.next.reply).toMatchObject({ body: answer.body });
  });
});

describe('step: retries', () => {
  it('given a call, when it fails with a 500, then both attempt events go out and we wait the backoff', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed(), T0 + 80],
      ]),
    );
    expect(kinds(s.events)).toEqual(['invoke.attempted', 'invoke.failed']);
    expect(s.events[0]).toMatchObject({ id: 'r1:invoke.attempted:1', data: { ok: false, status: 500 } });
    expect(s.events[1]).toMatchObject({
      id: 'r1:invoke.failed:1',
      reason: 'boom; next: retry (backoff 100 ms)',
      data: { attempt: 1, status: 500, retryable: true, error: 'boom' },
    });
    expect(s.next).toEqual({ kind: 'wait', ms: 100 });
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'failure', trial: undefined } }]);
    expect(s.after.a).toMatchObject({ state: 'closed', failures: 1 });
  });

  it('given a 429 with Retry-After, then we wait what the upstream asked', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 429, retryAfterMs: 700 }), T0 + 80],
      ]),
    );
    expect(s.next).toEqual({ kind: 'wait', ms: 700 });
    expect(s.events[1]).toMatchObject({ data: { retryAfterMs: 700 } });
  });

  it('given a wait, when it is over, then the same candidate is called again as attempt 2', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed(), T0 + 80],
        [waited, T0 + 180],
      ]),
    );
    expect(s.next).toEqual({ kind: 'call', candidate: A, attempt: 2, suffix: 2 });
  });
});

describe('step: fallback', () => {
  it('given maxAttemptsPerDeployment failures, then the next candidate is called, and its first event says we left', () => {
    const steps = run(invocation(), [
      [start, T0],
      [failed(), T0 + 80],
      [waited, T0 + 180],
      [failed(), T0 + 260],
      [answered(), T0 + 400],
    ]);
    expect(steps[3]!.events[1]!.reason).toBe('boom; next: next-candidate (2 attempts failed)');
    expect(steps[3]!.next).toEqual({ kind: 'call', candidate: B, attempt: 3, suffix: 3 });
    const s = last(steps);
    expect(s.events[0]!.reason).toBe('left gpt-4o-mini@a: 2 attempts failed; gpt-4o@b answered 200 in 120 ms; upstream remaining: requests 99, tokens 9000');
    expect(s.next).toMatchObject({ kind: 'conclude', terminal: { reason: 'answered by gpt-4o@b after 3 attempts', data: { deployment: 'b', attempts: 3 } } });
  });

  it('given a wait that would pass the deadline, then we fall back at once instead of sleeping', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed(), DEADLINE - 50],
      ]),
    );
    expect(s.events[1]!.reason).toBe('boom; next: next-candidate (waiting 100 ms would pass the deadline)');
    expect(s.next).toMatchObject({ kind: 'call', candidate: B, attempt: 2 });
  });

  it('given a Retry-After above maxBackoffMs and a fallback, then we fall back', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 429, retryAfterMs: 20_000 }), T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({ kind: 'call', candidate: B });
  });

  it("given a request the upstream rejects (400), then it fails at once with the upstream's own error, no fallback", () => {
    const message = "This model's maximum context length is 1000 tokens.";
    const upstream = { status: 400, type: 'invalid_request_error', code: 'context_length_exceeded', param: 'messages', message };
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 400, retryable: false, message, upstream }), T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: {
        type: 'chat.failed',
        reason: 'upstream rejected the request with 400 (context_length_exceeded); passed to the client',
        data: { code: 'upstream_rejected', status: 400, attempts: 1, upstream },
      },
    });
    if (s.next.kind !== 'conclude') throw new Error('expected conclude');
    expect(s.next.reply).toEqual<ChatErrorReply>({
      requestId: 'r1',
      error: { code: 'context_length_exceeded', message, status: 400, type: 'invalid_request_error', param: 'messages' },
    });
    // the request's fault, not the deployment's
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'neutral', trial: undefined } }]);
    expect(s.after.a).toBe(undefined);
  });

  it("given the upstream refuses the model (404), then the client gets the upstream's 404 and code", () => {
    const upstream = { status: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model', message: 'no such model' };
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 404, retryable: false, message: 'no such model', upstream }), T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({
      terminal: { data: { code: 'upstream_rejected', status: 404 } },
      reply: { error: { code: 'model_not_found', status: 404, param: 'model' } },
    });
  });

  it('given our key is refused (401), then we fall back and count it against the deployment', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 401, retryable: false, message: 'Incorrect API key provided: sk-***' }), T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({ kind: 'call', candidate: B });
    expect(s.after.a).toMatchObject({ failures: 1 });
  });

  it('given part of the answer was streamed, then a failure ends the request', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ kind: 'connection', status: undefined, partial: true }), T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({ kind: 'conclude', terminal: { type: 'chat.failed', data: { code: 'upstream_failed', status: 502 } } });
  });
});

describe('step: circuits', () => {
  it('given an open circuit on the first candidate, then the call goes to the next, and its first event says why', () => {
    const steps = run(
      invocation(),
      [
        [start, T0],
        [answered(), T0 + 100],
      ],
      { a: openCircuit(T0 - 10_000) },
    );
    expect(steps[0]!.next).toMatchObject({ kind: 'call', candidate: B, attempt: 1, suffix: 1 });
    expect(steps[0]!.circuits).toEqual([]);
    expect(last(steps).events[0]!.reason).toMatch(/^skipped gpt-4o-mini@a: circuit open for another 20000 ms; gpt-4o@b answered/);
  });

  it('given the threshold minus one failures, when the next fails, then the failure goes to the circuit, which opens, and the retry skips it', () => {
    const near = { state: 'closed' as const, failures: settings.circuitFailureThreshold - 1, openedAt: 0, transitions: 0 };
    const s = last(
      run(
        invocation(),
        [
          [start, T0],
          [failed(), T0 + 80],
        ],
        { a: near },
      ),
    );
    // the circuit's events are the interpreter's to publish, once its compare-and-set wins
    expect(kinds(s.events)).toEqual(['invoke.attempted', 'invoke.failed']);
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'failure', trial: undefined } }]);
    expect(s.after.a).toMatchObject({ state: 'open', openedAt: T0 + 80 });
    // the retry then skips the circuit it just opened
    expect(s.next).toEqual({ kind: 'wait', ms: 100 });
  });

  it('given an open circuit whose time is up, then the call claims a trial slot, and its success closes the circuit', () => {
    const steps = run(
      invocation([A]),
      [
        [start, T0],
        [answered(), T0 + 100],
      ],
      { a: openCircuit(T0 - 30_000) },
    );
    expect(steps[0]!.next).toEqual({ kind: 'call', candidate: A, attempt: 1, suffix: 1, trial: 'r1:1' });
    expect(steps[0]!.after.a).toMatchObject({ state: 'half-open', trials: { 'r1:1': T0 } });
    const s = last(steps);
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'success', trial: 'r1:1' } }]);
    expect(s.after.a).toMatchObject({ state: 'closed', failures: 0, transitions: 2 });
  });

  it('given the trial slot was taken by another replica first, then no attempt is counted and the next candidate is called', () => {
    // the first step chose a's trial; the claim lost, and the view (refreshed by the claim's read) shows r9's trial
    const chose = last(run(invocation(), [[start, T0]], { a: openCircuit(T0 - 30_000) }));
    expect(chose.next).toEqual({ kind: 'call', candidate: A, attempt: 1, suffix: 1, trial: 'r1:1' });
    const taken = { ...openCircuit(T0 - 30_000), state: 'half-open' as const, trials: { 'r9:1': T0 } };
    const s = step(invocation(), { ...chose.state, circuits: { a: taken } }, { kind: 'refused', reason: 'circuit half-open, 1 trial call in flight' }, T0 + 1);
    expect(s.next).toEqual({ kind: 'call', candidate: B, attempt: 1, suffix: 1 });
    expect(s.state).toMatchObject({ index: 1, onCandidate: 1, attempts: 1, trial: undefined });
    expect(s.state.notes).toEqual(['skipped gpt-4o-mini@a: trial call refused (circuit half-open, 1 trial call in flight)']);
    expect(s.circuits).toEqual([]);
  });

  it('given a 429 with Retry-After, then the deployment is paused (not failed) and the retry waits that long', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 429, retryAfterMs: 500, message: 'slow down' }), T0 + 80],
      ]),
    );
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'paused', retryAfterMs: 500, trial: undefined } }]);
    expect(s.after.a).toMatchObject({ state: 'closed', failures: 0, pausedUntil: T0 + 580 });
    expect(s.next).toEqual({ kind: 'wait', ms: 500 });
  });

  it('given the only deployments left are paused, then the request waits for the first pause to end', () => {
    const paused = (until: number) => ({ state: 'closed' as const, failures: 0, openedAt: 0, transitions: 0, pausedUntil: until });
    const steps = run(
      invocation(),
      [
        [start, T0],
        [waited, T0 + 700],
      ],
      { a: paused(T0 + 900), b: paused(T0 + 700) },
    );
    expect(steps[0]!.next).toEqual({ kind: 'wait', ms: 700 });
    expect(last(steps).next).toMatchObject({ kind: 'call', candidate: B, attempt: 1 });
    expect(last(steps).events).toEqual([]);
  });

  it('given a pause that ends after the deadline, then the request fails at once with rate_limit_exceeded and the wait', () => {
    const s = last(run(invocation([A]), [[start, T0]], { a: { ...closedCircuit, pausedUntil: DEADLINE + 5000 } }));
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: { type: 'chat.failed', data: { code: 'rate_limit_exceeded', status: 429, attempts: 0 } },
      reply: { error: { code: 'rate_limit_exceeded', retryAfterMs: DEADLINE + 5000 - T0 } },
    });
  });

  it('given a 429 without Retry-After, then the circuit hears nothing it counts', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed({ status: 429, message: 'slow down' }), T0 + 80],
      ]),
    );
    expect(s.circuits).toEqual([{ deployment: 'a', input: { kind: 'neutral', trial: undefined } }]);
    expect(s.after.a).toBe(undefined);
  });

  it('given every circuit open, then the request fails with upstream_failed without a call', () => {
    const s = last(run(invocation(), [[start, T0]], { a: openCircuit(T0), b: openCircuit(T0) }));
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: { type: 'chat.failed', data: { code: 'upstream_failed', status: 502, attempts: 0, replyTo: '_INBOX.r1', receivedAt: T0 - 100 } },
      reply: { error: { code: 'upstream_failed', message: 'No upstream deployment is available for this request right now (circuits open); retry later.' } },
    });
    if (s.next.kind !== 'conclude') throw new Error('expected conclude');
    expect(s.next.terminal.reason).toMatch(/^skipped gpt-4o-mini@a: circuit open .*; skipped gpt-4o@b: circuit open .*; no candidate left after 0 attempts$/);
  });

  it('given a deployment the config does not have, then it is skipped like an open circuit', () => {
    const s = last(run(invocation([{ model: 'm', deployment: 'gone' }, B]), [[start, T0]]));
    expect(s.next).toMatchObject({ kind: 'call', candidate: B });
    expect(s.state.notes).toEqual(['skipped m@gone: deployment not configured']);
  });
});

describe('step: out of candidates and time', () => {
  it("given every candidate answered 429, then the request ends with rate_limit_exceeded and the upstream's wait", () => {
    const upstream = { status: 429, type: 'tokens', code: 'rate_limit_exceeded', param: null, message: 'Rate limit reached' };
    const limited = failed({ status: 429, retryAfterMs: 20_000, message: 'Rate limit reached', upstream });
    const s = last(
      run(invocation([A], { settings: { ...settings, maxAttemptsPerDeployment: 1 } }), [
        [start, T0],
        [limited, T0 + 80],
      ]),
    );
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: { type: 'chat.failed', data: { code: 'rate_limit_exceeded', status: 429, upstream } },
      reply: { requestId: 'r1', error: { code: 'rate_limit_exceeded', status: 429, retryAfterMs: 20_000 } },
    });
  });

  it('given every candidate failed, then chat.failed upstream_failed quotes the last error', () => {
    const steps = run(invocation([A], { settings: { ...settings, maxAttemptsPerDeployment: 1 } }), [
      [start, T0],
      [failed({ message: 'bad gateway', status: 502 }), T0 + 80],
    ]);
    const s = last(steps);
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: {
        type: 'chat.failed',
        reason: 'left gpt-4o-mini@a: 1 attempts failed; no candidate left after 1 attempts',
        data: { code: 'upstream_failed', attempts: 1 },
      },
    });
    if (s.next.kind !== 'conclude' || !('error' in s.next.reply)) throw new Error('expected an error reply');
    expect(s.next.reply.error.message).toMatch(/Last error \(1 attempts\): bad gateway$/);
  });

  it('given the deadline passed during a wait, then no attempt starts and the request fails with deadline_exceeded', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [failed(), T0 + 80],
        [waited, DEADLINE],
      ]),
    );
    expect(s.events).toEqual([]);
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: {
        type: 'chat.failed',
        at: DEADLINE,
        reason: 'deadline passed after 1 attempts',
        data: { code: 'deadline_exceeded', status: 504, attempts: 1 },
      },
      reply: { requestId: 'r1', error: { code: 'deadline_exceeded', status: 504 } },
    });
  });
});

describe('step: the client cancels', () => {
  it('given a stream was running, when the client cancels, then chat.cancelled bills the streamed text and no attempt failed', () => {
    const s = last(
      run(invocation(), [
        [start, T0],
        [{ kind: 'cancelled', streamed: { text: 'Hello there' }, latencyMs: 40 }, T0 + 40],
      ]),
    );
    expect(s.events).toEqual([]);
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: {
        id: 'r1:chat.cancelled',
        type: 'chat.cancelled',
        data: { model: 'gpt-4o-mini', deployment: 'a', attempts: 1, usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 }, counted: true },
      },
      reply: { requestId: 'r1', error: { code: 'request_cancelled', status: 499 } },
    });
    if (s.next.kind !== 'conclude') throw new Error('expected conclude');
    expect(s.next.terminal.reason).toBe(
      'cancelled by the client: the call to gpt-4o-mini@a was stopped after 40 ms, 2 completion tokens counted from the streamed text',
    );
  });

  it('given the upstream had sent its usage, then that usage is billed, not a count', () => {
    const usage = { prompt_tokens: 30, completion_tokens: 7, total_tokens: 37 };
    const s = last(
      run(invocation(), [
        [start, T0],
        [{ kind: 'cancelled', streamed: { text: 'abc', usage }, latencyMs: 40 }, T0 + 40],
      ]),
    );
    expect(s.next).toMatchObject({ terminal: { data: { usage, counted: false } } });
  });

  it('given a half-open trial was running, then the cancel gives the trial back without a verdict', () => {
    const steps = run(
      invocation([A]),
      [
        [start, T0],
        [{ kind: 'cancelled', streamed: { text: '' }, latencyMs: 5 }, T0 + 5],
      ],
      { a: openCircuit(T0 - 30_000) },
    );
    expect(steps[0]!.after.a).toMatchObject({ state: 'half-open', trials: { 'r1:1': T0 } });
    expect(last(steps).after.a).toMatchObject({ state: 'half-open', trials: {} });
  });

  it('given no call ran (the cancel came first), then nothing is billed and nothing was attempted', () => {
    const s = last(run(invocation(), [[{ kind: 'cancelled' }, T0]]));
    expect(s.next).toMatchObject({
      terminal: { type: 'chat.cancelled', data: { attempts: 0, usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, counted: false } },
    });
  });
});

describe('step: a request that cannot be sent', () => {
  it('given its body is not in the stream, then it fails with internal_error before any attempt', () => {
    const inv = invocation();
    const s = unsendable(inv, startAttempts(inv), 'sequence 7 of SLUICE_EVENTS is chat.admitted of r9, not chat.requested of r1', T0);
    expect(s.next).toMatchObject({
      kind: 'conclude',
      terminal: {
        type: 'chat.failed',
        reason: expect.stringMatching(/^request body unreadable: sequence 7/),
        data: { code: 'internal_error', status: 500, attempts: 0 },
      },
      reply: { error: { code: 'internal_error', status: 500 } },
    });
  });
});
