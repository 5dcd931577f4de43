import { errors } from '@nats-io/transport-node';

/**
 * Runs `attempt` until it resolves, backing off 100 ms doubling up to 2 s between tries, for at most
 * `retryForMs`; then rethrows the last error. For JetStream writes that carry their own dedupe
 * (a msg id, a KV key), so trying again never doubles anything. An invalid argument (a message
 * over the server's max_payload, a bad subject) fails the same way every time: rethrown at once.
 */
export async function retryFor<T>(retryForMs: number, attempt: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + retryForMs;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (e instanceof errors.InvalidArgumentError || Date.now() >= giveUpAt) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** i)));
    }
  }
}
