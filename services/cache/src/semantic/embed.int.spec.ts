import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/contracts';
import { minimalConfig } from '@sluice/bus/testing';
import { type Sim, startSim } from '@sluice/openai-sim';
import { Embedder } from './embed.js';

// The semantic cache's embedding call through the real SDK against the simulator's HTTP endpoint:
// what it used and the embedding model's price at that moment, which the ledger bills it at.

let sim: Sim;
beforeAll(async () => {
  sim = await startSim({ port: 0 });
});
afterAll(() => sim.close());

const configAt = (inputPerMTok: number) =>
  parseConfig({
    ...minimalConfig([{ id: 'acme' }]),
    deployments: { embed: { baseUrl: sim.url, timeoutMs: 2000 } },
    models: {
      m1: { deployments: ['embed'], fallback: [], price: { inputPerMTok: 1, outputPerMTok: 1 } },
      'text-embedding-3-small': { deployments: ['embed'], fallback: [], price: { inputPerMTok, outputPerMTok: 0 } },
    },
    cache: { semantic: { model: 'text-embedding-3-small', dimensions: 256 } },
  });

describe('Embedder', () => {
  it("given an embedding, then its use records the tokens and the embedding model's price as configured when it was made", async () => {
    const embedder = new Embedder({});
    const first = await embedder.embed(configAt(0.02), 'How do I reset my password?', 2000);
    if (!('use' in first)) throw new Error(first.error);
    expect(first.vector).toHaveLength(256);
    expect(first.use).toMatchObject({
      model: 'text-embedding-3-small',
      deployment: 'embed',
      price: { inputPerMTok: 0.02, outputPerMTok: 0, source: 'config' },
    });
    expect(first.use.usage.prompt_tokens).toBeGreaterThan(0);
    // a price change applies to the next call, not to the one already recorded
    const second = await embedder.embed(configAt(0.05), 'How do I reset my password?', 2000);
    if (!('use' in second)) throw new Error(second.error);
    expect(second.use.price).toEqual({ inputPerMTok: 0.05, outputPerMTok: 0, source: 'config' });
    expect(first.use.price?.inputPerMTok).toBe(0.02);
  });
});
