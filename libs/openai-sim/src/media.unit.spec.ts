import { describe, expect, it } from 'vitest';
import { type ChatPlan, completionBody, planChat, usageOf } from './completion.js';
import { REFUSAL_TEXT } from './reply.js';
import { isApiError } from './errors.js';
import { dataUrl, gif, jpeg, png, wav, webp } from './media.fixtures.js';
import { AUDIO_TOKENS_PER_SECOND, imageTokens, mediaTokens, wavSeconds } from './media.js';
import { streamFrames } from './stream.js';
import { countPromptTokens } from './tokens.js';

const MODELS = new Set(['gpt-4o-mini']);
const image = (url: string, detail?: string) => ({ role: 'user', content: [{ type: 'image_url', image_url: { url, detail } }] });
const audio = (data: Buffer, format = 'wav') => ({ role: 'user', content: [{ type: 'input_audio', input_audio: { data: data.toString('base64'), format } }] });

describe('imageTokens (OpenAI tile rule)', () => {
  it("matches the vision guide's worked examples", () => {
    // 1024×1024 high: 768×768 → 2×2 tiles
    expect(imageTokens(1024, 1024, 'high')).toBe(765);
    // 2048×4096 high: fit to 1024×2048, shortest side to 768 → 768×1536 → 2×3 tiles
    expect(imageTokens(2048, 4096, 'high')).toBe(1105);
    // any size at low
    expect(imageTokens(4096, 8192, 'low')).toBe(85);
  });

  it('does not scale small images up, and treats auto as high', () => {
    expect(imageTokens(100, 100, 'auto')).toBe(85 + 170);
    expect(imageTokens(513, 300, 'auto')).toBe(85 + 2 * 170);
  });
});

describe('mediaTokens', () => {
  it('reads dimensions from PNG, JPEG, GIF and WebP data URLs', () => {
    // 1000×3000 fits in 2048 as 682×2048: shortest side already under 768 → 2×4 tiles
    for (const [mime, bytes] of [
      ['image/png', png(1000, 3000)],
      ['image/jpeg', jpeg(1000, 3000)],
      ['image/gif', gif(1000, 3000)],
      ['image/webp', webp(1000, 3000)],
    ] as const) {
      expect(mediaTokens([image(dataUrl(mime, bytes))])).toEqual({ image: 85 + 8 * 170, audio: 0 });
    }
    expect(mediaTokens([image(dataUrl('image/png', png(4000, 4000)), 'low')])).toEqual({ image: 85, audio: 0 });
  });

  it('counts a remote image as 1024×1024 without fetching it', () => {
    expect(mediaTokens([image('https://example.invalid/cat.png')])).toEqual({ image: 765, audio: 0 });
    expect(mediaTokens([image('https://example.invalid/cat.png', 'low')])).toEqual({ image: 85, audio: 0 });
  });

  it('rejects a data URL that is not an image with invalid_image_format', () => {
    for (const bytes of [Buffer.from('not an image at all'), Buffer.alloc(3), Buffer.from('BM')]) {
      expect(mediaTokens([image(dataUrl('image/png', bytes))])).toMatchObject({ status: 400, body: { error: { code: 'invalid_image_format' } } });
    }
    expect(mediaTokens([image('data:image/png,rawtext')])).toMatchObject({ status: 400 });
  });

  it('counts audio by duration: WAV from its header, mp3 at 128 kbit/s', () => {
    expect(wavSeconds(wav(2.5))).toBe(2.5);
    expect(wavSeconds(wav(1, 44_100))).toBe(1);
    expect(mediaTokens([audio(wav(2.5))])).toEqual({ image: 0, audio: 2.5 * AUDIO_TOKENS_PER_SECOND });
    expect(mediaTokens([audio(Buffer.alloc(32_000), 'mp3')])).toEqual({ image: 0, audio: 2 * AUDIO_TOKENS_PER_SECOND });
    expect(mediaTokens([audio(Buffer.from('RIFFxxxx'))])).toMatchObject({ status: 400 });
    expect(mediaTokens([audio(wav(1), 'flac')])).toMatchObject({ status: 400, body: { error: { code: 'invalid_value' } } });
  });
});

describe('chat prompt usage with media', () => {
  it('adds image and audio tokens to prompt_tokens, and audio to prompt_tokens_details', () => {
    const messages = [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in this picture and this recording?' },
          ...image(dataUrl('image/png', png(512, 512))).content,
          ...audio(wav(3)).content,
        ],
      },
    ];
    const p = planChat({ model: 'gpt-4o-mini', messages }, MODELS) as ChatPlan;
    expect(isApiError(p)).toBe(false);
    const audioTokens = 3 * AUDIO_TOKENS_PER_SECOND;
    expect(p.promptTokens).toBe(countPromptTokens(messages) + 255 + audioTokens);
    expect(usageOf(p).prompt_tokens_details).toEqual({ cached_tokens: 0, audio_tokens: audioTokens });
  });
});

describe('refusals', () => {
  const messages = [{ role: 'user', content: 'Please SIM_REFUSE this request' }];
  type Msg = { content: string | null; refusal: string | null };

  it('answers content null and the refusal text, even when a tool or a format is asked for', () => {
    for (const extra of [{}, { response_format: { type: 'json_object' } }, { tools: [{ type: 'function', function: { name: 'f' } }] }]) {
      const p = planChat({ model: 'gpt-4o-mini', messages, ...extra }, MODELS) as ChatPlan;
      const body = completionBody(p, 'chatcmpl-x', 1) as { choices: { message: Msg; finish_reason: string }[] };
      expect(body.choices[0]?.message).toMatchObject({ content: null, refusal: REFUSAL_TEXT });
      expect(body.choices[0]?.finish_reason).toBe('stop');
    }
  });

  it('streams refusal deltas that add up to the refusal, with their logprobs under refusal', () => {
    const p = planChat({ model: 'gpt-4o-mini', messages, stream: true, logprobs: true }, MODELS) as ChatPlan;
    type Delta = { delta: { content?: string | null; refusal?: string | null }; logprobs: { content: null; refusal: { token: string }[] } | null };
    const deltas = streamFrames(p, 'chatcmpl-x', 1)
      .map((f) => f.text.slice(6, -2))
      .filter((t) => t !== '[DONE]')
      .map((t) => (JSON.parse(t) as { choices: Delta[] }).choices[0] as Delta);
    expect(deltas[0]?.delta).toEqual({ role: 'assistant', content: null, refusal: '' });
    const body = deltas.slice(1, -1);
    expect(body.map((d) => d.delta.refusal).join('')).toBe(REFUSAL_TEXT);
    for (const d of body) expect(d.delta.content).toBeUndefined();
    expect(
      body
        .flatMap((d) => d.logprobs?.refusal ?? [])
        .map((e) => e.token)
        .join(''),
    ).toBe(REFUSAL_TEXT);
  });
});
