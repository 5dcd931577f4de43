import { audioTokens } from './audio.js';
import { decodedLength, payloadStart } from './base64.js';
import { imageTokens } from './image.js';
import { isObject, jsonText, text } from './shapes.js';
import type { Tally } from './tally.js';

/**
 * A file's cost, in bytes per token, for inline file data (a PDF, mostly). OpenAI's file-inputs
 * guide says a PDF reaches the model as its extracted text plus an image of each page, with
 * no formula; a text page of ~3 KB then costs ~1,000 tokens (text and a page image), about
 * what 3 bytes a token gives. Conservative for files heavy in images or fonts, which count far
 * more than they will cost; counting the bytes is cheap and needs no PDF parser.
 */
const FILE_BYTES_PER_TOKEN = 3;

/**
 * Adds a message's content: a string, or an array of parts (chat `text`, `image_url`,
 * `input_audio`, `file`, `refusal`; Responses `input_text`, `output_text`, `input_image`,
 * `input_file`, `input_audio`, `refusal`). A part of a type not listed, or of a listed type
 * without its field, counts as its JSON text; a part that is not an object is skipped;
 * null/undefined content adds nothing. `user`: whether a user wrote it (complexity).
 */
export function addContent(tally: Tally, content: unknown, user: boolean): void {
  if (content === undefined || content === null) return;
  if (typeof content === 'string') return addText(tally, content, user);
  if (!Array.isArray(content)) return tally.add(jsonText(content), false);
  for (const part of content) if (isObject(part)) addPart(tally, part, user);
}

function addPart(tally: Tally, part: Record<string, unknown>, user: boolean): void {
  switch (part.type) {
    case 'text':
    case 'input_text':
    case 'output_text':
      if (typeof part.text === 'string') return addText(tally, part.text, user);
      break;
    case 'refusal':
      if (typeof part.refusal === 'string') return tally.add(part.refusal, true);
      break;
    case 'image_url':
      if (isObject(part.image_url)) return addImage(tally, text(part.image_url.url), part.image_url.detail);
      break;
    case 'input_image':
      return addImage(tally, text(part.image_url), part.detail);
    case 'input_audio':
      if (isObject(part.input_audio) && typeof part.input_audio.data === 'string') {
        tally.audio++;
        tally.fixed += audioTokens(part.input_audio.data, part.input_audio.format);
        return;
      }
      break;
    case 'file':
      if (isObject(part.file)) return addFile(tally, part.file);
      break;
    case 'input_file':
      return addFile(tally, part);
  }
  tally.add(jsonText(part), false);
}

function addText(tally: Tally, value: string, user: boolean): void {
  tally.add(value, true);
  if (user) tally.userTexts.push(value);
}

function addImage(tally: Tally, url: string | undefined, detail: unknown): void {
  tally.images++;
  tally.fixed += imageTokens(url, detail);
}

/**
 * Inline `file_data` (base64, bare or a data URL) at FILE_BYTES_PER_TOKEN; a file known only
 * by `file_id` or `file_url` is out of Sluice's sight and counts as the JSON text of its
 * reference. The filename counts as text.
 */
function addFile(tally: Tally, file: Record<string, unknown>): void {
  const data = text(file.file_data);
  const start = data === undefined ? -1 : payloadStart(data, true);
  if (data === undefined || start < 0) return tally.add(jsonText(file), false);
  tally.fixed += Math.ceil(decodedLength(data, start) / FILE_BYTES_PER_TOKEN);
  tally.add(file.filename, false);
}
