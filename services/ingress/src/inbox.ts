import { createInbox, type NatsConnection } from '@nats-io/transport-node';
import { isChunk, type ChatReply } from '@sluice/contracts';
import type { Logger } from '@sluice/telemetry';

/** What `next()` yields: a reply, or why there will be none. */
type Awaited = { kind: 'reply'; reply: ChatReply } | { kind: 'deadline' } | { kind: 'closed' };

/** The replies of one HTTP request, in arrival order. */
export interface PendingReplies {
  /** The subject the terminal stage answers on (`ctx.replyTo`). */
  readonly subject: string;
  next(): Promise<Awaited>;
  /** Stops listening (answered, client gone, or deadline); later replies are dropped. */
  close(): void;
}

export interface ReplyInbox {
  /** The subject a request's replies come to (its `ctx.replyTo`), before listening. */
  subjectFor(requestId: string): string;
  /** Starts listening for a request's replies; call before publishing the request. */
  listen(requestId: string, deadline: number): PendingReplies;
  /** Requests still waiting. */
  size(): number;
  stop(): Promise<void>;
}

const decoder = new TextDecoder();

/**
 * One wildcard subscription `<prefix>.>` for every in-flight HTTP request, dispatching by the
 * subject's last token (the request id). A subscription per request would cost a SUB/UNSUB
 * round with the server on every request.
 */
export function openReplyInbox(nc: NatsConnection, log: Logger): ReplyInbox {
  const prefix = createInbox();
  const pending = new Map<string, Queue>();
  const sub = nc.subscribe(`${prefix}.>`, {
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, 'reply inbox subscription failed');
        return;
      }
      const requestId = msg.subject.slice(prefix.length + 1);
      const queue = pending.get(requestId);
      if (!queue) {
        log.debug({ requestId }, 'dropping a reply nobody waits for (answered, deadline passed or client gone)');
        return;
      }
      let reply: ChatReply;
      try {
        reply = JSON.parse(decoder.decode(msg.data)) as ChatReply;
      } catch (e) {
        log.error({ err: e, requestId }, 'dropping a malformed reply');
        return;
      }
      queue.push({ kind: 'reply', reply });
    },
  });

  return {
    subjectFor: (requestId) => `${prefix}.${requestId}`,
    listen(requestId, deadline) {
      const queue = new Queue(`${prefix}.${requestId}`, deadline, () => pending.delete(requestId));
      pending.set(requestId, queue);
      return queue;
    },
    size: () => pending.size,
    async stop() {
      for (const q of pending.values()) q.push({ kind: 'closed' });
      await sub.drain().catch(() => undefined);
    },
  };
}

class Queue implements PendingReplies {
  private readonly items: Awaited[] = [];
  private waiter: ((a: Awaited) => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private done = false;

  constructor(
    readonly subject: string,
    deadline: number,
    private readonly onClose: () => void,
  ) {
    this.timer = setTimeout(() => this.push({ kind: 'deadline' }), Math.max(0, deadline - Date.now()));
  }

  push(a: Awaited): void {
    if (this.done) return;
    // a final reply or the end ends the queue; chunks keep it open
    if (a.kind !== 'reply' || !isChunk(a.reply)) this.finish();
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(a);
    } else {
      this.items.push(a);
    }
  }

  next(): Promise<Awaited> {
    const a = this.items.shift();
    if (a) return Promise.resolve(a);
    if (this.done) return Promise.resolve({ kind: 'closed' });
    return new Promise((resolve) => (this.waiter = resolve));
  }

  close(): void {
    this.push({ kind: 'closed' });
  }

  private finish(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.onClose();
  }
}

/**
 * One reply already in hand as `PendingReplies` (a retry's stored answer, `Idempotency-Key`), so
 * it is answered exactly as the first try would have been: whole or as the stream it stands for.
 */
export function repliesOf(reply: ChatReply): PendingReplies {
  let given = false;
  return {
    subject: '',
    next: () => {
      if (given) return Promise.resolve({ kind: 'closed' });
      given = true;
      return Promise.resolve({ kind: 'reply', reply });
    },
    close: () => {
      given = true;
    },
  };
}
