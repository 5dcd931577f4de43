import OpenAI, { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sim, startSim } from './mod.js';

// Azure OpenAI's paths as the SDK's own Azure client calls them.
let sim: Sim;
let endpoint: string;
const apiVersion = '2024-10-21';
const messages = [{ role: 'user' as const, content: 'What is the capital of France?' }];

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  endpoint = sim.url.replace(/\/v1$/, '');
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

const azure = (deployment?: string) => new AzureOpenAI({ endpoint, apiKey: 'azure-key', apiVersion, maxRetries: 0, ...(deployment ? { deployment } : {}) });

describe("the simulator's Azure OpenAI paths", () => {
  it('answers chat completions under the deployment, which is the model, whole and streamed', async () => {
    // the body's model is what Azure ignores: the deployment in the path decides
    const whole = await azure('gpt-4o').chat.completions.create({ model: 'ignored', messages });
    expect(whole.model).toBe('gpt-4o');
    expect(whole.choices[0]?.message.content).toMatch(/^Echo: What is the capital of France/);

    const stream = await azure('gpt-4o-mini').chat.completions.create({ model: 'x', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(whole.choices[0]?.message.content);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(sim.stats()).toMatchObject({ requests: 2, completions: 2 });
  });

  it('takes the deployment from the model when the client names none, and answers embeddings and Responses', async () => {
    const client = azure();
    expect((await client.chat.completions.create({ model: 'gpt-4o-mini', messages })).model).toBe('gpt-4o-mini');
    const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(emb.data[0]?.embedding.length).toBeGreaterThan(0);
    const resp = await client.responses.create({ model: 'gpt-4o-mini', input: 'hello there' });
    expect(resp.model).toBe('gpt-4o-mini');
    expect(sim.stats()).toMatchObject({ requests: 3, completions: 2, embeddings: 1, responses: 1 });
  });

  it('refuses a call without api-version (400) or without a key (401), as Azure does', async () => {
    const url = `${endpoint}/openai/deployments/gpt-4o-mini/chat/completions`;
    const body = JSON.stringify({ messages });
    const noVersion = await fetch(url, { method: 'POST', headers: { 'api-key': 'k', 'content-type': 'application/json' }, body });
    expect(noVersion.status).toBe(400);
    expect(((await noVersion.json()) as { error: { param: string } }).error.param).toBe('api-version');
    const noKey = await fetch(`${url}?api-version=${apiVersion}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(noKey.status).toBe(401);
    const ok = await fetch(`${url}?api-version=${apiVersion}`, { method: 'POST', headers: { 'api-key': 'k', 'content-type': 'application/json' }, body });
    expect(ok.status).toBe(200);
    expect(sim.stats()).toMatchObject({ requests: 3, completions: 1, errors: 2 });
  });

  it('answers a deployment not named after a served model 404 model_not_found', async () => {
    const err = await azure('my-gpt')
      .chat.completions.create({ model: 'gpt-4o', messages })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});
