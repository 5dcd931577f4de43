import { createHash } from 'node:crypto';
import type { CanaryRollbacks } from '@sluice/bus';
import type { Canary, ChatRequest, Variant } from '@sluice/contracts';

/** The variant a request takes, and why in words (for the `chat.routed` reason). */
interface VariantChoice {
  canary: Canary;
  variant: Variant;
  reason: string;
}

/**
 * The request's cohort in a canary: a number in [0, 100) from the SHA-256 of the canary's id and
 * the user (the tenant when the request names no user). The same user always lands on the same
 * number, and one user's numbers in two canaries are independent, so one cohort does not take
 * every canary's variant. Costs one hash of a few dozen bytes per matching request.
 */
export function cohort(canaryId: string, who: string): number {
  const digest = createHash('sha256').update(`${canaryId}\u0000${who}`, 'utf8').digest();
  // 32 bits are plenty: the split is in hundredths of a percent at most
  return (digest.readUInt32BE(0) / 2 ** 32) * 100;
}

/**
 * The first canary of `canaries` (config order) whose `match` fits the request (each field given
 * must equal the request's tenant, feature, or model as the client named it), and the variant its
 * cohort falls in against the variants' cumulative percents. A canary in `rollbacks` sends
 * everyone to its baseline. Undefined when no canary matches. An embedding is matched only by a
 * canary that names its model: a chat canary's model or system message means nothing to it. Pure.
 *
 * @example
 * chooseVariant(config.canaries ?? [], control.canaries(), 'acme', request)
 * // { canary, variant: { name: 'b', percent: 20, model: 'gpt-4o' }, reason: 'canary new-model: user u1 in cohort 12.3 -> variant b (20 %)' }
 */
export function chooseVariant(canaries: readonly Canary[], rollbacks: CanaryRollbacks, tenant: string, request: ChatRequest): VariantChoice | undefined {
  const canary = canaries.find((c) => matches(c, tenant, request));
  if (!canary) return undefined;
  const baseline = canary.variants.find((v) => v.name === canary.baseline)!;
  const rolledBack = rollbacks[canary.id];
  if (rolledBack) {
    return { canary, variant: baseline, reason: `canary ${canary.id} was rolled back (${rolledBack.reason}): baseline ${baseline.name}` };
  }
  const who = request.user !== undefined ? `user ${request.user}` : `tenant ${tenant}`;
  const at = cohort(canary.id, request.user ?? tenant);
  let upTo = 0;
  // rounding can leave the sum of the percents a hair under 100: the last variant takes that sliver
  let variant = canary.variants[canary.variants.length - 1]!;
  for (const v of canary.variants) {
    upTo += v.percent;
    if (at < upTo) {
      variant = v;
      break;
    }
  }
  return { canary, variant, reason: `canary ${canary.id}: ${who} in cohort ${at.toFixed(1)} -> variant ${variant.name} (${variant.percent} %)` };
}

function matches(c: Canary, tenant: string, request: ChatRequest): boolean {
  const { match } = c;
  if (request.endpoint === 'embeddings' && match.model === undefined) return false;
  if (match.tenant !== undefined && match.tenant !== tenant) return false;
  if (match.feature !== undefined && match.feature !== request.feature) return false;
  if (match.model !== undefined && match.model !== request.model) return false;
  return true;
}
