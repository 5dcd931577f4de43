import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { toFile } from 'openai/uploads';
import { encodeJson, publishEvent, readResult, type Bus } from '@sluice/bus';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import {
  laneSpecs,
  makeEvent,
  ServiceName,
  Subjects,
  type AnyEvent,
  type EventType,
  type ChatErrorReply,
  type ChatResult,
  type SluiceEvent,
} from '@sluice/contracts';
import { chatRequest } from '@sluice/contracts/testing';
import { startSim, type Sim } from '@sluice/openai-sim';
import { startLanes, type Lanes } from './lanes.js';
import { onChatRouted, wireInvoker, type WiredInvoker } from './service.js';
import { groupId, jsonlLine, type QueuedLine, type UpstreamGroup } from './upstream-batch.js';
import { startUpstreamBatches, type UpstreamBatches } from './upstream-batch-runner.js';

// The upstream route of a batch's lines (issue 14, item 2) against a real simulator and nats-server:
// the invoker's batch-lane handler records each line of a deployment with batchApi, the runner
// gathers them into one upstream batch (files.create + batches.create through the SDK), polls it,
// and ends each line as the invoker would, its answer on its result subject; and a runner that
// finds a group recorded as `creating` looks for the upstream batch before creating one.
const TENANT = 'acme';
const decoder = new TextDecoder();
let sim: Sim;
let tb: TestBus;
let wired: WiredInvoker;
let lanes: Lanes;
let runner: UpstreamBatches | undefined;
const events: AnyEvent[] = [];

beforeAll(async () => {
  sim = await startSim({ batchDelayMs: 300 });
  const config = {
    ...minimalConfig([{ id: TENANT }]),
    deployments: { d1: { baseUrl: sim.url, timeoutMs: 5000, batchApi: true } },
    models: { 'gpt-4o-mini': { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } } },
    tiers: [{ name: 'only', model: 'gpt-4o-mini', maxComplexity: 1 }],
    batches: { upstream: { gatherMs: 150, pollMs: 50, maxPollMs: 200 } },
  };
  tb = await startTestBus(config, { name: 'upstream-batch' });
  const { bus, buckets, control, log } = tb;
  tb.bus.nc.subscribe('sluice.evt.>', { callback: (_e, m) => void events.push(JSON.parse(decoder.decode(m.data)) as AnyEvent) });
  wired = wireInvoker({ bus, buckets, control, log, env: {} });
  await wired.ready;
  lanes = await startLanes(bus, {
    settings: () => ({ slots: 16, lanes: laneSpecs(control.config()) }),
    onChange: (l) => control.onChange(l),
    log,
    handler: onChatRouted(wired.invoke),
  });
});

afterAll(async () => {
  await runner?.stop();
  await lanes?.stop();
  wired?.stop();
  await tb?.stop();
  await sim?.close();
});

const startRunner = async () => (runner = await startUpstreamBatches({ ...tb, env: {} }));

/** Publishes a batch line as ingress and the router would: its chat.requested (with the body), then chat.routed in the batch lane. */
async function line(bus: Bus, batchId: string, n: number, body?: Record<string, unknown>): Promise<SluiceEvent<'chat.routed'>> {
  const requestId = `req_${batchId}_${n}`;
  const now = Date.now();
  const ctx = {
    request: chatRequest({ model: 'gpt-4o-mini', priority: 'batch', promptTokens: 8 }),
    replyTo: Subjects.result(`batch.${batchId}.${n}`),
    frontDoor: 'http' as const,
    receivedAt: now,
    deadline: now + 86_400_000,
    batch: { id: batchId, customId: `q-${n}` },
  };
  const fields = { requestId, tenant: TENANT, at: now, reason: 'test' };
  const content = body ?? { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `question ${batchId} ${n}` }], max_tokens: 8 };
  const ack = await publishEvent(bus.js, makeEvent('chat.requested', { ...fields, service: ServiceName.Ingress }, { ctx, body: content }));
  const routed = makeEvent(
    'chat.routed',
    { ...fields, service: ServiceName.Router },
    { ctx: { ...ctx, requestSeq: ack.seq }, tier: 'only', lane: 'batch', candidates: [{ model: 'gpt-4o-mini', deployment: 'd1' }], degradeLevel: 0 },
  );
  await publishEvent(bus.js, routed);
  return routed;
}

const answers = (batchId: string, n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => readResult(tb.bus, TENANT, `batch.${batchId}.${i}`))) as Promise<
    Array<ChatResult | ChatErrorReply | undefined>
  >;
const mine = <T extends EventType>(type: T, id: (e: AnyEvent) => boolean) => events.filter((e) => e.type === type && id(e)) as unknown as Array<SluiceEvent<T>>;

describe('upstream batches', () => {
  it('given 20 lines of a batch for a deployment with batchApi, then one upstream batch answers them all and nothing calls /chat/completions', async () => {
    sim.reset();
    await startRunner();
    const B = 'batch_one';
    for (let i = 0; i < 19; i++) await line(tb.bus, B, i);
    await line(tb.bus, B, 19, { model: 'gpt-4o-mini' }); // no messages: the upstream refuses the line

    await eventually(async () => expect((await answers(B, 20)).every((a) => a !== undefined && !('kind' in a))).toBe(true), 20_000);
    const got = await answers(B, 20);
    for (let i = 0; i < 19; i++)
      expect(got[i]).toMatchObject({ requestId: `req_${B}_${i}`, body: { id: `chatcmpl-req_${B}_${i}`, object: 'chat.completion' } });
    expect(got[19]).toMatchObject({ requestId: `req_${B}_19`, error: { status: 400 } });

    const ofBatch = (e: AnyEvent) => e.requestId.startsWith(`req_${B}_`) || e.requestId === B;
    await eventually(() => expect(mine('upstream_batch.completed', ofBatch)).toHaveLength(1));
    expect(mine('upstream_batch.queued', ofBatch)).toHaveLength(20);
    expect(mine('upstream_batch.submitted', ofBatch)).toHaveLength(1);
    expect(mine('upstream_batch.completed', ofBatch)[0]!.data).toMatchObject({ completed: 19, failed: 1, status: 'completed' });
    const completed = mine('chat.completed', ofBatch);
    expect(new Set(completed.map((e) => e.requestId)).size).toBe(19);
    expect(completed.every((e) => e.data.ctx.batch?.id === B && e.data.deployment === 'd1')).toBe(true);
    expect(mine('chat.failed', ofBatch)).toHaveLength(1);

    const stats = sim.stats();
    expect(stats.batchLines).toBe(20);
    expect(stats.requests).toBe(0);
    expect(stats.completions).toBe(19);
    const upstream = new OpenAI({ baseURL: sim.url, apiKey: 'sk-none' });
    expect((await upstream.batches.list()).data).toHaveLength(1);
    // the bucket is emptied once every line is answered
    await eventually(async () => expect(await tb.buckets.upstreamBatches.keys().then(count)).toBe(0));
    await runner!.stop();
    runner = undefined;
  });

  it('given a group recorded as creating whose upstream batch was created before a crash, then the runner finds it instead of creating another', async () => {
    sim.reset();
    const B = 'batch_two';
    // no runner yet: the lines are only recorded
    for (let i = 0; i < 3; i++) await line(tb.bus, B, i);
    const kv = tb.buckets.upstreamBatches;
    const recorded = await eventually(async () => {
      const keys = await kv.keys('line.>').then(list);
      expect(keys).toHaveLength(3);
      return Promise.all(keys.map(async (k) => (await kv.get(k))!.json<QueuedLine>()));
    });
    recorded.sort((a, b) => a.event.requestId.localeCompare(b.event.requestId));
    // what a runner killed right after batches.create left: the file uploaded, the batch created, the group saying `creating`
    const upstream = new OpenAI({ baseURL: sim.url, apiKey: 'sk-none' });
    const jsonl = recorded.map((l) => jsonlLine(l.event.requestId, 'chat.completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }));
    const file = await upstream.files.create({ file: await toFile(Buffer.from(jsonl.join('\n')), 'in.jsonl'), purpose: 'batch' });
    const created = await upstream.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const group: UpstreamGroup = {
      id: groupId(recorded),
      batchId: B,
      tenant: TENANT,
      deployment: 'd1',
      endpoint: 'chat.completions',
      lines: recorded.map((l) => l.event.requestId),
      state: 'creating',
      inputFileId: file.id,
      createdAt: Date.now(),
    };
    await kv.create(`group.${group.id}`, encodeJson(group));

    await startRunner();
    await eventually(async () => expect((await answers(B, 3)).every((a) => a !== undefined && 'body' in a)).toBe(true), 20_000);
    const submitted = mine('upstream_batch.submitted', (e) => e.requestId === B);
    expect(submitted).toHaveLength(1);
    expect(submitted[0]!.data.upstreamBatchId).toBe(created.id);
    expect((await upstream.batches.list()).data).toHaveLength(1);
    expect(sim.stats().batchLines).toBe(3);
  });
});

async function list(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out;
}
const count = async (it: AsyncIterable<string>) => (await list(it)).length;
