import type { KV } from '@nats-io/kv';
import { decodeJson } from '@sluice/bus';
import { ControlKeys, type DegradeState } from '@sluice/contracts';

const isLevel = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 4;

/** A degrade record from the control bucket, or undefined when it is not one (a bad operator edit is ignored). */
export function asDegradeState(value: unknown): DegradeState | undefined {
  const v = value as Partial<DegradeState> | null;
  const ok = isLevel(v?.level) && typeof v.since === 'number' && typeof v.reason === 'string' && (v.override === undefined || isLevel(v.override));
  return ok ? (value as DegradeState) : undefined;
}

/** The record under `degrade`, if any, so a restart keeps the level and the operator's override. */
export async function readDegrade(kv: KV): Promise<DegradeState | undefined> {
  const e = await kv.get(ControlKeys.degrade);
  if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
  return asDegradeState(safeJson(e.value));
}

/**
 * Follows the operator's override in the `degrade` key (the degrader's own writes come back
 * here too, with the override unchanged). A deleted key means no override. Watches the one key
 * rather than using `watchControl`'s view, whose degrade value may still be the default when a
 * config change is reported first at start.
 */
export async function watchOverride(kv: KV, onOverride: (override: number | undefined) => void): Promise<{ stop(): void }> {
  const watcher = await kv.watch({ key: ControlKeys.degrade });
  void (async () => {
    for await (const e of watcher) {
      if (e.operation !== 'PUT') {
        onOverride(undefined);
        continue;
      }
      const state = asDegradeState(safeJson(e.value));
      if (state) onOverride(state.override);
    }
  })();
  return { stop: () => watcher.stop() };
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return decodeJson<unknown>(bytes);
  } catch {
    return undefined;
  }
}
