import OpenAI from 'openai';
import { toFile } from 'openai/uploads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from '@sluice/bus';
import { eventually } from '@sluice/bus/testing';
import { Subjects, Topology, type BatchRecord } from '@sluice/contracts';
import { startFrontDoors, type FrontDoors } from './ingress.js';
import { KEYS, startHarness, type Harness } from './testing.js';

// Two ingress replicas on one bus, each with its batch runner, against the harness's terminal
// stage (real NATS, real sluice_batches and sluice_files): one replica at a time drives a batch
// (its lease in the record) and every line is published once.
let h: Harness;
let second: FrontDoors;
let acme: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  second = await startFrontDoors({ ...h.ctx, log: h.ctx.log.child({ replica: 2 }) });
  acme = new OpenAI({ baseURL: h.baseURL, apiKey: KEYS.acme, maxRetries: 0 });
});
afterAll(async () => {
  for (const close of [...(second?.closers ?? [])].reverse()) await close();
  await h?.stop();
});

async function batchOf(n: number, prefix: string): Promise<OpenAI.Batch> {
  const jsonl = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${prefix}-${i}`,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'small', messages: [{ role: 'user', content: `${prefix} ${i}` }] },
    }),
  ).join('\n');
  const file = await acme.files.create({ file: await toFile(Buffer.from(jsonl), 'in.jsonl'), purpose: 'batch' });
  return acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

const record = async (id: string) => (await getJson<BatchRecord>(h.buckets.batches, id))!.value;
const count = async (subject: string) =>
  Object.values((await h.bus.jsm.streams.info(Topology.stream.name, { subjects_filter: subject })).state.subjects ?? {}).reduce((a, b) => a + b, 0);

describe('batches on two ingress replicas', () => {
  it('are driven by one replica at a time and publish each line once', async () => {
    const before = await count(Subjects.event('chat.requested', 'acme'));
    const created = await batchOf(150, 'two');
    const runners = new Set<string>();
    await eventually(
      async () => {
        const r = await record(created.id);
        if (r.runner) runners.add(r.runner.id);
        expect(r.status).toBe('completed');
      },
      20_000,
      { everyMs: 20 },
    );
    expect(runners.size).toBe(1);
    const done = await acme.batches.retrieve(created.id);
    expect(done.request_counts).toEqual({ total: 150, completed: 150, failed: 0 });
    expect(await count(Subjects.event('chat.requested', 'acme'))).toBe(before + 150);
    expect(h.requested.filter((e) => e.data.ctx.batch?.id === created.id)).toHaveLength(150);
    expect(await count(Subjects.event('batch.validated', 'acme'))).toBeGreaterThanOrEqual(1);
  });
});
