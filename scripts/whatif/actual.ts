import { billedPrice, type BilledPrice, type EmbeddingUse, type SluiceConfig } from '@sluice/contracts';
import { upstreamEnd, type RecordedRequest } from './record.js';
import type { EmbeddingBill, Fate } from './summary.js';

/**
 * What actually happened to a recorded request, priced as the ledger priced it: at the price its
 * event recorded (`price`, `embedding.price`), or, for an event from before prices were recorded,
 * at `baseline`'s price for the model (a batch line at its batch price). Pure.
 *
 * @example
 * recordedFate(rec.requests[0], liveConfig) // { kind: 'completed', tier: 'cheap', bill: { model: 'm1', deployment: 'd1', ... } }
 */
export function recordedFate(r: RecordedRequest, baseline: Pick<SluiceConfig, 'models'>): Fate {
  const tier = r.routed ? { tier: r.routed.data.tier } : {};
  const embedding = embeddingOf(r.terminal?.type === 'cache.hit' ? r.terminal.data.embedding : r.missed?.data.embedding, baseline);
  const extra = { ...tier, ...(embedding ? { embedding } : {}) };
  const t = r.terminal;
  const batch = r.requested.data.ctx.batch !== undefined;
  const price = (recorded: BilledPrice | undefined, model: string, line: boolean) => recorded ?? billedPrice(baseline.models, model, line);
  if (!t) return r.held ? { kind: 'held', ...extra } : { kind: 'pending', ...extra };
  switch (t.type) {
    case 'chat.rejected':
      return { kind: 'rejected', code: t.data.code, ...extra };
    case 'chat.throttled':
      return { kind: 'throttled', layer: t.data.layer, ...extra };
    case 'chat.shed':
      return { kind: 'shed', code: t.data.code, ...extra };
    case 'chat.failed':
      return { kind: 'failed', code: t.data.code, ...extra };
    case 'cache.hit':
    case 'cache.coalesced': {
      const { answer } = t.data;
      const cache = t.type === 'cache.coalesced' ? 'coalesced' : (t.data.kind ?? 'exact');
      const saved = { model: answer.model, deployment: '', usage: answer.usage, price: price(t.data.price, answer.model, false) };
      return { kind: 'cached', cache, saved, ...extra };
    }
    case 'chat.completed':
    case 'chat.cancelled': {
      const end = upstreamEnd(r);
      if (!end || end.type === 'chat.failed') return { kind: 'static', ...extra };
      const model = end.type === 'chat.completed' ? end.data.answer.model : end.data.model;
      const usage = end.type === 'chat.completed' ? end.data.answer.usage : end.data.usage;
      return {
        kind: end.type === 'chat.completed' ? 'completed' : 'cancelled',
        bill: { model, deployment: end.data.deployment, usage, price: price(end.data.price, model, batch) },
        ...extra,
      };
    }
    default: {
      const _exhaustive: never = t;
      throw new Error(`unknown terminal event ${JSON.stringify(_exhaustive)}`);
    }
  }
}

/** The semantic lookup's embedding call, priced as recorded (or at the baseline's input price). */
function embeddingOf(e: EmbeddingUse | undefined, models: Pick<SluiceConfig, 'models'>): EmbeddingBill | undefined {
  if (!e) return undefined;
  return { model: e.model, tokens: e.usage.prompt_tokens, price: e.price ?? billedPrice(models.models, e.model, false) };
}
