// Builders for the limiter's int specs; the private NATS comes from @sluice/bus/testing.
import { makeEvent, type ChatRequest } from '@sluice/contracts';

export function testConfig(tenants: Array<Record<string, unknown>>, limits?: Record<string, unknown>) {
  const rate = { requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 };
  return {
    tenants: tenants.map((t) => ({ keySha256: ['0'.repeat(64)], ...t })),
    limits: { global: rate, tenantDefault: rate, userDefault: rate, ...limits },
    deployments: { d1: { baseUrl: 'http://127.0.0.1:1/v1', timeoutMs: 1000 } },
    models: { m1: { deployments: ['d1'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } } },
    tiers: [{ name: 'only', model: 'm1', maxComplexity: 1 }],
    router: {},
    invoker: {},
    cache: {},
    degrader: {},
    ingress: {},
  };
}

export function chatRequested(tenant: string, requestId: string, request: Partial<ChatRequest> = {}, replyTo?: string) {
  const now = Date.now();
  const full: ChatRequest = { model: 'm1', messages: [{ role: 'user', content: 'hello world' }], priority: 'standard', stream: false, params: {}, cache: 'default', ...request };
  return makeEvent(
    'chat.requested',
    { requestId, tenant, service: 'ingress', at: now, reason: 'test' },
    { ctx: { request: full, frontDoor: 'nats', receivedAt: now, deadline: now + 60_000, ...(replyTo ? { replyTo } : {}) } },
  );
}
