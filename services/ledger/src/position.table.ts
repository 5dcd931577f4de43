import type { ColumnType } from 'kysely';

/** The stream sequence the projections reached, written in the same transaction as they are. */
export interface PositionTable {
  name: string;
  seq: ColumnType<number | string, number, number>;
}
