import { bytesAt, decodedLength, payloadStart } from './base64.js';

/**
 * User audio is billed at 1 token per 100 ms (OpenAI's Realtime API guide, "Managing costs":
 * "User audio is 1 token per 100 ms of audio"; gpt-4o-audio in Chat Completions bills input
 * audio the same way). Rounded up to the next whole token.
 */
const TOKENS_PER_SECOND = 10;

/**
 * The byte rate assumed when a clip's own cannot be read (an unknown format, a broken header):
 * 32 kbps, the low end of speech MP3s. Low on purpose: the duration and so the count come out
 * high for any clip of a higher bitrate, and a limit errs toward holding.
 */
const FALLBACK_BYTES_PER_SECOND = 4_000;

const HEAD_BYTES = 4_096;

/**
 * Tokens of one base64 `input_audio` clip (bare base64 or a data URL): WAV by the duration its
 * header gives (data chunk size / byte rate), MP3 by its size over the bitrate of its first
 * frame header (exact for constant bitrate, near for VBR), anything else by its size at 32
 * kbps. Never throws.
 *
 * @example
 * audioTokens(wavOfOneSecond, 'wav') // 10
 */
export function audioTokens(data: string, format: unknown): number {
  const start = payloadStart(data, true);
  if (start < 0) return 0;
  const bytes = decodedLength(data, start);
  const byteRate = (format === 'wav' ? wavRate(data, start, bytes) : format === 'mp3' ? mp3Rate(data, start) : undefined) ?? {
    perSecond: FALLBACK_BYTES_PER_SECOND,
    audioBytes: bytes,
  };
  return Math.ceil((byteRate.audioBytes / byteRate.perSecond) * TOKENS_PER_SECOND);
}

interface Rate {
  perSecond: number;
  audioBytes: number;
}

/** RIFF/WAVE: the byte rate of the `fmt ` chunk and the size of the `data` chunk. */
function wavRate(data: string, start: number, total: number): Rate | undefined {
  const head = bytesAt(data, start, 0, HEAD_BYTES);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 12 || tag(head, 0) !== 'RIFF' || tag(head, 8) !== 'WAVE') return undefined;
  let perSecond: number | undefined;
  for (let at = 12; at + 8 <= head.length;) {
    const id = tag(head, at);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ' && at + 20 <= head.length) perSecond = view.getUint32(at + 16, true);
    // a streamed WAV writes 0 or 0xFFFFFFFF as its data size: the rest of the clip is audio
    if (id === 'data') return perSecond ? { perSecond, audioBytes: Math.min(size || Infinity, total - at - 8) } : undefined;
    at += 8 + size + (size % 2);
  }
  return perSecond ? { perSecond, audioBytes: total } : undefined;
}

// kbps by bitrate index, Layer III: MPEG-1, then MPEG-2 and 2.5 (ISO/IEC 11172-3, 13818-3)
const MPEG1_KBPS = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MPEG2_KBPS = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/** MP3: past an ID3v2 tag, the bitrate of the first Layer III frame header. */
function mp3Rate(data: string, start: number): Rate | undefined {
  const total = decodedLength(data, start);
  let offset = 0;
  const id3 = bytesAt(data, start, 0, 10);
  if (id3.length === 10 && tag(id3, 0, 3) === 'ID3') {
    // syncsafe size: 7 bits a byte; a footer adds 10 more
    offset = 10 + ((id3[6]! << 21) | (id3[7]! << 14) | (id3[8]! << 7) | id3[9]!) + (id3[5]! & 0x10 ? 10 : 0);
  }
  const head = bytesAt(data, start, offset, HEAD_BYTES);
  for (let i = 0; i + 2 < head.length; i++) {
    if (head[i] !== 0xff || (head[i + 1]! & 0xe0) !== 0xe0) continue;
    const version = (head[i + 1]! >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    const layer = (head[i + 1]! >> 1) & 3; // 1: Layer III
    const kbps = (version === 3 ? MPEG1_KBPS : MPEG2_KBPS)[head[i + 2]! >> 4];
    if (version === 1 || layer !== 1 || !kbps) continue;
    return { perSecond: (kbps * 1000) / 8, audioBytes: Math.max(0, total - offset - i) };
  }
  return undefined;
}

function tag(bytes: Uint8Array, at: number, length = 4): string {
  return String.fromCharCode(...bytes.subarray(at, at + length));
}
