import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, type Bus } from './connect.js';
import { flushPatchActive, flushSoon } from './flush-patch.js';
import { freePort, startNats, type LocalNats } from './nats-server.js';

/** Counts the socket writes of a connection (nats-core's transport `send`, one per write). */
function countWrites(nc: NatsConnection): { count: () => number } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
  const send = transport.send.bind(transport);
  let writes = 0;
  transport.send = (frame) => {
    writes++;
    send(frame);
  };
  return { count: () => writes };
}

describe('the nats-core flush patch against a real nats-server', () => {
  let dir: string;
  let nats: LocalNats;
  let bus: Bus;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-flush-'));
    nats = await startNats(dir, await freePort());
    bus = await connectBus(nats.url, 'flush-test');
  });
  afterAll(async () => {
    await bus?.nc.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is active on the pinned nats-core', () => {
    expect(flushPatchActive()).toBe(true);
  });

  it('given publishes in successive microtasks, when the turn ends, then they leave in one write and arrive in order', async () => {
    const got: string[] = [];
    const sub = bus.nc.subscribe('flush.order', { callback: (_e, m) => void got.push(m.string()) });
    await bus.nc.flush();
    const writes = countWrites(bus.nc);
    bus.nc.publish('flush.order', 'a');
    await Promise.resolve();
    bus.nc.publish('flush.order', 'b');
    await Promise.resolve();
    await Promise.resolve();
    bus.nc.publish('flush.order', 'c');
    // unpatched, each of these left in a write of its own, at the microtask after it was queued
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.count()).toBe(1);
    await bus.nc.flush();
    expect(got).toEqual(['a', 'b', 'c']);
    sub.unsubscribe();
  });

  it('given a message flushed soon (a reply), when the current microtasks have run, then it is written before the turn ends', async () => {
    await bus.nc.flush();
    const writes = countWrites(bus.nc);
    bus.nc.publish('flush.reply', 'answer');
    flushSoon(bus.nc);
    await Promise.resolve();
    expect(writes.count()).toBe(1);
    // the flush scheduled for the end of the turn finds nothing left to write
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.count()).toBe(1);
  });

  it('given more than nats-core writes at once, when queued, then it is written without waiting for the turn to end', async () => {
    await bus.nc.flush();
    const writes = countWrites(bus.nc);
    // nats-core's threshold is 32 KiB of queued commands
    const big = new Uint8Array(40 * 1024);
    bus.nc.publish('flush.big', big);
    bus.nc.publish('flush.big', big);
    expect(writes.count()).toBeGreaterThanOrEqual(1);
    await bus.nc.flush();
  });
});
