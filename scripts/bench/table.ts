/** A fixed-width table: the first column left-aligned, the rest right-aligned, each as wide as its widest cell. */
export function table(title: string, header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return `\n${title}\n${line(header)}\n${rows.map(line).join('\n')}\n`;
}

/** A number with `digits` decimals, or blank. */
export const num = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '' : n.toFixed(digits));
/** A ratio as `1.23x`, or blank. */
export const times = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '' : `${n.toFixed(2)}x`);
