import type { NatsConnection } from '@nats-io/transport-node';
import type { ChatReply } from '@sluice/contracts';

const encoder = new TextEncoder();

/**
 * Sends one reply message to a client's inbox over core NATS. Fire and forget by design: the
 * terminal event is already in the stream, so a client that went away loses nothing it cannot
 * fetch later.
 */
export function sendReply(nc: NatsConnection, replyTo: string | undefined, reply: ChatReply): void {
  if (!replyTo) return;
  try {
    nc.publish(replyTo, encoder.encode(JSON.stringify(reply)));
  } catch {
    // connection closing: the answer is in the stream
  }
}
