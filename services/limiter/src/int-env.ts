// Builders for the limiter's int specs; the private NATS comes from @sluice/bus/testing.
import { makeEvent, type ChatRequest } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';

/** The limiter's specs use the bus's minimal config. */
export const testConfig = minimalConfig;

export function chatRequested(tenant: string, requestId: string, request: Partial<ChatRequest> = {}, replyTo?: string) {
  const now = Date.now();
  const full: ChatRequest = { model: 'm1', messages: [{ role: 'user', content: 'hello world' }], priority: 'standard', stream: false, params: {}, cache: 'default', ...request };
  return makeEvent(
    'chat.requested',
    { requestId, tenant, service: 'ingress', at: now, reason: 'test' },
    { ctx: { request: full, frontDoor: 'nats', receivedAt: now, deadline: now + 60_000, ...(replyTo ? { replyTo } : {}) } },
  );
}
