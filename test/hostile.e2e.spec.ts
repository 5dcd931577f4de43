import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { SluiceClient, SluiceRequestError } from '@sluice/client';
import { listParked } from '@sluice/bus';
import { hashKey, Headers, Subjects, Topology, type ChatReply } from '@sluice/contracts';
import { eventually } from '@sluice/bus/testing';
import { ADMIN_KEY, DEV_KEY, defaultConfig, startE2eStack, type E2eStack } from './harness.js';
import { uploadBatchFile } from './batch-kit.js';
import { databaseKept, databaseUrlOf, findIn, streamsKept, type Kept } from './secrets-scan.js';

// One hostile request must never stop Sluice. Each input here once stopped a consumer, outgrew
// the stream or froze a service; afterwards every consumer must be back at zero lag, in the same
// processes, with the ledger billing exactly what the upstream served. Real Postgres, as the
// ledger's jsonb refusal (22P05) was found there.
const OTHER_KEY = 'sk-e2e-other-tenant';
const MiB = 1024 * 1024;

// Secrets stay secret (last describe): fake keys unique to this run, so finding one anywhere is
// this run's leak and nothing else's. The upstream key is the invoker's OPENAI_API_KEY (the
// shipped deployment's apiKeyEnv); the second admin key opens the admin API beside ADMIN_KEY.
const RUN = randomBytes(6).toString('hex');
const SECRET = {
  tenant: `secret-${RUN}`,
  tenantKey: `sk-secret-tenant-${RUN}`,
  adminKey: `sk-secret-admin-${RUN}`,
  upstreamKey: `sk-secret-upstream-${RUN}`,
  neverKey: `sk-secret-never-${RUN}`,
  marker: `marker-${RUN}`,
};
/** Every service's log lines, whole (the harness keeps only the last 5,000). */
const lines: Kept[] = [];

let stack: E2eStack;
/** Each tenant's NATS connection (stack.natsFor): with NATS users, its app user on its own inbox. */
const apps = new Map<string, NatsConnection>();
let pids: Map<string, number | undefined>;

function config(over: { maxBodyBytes?: number } = {}) {
  const c = defaultConfig();
  c.tenants.push({ id: 'other', keySha256: [hashKey(OTHER_KEY)] });
  c.tenants.push({ id: SECRET.tenant, keySha256: [hashKey(SECRET.tenantKey)] });
  c.admin.keySha256.push(hashKey(SECRET.adminKey));
  c.ingress.maxBodyBytes = over.maxBodyBytes ?? c.ingress.maxBodyBytes;
  // hostile requests are large: per-user limits must not be what answers them
  c.limits.userDefault = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };
  return c;
}

beforeAll(async () => {
  stack = await startE2eStack({
    postgres: true,
    config: config(),
    // debug: every log line a request can cause, so the secrets scan reads all of them
    env: { LOG_LEVEL: 'debug', OPENAI_API_KEY: SECRET.upstreamKey },
    onLine: (service, line) => {
      lines.push({ where: `log [${service}]`, text: line });
      if (process.env.SLUICE_E2E_VERBOSE) process.stdout.write(`[${service}] ${line}\n`);
    },
  });
  for (const tenant of ['dev', 'other', SECRET.tenant]) apps.set(tenant, await stack.natsFor(tenant));
  pids = new Map([...stack.services].map(([name, s]) => [name, s.pid]));
});
afterAll(async () => {
  await stack?.close();
});

const chatUrl = () => `${stack.ingressUrl}/v1/chat/completions`;
const post = (body: string, key = DEV_KEY) =>
  fetch(chatUrl(), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
const nats = (key = DEV_KEY, tenant = 'dev') => new SluiceClient(apps.get(tenant)!, { tenant, key, timeoutMs: 60_000 });

/** Sends raw bytes to the NATS door and returns the reply. */
async function natsRaw(body: Uint8Array): Promise<ChatReply> {
  const h = natsHeaders();
  h.set(Headers.tenantKey, DEV_KEY);
  const msg = await apps.get('dev')!.request(Subjects.chat('dev'), body, { headers: h, timeout: 60_000 });
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
    expect(await listParked(stack.bus)).toEqual([]);
    const sim = stack.sim!.stats();
    const costs = await stack.ledger<{ totals: { completed: number; inputTokens: number; outputTokens: number } }>('/v1/costs');
    expect(sim.completions).toBeGreaterThan(20);
    expect(costs.totals.completed).toBe(sim.completions);
    expect(costs.totals.inputTokens).toBe(sim.promptTokens);
    expect(costs.totals.outputTokens).toBe(sim.completionTokens);
  });
});

describe('secrets stay secret', () => {
  const virtualKeys: string[] = [];
  let basic = '';
  let asyncId = '';
  const ask = (content: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ model: 'gpt-4o-mini', user: `u-${RUN}`, messages: [{ role: 'user', content: `${SECRET.marker} ${content}` }], ...extra });
  const asAdmin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.ledgerUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${SECRET.adminKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as { id: string; key: string } };
  };
  const natsRefusal = (key: string, tenant = SECRET.tenant) =>
    nats(key, tenant)
      .chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${SECRET.marker} refused` }] })
      .then(
        () => 200,
        (e: unknown) => (e instanceof SluiceRequestError ? e.status : Promise.reject(e)),
      );

  it('sends valid and invalid keys through both doors, the admin API and the read API', async () => {
    // a virtual key made through the admin API (with this run's admin key), then rotated with no
    // grace: its first key becomes one that was valid and is now refused
    const created = await asAdmin('POST', '/admin/v1/keys', { tenant: SECRET.tenant, name: `vk-${RUN}`, metadata: { marker: SECRET.marker } });
    expect(created.status).toBe(201);
    virtualKeys.push(created.body.key);
    await eventually(async () => expect((await post(ask('first virtual key'), created.body.key)).status).toBe(200));
    const rotated = await asAdmin('POST', `/admin/v1/keys/${created.body.id}/rotate`, { graceSeconds: 0 });
    expect(rotated.status).toBe(200);
    virtualKeys.push(rotated.body.key);
    await eventually(async () => expect((await post(ask('rotated virtual key'), rotated.body.key)).status).toBe(200));

    for (const key of [SECRET.tenantKey, rotated.body.key]) {
      expect((await post(ask('http'), key)).status).toBe(200);
      const streamed = await post(ask('http stream', { stream: true }), key);
      expect(streamed.status).toBe(200);
      expect(await streamed.text()).toContain('[DONE]');
      const r = await nats(key, SECRET.tenant).chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${SECRET.marker} nats` }] });
      expect(r.usage.total_tokens).toBeGreaterThan(0);
    }
    for (const key of [SECRET.neverKey, created.body.key]) {
      expect((await post(ask('refused'), key)).status).toBe(401);
      expect(await natsRefusal(key)).toBe(401);
    }
    // a valid key on another tenant's subject
    expect(await natsRefusal(SECRET.tenantKey, 'dev')).toBe(401);

    // the key in places it does not belong: another scheme, no scheme, other headers
    basic = Buffer.from(`user:${SECRET.neverKey}`).toString('base64');
    const misplaced: Array<Record<string, string>> = [
      { authorization: `Basic ${basic}` },
      { authorization: SECRET.neverKey },
      { authorization: `Bearer ${SECRET.neverKey} ${SECRET.tenantKey}` },
      { 'x-api-key': SECRET.tenantKey },
      { 'api-key': SECRET.tenantKey },
    ];
    for (const headers of misplaced) {
      const res = await fetch(chatUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: ask('misplaced key') });
      expect(res.status, JSON.stringify(headers)).toBe(401);
    }

    // an async request: its answer is kept in SLUICE_RESULTS
    const accepted = await fetch(chatUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET.tenantKey}`, 'x-sluice-async': 'true' },
      body: ask('async'),
    });
    expect(accepted.status).toBe(202);
    asyncId = ((await accepted.json()) as { id: string }).id;
    await eventually(async () => {
      const res = await fetch(`${stack.ingressUrl}/v1/sluice/requests/${asyncId}/result`, { headers: { authorization: `Bearer ${SECRET.tenantKey}` } });
      expect(res.status).toBe(200);
    });

    // a file in the object store
    const file = {
      custom_id: 'c1',
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: SECRET.marker }] },
    };
    await uploadBatchFile(stack.openai(SECRET.tenantKey), [file]);

    // upstream failures: what the invoker logs and publishes about them, with the upstream key in play
    stack.sim!.setFaults({ errorRate: 1 });
    try {
      expect((await post(ask('the upstream fails'), SECRET.tenantKey)).status).toBe(502);
      await expect(
        nats(SECRET.tenantKey, SECRET.tenant).chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${SECRET.marker} fails` }] }),
      ).rejects.toMatchObject({
        status: 502,
      });
    } finally {
      stack.sim!.setFaults({ errorRate: 0 });
    }

    // the ledger's read API: tenant keys and unknown keys do not open it
    for (const key of [SECRET.neverKey, SECRET.tenantKey, rotated.body.key]) {
      const res = await fetch(`${stack.ledgerUrl}/v1/costs`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(401);
    }
    expect((await stack.ledger('/v1/costs', SECRET.adminKey)).totals.completed).toBeGreaterThan(0);
  });

  it('no log line, stream message, bucket entry, object or ledger row holds a key, a Bearer credential or an Authorization header', async () => {
    await stack.ledgerCaughtUp(60_000);
    await stack.consumersDrained();
    const { kept: inStreams, perStream } = await streamsKept(stack.nc);
    const { kept: inDatabase, perTable } = await databaseKept(databaseUrlOf(stack.services.get('ledger')!.pid!));
    const kept = [...lines, ...inStreams, ...inDatabase];
    const where = (needle: string) => new Set(findIn(kept, [needle]).flatMap(([, at]) => at.map((w) => w.split(/ #| \[/)[0]!)));

    // the scan reads what it should: every stream and bucket, and planted non-secrets are found
    // in each kind of place (so an empty result is not a scan that read nothing)
    const expected = [
      Topology.stream.name,
      Topology.deadLetters.name,
      Topology.results.name,
      `OBJ_${Topology.files.name}`,
      ...Object.values(Topology.buckets).map((b) => `KV_${b.name}`),
    ];
    expect([...perStream.keys()]).toEqual(expect.arrayContaining(expected));
    const markerAt = where(SECRET.marker);
    for (const at of [Topology.stream.name, `OBJ_${Topology.files.name}`, `KV_${Topology.buckets.keys.name}`]) expect(markerAt.has(at), at).toBe(true);
    expect(where(asyncId).has(Topology.results.name)).toBe(true);
    const tenantAt = where(SECRET.tenant);
    expect(tenantAt.has('log'), 'the tenant in the debug logs').toBe(true);
    expect(
      [...tenantAt].some((w) => w.startsWith('pg ')),
      'the tenant in the ledger rows',
    ).toBe(true);

    const secrets = [SECRET.tenantKey, SECRET.adminKey, SECRET.upstreamKey, SECRET.neverKey, basic, ...virtualKeys, DEV_KEY, ADMIN_KEY, OTHER_KEY];
    expect(virtualKeys).toHaveLength(2);
    // `Bearer <key>` is missing_api_key's advice, in the chat.rejected events of requests with no key
    const credentials = [/Bearer\s+(?!<key>)/i, /^authorization:/im, /"authorization"/i, /^sluice-key:/im];
    const leaks = findIn(kept, [...secrets, ...credentials]).map(([needle, at]) => [needle, at.slice(0, 5)]);
    console.info(
      `secrets scan: ${lines.length} log lines (LOG_LEVEL=debug), ${[...perStream].map(([s, n]) => `${s} ${n}`).join(', ')}; ` +
        `ledger rows: ${[...perTable].map(([t, n]) => `${t} ${n}`).join(', ')}`,
    );
    expect(leaks).toEqual([]);
  });
});
