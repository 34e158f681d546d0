/** Text tables as Python's PrettyTable draws them by default (mmsegmentation logs its metrics so). */

export interface Column {
  header: string;
  cells: string[];
}

/** PrettyTable's centring: odd slack goes right of odd-length text and left of even-length text, like str.center. */
function center(text: string, width: number): string {
  const excess = width - text.length;
  const half = Math.floor(excess / 2);
  if (excess % 2 === 0) return ' '.repeat(half) + text + ' '.repeat(half);
  return text.length % 2 === 1 ? ' '.repeat(half) + text + ' '.repeat(half + 1) : ' '.repeat(half + 1) + text + ' '.repeat(half);
}

/** Columns of equal length, every cell centred, one space of padding, '+', '-' and '|' borders. */
export function prettyTable(columns: readonly Column[]): string {
  const rows = Math.max(0, ...columns.map((c) => c.cells.length));
  const widths = columns.map((c) => Math.max(c.header.length, ...c.cells.map((s) => s.length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (texts: string[]) => `|${texts.map((t, i) => ` ${center(t, widths[i]!)} `).join('|')}|`;
  const body = Array.from({ length: rows }, (_, r) => line(columns.map((c) => c.cells[r] ?? '')));
  return [rule, line(columns.map((c) => c.header)), rule, ...body, rule].join('\n');
}
