import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, listParked, type Bus } from '@sluice/bus';
import { SluiceClient } from '@sluice/client';
import { hashKey } from '@sluice/contracts';
import { contentOf } from '@sluice/contracts/testing';
import { DEV_KEY, defaultConfig, startE2eStack, type E2eStack } from './harness.js';
import { fuzzDoors, fuzzSettings, report } from './fuzz/doors.js';

// The fuzzed doors (docs/fuzzing.md) on the whole stack: ten thousand and more generated requests
// through both front doors, each a coded 4xx or (when it may be valid) a 2xx, never a 5xx or
// silence; then every process is the one that started, every consumer has drained, nothing is
// parked, and ordinary requests are answered. `npm run fuzz`; FUZZ_SEED, FUZZ_RUNS (per door),
// FUZZ_PATH and FUZZ_SHRINK change the run.
const OTHER_KEY = 'sk-fuzz-other-tenant';
/** The ingress's request timeout: a Content-Length that lies long and a client that waits costs a case this and up to a second. */
const REQUEST_TIMEOUT_MS = 500;

let stack: E2eStack;
let bus: Bus;
let pids: Map<string, Array<number | undefined>>;
const exits: string[] = [];

const processIds = () => new Map([...stack.replicas].map(([name, procs]) => [name, procs.map((p) => p.pid)]));

beforeAll(async () => {
  const config = defaultConfig();
  config.tenants.push({ id: 'other', keySha256: [hashKey(OTHER_KEY)] });
  // fuzzed requests must meet the doors, not the limits: a 429 is a coded 4xx too, but would hide what comes after it
  const plenty = { requestsPerMinute: 10_000_000, tokensPerMinute: 10_000_000_000 };
  config.limits = { global: plenty, tenantDefault: plenty, userDefault: plenty };
  config.ingress.http = { ...config.ingress.http, requestTimeoutMs: REQUEST_TIMEOUT_MS, headersTimeoutMs: REQUEST_TIMEOUT_MS };
  stack = await startE2eStack({
    config,
    sim: { port: 0, latencyMs: 0 },
    onExit: (service, code, signal) => exits.push(`${service} exited (${code ?? signal})`),
  });
  bus = await connectBus(stack.natsUrl, 'fuzz-test');
  pids = processIds();
});
afterAll(async () => {
  await bus?.nc.close();
  await stack?.close();
});

describe('fuzzed doors on the whole stack', () => {
  it('answers every generated request with a coded 4xx or a 2xx on both doors, never a 5xx or silence', async () => {
    const settings = fuzzSettings(6000);
    const tally = await fuzzDoors({
      ...settings,
      httpUrl: stack.ingressUrl,
      nc: stack.nc,
      target: { key: DEV_KEY, tenant: 'dev', otherKey: OTHER_KEY, chatModels: ['gpt-4o-mini', 'gpt-4o'], embeddingModel: 'text-embedding-3-small' },
      // a Content-Length that lies long and a client that then waits: a few dozen, each costs a request timeout
      weights: { waitForTimeout: 1 },
      runs: { http: settings.runs, nats: settings.runs },
      caseTimeoutMs: 30_000,
    });
    console.log(report(tally));
    // FUZZ_PATH sent one case alone: it passed, and there is nothing to count
    if (settings.replay) return;
    expect(tally.cases).toEqual({ http: settings.runs, nats: settings.runs });
    // the run reaches past validation on both doors: some cases were valid and answered
    expect(tally.statuses.http['200']).toBeGreaterThan(0);
    expect(tally.statuses.nats.answer).toBeGreaterThan(0);
  }, 600_000);

  it('then runs in the same processes, with every consumer drained and nothing parked', async () => {
    expect(exits).toEqual([]);
    expect(processIds()).toEqual(pids);
    await stack.consumersDrained(60_000);
    await stack.ledgerCaughtUp(60_000);
    expect(await listParked(bus)).toEqual([]);
  });

  it('and answers ordinary requests through both doors', async () => {
    const completion = await stack.openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after the fuzz' }] });
    expect(completion.choices[0]?.message.content).toBeTruthy();
    const result = await new SluiceClient(stack.nc, { tenant: 'dev', key: DEV_KEY, timeoutMs: 30_000 }).chat({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'and by NATS' }],
    });
    expect(contentOf(result.body)).toBeTruthy();
    expect(processIds()).toEqual(pids);
  });
});
