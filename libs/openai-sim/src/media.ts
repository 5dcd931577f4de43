import { imageSize } from 'image-size';
import { type ApiError, invalidRequest } from './errors.js';
import { isRecord } from './util.js';

/**
 * OpenAI's image rule (gpt-4o family, "Calculating costs" in the vision guide):
 * `detail: 'low'` costs a flat 85 tokens; `high` / `auto` fit the image in
 * 2048×2048, then scale its shortest side down to 768 px, and cost 170 per
 * 512-px tile plus 85. (gpt-4o-mini bills the same tiles at 33× these
 * numbers; the simulator uses one rule for every model.)
 */
const IMAGE_BASE_TOKENS = 85;
const IMAGE_TILE_TOKENS = 170;
const MAX_SIDE = 2048;
const SHORT_SIDE = 768;
const TILE = 512;
/**
 * The simulator never fetches a remote image; one by URL counts as a 1024×1024
 * image: 765 tokens at high/auto (2×2 tiles after scaling to 768×768), 85 at low.
 */
const REMOTE_IMAGE_SIDE = 1024;
/**
 * Input audio tokens per second of audio: 1 token per 100 ms, the rate OpenAI
 * gives for user audio in its Realtime API cost guide (audio is not otherwise
 * published per second). WAV duration comes from the header (data bytes /
 * byte rate); mp3, whose frames would need decoding, is taken as 128 kbit/s.
 */
export const AUDIO_TOKENS_PER_SECOND = 10;
const MP3_BYTES_PER_SECOND = 128_000 / 8;

/** Image and audio tokens of a prompt; both are part of `prompt_tokens`, audio also shows in `audio_tokens`. */
export interface MediaTokens {
  image: number;
  audio: number;
}

const IMAGE_TYPES: ReadonlySet<string> = new Set(['png', 'jpg', 'gif', 'webp']);
const UNSUPPORTED_IMAGE = "You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].";

/**
 * Counts every `image_url` and `input_audio` part of the messages (chat-shaped
 * content); `field` names the request field they came from, for error params.
 */
export function mediaTokens(messages: readonly { content?: unknown }[], field = 'messages'): MediaTokens | ApiError {
  let image = 0;
  let audio = 0;
  for (let i = 0; i < messages.length; i++) {
    const content = messages[i]?.content;
    if (!Array.isArray(content)) continue;
    for (let j = 0; j < content.length; j++) {
      const part: unknown = content[j];
      if (!isRecord(part)) continue;
      const at = `${field}[${i}].content[${j}]`;
      if (part.type === 'image_url') {
        const n = imagePartTokens(part.image_url, at);
        if (typeof n !== 'number') return n;
        image += n;
      } else if (part.type === 'input_audio') {
        const n = audioPartTokens(part.input_audio, at);
        if (typeof n !== 'number') return n;
        audio += n;
      }
    }
  }
  return { image, audio };
}

/** Tokens of an image `width`×`height` at `detail`, by OpenAI's tile rule. */
export function imageTokens(width: number, height: number, detail: string): number {
  if (detail === 'low') return IMAGE_BASE_TOKENS;
  let w = width;
  let h = height;
  if (w > MAX_SIDE || h > MAX_SIDE) {
    const s = MAX_SIDE / Math.max(w, h);
    w *= s;
    h *= s;
  }
  if (Math.min(w, h) > SHORT_SIDE) {
    const s = SHORT_SIDE / Math.min(w, h);
    w *= s;
    h *= s;
  }
  return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * Math.ceil(Math.floor(w) / TILE) * Math.ceil(Math.floor(h) / TILE);
}

/** Tokens of `seconds` of input audio. */
function audioTokens(seconds: number): number {
  return Math.ceil(seconds * AUDIO_TOKENS_PER_SECOND);
}

/** The duration of a WAV file from its RIFF header, or undefined when it is not one. */
export function wavSeconds(bytes: Buffer): number | undefined {
  if (bytes.length < 12 || bytes.toString('ascii', 0, 4) !== 'RIFF' || bytes.toString('ascii', 8, 12) !== 'WAVE') return undefined;
  let byteRate = 0;
  for (let at = 12; at + 8 <= bytes.length;) {
    const id = bytes.toString('ascii', at, at + 4);
    const size = bytes.readUInt32LE(at + 4);
    if (id === 'fmt ' && at + 16 <= bytes.length) byteRate = bytes.readUInt32LE(at + 16);
    if (id === 'data') {
      if (byteRate === 0) return undefined;
      // Streamed WAVs leave the size at 0 or 0xFFFFFFFF: count what is there.
      return Math.min(size, bytes.length - at - 8) / byteRate;
    }
    at += 8 + size + (size % 2);
  }
  return undefined;
}

function imagePartTokens(image: unknown, at: string): number | ApiError {
  const url = typeof image === 'string' ? image : isRecord(image) ? image.url : undefined;
  const detail = isRecord(image) && typeof image.detail === 'string' ? image.detail : 'auto';
  if (typeof url !== 'string' || url === '') {
    return invalidRequest(`Missing required parameter: '${at}.image_url.url'.`, `${at}.image_url.url`, 'missing_required_parameter');
  }
  if (!url.startsWith('data:')) return imageTokens(REMOTE_IMAGE_SIDE, REMOTE_IMAGE_SIDE, detail);
  const comma = url.indexOf(',');
  if (comma < 0 || !url.slice(0, comma).endsWith(';base64')) return invalidRequest(UNSUPPORTED_IMAGE, null, 'invalid_image_format');
  let size: ReturnType<typeof imageSize>;
  try {
    size = imageSize(Buffer.from(url.slice(comma + 1), 'base64'));
  } catch {
    return invalidRequest(UNSUPPORTED_IMAGE, null, 'invalid_image_format');
  }
  // image-size knows many more formats (a few zero bytes pass as a 0×0 TGA); OpenAI takes these four.
  if (!IMAGE_TYPES.has(size.type ?? '') || !(size.width > 0 && size.height > 0)) return invalidRequest(UNSUPPORTED_IMAGE, null, 'invalid_image_format');
  return imageTokens(size.width, size.height, detail);
}

function audioPartTokens(audio: unknown, at: string): number | ApiError {
  if (!isRecord(audio) || typeof audio.data !== 'string') {
    return invalidRequest(`Missing required parameter: '${at}.input_audio.data'.`, `${at}.input_audio.data`, 'missing_required_parameter');
  }
  const bytes = Buffer.from(audio.data, 'base64');
  if (audio.format === 'mp3') return audioTokens(bytes.length / MP3_BYTES_PER_SECOND);
  if (audio.format !== 'wav') {
    return invalidRequest(`Invalid value for '${at}.input_audio.format': expected one of 'wav', 'mp3'.`, `${at}.input_audio.format`, 'invalid_value');
  }
  const seconds = wavSeconds(bytes);
  if (seconds === undefined) return invalidRequest('The audio data could not be decoded as WAV.', `${at}.input_audio.data`, 'invalid_value');
  return audioTokens(seconds);
}
