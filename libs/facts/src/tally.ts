import type { TextMessage } from '@sluice/tokens';

/**
 * What one walk over a body found, before its texts are counted: texts go to @sluice/tokens in
 * one batch (on this thread or a worker), everything else is already a number here. The walk is
 * shared by the sync and async paths, so both count exactly the same things.
 */
export class Tally {
  /** Texts to count, one entry each (no name: a message's name is an entry of its own). */
  readonly texts: TextMessage[] = [];
  /** Per entry of `texts`: is it message content (complexity's length signal)? */
  readonly isContent: boolean[] = [];
  /** Tokens known without counting text: framing, images, audio, files, token ids. */
  fixed = 0;
  images = 0;
  audio = 0;
  /** User-written texts, for complexity's code and keyword signals. */
  readonly userTexts: string[] = [];
  /** User messages (or items). */
  turns = 0;

  /** Queues a text for counting; message content when `isContent`. Skips what is not a string. */
  add(value: unknown, isContent: boolean): void {
    if (typeof value !== 'string' || value.length === 0) return;
    this.texts.push({ content: value });
    this.isContent.push(isContent);
  }
}
