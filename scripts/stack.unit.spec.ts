import { describe, expect, it } from 'vitest';
import { DEFAULT_METRICS_PORTS, metricsPortOf } from './stack.js';

describe('metricsPortOf', () => {
  it("gives npm start's services docs/metrics.md's ports, and none to ingress and the ledger (their HTTP ports serve /metrics)", () => {
    const ports = (['router', 'cache', 'limiter', 'invoker', 'degrader', 'ingress', 'ledger'] as const).map((n) => metricsPortOf(DEFAULT_METRICS_PORTS, n, 0));
    expect(ports).toEqual([9471, 9472, 9473, 9474, 9475, 0, 0]);
  });

  it('moves each further replica 10 ports up, so replicas never collide', () => {
    expect([0, 1, 2].map((i) => metricsPortOf(DEFAULT_METRICS_PORTS, 'invoker', i))).toEqual([9474, 9484, 9494]);
    expect(metricsPortOf({}, 'invoker', 1)).toBe(0);
  });
});
