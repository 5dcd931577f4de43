import type { ChatRequest, SluiceConfig } from '@sluice/contracts';
import { DEFAULT_COMPLETION_TOKENS } from './estimate.js';

/** Nano-USD per token at a price of 1 USD per million tokens (1e9 / 1e6). */
const NANOS_PER_TOKEN_PER_USD_PER_MTOK = 1_000;

/**
 * What a request may cost, in nano-USD (integer, rounded up): its prompt tokens at the model's
 * input price plus `choices` × its output cap (or DEFAULT_COMPLETION_TOKENS, as the token
 * estimate counts it) at the output price. It is what the request's budgets reserve until the
 * ledger settles it with the exact cost, so it errs high: `auto` is priced at the priciest tier's
 * model (the router has not chosen yet); `downgraded` at the cheapest tier's, where the router
 * will send it. Undefined for a model the config does not have: the router refuses it, so it
 * costs nothing.
 *
 * @example
 * // 1,000 prompt tokens at $0.15/MTok + 256 output tokens at $0.60/MTok
 * estimateCostNanos(config, { model: 'gpt-4o-mini', promptTokens: 1000, choices: 1 }) // 150_000 + 153_600
 */
export function estimateCostNanos(
  config: Pick<SluiceConfig, 'models' | 'tiers'>,
  request: Pick<ChatRequest, 'model' | 'promptTokens' | 'choices' | 'maxOutputTokens'>,
  downgraded = false,
): number | undefined {
  const outputTokens = request.choices * (request.maxOutputTokens ?? DEFAULT_COMPLETION_TOKENS);
  const costOf = (model: string): number | undefined => {
    const price = config.models[model]?.price;
    if (!price) return undefined;
    return Math.ceil((request.promptTokens * price.inputPerMTok + outputTokens * price.outputPerMTok) * NANOS_PER_TOKEN_PER_USD_PER_MTOK);
  };
  if (downgraded) return costOf(config.tiers[0]!.model);
  if (request.model !== 'auto') return costOf(request.model);
  let highest: number | undefined;
  for (const tier of config.tiers) {
    const cost = costOf(tier.model);
    if (cost !== undefined && (highest === undefined || cost > highest)) highest = cost;
  }
  return highest;
}
