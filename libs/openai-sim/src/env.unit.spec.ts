import { describe, expect, it } from 'vitest';
import { DEFAULT_PORT, optionsFromEnv } from './env.js';

describe('optionsFromEnv', () => {
  it('defaults to port 8090 and nothing else', () => {
    expect(optionsFromEnv({})).toEqual({ port: DEFAULT_PORT });
  });

  it('reads every SIM_* variable', () => {
    expect(
      optionsFromEnv({
        SIM_PORT: '0',
        SIM_HOST: '0.0.0.0',
        SIM_LATENCY_MS: '25',
        SIM_TOKEN_LATENCY_MS: '2',
        SIM_RPM: '600',
        SIM_TPM: '90000',
        SIM_ERROR_RATE: '0.05',
        SIM_TIMEOUT_RATE: '0.01',
        SIM_MODELS: 'a, b,,c',
      }),
    ).toEqual({
      port: 0,
      host: '0.0.0.0',
      latencyMs: 25,
      tokenLatencyMs: 2,
      requestsPerMinute: 600,
      tokensPerMinute: 90000,
      errorRate: 0.05,
      timeoutRate: 0.01,
      models: ['a', 'b', 'c'],
    });
  });

  it('ignores empty values and throws on garbage', () => {
    expect(optionsFromEnv({ SIM_RPM: '' })).toEqual({ port: DEFAULT_PORT });
    expect(() => optionsFromEnv({ SIM_RPM: 'lots' })).toThrow(/SIM_RPM/);
  });

  it('reads the context windows', () => {
    expect(optionsFromEnv({ SIM_CONTEXT_WINDOW: '64000', SIM_CONTEXT_WINDOWS: 'gpt-4o=128000, gpt-4.1-mini = 1047576' })).toEqual({
      port: DEFAULT_PORT,
      contextWindow: 64000,
      contextWindows: { 'gpt-4o': 128000, 'gpt-4.1-mini': 1047576 },
    });
    expect(() => optionsFromEnv({ SIM_CONTEXT_WINDOWS: 'gpt-4o' })).toThrow(/SIM_CONTEXT_WINDOWS/);
  });

  it('reads the batch pace', () => {
    expect(optionsFromEnv({ SIM_BATCH_DELAY_MS: '250', SIM_BATCH_WINDOW_MS: '60000' })).toEqual({
      port: DEFAULT_PORT,
      batchDelayMs: 250,
      batchWindowMs: 60000,
    });
  });
});
