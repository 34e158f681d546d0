/** A small hand-written SVG line chart: one or more panels of named series. */

export interface Series { name: string; points: [number, number][] }
export interface Panel { title: string; xLabel: string; yLabel: string; series: Series[]; logY?: boolean }

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const PANEL = { width: 400, height: 250, top: 50, gap: 110, left: 70 };

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
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out.length < 2) out.push(Number((out[0]! + step).toPrecision(12)));
  return out;
}

export function formatTick(v: number): string {
  return Math.abs(v) >= 1e5 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function panelSvg(p: Panel, left: number): string {
  const points = p.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (points.length === 0) return '';
  const fy = (v: number) => (p.logY ? Math.log10(v) : v);
  const xt = ticks(Math.min(...points.map((q) => q[0])), Math.max(...points.map((q) => q[0])));
  const yt = ticks(Math.min(...points.map((q) => fy(q[1]))), Math.max(...points.map((q) => fy(q[1]))));
  const [x0, x1, y0, y1] = [xt[0]!, xt.at(-1)!, yt[0]!, yt.at(-1)!];
  const { width, height, top } = PANEL;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * width;
  const sy = (y: number) => top + height - ((fy(y) - y0) / (y1 - y0 || 1)) * height;
  const parts = [
    `<text x="${left + width / 2}" y="${top - 18}" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#999"/>`,
    ...xt.map((v) => `<text x="${sx(v)}" y="${top + height + 16}" text-anchor="middle">${formatTick(v)}</text>`),
    ...yt.map((v) => `<text x="${left - 6}" y="${top + height - ((v - y0) / (y1 - y0 || 1)) * height + 4}" text-anchor="end">${formatTick(p.logY ? 10 ** v : v)}</text>`),
    `<text x="${left + width / 2}" y="${top + height + 36}" text-anchor="middle">${escapeXml(p.xLabel)}</text>`,
    `<text transform="translate(${left - 52},${top + height / 2}) rotate(-90)" text-anchor="middle">${escapeXml(p.yLabel)}</text>`,
  ];
  p.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const path = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`);
    parts.push(`<text x="${left + 8}" y="${top + 16 + i * 16}" fill="${color}">${escapeXml(s.name)}</text>`);
  });
  return parts.join('\n');
}

export function lineChart(panels: Panel[], title?: string): string {
  const width = PANEL.left + panels.length * (PANEL.width + PANEL.gap);
  const height = PANEL.top + PANEL.height + 60;
  const body = panels.map((p, i) => panelSvg(p, PANEL.left + i * (PANEL.width + PANEL.gap))).join('\n');
  const heading = title ? `<text x="10" y="18" font-weight="bold">${escapeXml(title)}</text>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${heading}\n${body}\n</svg>\n`;
}
