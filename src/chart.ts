/** A hand-written SVG chart of the training history: loss and accuracy per epoch, side by side. */
import type { EpochMetrics } from './checkpoint.js';

interface Series { name: string; color: string; points: [number, number][] }

const WIDTH = 900;
const HEIGHT = 340;
const PANEL = { width: 400, height: 250, top: 40, left: [60, 510] };

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** About `count` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out.length < 2) out.push(Number((out[0]! + step).toPrecision(12)));
  return out;
}

function format(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function panel(title: string, series: Series[], left: number, epochs: number): string {
  const all = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  if (all.length === 0) return '';
  const yt = ticks(Math.min(...all), Math.max(...all));
  const y0 = yt[0]!;
  const y1 = yt.at(-1)!;
  const xt = ticks(1, Math.max(2, epochs)).filter((v) => Number.isInteger(v) && v >= 1);
  const x0 = 1;
  const x1 = Math.max(2, epochs, xt.at(-1)!);
  const { width, height, top } = PANEL;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * width;
  const sy = (y: number) => top + height - ((y - y0) / (y1 - y0 || 1)) * height;
  const parts: string[] = [`<text x="${left + width / 2}" y="${top - 14}" text-anchor="middle" font-weight="bold">${escape(title)}</text>`];
  parts.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`);
  for (const v of yt) {
    parts.push(`<line x1="${left}" x2="${left + width}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${format(v)}</text>`);
  }
  for (const v of xt) parts.push(`<text x="${sx(v).toFixed(1)}" y="${top + height + 16}" text-anchor="middle">${v}</text>`);
  parts.push(`<text x="${left + width / 2}" y="${top + height + 34}" text-anchor="middle">epoch</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (pts.length === 0) return;
    const path = pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    const ly = top + 14 + i * 16;
    parts.push(`<line x1="${left + width - 120}" x2="${left + width - 100}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${left + width - 95}" y="${ly}">${escape(s.name)}</text>`);
  });
  return parts.join('\n');
}

/** SVG text of the loss and accuracy curves; `epochs` fixes the x-axis length (default: the history's). */
export function trainingChart(history: readonly EpochMetrics[], options: { title?: string; epochs?: number } = {}): string {
  const epochs = options.epochs ?? history.length;
  const pick = (f: (m: EpochMetrics) => number | undefined): [number, number][] =>
    history.flatMap((m) => (f(m) === undefined ? [] : [[m.epoch, f(m)!] as [number, number]]));
  const loss: Series[] = [
    { name: 'train loss', color: '#1f77b4', points: pick((m) => m.train_loss) },
    { name: 'test loss', color: '#d62728', points: pick((m) => m.test_loss) },
  ].filter((s) => s.points.length > 0);
  const acc: Series[] = [
    { name: 'train acc', color: '#1f77b4', points: pick((m) => m.train_acc * 100) },
    { name: 'test acc', color: '#d62728', points: pick((m) => (m.test_acc === undefined ? undefined : m.test_acc * 100)) },
    { name: 'test acc (EMA)', color: '#2ca02c', points: pick((m) => (m.test_acc_ema === undefined ? undefined : m.test_acc_ema * 100)) },
  ].filter((s) => s.points.length > 0);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    options.title ? `<title>${escape(options.title)}</title>` : '',
    panel('loss', loss, PANEL.left[0]!, epochs),
    panel('accuracy (%)', acc, PANEL.left[1]!, epochs),
    '</svg>',
    '',
  ].filter((l) => l !== '').join('\n');
}
