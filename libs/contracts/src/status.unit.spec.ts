import { describe, expect, it } from 'vitest';
import { isDeploymentFault, isRequestRefusal, isRetryableStatus } from './openai.js';

// What an upstream's status means: the invoker retries, falls back or passes it on by these, and
// the degrader leaves the upstream's refusals of a request out of its failure ratio.

describe('isRetryableStatus', () => {
  it('retries rate limits, timeouts, conflicts and server errors only', () => {
    expect([408, 409, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 413, 422].some(isRetryableStatus)).toBe(false);
  });
});

describe('isRequestRefusal', () => {
  it('counts an upstream refusing the request itself as no failure of the upstream', () => {
    for (const status of [400, 404, 413, 422]) expect(isRequestRefusal(status)).toBe(true);
  });

  it("counts the upstream's own trouble: its key, timeouts, conflicts, rate limits, server errors, no status", () => {
    for (const status of [401, 403, 408, 409, 429, 500, 503, undefined]) expect(isRequestRefusal(status)).toBe(false);
  });
});

describe('isDeploymentFault', () => {
  it("is the deployment's key being wrong or lacking access, nothing else", () => {
    expect([401, 403].every(isDeploymentFault)).toBe(true);
    expect([400, 404, 408, 429, 500].some(isDeploymentFault)).toBe(false);
  });
});
