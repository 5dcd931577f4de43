import { describe, expect, it } from 'vitest';
import { audioTokens } from './audio.js';

/** A PCM WAV of `seconds` at `rate` Hz, 16-bit mono, with optional chunks before its data. */
function wav(seconds: number, rate: number, before: Buffer[] = []): Buffer {
  const data = Buffer.alloc(Math.round(seconds * rate) * 2);
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(1, 8); // PCM
  fmt.writeUInt16LE(1, 10); // mono
  fmt.writeUInt32LE(rate, 12);
  fmt.writeUInt32LE(rate * 2, 16); // byte rate
  fmt.writeUInt16LE(2, 20); // block align
  fmt.writeUInt16LE(16, 22); // bits a sample
  const dataHeader = Buffer.alloc(8);
  dataHeader.write('data', 0, 'latin1');
  dataHeader.writeUInt32LE(data.length, 4);
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), fmt, ...before, dataHeader, data]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

function list(size: number): Buffer {
  const chunk = Buffer.alloc(8 + size);
  chunk.write('LIST', 0, 'latin1');
  chunk.writeUInt32LE(size, 4);
  return chunk;
}

/** An MP3 of `seconds` at `kbps`, MPEG-1 Layer III, behind an ID3v2 tag of `tag` bytes. */
function mp3(seconds: number, kbps: number, tag = 0): Buffer {
  const id3 = Buffer.alloc(tag ? 10 + tag : 0);
  if (tag) {
    id3.write('ID3', 0, 'latin1');
    id3.set([4, 0, 0, (tag >> 21) & 0x7f, (tag >> 14) & 0x7f, (tag >> 7) & 0x7f, tag & 0x7f], 3);
  }
  const frames = Buffer.alloc((seconds * kbps * 1000) / 8);
  const index = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320].indexOf(kbps);
  frames.set([0xff, 0xfb, (index << 4) | 0x04, 0x00]); // sync, MPEG-1, Layer III, no CRC; 44.1 kHz
  return Buffer.concat([id3, frames]);
}

describe('audioTokens: 1 token per 100 ms of user audio', () => {
  it('times a WAV by its header', () => {
    expect(audioTokens(wav(1, 16_000).toString('base64'), 'wav')).toBe(10);
    expect(audioTokens(wav(2.55, 24_000).toString('base64'), 'wav')).toBe(26);
    expect(audioTokens(`data:audio/wav;base64,${wav(3, 8_000).toString('base64')}`, 'wav')).toBe(30);
  });

  it('walks past chunks before the data, even ones past the bytes read first', () => {
    expect(audioTokens(wav(1, 16_000, [list(100)]).toString('base64'), 'wav')).toBe(10);
    // the data chunk lies past the head: the clip is timed by its whole size, a little high
    expect(audioTokens(wav(1, 16_000, [list(10_000)]).toString('base64'), 'wav')).toBe(14);
  });

  it('times an MP3 by the bitrate of its first frame, past an ID3 tag', () => {
    expect(audioTokens(mp3(2, 128).toString('base64'), 'mp3')).toBe(20);
    expect(audioTokens(mp3(2, 64, 50_000).toString('base64'), 'mp3')).toBe(20);
  });

  it('falls back to 32 kbps for an unknown format or a header it cannot read', () => {
    const fourKilobytes = Buffer.alloc(4_000).toString('base64');
    expect(audioTokens(fourKilobytes, 'flac')).toBe(10);
    expect(audioTokens(fourKilobytes, 'wav')).toBe(10);
    expect(audioTokens(fourKilobytes, 'mp3')).toBe(10);
    expect(audioTokens('', 'wav')).toBe(0);
    expect(audioTokens('data:audio/wav,notbase64', 'wav')).toBe(0);
  });
});
