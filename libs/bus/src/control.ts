import type { KV } from '@nats-io/kv';
import { ControlKeys, DegradeState, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from '@sluice/telemetry';
import { casUpdate, decodeJson, encodeJson, getJson } from './kv.js';

/**
 * The canaries their guard rolled back, under `canaries` in the control bucket, by canary id:
 * when (epoch ms), the variant whose error rate did it, and why in words. The router sends a
 * rolled-back canary's traffic to its baseline until an operator deletes its entry (or the key).
 */
export const CanaryRollbacks = Type.Record(Type.String(), Type.Object({ at: Type.Number(), variant: Type.String(), reason: Type.String() }));
export type CanaryRollbacks = Static<typeof CanaryRollbacks>;

export interface Control {
  /** The current config; changes in the control bucket replace it without a restart. */
  config: () => SluiceConfig;
  degrade: () => DegradeState;
  /** The rolled-back canaries (`ControlKeys.canaries`); empty when none is. */
  canaries: () => CanaryRollbacks;
  /** Called after every accepted change. */
  onChange: (listener: () => void) => void;
  stop: () => void;
}

const LEVEL_ZERO: DegradeState = { level: 0, since: 0, reason: 'initial' };

/**
 * Watches the control bucket and keeps the latest valid config and degrade state. A config
 * that fails validation is logged and ignored, so a bad edit never takes a running service down.
 * Resolves once a config is known (waiting for `npm start` to load one if the bucket is empty).
 */
export async function watchControl(kv: KV, log: Logger): Promise<Control> {
  let config: SluiceConfig | undefined;
  let degrade = LEVEL_ZERO;
  let canaries: CanaryRollbacks = {};
  const listeners: Array<() => void> = [];
  let ready: (() => void) | undefined;
  const readyP = new Promise<void>((r) => (ready = r));

  // one watch on the whole bucket: several keys per watch need nats-server 2.10
  const watcher = await kv.watch();
  void (async () => {
    for await (const e of watcher) {
      // deleting the rollbacks (an operator re-enabling every canary) is a change too
      if (e.key === ControlKeys.canaries && e.operation !== 'PUT') {
        canaries = {};
        for (const l of listeners) l();
        continue;
      }
      if (e.operation !== 'PUT') continue;
      try {
        if (e.key === ControlKeys.config) {
          config = parseConfig(decodeJson(e.value));
          log.info({ revision: e.revision }, 'config applied');
          ready?.();
        } else if (e.key === ControlKeys.degrade) {
          const next = decodeJson<unknown>(e.value);
          if (!Value.Check(DegradeState, next)) throw new Error('invalid degrade state');
          degrade = next;
        } else if (e.key === ControlKeys.canaries) {
          const next = decodeJson<unknown>(e.value);
          if (!Value.Check(CanaryRollbacks, next)) throw new Error('invalid canary rollbacks');
          canaries = next;
        }
        for (const l of listeners) l();
      } catch (err) {
        log.error({ err, key: e.key, revision: e.revision }, 'ignoring invalid control value');
      }
    }
  })();
  await readyP;
  return {
    config: () => config!,
    degrade: () => degrade,
    canaries: () => canaries,
    onChange: (l) => void listeners.push(l),
    stop: () => watcher.stop(),
  };
}

/** Writes a config (validated first) to the control bucket; every service picks it up. */
export async function putConfig(kv: KV, config: unknown): Promise<SluiceConfig> {
  const parsed = parseConfig(config);
  await kv.put(ControlKeys.config, encodeJson(parsed));
  return parsed;
}

/** Writes the degrade state. */
export async function putDegrade(kv: KV, state: DegradeState): Promise<void> {
  await kv.put(ControlKeys.degrade, encodeJson(state));
}

/**
 * Records that `canary` was rolled back, with compare-and-set so that of several replicas (or
 * batches) judging the same canary only the first writes: true when this call wrote it, false
 * when it was already rolled back. Other canaries' entries are kept.
 *
 * @example
 * if (await rollBackCanary(kv, 'new-prompt', { at: now, variant: 'b', reason: 'error rate 0.4 > 0.05 + 0.1' })) publish(event);
 */
export async function rollBackCanary(kv: KV, canary: string, entry: CanaryRollbacks[string]): Promise<boolean> {
  // the common case (already rolled back) costs one read and no write
  if ((await getJson<CanaryRollbacks>(kv, ControlKeys.canaries))?.value[canary]) return false;
  let wrote = false;
  await casUpdate<CanaryRollbacks>(kv, ControlKeys.canaries, (current) => {
    wrote = !current?.[canary];
    return wrote ? { ...current, [canary]: entry } : current!;
  });
  return wrote;
}
