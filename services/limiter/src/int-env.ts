// Builders for the limiter's int specs; the private NATS comes from @sluice/bus/testing.
import type { ChatRequest } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { chatRequest, requestContext, requested } from '@sluice/contracts/testing';

/** The limiter's specs use the bus's minimal config. */
export const testConfig = minimalConfig;

/** `chat.requested` of a 10-token prompt (its token estimate is what the limits count). */
export function chatRequested(tenant: string, requestId: string, request: Partial<ChatRequest> = {}, replyTo?: string) {
  const ctx = requestContext(chatRequest(request), replyTo ? { replyTo } : {});
  return requested(requestId, tenant, { ctx });
}
