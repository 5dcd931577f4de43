import type { KV } from '@nats-io/kv';
import { decodeJson } from '@sluice/bus';
import type { Signal } from './degrader.js';

type CircuitSignal = Extract<Signal, { kind: 'circuitOpened' | 'circuitClosed' }>;

/**
 * A record of `sluice_circuits` (the invoker's, one per deployment, key = deployment) as a
 * signal, read defensively: the shape is the invoker's. `state` 'open' counts as open until
 * `openedAt + openMs` (or from the record's time when it has no `openedAt`); 'half-open' /
 * 'half_open' / 'closed' do not count (trial calls may go). Anything else is ignored.
 */
export function circuitRecordSignal(deployment: string, value: unknown, writtenAt: number, openMs: number): CircuitSignal | undefined {
  const v = value as { state?: unknown; openedAt?: unknown } | null;
  if (typeof v?.state !== 'string') return undefined;
  const openedAt = typeof v.openedAt === 'number' && v.openedAt > 0 ? v.openedAt : writtenAt;
  if (v.state === 'open') return { kind: 'circuitOpened', deployment, at: openedAt, openForMs: openMs };
  if (v.state === 'closed' || v.state === 'half-open' || v.state === 'half_open') return { kind: 'circuitClosed', deployment, at: writtenAt };
  return undefined;
}

/**
 * Follows `sluice_circuits`: every record now and each change, as signals. With the circuit
 * events (followed too) this is the second view of the same state: the events say when a circuit
 * moved, the records what every circuit is in now, also for one that moved before this replica
 * started. A deleted record is a closed circuit.
 */
export async function watchCircuits(kv: KV, openMs: () => number, onSignal: (signal: CircuitSignal) => void): Promise<{ stop(): void }> {
  const watcher = await kv.watch();
  void (async () => {
    for await (const e of watcher) {
      const writtenAt = e.created.getTime();
      if (e.operation !== 'PUT') {
        onSignal({ kind: 'circuitClosed', deployment: e.key, at: writtenAt });
        continue;
      }
      let value: unknown;
      try {
        value = decodeJson<unknown>(e.value);
      } catch {
        continue;
      }
      const signal = circuitRecordSignal(e.key, value, writtenAt, openMs());
      if (signal) onSignal(signal);
    }
  })();
  return { stop: () => watcher.stop() };
}
