/**
 * Where the base64 payload of a `data:<type>;base64,<payload>` URL starts, 0 for a bare base64
 * string (`bare`), -1 for anything else (a remote URL, a non-base64 data URL).
 */
export function payloadStart(value: string, bare: boolean): number {
  if (!value.startsWith('data:')) return bare ? 0 : -1;
  // the header is short; a long string without a comma early is not one we can read
  const comma = value.slice(0, 256).indexOf(',');
  return comma > 0 && value.slice(0, comma).endsWith(';base64') ? comma + 1 : -1;
}

/** Bytes the base64 payload from `start` decodes to (whitespace inside is not expected). */
export function decodedLength(value: string, start: number): number {
  let padding = 0;
  if (value.endsWith('==')) padding = 2;
  else if (value.endsWith('=')) padding = 1;
  return Math.max(0, Math.floor(((value.length - start) * 3) / 4) - padding);
}

/**
 * Up to `length` decoded bytes of the payload from byte `offset`, decoding only the chars that
 * hold them: a header is read without decoding a 20 MB image.
 */
export function bytesAt(value: string, start: number, offset: number, length: number): Uint8Array {
  const block = Math.floor(offset / 3);
  const from = start + block * 4;
  const to = Number.isFinite(length) ? from + Math.ceil((offset - block * 3 + length) / 3) * 4 : value.length;
  return Buffer.from(value.slice(from, to), 'base64').subarray(offset - block * 3, offset - block * 3 + length);
}
