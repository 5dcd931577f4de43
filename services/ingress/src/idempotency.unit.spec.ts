import { describe, expect, it } from 'vitest';
import { eventually } from '@sluice/bus/testing';
import { idempotencyBucketKey } from '@sluice/contracts';
import {
  claimOrReplay,
  idempotencyKeyOf,
  MAX_IDEMPOTENCY_KEY_CHARS,
  replayable,
  requestFingerprint,
  type IdempotencyRecord,
  type IdempotencyStore,
} from './idempotency.js';
import { RequestRejected } from './rejection.js';

describe('idempotencyKeyOf', () => {
  it('takes 1 to 255 printable ASCII characters, inner spaces included', () => {
    for (const ok of ['a', '550e8400-e29b-41d4-a716-446655440000', 'order 42/retry', 'k'.repeat(MAX_IDEMPOTENCY_KEY_CHARS)])
      expect(idempotencyKeyOf(ok, 'p')).toBe(ok);
    expect(idempotencyKeyOf(undefined, 'p')).toBeUndefined();
  });

  it('refuses empty, too long, control and non-ASCII keys, naming the header', () => {
    for (const bad of ['', ' ', ' lead', 'trail ', 'k'.repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1), 'nul\0', 'tab\t', 'café', '\ud800']) {
      let thrown: unknown;
      try {
        idempotencyKeyOf(bad, 'idempotency-key');
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(RequestRejected);
      expect(thrown).toMatchObject({ code: 'invalid_request', param: 'idempotency-key' });
    }
  });
});

describe('replayable', () => {
  const error = (status: number, code = 'x') => ({ requestId: 'r', error: { code, message: 'm', status } });
  it('replays answers and errors a retry would meet again, not those a retry may mend', () => {
    expect(replayable({ requestId: 'r', status: 'held', resultSubject: 's', at: 1 })).toBe(true);
    expect(replayable(error(400, 'invalid_request'))).toBe(true);
    expect(replayable(error(404, 'model_not_found'))).toBe(true);
    for (const mended of [error(429), error(500), error(502), error(503), error(504, 'deadline_exceeded'), error(499, 'request_cancelled'), error(408)])
      expect([mended.error.status, replayable(mended)]).toEqual([mended.error.status, false]);
  });
});

describe('fingerprints and bucket keys', () => {
  it('tell requests apart by endpoint and body, and keys apart by tenant', () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
    expect(requestFingerprint('chat.completions', body)).toBe(requestFingerprint('chat.completions', structuredClone(body)));
    expect(requestFingerprint('chat.completions', body)).not.toBe(requestFingerprint('responses', body));
    expect(requestFingerprint('chat.completions', body)).not.toBe(requestFingerprint('chat.completions', { ...body, stream: true }));
    expect(idempotencyBucketKey('acme', 'k')).not.toBe(idempotencyBucketKey('beta', 'k'));
    expect(idempotencyBucketKey('acme', 'k')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('claimOrReplay when the store keeps a claim but does not answer', () => {
  /** A store in memory whose writes land but, while `deaf`, answer nothing (the ack lost with a node). */
  function deafStore() {
    const records = new Map<string, { record: IdempotencyRecord; revision: number }>();
    let revision = 0;
    const state = { deaf: true };
    const unanswered = () => Promise.reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }));
    const store: IdempotencyStore = {
      async create(key, record) {
        if (records.has(key)) return undefined;
        records.set(key, { record, revision: ++revision });
        return state.deaf ? unanswered() : revision;
      },
      async get(key) {
        return state.deaf ? unanswered() : records.get(key);
      },
      async replace(key, record, at) {
        if (records.get(key)?.revision !== at) return undefined;
        records.set(key, { record, revision: ++revision });
        return state.deaf ? unanswered() : revision;
      },
      async release(key, at) {
        if (state.deaf) return unanswered();
        if (records.get(key)?.revision === at) records.delete(key);
      },
    };
    return { store, records, state };
  }

  it('refuses the try service_busy, then gives its unheard claim back, so a retry runs at once instead of waiting out its deadline', async () => {
    const { store, records, state } = deafStore();
    const deps = { idempotency: store, awaitResult: async () => undefined };
    const first = { requestId: 'req_first', fingerprint: 'f', deadline: Date.now() + 60_000 };
    await expect(claimOrReplay(deps, 'acme', 'key-1', first, 'Idempotency-Key')).rejects.toMatchObject({ code: 'service_busy', status: 503 });
    // the claim was kept, though nobody heard so
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_first']);
    state.deaf = false;
    await eventually(() => records.size === 0, 10_000);
    const retry = await claimOrReplay(deps, 'acme', 'key-1', { ...first, requestId: 'req_retry' }, 'Idempotency-Key');
    expect(retry.kind).toBe('run');
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_retry']);
  }, 20_000);

  it('never gives back a claim that another try holds by then', async () => {
    const { store, records, state } = deafStore();
    const deps = { idempotency: store, awaitResult: async () => undefined };
    const first = { requestId: 'req_first', fingerprint: 'f', deadline: Date.now() + 60_000 };
    await expect(claimOrReplay(deps, 'acme', 'key-2', first, 'Idempotency-Key')).rejects.toMatchObject({ code: 'service_busy' });
    // another try took the key over (its deadline passed) before the store answered again
    const key = [...records.keys()][0]!;
    records.set(key, { record: { ...first, requestId: 'req_other' }, revision: 99 });
    state.deaf = false;
    await new Promise((r) => setTimeout(r, 1500));
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_other']);
  }, 20_000);
});

describe('claimOrReplay while an earlier try holds the key', () => {
  /** A store in memory that answers at once. */
  function memoryStore() {
    const records = new Map<string, { record: IdempotencyRecord; revision: number }>();
    let revision = 0;
    const store: IdempotencyStore = {
      async create(key, record) {
        if (records.has(key)) return undefined;
        records.set(key, { record, revision: ++revision });
        return revision;
      },
      get: async (key) => records.get(key),
      async replace(key, record, at) {
        if (records.get(key)?.revision !== at) return undefined;
        records.set(key, { record, revision: ++revision });
        return revision;
      },
      async release(key, at) {
        if (records.get(key)?.revision === at) records.delete(key);
      },
    };
    return { store, records };
  }
  /** As the bus's awaitResult when no answer comes: resolves with none at `until`. */
  const noAnswer = (_tenant: string, _requestId: string, until: number) =>
    new Promise<undefined>((r) => setTimeout(() => r(undefined), Math.max(0, until - Date.now())));

  it('takes the key as soon as the holder gives it back, not at the holder’s deadline (a minute away)', async () => {
    const { store, records } = memoryStore();
    const deps = { idempotency: store, awaitResult: noAnswer };
    const holder = { requestId: 'req_holder', fingerprint: 'f', deadline: Date.now() + 60_000 };
    const first = await claimOrReplay(deps, 'acme', 'key-3', holder, 'Idempotency-Key');
    expect(first.kind).toBe('run');
    const retry = claimOrReplay(deps, 'acme', 'key-3', { ...holder, requestId: 'req_retry' }, 'Idempotency-Key');
    // the holder's client left before it was sent: it gives the key back
    setTimeout(() => void (first.kind === 'run' && first.release()), 300);
    expect((await retry).kind).toBe('run');
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_retry']);
  }, 10_000);

  it('takes nothing over for a retry whose client left while it waited', async () => {
    const { store, records } = memoryStore();
    const deps = { idempotency: store, awaitResult: noAnswer };
    const holder = { requestId: 'req_holder', fingerprint: 'f', deadline: Date.now() + 1000 };
    await claimOrReplay(deps, 'acme', 'key-4', holder, 'Idempotency-Key');
    const gone = new AbortController();
    setTimeout(() => gone.abort(), 200);
    const retry = await claimOrReplay(deps, 'acme', 'key-4', { ...holder, requestId: 'req_retry', deadline: Date.now() + 60_000 }, 'Idempotency-Key', {
      clientGone: gone.signal,
    });
    expect(retry.kind).toBe('left');
    // past the holder's deadline (and grace) the key still names it: the next retry takes it over
    await new Promise((r) => setTimeout(r, 3500));
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_holder']);
    const next = await claimOrReplay(deps, 'acme', 'key-4', { ...holder, requestId: 'req_next', deadline: Date.now() + 60_000 }, 'Idempotency-Key');
    expect(next.kind).toBe('run');
    expect([...records.values()].map((r) => r.record.requestId)).toEqual(['req_next']);
  }, 15_000);
});
