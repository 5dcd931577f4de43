import type { KV } from '@nats-io/kv';
import {
  ControlKeys,
  DegradeState,
  isConfigKeyHashes,
  KeyHashKeys,
  parseConfig,
  splitKeyHashes,
  withKeyHashes,
  type ConfigKeyHashes,
  type SluiceConfig,
} from '@sluice/contracts';
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

export interface WatchControlOptions {
  /**
   * `sluice_tenant_keys`, for the services that check keys (ingress, the ledger): their config
   * carries the key hashes kept there (`withKeyHashes`), followed live like the config itself, so
   * a key rotated by `npm run config -- apply` applies without a restart. Without it the config
   * has none (every other service).
   */
  keyHashes?: KV;
}

/**
 * Watches the control bucket and keeps the latest valid config and degrade state. A config
 * that fails validation is logged and ignored, so a bad edit never takes a running service down.
 * Resolves once a config is known (waiting for `npm start` to load one if the bucket is empty).
 *
 * @example
 * const control = await watchControl(buckets.control, log, { keyHashes: buckets.tenantKeys }); // ingress, the ledger
 */
export async function watchControl(kv: KV, log: Logger, opts: WatchControlOptions = {}): Promise<Control> {
  let stored: SluiceConfig | undefined;
  let hashes: ConfigKeyHashes | undefined;
  // the config with its hashes, made again when either changes (never per read: the ledger and ingress index it by identity)
  let config: SluiceConfig | undefined;
  const merge = () => (config = stored && withKeyHashes(stored, hashes));
  let degrade = LEVEL_ZERO;
  let canaries: CanaryRollbacks = {};
  const listeners: Array<() => void> = [];
  let ready: (() => void) | undefined;
  const readyP = new Promise<void>((r) => (ready = r));

  const hashWatch = opts.keyHashes ? await followKeyHashes(opts.keyHashes, log, (next) => ((hashes = next), merge())) : undefined;
  const changed = () => {
    for (const l of listeners) l();
  };
  hashWatch?.onLive(changed);
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
          stored = parseConfig(decodeJson(e.value), { keyHashesApart: true });
          merge();
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
    stop: () => {
      watcher.stop();
      hashWatch?.stop();
    },
  };
}

/**
 * Follows the key hashes' record: `set` is called with its value now (undefined: none yet), then
 * with every change, each change followed by the `onLive` listener. A record that fails the
 * schema is logged and ignored (the last good one stays).
 */
async function followKeyHashes(kv: KV, log: Logger, set: (hashes: ConfigKeyHashes | undefined) => void) {
  const read = (bytes: Uint8Array, revision: number): ConfigKeyHashes | null => {
    try {
      const value = decodeJson<unknown>(bytes);
      if (isConfigKeyHashes(value)) return value;
    } catch {
      // not JSON: refused below
    }
    log.error({ key: KeyHashKeys.config, revision }, 'ignoring invalid key hashes');
    return null;
  };
  const first = await kv.get(KeyHashKeys.config);
  set(first && first.operation === 'PUT' ? (read(first.value, first.revision) ?? undefined) : undefined);
  let live: () => void = () => undefined;
  const watcher = await kv.watch({ key: KeyHashKeys.config });
  void (async () => {
    for await (const e of watcher) {
      // the watch starts with the value already read: nothing new
      if (first && e.revision <= first.revision) continue;
      const next = e.operation === 'PUT' ? read(e.value, e.revision) : undefined;
      if (next === null) continue;
      set(next);
      live();
    }
  })().catch((err: unknown) => log.error({ err }, 'the key hashes watch failed'));
  return { onLive: (l: () => void) => void (live = l), stop: () => watcher.stop() };
}

/** The buckets a config is written to: the config to `control`, its key hashes to `tenantKeys`. */
export type ConfigBuckets = { control: KV; tenantKeys: KV };

/**
 * Writes a config (validated first): its key hashes to `sluice_tenant_keys` (ingress and the
 * ledger read them), then the config without them to the control bucket (every service reads it,
 * and picks it up). Hashes first: a rotated key works as soon as they land, and a new tenant's
 * hashes wait there for its config. Returns the whole config, hashes included.
 *
 * @example
 * await putConfig(buckets, JSON.parse(readFileSync('config/sluice.json', 'utf8')));
 */
export async function putConfig(buckets: ConfigBuckets, config: unknown): Promise<SluiceConfig> {
  const parsed = parseConfig(config);
  const apart = splitKeyHashes(parsed);
  await buckets.tenantKeys.put(KeyHashKeys.config, encodeJson(apart.hashes));
  await buckets.control.put(ControlKeys.config, encodeJson(apart.config));
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
