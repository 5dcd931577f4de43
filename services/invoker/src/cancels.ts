import type { Usage } from '@sluice/contracts';
import { countText } from '@sluice/tokens';

/** How long a cancel for a request this replica has not seen yet is remembered. */
const REMEMBER_CANCEL_MS = 2 * 60_000;
/** At most this many such cancels are remembered (the oldest are forgotten first). */
const REMEMBERED_CANCELS = 10_000;

/**
 * The cancels of client requests (`Subjects.cancelAll`, core NATS), by request id. Every replica
 * hears every cancel: the one running the request aborts it at once; the others remember it
 * for `REMEMBER_CANCEL_MS`, so a request whose cancel overtook it (the client gave up while it
 * was still queued in the stream) is cancelled as soon as it arrives, on whichever replica.
 * The memory is bounded: a flood of cancels for unknown ids forgets the oldest first.
 *
 * @example
 * const cancels = new Cancels(Date.now);
 * const signal = cancels.watch('r1'); // aborted when `cancels.cancel('r1')` runs, or already was
 * cancels.done('r1');
 */
export class Cancels {
  private readonly running = new Map<string, AbortController>();
  /** Request id -> when its cancel arrived; insertion order is arrival order. */
  private readonly early = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly rememberMs = REMEMBER_CANCEL_MS,
    private readonly capacity = REMEMBERED_CANCELS,
  ) {}

  /** A client cancelled `requestId`: abort it if it runs here, else remember the cancel. */
  cancel(requestId: string): void {
    const running = this.running.get(requestId);
    if (running) {
      running.abort();
      return;
    }
    this.forgetOld();
    this.early.delete(requestId);
    this.early.set(requestId, this.now());
    if (this.early.size > this.capacity) this.early.delete(this.early.keys().next().value!);
  }

  /** The signal that aborts `requestId`'s work: already aborted when its cancel came first. */
  watch(requestId: string): AbortSignal {
    const controller = new AbortController();
    this.running.set(requestId, controller);
    const at = this.early.get(requestId);
    if (at !== undefined) {
      this.early.delete(requestId);
      if (this.now() - at <= this.rememberMs) controller.abort();
    }
    return controller.signal;
  }

  /** The request ended here; a later cancel for it is remembered like any unknown one. */
  done(requestId: string): void {
    this.running.delete(requestId);
  }

  private forgetOld(): void {
    const cutoff = this.now() - this.rememberMs;
    for (const [id, at] of this.early) {
      if (at >= cutoff) break;
      this.early.delete(id);
    }
  }
}

/** What the client received of an answer before it left: the upstream's usage if it sent one, and the text. */
export interface Streamed {
  usage?: Usage;
  /** Content, refusal and tool arguments streamed so far. */
  text: string;
}

/**
 * What a cancelled request is billed: the upstream's usage when it sent one, else the prompt as
 * ingress counted it plus the streamed text counted with the tokenizer (`counted`). Nothing when
 * no upstream call was running (the cancel came first, or during a backoff wait). Pure.
 *
 * @example
 * cancelledUsage({ text: 'Hello there' }, 12) // { usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 }, counted: true }
 */
export function cancelledUsage(streamed: Streamed | undefined, promptTokens: number): { usage: Usage; counted: boolean } {
  if (streamed === undefined) return { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, counted: false };
  if (streamed.usage !== undefined) return { usage: streamed.usage, counted: false };
  const completion = countText(streamed.text);
  return { usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion }, counted: true };
}
