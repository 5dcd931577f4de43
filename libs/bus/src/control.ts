import type { KV } from '@nats-io/kv';
import { ControlKeys, DegradeState, parseConfig, type SluiceConfig } from '@sluice/contracts';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from '@sluice/telemetry';
import { decodeJson, encodeJson } from './kv.js';

export interface Control {
  /** The current config; changes in the control bucket replace it without a restart. */
  config: () => SluiceConfig;
  degrade: () => DegradeState;
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
  const listeners: Array<() => void> = [];
  let ready: (() => void) | undefined;
  const readyP = new Promise<void>((r) => (ready = r));

  // one watch on the whole bucket: several keys per watch need nats-server 2.10
  const watcher = await kv.watch();
  void (async () => {
    for await (const e of watcher) {
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
