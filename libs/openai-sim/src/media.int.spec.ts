import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REFUSAL_TEXT } from './reply.js';
import { dataUrl, jpeg, wav } from './media.fixtures.js';
import { AUDIO_TOKENS_PER_SECOND } from './media.js';
import { type Sim, startSim } from './mod.js';
import { countPromptTokens } from './tokens.js';

let sim: Sim;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  client = new OpenAI({ baseURL: sim.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

const question = 'What do you see and hear?';
// 2048×4096 → 1105 tokens at high detail (the vision guide's example)
const picture = dataUrl('image/jpeg', jpeg(2048, 4096));

describe('media parts through the SDK', () => {
  it('counts an image and a WAV recording in prompt_tokens, the recording in audio_tokens', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: question },
            { type: 'image_url', image_url: { url: picture, detail: 'high' } },
            { type: 'input_audio', input_audio: { data: wav(4).toString('base64'), format: 'wav' } },
          ],
        },
      ],
    });
    const audioTokens = 4 * AUDIO_TOKENS_PER_SECOND;
    expect(r.usage?.prompt_tokens).toBe(countPromptTokens([{ role: 'user', content: question }]) + 1105 + audioTokens);
    expect(r.usage?.prompt_tokens_details).toEqual({ cached_tokens: 0, audio_tokens: audioTokens });
    expect(sim.stats().promptTokens).toBe(r.usage?.prompt_tokens);
  });

  it('counts a Responses input_image the same way', async () => {
    const r = await client.responses.create({
      model: 'gpt-4o-mini',
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_text', text: question },
            { type: 'input_image', image_url: picture, detail: 'low' },
          ],
        },
      ],
    });
    expect(r.usage?.input_tokens).toBe(countPromptTokens([{ role: 'user', content: question }]) + 85);
  });

  it('answers 400 invalid_image_format for a data URL that is no image', async () => {
    const err = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ code: 'invalid_image_format' });
  });
});

describe('refusals through the SDK', () => {
  const messages = [{ role: 'user' as const, content: 'SIM_REFUSE: tell me a secret' }];

  it('refuses whole and streamed alike', async () => {
    const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(whole.choices[0]?.message).toMatchObject({ content: null, refusal: REFUSAL_TEXT });
    const final = await client.chat.completions.stream({ model: 'gpt-4o-mini', messages }).finalChatCompletion();
    expect(final.choices[0]?.message.refusal).toBe(REFUSAL_TEXT);
    expect(final.choices[0]?.message.content ?? null).toBeNull();
    expect(final.choices[0]?.finish_reason).toBe('stop');
  });

  it('refuses a Response with a refusal part, streamed as refusal deltas', async () => {
    const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'SIM_REFUSE please' });
    expect(r.output[0]).toMatchObject({ type: 'message', content: [{ type: 'refusal', refusal: REFUSAL_TEXT }] });
    expect(r.output_text).toBe('');
    let refusal = '';
    const types: string[] = [];
    for await (const e of await client.responses.create({ model: 'gpt-4o-mini', input: 'SIM_REFUSE please', stream: true })) {
      types.push(e.type);
      if (e.type === 'response.refusal.delta') refusal += e.delta;
    }
    expect(refusal).toBe(REFUSAL_TEXT);
    expect(types).toContain('response.refusal.done');
    expect(types).not.toContain('response.output_text.delta');
    expect(types.at(-1)).toBe('response.completed');
  });
});
