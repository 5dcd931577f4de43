import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { eventually, minimalConfig, startTestBus, type TestBus } from '@sluice/bus/testing';
import { encodeEntry, semanticKeyOf, type SemanticEntry } from './entry.js';
import { SemanticIndex } from './index.js';
import { followSemanticBucket, type SemanticFollow } from './sync.js';

const DIMS = 8;
const partition = (tenant: string) => `${tenant}//text-embedding-3-small/${DIMS}/${'0'.repeat(64)}`;

/** A unit vector pointing mostly along axis `i`. */
function axis(i: number): Float32Array {
  const v = new Float32Array(DIMS).fill(0.05);
  v[i % DIMS] = 1;
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function entry(tenant: string, n: number, overrides: Partial<SemanticEntry> = {}): SemanticEntry {
  const now = Date.now();
  return {
    tenant,
    partition: partition(tenant),
    text: `question ${n}`,
    vector: axis(n),
    cacheKey: `${tenant}.${n.toString(16).padStart(64, '0')}`,
    requestId: `r${n}`,
    storedAt: now,
    expiresAt: now + 600_000,
    ...overrides,
  };
}

const put = (kv: KV, e: SemanticEntry) => kv.put(semanticKeyOf(e.cacheKey), encodeEntry(e));
/** Whether the index holds `e` (searched in its partition with k above any test's size: membership, not rank). */
const found = (index: SemanticIndex, e: SemanticEntry) => index.search(e.partition, e.vector, 1000, Date.now()).some((m) => m.id === e.cacheKey);

let env: TestBus;
let kvm: Kvm;
let buckets = 0;
const following: SemanticFollow[] = [];

/** A bucket of this test's own, as sluice_semantic is made (history 1). */
const bucket = () => kvm.create(`semantic_test_${process.pid}_${buckets++}`, { history: 1 });

async function follow(kv: KV, opts?: { sweepEveryMs?: number }) {
  const index = new SemanticIndex();
  const f = await followSemanticBucket(kv, index, env.log, opts);
  following.push(f);
  await f.ready;
  return index;
}

beforeAll(async () => {
  env = await startTestBus(minimalConfig([{ id: 'acme' }]), { name: 'semantic-sync' });
  kvm = new Kvm(env.bus.js);
});

afterAll(async () => {
  await Promise.all(following.map((f) => f.stop()));
  await env?.stop();
});

describe('followSemanticBucket', () => {
  it('given two replicas following one bucket, when a third party puts an entry, then both find it; deleted or purged, neither does', async () => {
    const kv = await bucket();
    const [a, b] = [await follow(kv), await follow(kv)];
    const e1 = entry('acme', 1);
    const e2 = entry('acme', 2);
    await put(kv, e1);
    await put(kv, e2);
    await eventually(() => found(a, e1) && found(b, e1) && found(a, e2) && found(b, e2), 5_000);
    expect(a.search(e1.partition, e1.vector, 1, Date.now())[0]!.entry).toEqual(e1);

    await kv.delete(semanticKeyOf(e1.cacheKey));
    await kv.purge(semanticKeyOf(e2.cacheKey));
    await eventually(() => a.size() === 0 && b.size() === 0, 5_000);
    expect(found(a, e1) || found(b, e1) || found(a, e2) || found(b, e2)).toBe(false);
  });

  it('given entries already in the bucket, when a replica starts later, then its index holds them all once ready', async () => {
    const kv = await bucket();
    const first = await follow(kv);
    const entries = Array.from({ length: 30 }, (_, i) => entry(i % 2 ? 'acme' : 'globex', i));
    for (const e of entries) await put(kv, e);
    await kv.delete(semanticKeyOf(entries[0]!.cacheKey));
    await eventually(() => first.size() === 29, 5_000);

    const late = await follow(kv);
    // no waiting: ready means the values as of the start are in
    expect(late.size()).toBe(29);
    for (const e of entries.slice(1)) expect(found(late, e)).toBe(true);
    expect(found(late, entries[0]!)).toBe(false);
  });

  it('given an empty bucket, then ready resolves at once and later entries still arrive', async () => {
    const kv = await bucket();
    const index = await follow(kv);
    expect(index.size()).toBe(0);
    const e = entry('acme', 3);
    await put(kv, e);
    await eventually(() => found(index, e), 5_000);
  });

  it("given a malformed value, or an entry whose tenant is not its key's, then it is ignored and drops what the key held", async () => {
    const kv = await bucket();
    const index = await follow(kv);
    const good = entry('acme', 4);
    await put(kv, good);
    await eventually(() => found(index, good), 5_000);

    await kv.put(semanticKeyOf(good.cacheKey), new TextEncoder().encode('{"tenant":"acme","vector":"AAAA"}'));
    // globex's entry written under an acme key would put globex's question in acme's reach
    const forged = entry('globex', 5, { cacheKey: `acme.${'5'.repeat(64)}` });
    await kv.put(semanticKeyOf(forged.cacheKey), encodeEntry(forged));
    const after = entry('acme', 6);
    await put(kv, after);
    // the watch delivers in order: once the last put is in, the two before it were seen
    await eventually(() => found(index, after), 5_000);
    expect(index.size()).toBe(1);
    expect(found(index, good)).toBe(false);
    expect(index.search(partition('globex'), forged.vector, 4, Date.now())).toEqual([]);
  });

  it('given an entry past its expiresAt, then the sweep drops it from the index', async () => {
    const kv = await bucket();
    const index = await follow(kv, { sweepEveryMs: 50 });
    const soon = entry('acme', 7, { expiresAt: Date.now() + 300 });
    const later = entry('acme', 8);
    await put(kv, soon);
    await put(kv, later);
    await eventually(() => index.size() === 2, 5_000);
    await eventually(() => index.size() === 1, 5_000);
    expect(found(index, later)).toBe(true);
  });
});
