import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@sluice/telemetry';
import { requestPatchActive } from './request-patch.js';
import { flushPatchActive } from './flush-patch.js';

/** An inactive patch (request-patch.ts, flush-patch.ts) is reported once per process, not per connection. */
let patchWarned = false;

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * Connects with endless reconnect: a service outlives a nats-server restart and carries on
 * where its durable consumers left off.
 */
export async function connectBus(url: string, name: string, log?: Logger): Promise<Bus> {
  const nc = await connect({
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    // nats-core otherwise builds an Error (for async stack traces) on every request: 3-8% of CPU
    noAsyncTraces: true,
    // nats.js v3 ignores user:pass in the URL; secured clusters pass them here
    ...(process.env.NATS_USER ? { user: process.env.NATS_USER, pass: process.env.NATS_PASSWORD ?? '' } : {}),
  });
  if (log) {
    if (!patchWarned && (!requestPatchActive() || !flushPatchActive())) {
      patchWarned = true;
      log.warn(
        { package: '@nats-io/nats-core', requestPatch: requestPatchActive(), flushPatch: flushPatchActive() },
        'nats-core patch inactive: its internals are not the 3.4.0 shape, so requests build a throwaway error (request patch) or writes are not batched per loop turn (flush patch)',
      );
    }
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.warn({ nats: s.type }, 'nats connection status');
      }
    })();
  }
  const js = jetstream(nc, { timeout: 10_000 });
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  return { nc, js, jsm };
}
