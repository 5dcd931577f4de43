import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Deployment, Endpoint } from '@sluice/contracts';
import { startSim, type Sim } from '@sluice/openai-sim';
import { streamReader } from './answer.js';
import { outgoing } from './outgoing.js';
import { callUpstream, ClientPool } from './upstream.js';

// Azure OpenAI deployments through the simulator's Azure paths: whole answers by the direct JSON
// call, streamed ones by the SDK's AzureOpenAI client; the simulator refuses a call without the
// `api-key` header (401) or `api-version` (400), so an answer proves both were sent.
let sim: Sim;
let endpoint: string;
const pool = new ClientPool({ AZURE_KEY: 'azure-secret' });

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  endpoint = sim.url.replace(/\/v1$/, '');
});
afterAll(() => sim.close());

const azure = (over: Partial<Deployment> = {}): Deployment => ({ baseUrl: endpoint, kind: 'azure', apiKeyEnv: 'AZURE_KEY', timeoutMs: 5000, ...over });

async function call(name: string, d: Deployment, endpointName: Endpoint, model: string, stream: boolean) {
  const client =
    endpointName === 'embeddings'
      ? { input: 'hello azure' }
      : endpointName === 'responses'
        ? { input: 'hello azure' }
        : { messages: [{ role: 'user', content: 'hello azure' }] };
  const request = outgoing(endpointName, { ...client, ...(stream ? { stream } : {}) }, { model, stream });
  const chunks: unknown[] = [];
  const answer = await callUpstream({
    client: pool.get(name, d),
    post: pool.post,
    endpoint: endpointName,
    requestId: `r-${name}`,
    request,
    idleTimeoutMs: 5000,
    deadline: Date.now() + 10_000,
    now: Date.now,
    ...(request.stream ? { reader: streamReader(endpointName, `r-${name}`, request.addedUsage), forward: (c: unknown) => chunks.push(c) } : {}),
  });
  return { answer, chunks };
}

describe('an Azure OpenAI deployment', () => {
  it('answers a whole chat completion under the deployment named by the model, with the api-key and api-version', async () => {
    const before = sim.stats();
    const { answer } = await call('az-whole', azure(), 'chat.completions', 'gpt-4o-mini', false);
    expect(answer.status).toBe(200);
    expect((answer.body as { model: string }).model).toBe('gpt-4o-mini');
    expect(answer.usage.completion_tokens).toBeGreaterThan(0);
    expect(sim.stats().completions).toBe(before.completions + 1);
  });

  it('streams through the SDK AzureOpenAI client, to the configured azureDeployment rather than the model', async () => {
    const { answer, chunks } = await call('az-stream', azure({ azureDeployment: 'gpt-4o' }), 'chat.completions', 'gpt-4o-mini', true);
    expect(chunks.length).toBeGreaterThan(1);
    expect((answer.body as { model: string }).model).toBe('gpt-4o');
    // whole, the same deployment path by the direct JSON call
    const whole = await call('az-stream', azure({ azureDeployment: 'gpt-4o' }), 'chat.completions', 'gpt-4o-mini', false);
    expect((whole.answer.body as { model: string }).model).toBe('gpt-4o');
  });

  it('answers embeddings under the deployment and Responses at the resource with the deployment as the model', async () => {
    const emb = await call('az-emb', azure(), 'embeddings', 'text-embedding-3-small', false);
    expect((emb.answer.body as { data: unknown[] }).data).toHaveLength(1);
    const resp = await call('az-resp', azure({ azureDeployment: 'gpt-4o' }), 'responses', 'gpt-4o-mini', false);
    expect((resp.answer.body as { model: string }).model).toBe('gpt-4o');
  });
});
