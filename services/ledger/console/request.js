// One request by id (GET /v1/requests/{id}): what it ended as, and every event about it in
// stream order, with the time since the first.
import { get } from './api.js';
import { fillFacts, fillRows, int, ms, usd, when } from './dom.js';

export async function showRequest(id) {
  const r = await get(`/v1/requests/${encodeURIComponent(id)}`);
  fillFacts(document.getElementById('request-facts'), [
    ['Request', r.requestId],
    ['Tenant', r.tenant],
    ['Outcome', r.errorCode ? `${r.outcome} (${r.errorCode}, ${r.statusCode})` : r.outcome],
    ['Model', r.requestedModel && r.requestedModel !== r.model ? `${r.model} (asked for ${r.requestedModel})` : r.model],
    ['Deployment', r.deployment],
    ['Cache', r.cacheHit ? `hit (${r.cacheKind})` : 'miss'],
    ['Lane', r.priority],
    ['Latency (ms)', ms(r.latencyMs)],
    ['Tokens in / out', `${int(r.inputTokens)} / ${int(r.outputTokens)}`],
    ['Cost', usd(r.costUsd + r.embeddingUsd)],
    ['Received', when(r.receivedAt)],
  ]);
  const first = r.timeline.length ? Date.parse(r.timeline[0].at) : 0;
  fillRows(
    document.querySelector('#timeline tbody'),
    r.timeline.map((e) => [
      { text: e.seq, num: true },
      when(e.at),
      { text: Date.parse(e.at) - first, num: true },
      e.service,
      { text: e.type, th: true },
      e.reason,
    ]),
  );
  document.getElementById('request-result').hidden = false;
}
