import { sql, type AliasedRawBuilder, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import type { Database } from './db.js';

/** A report over the requests table: its window, how it is grouped, a row per group and the totals. */
export interface GroupedReport<D extends string, F> {
  from: string;
  to: string;
  groupBy: D[];
  rows: Array<Partial<Record<D, string | null>> & F>;
  totals: F;
}

/**
 * Runs `figures` over the requests `base` selects, once per group of `groupBy` (each group column's
 * SQL in `dimensions`) and once for the whole, in parallel; rows are ordered by the group columns
 * in byte order, so the answer does not depend on the database's locale. `toFigures` turns a
 * database row (numbers as strings: sums are exact there) into the report's figures. Shared by
 * `/v1/costs` and `/v1/cache`.
 *
 * @example
 * await groupedReport(base, { from, to, groupBy: ['tenant'] }, dimensionSql, figures, toFigures)
 */
export async function groupedReport<D extends string, F>(
  base: SelectQueryBuilder<Database, 'requests', object>,
  q: { from: Date; to: Date; groupBy: D[] },
  dimensions: Record<D, RawBuilder<string | null>>,
  figures: ReadonlyArray<AliasedRawBuilder<string, string>>,
  toFigures: (row: Record<string, unknown>) => F,
): Promise<GroupedReport<D, F>> {
  const groups = q.groupBy.map((g) => dimensions[g]);
  const [rows, totals] = await Promise.all([
    groups
      .reduce((qb, g) => qb.orderBy(sql`${g} collate "C" nulls last`), base.select([...q.groupBy.map((g) => dimensions[g].as(g)), ...figures]).groupBy(groups))
      .execute(),
    base.select([...figures]).executeTakeFirstOrThrow(),
  ]);
  return {
    from: q.from.toISOString(),
    to: q.to.toISOString(),
    groupBy: q.groupBy,
    rows: rows.map((r) => {
      const row = r as Record<string, unknown>;
      const group = Object.fromEntries(q.groupBy.map((g) => [g, (row[g] as string | null) ?? null])) as Partial<Record<D, string | null>>;
      return { ...group, ...toFigures(row) };
    }),
    totals: toFigures(totals),
  };
}
