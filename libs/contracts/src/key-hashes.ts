import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { SluiceConfig } from './config.js';
import { ServiceName } from './events.js';

const Sha256s = Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }));

/**
 * The key hashes a config declares (`tenants[].keySha256`, `tenants[].readKeySha256`,
 * `admin.keySha256`), kept apart from it under `KeyHashKeys.config` in `sluice_tenant_keys`, which
 * only the services that check keys (ingress and the ledger, the two HTTP doors) may read; the
 * config in `sluice_control`, which every service reads, carries none (docs/nats-security.md).
 */
export const ConfigKeyHashes = Type.Object(
  {
    tenants: Type.Record(Type.String(), Type.Object({ keySha256: Sha256s, readKeySha256: Type.Optional(Sha256s) }, { additionalProperties: false })),
    admin: Sha256s,
  },
  { additionalProperties: false },
);
export type ConfigKeyHashes = Static<typeof ConfigKeyHashes>;

/** The services that check keys, the two HTTP doors: the only ones that read the key hashes. */
export const KEY_CHECKERS: readonly ServiceName[] = [ServiceName.Ingress, ServiceName.Ledger];

/** Keys in the `sluice_tenant_keys` bucket. */
export const KeyHashKeys = {
  /** The hashes of the config at `ControlKeys.config`, written with it (`putConfig`). */
  config: 'config',
} as const;

export const isConfigKeyHashes = (value: unknown): value is ConfigKeyHashes => Value.Check(ConfigKeyHashes, value);

/**
 * A parsed config split in two: the config without a key hash (for `sluice_control`) and its
 * hashes (for `sluice_tenant_keys`).
 *
 * @example
 * const { config, hashes } = splitKeyHashes(parseConfig(raw));
 */
export function splitKeyHashes(full: SluiceConfig): { config: SluiceConfig; hashes: ConfigKeyHashes } {
  const hashes: ConfigKeyHashes = { tenants: {}, admin: [...full.admin.keySha256] };
  const tenants = full.tenants.map(({ keySha256, readKeySha256, ...rest }) => {
    hashes.tenants[rest.id] = { keySha256: keySha256 ?? [], ...(readKeySha256 ? { readKeySha256 } : {}) };
    return rest;
  });
  return { config: { ...full, tenants, admin: { ...full.admin, keySha256: [] } }, hashes };
}

/**
 * The config with its key hashes put back, for the services that check keys. Without hashes
 * (none written yet: a config stored before they were kept apart) the config's own are kept.
 * A tenant the hashes do not name has no config key (virtual keys still name it).
 */
export function withKeyHashes(config: SluiceConfig, hashes: ConfigKeyHashes | undefined): SluiceConfig {
  if (!hashes) return config;
  return {
    ...config,
    tenants: config.tenants.map((t) => {
      const { keySha256: _k, readKeySha256: _r, ...rest } = t;
      const h = hashes.tenants[t.id];
      return { ...rest, ...(h ? { keySha256: h.keySha256 } : {}), ...(h?.readKeySha256 ? { readKeySha256: h.readKeySha256 } : {}) };
    }),
    admin: { ...config.admin, keySha256: hashes.admin },
  };
}
