import { imageSize } from 'image-size';
import { bytesAt, payloadStart } from './base64.js';

// OpenAI's vision guide ("Images and vision", section "Calculating costs", for the gpt-4o,
// gpt-4.1 and o-series family billed by 512 px tiles): a low-detail image is a flat 85 tokens;
// at high detail the image is scaled to fit 2048 × 2048, then so that its shortest side is
// 768 px, and costs 170 per 512 px tile plus 85.
const BASE_TOKENS = 85;
const TILE_TOKENS = 170;
const TILE = 512;
const FIT = 2048;
const SHORT_SIDE = 768;

/**
 * What an image counts when its size cannot be read (a remote URL, a file id, bytes the image
 * library does not know): the most any image costs at high detail, 1,445 tokens (8 tiles: 768
 * × 2048 after scaling). A limit must not be overrun by an image Sluice cannot see, so the
 * unknown is priced at its ceiling rather than at a typical size; fetching the URL to learn
 * its size would put a network call on the request path.
 */
export const UNKNOWN_IMAGE_TOKENS = BASE_TOKENS + TILE_TOKENS * Math.ceil(SHORT_SIDE / TILE) * Math.ceil(FIT / TILE);

// enough for a PNG, GIF, WebP or BMP header and for a JPEG whose size marker follows modest
// EXIF data; a JPEG whose marker comes later is decoded whole
const HEAD_BYTES = 64 * 1024;

/**
 * Tokens of one image part. `detail`: 'low' (85), 'high' or 'auto' (the tile formula; 'auto'
 * lets the model choose, so the dearer one is assumed), 'original' (Responses API: tiles at the
 * image's own size, no downscaling), anything else as 'auto'. Width and height come from a
 * base64 data URL's bytes; otherwise UNKNOWN_IMAGE_TOKENS. Never throws.
 *
 * @example
 * imageTokens('https://example.com/cat.png', 'low') // 85
 */
export function imageTokens(url: string | undefined, detail: unknown): number {
  if (detail === 'low') return BASE_TOKENS;
  const size = url === undefined ? undefined : dataUrlSize(url);
  return size ? tileTokens(size.width, size.height, detail === 'original') : UNKNOWN_IMAGE_TOKENS;
}

/**
 * The high-detail cost of a `width` × `height` image (pixels), by OpenAI's tile formula;
 * `original` skips the scaling.
 *
 * @example
 * tileTokens(1024, 1024, false) // 765: scaled to 768 × 768, 4 tiles
 */
export function tileTokens(width: number, height: number, original: boolean): number {
  let w = width;
  let h = height;
  if (!original) {
    const fit = Math.min(1, FIT / Math.max(w, h));
    w *= fit;
    h *= fit;
    const short = Math.min(1, SHORT_SIDE / Math.min(w, h));
    w *= short;
    h *= short;
  }
  return BASE_TOKENS + TILE_TOKENS * Math.ceil(Math.round(w) / TILE) * Math.ceil(Math.round(h) / TILE);
}

function dataUrlSize(url: string): { width: number; height: number } | undefined {
  const start = payloadStart(url, false);
  if (start < 0) return undefined;
  for (const length of [HEAD_BYTES, Infinity]) {
    try {
      const { width, height } = imageSize(bytesAt(url, start, 0, length));
      if (width > 0 && height > 0) return { width, height };
    } catch {
      // unknown or truncated: try the whole image, then give up
    }
    if ((url.length - start) * 0.75 <= HEAD_BYTES) break;
  }
  return undefined;
}
