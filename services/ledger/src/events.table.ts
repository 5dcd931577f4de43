import type { ColumnType } from 'kysely';

/** One row per event in the stream: the raw material of request timelines. */
export interface EventsTable {
  /** Stream sequence; unique and increasing, so it orders a timeline. */
  seq: ColumnType<number | string, number, never>;
  /** Null for events that belong to no request (circuits, degradation). */
  request_id: string | null;
  type: string;
  tenant: string;
  service: string;
  at: ColumnType<Date, Date, never>;
  reason: string;
  /** The event's data (without the request's messages); inserted by writes.ts inside one JSON document per batch. */
  data: ColumnType<unknown, string, never>;
}
