/**
 * The one chart writer: panels of line series, linear or logarithmic axes, hand-written SVG
 * (training curves, latency sweeps, attention scaling).
 */

export interface Series { name: string; points: [number, number][]; color?: string; dash?: string }

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  logY?: boolean;
  /** Fixed x extent (e.g. all epochs of a run that is still going). */
  xRange?: [number, number];
  /** Only whole-number x ticks (epochs). */
  integerX?: boolean;
}

export interface ChartOptions { title?: string; columns?: number; notes?: string[] }

export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const SIZE = { width: 380, height: 240, marginLeft: 70, marginTop: 60, gapX: 90, gapY: 90 };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  // From the last tick at or below lo to the first at or above hi, so the data lies inside.
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.floor(lo / step + 1e-9) * step; v <= last + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out.length < 2) out.push(Number((out[0]! + step).toPrecision(12)));
  return out;
}

/** 1, 2, 5 x 10^k inside [lo, hi]; finer when that gives fewer than three. */
export function logTicks(lo: number, hi: number, mantissas = [1, 2, 5]): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out.length < 3 && mantissas.length === 3 ? logTicks(lo, hi, [1, 1.5, 2, 3, 4, 5, 6, 8]) : out;
}

export function formatTick(v: number): string {
  if (Math.abs(v) >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (Math.abs(v) >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (Math.abs(v) < 0.01 && v !== 0) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

interface Axis { ticks: number[]; scale: (v: number) => number }

function axis(values: number[], log: boolean, length: number, range?: [number, number], integer = false): Axis {
  const [lo, hi] = range ?? [Math.min(...values), Math.max(...values)];
  if (log) {
    const [a, b] = lo === hi ? [lo / 2, hi * 2] : [lo / 1.15, hi * 1.15];
    let t = logTicks(a, b);
    if (t.length > 8) t = t.filter((v) => v.toExponential().startsWith('1'));
    return { ticks: t, scale: (v) => (Math.log(v / a) / Math.log(b / a)) * length };
  }
  let t = ticks(lo, hi);
  if (integer) t = t.filter((v) => Number.isInteger(v));
  const [a, b] = range ?? [t[0]!, t.at(-1)!];
  return { ticks: t.filter((v) => v >= a && v <= b), scale: (v) => ((v - a) / (b - a || 1)) * length };
}

function panelSvg(p: Panel, left: number, top: number): string {
  const { width, height } = SIZE;
  const valid = (s: Series) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!p.logX || x > 0) && (!p.logY || y > 0));
  const points = p.series.flatMap(valid);
  if (points.length === 0) return `<text x="${left}" y="${top}">${escapeXml(p.title)}: no data</text>`;
  const xa = axis(points.map((q) => q[0]), !!p.logX, width, p.xRange, p.integerX);
  const ya = axis(points.map((q) => q[1]), !!p.logY, height);
  const sx = (x: number) => (left + xa.scale(x)).toFixed(1);
  const sy = (y: number) => (top + height - ya.scale(y)).toFixed(1);
  const parts = [
    `<text x="${left + width / 2}" y="${top - 14}" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`,
    ...ya.ticks.flatMap((v) => [
      `<line x1="${left}" x2="${left + width}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${Number(sy(v)) + 4}" text-anchor="end">${formatTick(v)}</text>`,
    ]),
    ...xa.ticks.map((v) => `<text x="${sx(v)}" y="${top + height + 16}" text-anchor="middle">${formatTick(v)}</text>`),
    `<text x="${left + width / 2}" y="${top + height + 34}" text-anchor="middle">${escapeXml(p.xLabel)}</text>`,
    `<text transform="translate(${left - 50},${top + height / 2}) rotate(-90)" text-anchor="middle">${escapeXml(p.yLabel)}</text>`,
  ];
  p.series.forEach((s, i) => {
    const pts = valid(s);
    if (pts.length === 0) return;
    const color = s.color ?? COLORS[i % COLORS.length]!;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<polyline points="${pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${sx(x)}" cy="${sy(y)}" r="2.5" fill="${color}"/>`);
    const ly = top + 14 + i * 15;
    parts.push(`<line x1="${left + 8}" x2="${left + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${left + 32}" y="${ly}" font-size="11">${escapeXml(s.name)}</text>`);
  });
  return parts.join('\n');
}

export function lineChart(panels: Panel[], options: ChartOptions = {}): string {
  const columns = Math.max(1, Math.min(options.columns ?? panels.length, panels.length));
  const rows = Math.ceil(panels.length / columns);
  const notes = options.notes ?? [];
  const width = SIZE.marginLeft + columns * (SIZE.width + SIZE.gapX);
  const height = SIZE.marginTop + rows * (SIZE.height + SIZE.gapY) + notes.length * 12;
  const body = panels.map((p, i) => panelSvg(p, SIZE.marginLeft + (i % columns) * (SIZE.width + SIZE.gapX), SIZE.marginTop + Math.floor(i / columns) * (SIZE.height + SIZE.gapY)));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="white"/>',
    options.title ? `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(options.title)}</text>` : '',
    ...body,
    ...notes.map((n, i) => `<text x="20" y="${height - (notes.length - i) * 12 + 6}" font-size="10" fill="#666">${escapeXml(n)}</text>`),
    '</svg>',
    '',
  ].filter((l) => l !== '').join('\n');
}
