// A seeded sample of the fuzzed doors (docs/fuzzing.md) against ingress in-process: every case is
// a coded 4xx in OpenAI's shape or a 2xx, never a 5xx or silence, and the doors then serve
// ordinary requests. `npm run fuzz` runs the same cases, ten thousand and more, on the whole stack.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient } from '@sluice/client';
import { contentOf } from '@sluice/contracts/testing';
import { fuzzDoors, fuzzSettings, report } from '../../../test/fuzz/doors.js';
import { KEYS, startHarness, type Harness } from './testing.js';

/** Node checks request timeouts once a second: a Content-Length that lies long costs a case up to this and a second. */
const REQUEST_TIMEOUT_MS = 400;

let h: Harness;
let nc: NatsConnection;

beforeAll(async () => {
  h = await startHarness();
  await h.applyConfig((c) => ({
    ...c,
    ingress: {
      ...c.ingress,
      http: {
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        headersTimeoutMs: REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: 5000,
        idleTimeoutMs: 10_000,
        maxConnections: 4096,
      },
    },
  }));
  nc = await connect({ servers: h.nats.url });
});
afterAll(async () => {
  await nc?.close();
  await h?.stop();
});

describe('fuzzed doors, a seeded sample', () => {
  it('answers every generated request with a coded 4xx or a 2xx on both doors, never a 5xx or silence', async () => {
    // a fixed seed here, so `npm test` is the same run each time (FUZZ_SEED tries another)
    const settings = fuzzSettings(300, 16_016);
    const { runs } = settings;
    const tally = await fuzzDoors({
      ...settings,
      httpUrl: `http://127.0.0.1:${h.ingress.port}`,
      nc,
      target: { key: KEYS.acme, tenant: 'acme', otherKey: KEYS.beta, chatModels: ['small', 'large'], embeddingModel: 'small' },
      // a Content-Length that lies long and a client that then waits: a few, each costs a request timeout
      weights: { waitForTimeout: 1 },
      runs: { http: runs, nats: runs },
      caseTimeoutMs: 5000,
    });
    console.log(report(tally));
    // FUZZ_PATH sent one case alone: it passed, and there is nothing to count
    if (settings.replay) return;
    expect(tally.cases).toEqual({ http: runs, nats: runs });
    // the sample reaches past validation: some cases were valid and answered, most refused
    expect(tally.statuses.http['200']).toBeGreaterThan(0);
    expect(Object.keys(tally.statuses.http).filter((s) => s.startsWith('4')).length).toBeGreaterThan(3);
  });

  it('then answers ordinary requests through both doors', async () => {
    const res = await fetch(`${h.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'after the fuzz' }] }),
    });
    expect(res.status).toBe(200);
    expect(contentOf(await res.json())).toBe('echo: after the fuzz');
    const result = await new SluiceClient(nc, { tenant: 'acme', key: KEYS.acme, timeoutMs: 5000 }).chat({
      messages: [{ role: 'user', content: 'and by NATS' }],
    });
    expect(contentOf(result.body)).toBe('echo: and by NATS');
  });
});
