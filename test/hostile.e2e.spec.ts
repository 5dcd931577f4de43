import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { connectBus, listParked, type Bus } from '@sluice/bus';
import { hashKey, Headers, Subjects, Topology, type ChatReply } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { DEV_KEY, defaultConfig, startE2eStack, type E2eStack } from './harness.js';

// One hostile request must never stop Sluice. Each input here once stopped a consumer, outgrew
// the stream or froze a service; afterwards every consumer must be back at zero lag, in the same
// processes, with the ledger billing exactly what the upstream served. Real Postgres, as the
// ledger's jsonb refusal (22P05) was found there.
const OTHER_KEY = 'sk-e2e-other-tenant';
const MiB = 1024 * 1024;

let stack: E2eStack;
let bus: Bus;
let pids: Map<string, number | undefined>;

function config(over: { maxBodyBytes?: number } = {}) {
  const c = defaultConfig();
  c.tenants.push({ id: 'other', keySha256: [hashKey(OTHER_KEY)] });
  c.ingress.maxBodyBytes = over.maxBodyBytes ?? c.ingress.maxBodyBytes;
  // hostile requests are large: per-user limits must not be what answers them
  c.limits.userDefault = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };
  return c;
}

beforeAll(async () => {
  stack = await startE2eStack({ postgres: true, config: config() });
  bus = await connectBus(stack.natsUrl, 'hostile-test');
  pids = new Map([...stack.services].map(([name, s]) => [name, s.pid]));
});
afterAll(async () => {
  await bus?.nc.close();
  await stack?.close();
});

const chatUrl = () => `${stack.ingressUrl}/v1/chat/completions`;
const post = (body: string, key = DEV_KEY) =>
  fetch(chatUrl(), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
const nats = (key = DEV_KEY, tenant = 'dev') => new SluiceClient(stack.nc, { tenant, key, timeoutMs: 60_000 });

/** Sends raw bytes to the NATS door and returns the reply. */
async function natsRaw(body: Uint8Array): Promise<ChatReply> {
  const h = natsHeaders();
  h.set(Headers.tenantKey, DEV_KEY);
  const msg = await stack.nc.request(Subjects.chat('dev'), body, { headers: h, timeout: 60_000 });
  return JSON.parse(new TextDecoder().decode(msg.data)) as ChatReply;
}

/** A JSON chat body of exactly `bytes` bytes, its prompt ordinary words. */
function bodyOfSize(bytes: number, user: string): string {
  const shell = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', user, messages: [{ role: 'user', content }] });
  const room = bytes - Buffer.byteLength(shell(''));
  const words = 'tell me about queues and buckets '.repeat(Math.ceil(room / 33)).slice(0, room);
  const body = shell(words);
  expect(Buffer.byteLength(body)).toBe(bytes);
  return body;
}

const NUL_AND_SURROGATES = ['a\u0000b', '\ud800', 'x\udc00y', '\u0000', '\udfff\ud800'];

describe('strings Postgres refuses (NUL, lone surrogates) are answered and billed', () => {
  it('through the HTTP door, in user, feature, metadata, stop, content and name', async () => {
    for (const [i, s] of NUL_AND_SURROGATES.entries()) {
      const body = JSON.stringify({
        model: 'gpt-4o-mini',
        user: s,
        feature: s,
        metadata: { [`k${s}`]: s },
        stop: [s],
        messages: [{ role: 'user', content: `hostile ${i} ${s}`, name: `n${s}` }],
      });
      const res = await post(body);
      expect(res.status, JSON.stringify(s)).toBe(200);
    }
  });

  it('through the NATS door, the same', async () => {
    for (const [i, s] of NUL_AND_SURROGATES.entries()) {
      const r = await nats().chat({
        model: 'gpt-4o-mini',
        user: s,
        feature: s,
        metadata: { [`k${s}`]: s },
        stop: [s],
        messages: [{ role: 'user', content: `nats hostile ${i} ${s}` }],
      });
      expect(r.usage.total_tokens).toBeGreaterThan(0);
    }
  });

  it('shows the projected rows with U+FFFD in place of what Postgres cannot store', async () => {
    await stack.ledgerCaughtUp();
    const costs = await stack.ledger<{ rows: Array<{ user: string | null; requests: number }> }>('/v1/costs?groupBy=user');
    const users = costs.rows.map((r) => r.user);
    expect(users).toContain('a\uFFFDb');
    expect(users).toContain('x\uFFFDy');
  });
});

describe('sizes fit end to end', () => {
  it("runs the stack's own nats-server with the shipped max_payload", () => {
    expect(stack.nc.info?.max_payload).toBe(Topology.maxPayloadBytes);
  });

  it('answers and bills a body of exactly ingress.maxBodyBytes (1 MiB) through both doors', async () => {
    const res = await post(bodyOfSize(MiB, 'size-http'));
    expect(res.status).toBe(200);
    const reply = await natsRaw(new TextEncoder().encode(bodyOfSize(MiB, 'size-nats')));
    expect('error' in reply ? reply.error : undefined).toBeUndefined();
  });

  it('refuses one byte more with 413 body_too_large on both doors', async () => {
    const res = await post(bodyOfSize(MiB + 1, 'size-http'));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('body_too_large');
    const reply = await natsRaw(new TextEncoder().encode(bodyOfSize(MiB + 1, 'size-nats')));
    expect(reply).toMatchObject({ error: { code: 'body_too_large', status: 413 } });
  });

  it('refuses at once, 413, a request within the body limit that its event could not carry (NATS max_payload), and carries one that fits', async () => {
    await stack.applyConfig(config({ maxBodyBytes: 16 * MiB }));
    try {
      await eventually(async () => {
        // 9 MiB: under the raised body limit, over max_payload (8 MiB): the one event that carries
        // the body (chat.requested) could not be published
        const res = await post(bodyOfSize(9 * MiB, 'size-http'));
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(res.status).toBe(413);
        expect(body.error.code).toBe('body_too_large');
        expect(body.error.message).toContain(`max_payload ${Topology.maxPayloadBytes}`);
      }, 20_000);
      // 5 MiB fits: the body rides in one event only, so a request may take nearly all of max_payload
      const reply = await natsRaw(new TextEncoder().encode(bodyOfSize(5 * MiB, 'size-nats')));
      expect(reply).toMatchObject({ cached: false, usage: { prompt_tokens: expect.any(Number) } });
    } finally {
      await stack.applyConfig(config());
    }
  });
});

describe('work on client text is bounded', () => {
  it('answers one 900 KB word, and another tenant is answered meanwhile', async () => {
    const word = 'x'.repeat(900_000);
    const hostile = post(JSON.stringify({ model: 'gpt-4o-mini', user: 'long-word', messages: [{ role: 'user', content: word }] }));
    await new Promise((r) => setTimeout(r, 200));
    const normal = await nats(OTHER_KEY, 'other').chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a normal question' }] });
    expect((normal.body as { choices: Array<{ finish_reason: string }> }).choices[0]!.finish_reason).toBeTruthy();
    expect((await hostile).status).toBe(200);
  });

  it('answers long whitespace runs, combining marks, deep JSON and thousands of tiny messages with a coded status', async () => {
    const spaces = await post(
      JSON.stringify({ model: 'gpt-4o-mini', user: 'shapes', messages: [{ role: 'user', content: `${' '.repeat(400_000)}x${'\n \t'.repeat(100_000)}` }] }),
    );
    expect(spaces.status).toBe(200);
    const marks = await post(JSON.stringify({ model: 'gpt-4o-mini', user: 'shapes', messages: [{ role: 'user', content: `a${'\u0301'.repeat(300_000)}` }] }));
    expect(marks.status).toBe(200);
    const many = await post(
      JSON.stringify({ model: 'gpt-4o-mini', user: 'shapes', messages: Array.from({ length: 5_000 }, (_, i) => ({ role: 'user', content: `m${i}` })) }),
    );
    // over ingress.maxMessages (256): refused with a code, not a 5xx
    expect(many.status).toBe(400);
    const deep = await post(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"deep"}],"extra":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    expect(deep.status).toBeLessThan(500);
  });
});

describe('HTTP edges', () => {
  it('answers a 2 MB chunked upload with its 413 before the connection closes', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(chatUrl());
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${DEV_KEY}`, 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'a');
      for (let i = 0; i < 32; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'body_too_large' } });
  });
});

describe('any string in any field', () => {
  // the whole Unicode range, lone surrogates and NULs included
  const anyString = fc.string({ unit: 'binary', maxLength: 40 });
  const body = fc.record({
    user: anyString,
    feature: anyString,
    metadata: fc.dictionary(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), anyString, { maxKeys: 3 }),
    stop: fc.array(anyString, { minLength: 1, maxLength: 4 }),
    content: anyString,
    name: anyString,
    model: fc.oneof(fc.constant('gpt-4o-mini'), anyString),
  });

  it('gets an answer or a coded 4xx through both doors, never a 5xx', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        n++;
        const json = JSON.stringify({
          model: b.model,
          user: b.user,
          feature: b.feature,
          metadata: b.metadata,
          stop: b.stop,
          messages: [{ role: 'user', content: `p${n} ${b.content}`, name: b.name }],
        });
        const res = await post(json);
        const answer = (await res.json()) as { error?: { code: string } };
        expect(res.status).toBeLessThan(500);
        if (res.status !== 200) expect(answer.error?.code).toMatch(/^[a-z_]+$/);
        try {
          await nats().chat({
            model: b.model,
            user: b.user,
            feature: b.feature,
            metadata: b.metadata,
            stop: b.stop,
            messages: [{ role: 'user', content: `q${n} ${b.content}`, name: b.name }],
          });
        } catch (e) {
          if (!(e instanceof SluiceRequestError)) throw e;
          expect(e.status).toBeLessThan(500);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('afterwards', () => {
  it('every consumer is back at zero lag, in the same processes, nothing parked, and the ledger bills what the upstream served', async () => {
    await stack.ledgerCaughtUp(60_000);
    await stack.consumersDrained();
    expect(new Map([...stack.services].map(([name, s]) => [name, s.pid]))).toEqual(pids);
    expect(await listParked(bus)).toEqual([]);
    const sim = stack.sim!.stats();
    const costs = await stack.ledger<{ totals: { completed: number; inputTokens: number; outputTokens: number } }>('/v1/costs');
    expect(sim.completions).toBeGreaterThan(20);
    expect(costs.totals.completed).toBe(sim.completions);
    expect(costs.totals.inputTokens).toBe(sim.promptTokens);
    expect(costs.totals.outputTokens).toBe(sim.completionTokens);
  });
});
