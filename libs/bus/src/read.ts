import { Topology, eventProblem, type SluiceEvent } from '@sluice/contracts';
import type { Bus } from './connect.js';

/**
 * The `chat.requested` event stored at `seq` in SLUICE_EVENTS, where a request's body is (the
 * one event that carries it; `RequestContext.requestSeq` points at it). One request to the
 * stream's leader (JetStream's STREAM.MSG.GET).
 *
 * @throws Error when the message is gone (stream max age), is not a well-formed chat.requested,
 * or belongs to another request: the caller ends the request rather than send a wrong body.
 */
export async function readRequested(bus: Pick<Bus, 'jsm'>, seq: number, requestId: string): Promise<SluiceEvent<'chat.requested'>> {
  const stored = await bus.jsm.streams.getMessage(Topology.stream.name, { seq });
  if (!stored) throw new Error(`chat.requested of ${requestId} is no longer in ${Topology.stream.name} (sequence ${seq})`);
  const value: unknown = stored.json();
  const problem = eventProblem(value);
  if (problem !== undefined) throw new Error(`sequence ${seq} of ${Topology.stream.name} is not an event: ${problem}`);
  const event = value as SluiceEvent;
  if (event.type !== 'chat.requested' || event.requestId !== requestId) {
    throw new Error(`sequence ${seq} of ${Topology.stream.name} is ${event.type} of ${event.requestId}, not chat.requested of ${requestId}`);
  }
  return event as SluiceEvent<'chat.requested'>;
}
