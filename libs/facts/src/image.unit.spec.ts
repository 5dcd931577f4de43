import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { imageTokens, tileTokens, UNKNOWN_IMAGE_TOKENS } from './image.js';

/** A real PNG: signature, IHDR, one IDAT of blank 8-bit grey rows, IEND (each chunk with its CRC). */
function png(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const framed = Buffer.alloc(body.length + 8);
    framed.writeUInt32BE(data.length, 0);
    body.copy(framed, 4);
    framed.writeUInt32BE(crc32(body), body.length + 4);
    return framed;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit greyscale, deflate, no filter, no interlace
  const rows = Buffer.alloc((width + 1) * height); // each row: filter byte 0, then its pixels
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A GIF's logical screen descriptor is all the library reads. */
function gif(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'latin1');
  header.writeUInt16LE(width, 6);
  header.writeUInt16LE(height, 8);
  return Buffer.concat([header, Buffer.from([0x3b])]);
}

/** A JPEG whose frame header (SOF0) follows `segments` APP1 segments of ~60 kB each (EXIF, ICC profiles and thumbnails do this). */
function jpeg(width: number, height: number, segments: number): Buffer {
  const app = Buffer.alloc(60_002);
  app.set([0xff, 0xe1, 0xea, 0x60]); // APP1, length 60,000 (its length bytes included)
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), ...Array.from({ length: segments }, () => app), sof, Buffer.from([0xff, 0xd9])]);
}

const dataUrl = (bytes: Buffer, type = 'image/png') => `data:${type};base64,${bytes.toString('base64')}`;

describe('imageTokens, by the worked examples of OpenAI\'s vision guide ("Calculating costs")', () => {
  it('a 1024 × 1024 image at high detail is 765 tokens (768 × 768, 4 tiles)', () => {
    expect(imageTokens(dataUrl(png(1024, 1024)), 'high')).toBe(765);
  });

  it('a 2048 × 4096 image at high detail is 1105 tokens (1024 × 2048, then 768 × 1536, 6 tiles)', () => {
    expect(imageTokens(dataUrl(png(2048, 4096)), 'high')).toBe(1105);
  });

  it('any image at low detail is 85 tokens', () => {
    expect(imageTokens(dataUrl(png(4096, 8192)), 'low')).toBe(85);
    expect(imageTokens('https://example.com/cat.png', 'low')).toBe(85);
  });
});

describe('imageTokens', () => {
  it('treats auto, a missing detail and an unknown one as high', () => {
    const url = dataUrl(png(1024, 1024));
    for (const detail of ['auto', undefined, 'ultra']) expect(imageTokens(url, detail)).toBe(765);
  });

  it('does not scale a small image up', () => {
    expect(imageTokens(dataUrl(png(512, 512)), 'high')).toBe(255);
    expect(imageTokens(dataUrl(gif(100, 600)), 'high')).toBe(85 + 170 * 2);
  });

  it("counts 'original' at the image's own size", () => {
    expect(imageTokens(dataUrl(png(4096, 4096)), 'original')).toBe(85 + 170 * 64);
  });

  it('prices an image it cannot measure at the most a high-detail image costs', () => {
    expect(UNKNOWN_IMAGE_TOKENS).toBe(1445);
    expect(tileTokens(768, 2048, false)).toBe(UNKNOWN_IMAGE_TOKENS);
    for (const url of ['https://example.com/cat.png', 'data:image/png;base64,bm90IGFuIGltYWdl', 'data:image/png,rawbytes', undefined]) {
      expect(imageTokens(url, 'high')).toBe(1445);
    }
  });

  it('reads a large image by its head, and a JPEG whose size marker lies past it', () => {
    expect(imageTokens(dataUrl(Buffer.concat([png(2048, 4096), Buffer.alloc(200_000)])), 'high')).toBe(1105);
    expect(imageTokens(dataUrl(jpeg(1024, 1024, 3), 'image/jpeg'), 'high')).toBe(765);
  });
});
