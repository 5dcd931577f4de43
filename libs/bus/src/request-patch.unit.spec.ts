import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { RequestOne } from '@nats-io/nats-core/internal';
import type { Msg } from '@nats-io/transport-node';
import { requestPatchActive } from './request-patch.js';

const require = createRequire(import.meta.url);

/** A request object as nats-core builds one, with its promise's settlers replaced by recorders. */
function request() {
  const seen = { resolved: [] as unknown[], rejected: [] as unknown[], muxCancelled: 0 };
  const mux = { cancel: () => void seen.muxCancelled++ };
  const r = new (RequestOne as unknown as new (...args: unknown[]) => RequestOne)(mux, 'probe', { timeout: 60_000 }, false);
  r.timer.cancel();
  const internals = r as unknown as { deferred: { resolve(v: unknown): void; reject(e: unknown): void } };
  internals.deferred = { resolve: (v) => void seen.resolved.push(v), reject: (e) => void seen.rejected.push(e) };
  return { r, seen };
}

describe('the nats-core request patch', () => {
  it('is active on the pinned nats-core', () => {
    const pinned = (require('../package.json') as { dependencies: Record<string, string> }).dependencies['@nats-io/nats-core'];
    // its exports map hides package.json; the entry point sits in lib/
    const installed = (require(join(dirname(require.resolve('@nats-io/nats-core')), '..', 'package.json')) as { version: string }).version;
    expect(pinned).toBe('3.4.0');
    expect(installed).toBe(pinned);
    expect(requestPatchActive()).toBe(true);
  });

  it('given an answer, when the request resolves, then it is resolved and released without building the cancelled error', () => {
    const { r, seen } = request();
    const msg = { data: new Uint8Array() } as unknown as Msg;
    r.resolver(null, msg);
    expect(seen.resolved).toEqual([msg]);
    expect(seen.muxCancelled).toBe(1);
    // unpatched, cancel() rejects the settled promise with a fresh RequestError("cancelled")
    expect(seen.rejected).toEqual([]);
  });

  it('given an error, when the request resolves, then it takes the library path and rejects', () => {
    const { r, seen } = request();
    r.resolver(new Error('no responders'), {} as Msg);
    expect(seen.resolved).toEqual([]);
    expect(seen.muxCancelled).toBe(1);
    expect(String(seen.rejected[0])).toContain('no responders');
  });

  it('given a nats-core whose request object has another shape, when loaded, then it stands aside', async () => {
    class ReshapedRequest {
      resolver(): void {}
    }
    vi.resetModules();
    vi.doMock('@nats-io/nats-core/internal', () => ({ RequestOne: ReshapedRequest }));
    try {
      const fresh = await import('./request-patch.js');
      expect(fresh.requestPatchActive()).toBe(false);
      expect((ReshapedRequest.prototype as { __sluicePatched?: boolean }).__sluicePatched).toBeUndefined();
    } finally {
      vi.doUnmock('@nats-io/nats-core/internal');
      vi.resetModules();
    }
  });
});
