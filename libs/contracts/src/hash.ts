import { createHash } from 'node:crypto';

/** SHA-256 hex of a tenant key, as stored in config. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
