/**
 * Pictures of segmentation masks: the mask in its palette's colors blended over the image (as
 * mmseg's show_result does, opacity 0.5), with a legend of the classes present, largest first.
 */
import type { RGBImage } from '../core/image.js';
import { drawText, fillRect, GLYPH_HEIGHT, textWidth } from './font.js';

type RGB = readonly [number, number, number];

export interface MaskLike {
  mask: Uint8Array | Uint16Array;
  width: number;
  height: number;
  labels: readonly string[];
  palette: readonly RGB[];
}

export interface ClassArea { index: number; label: string; fraction: number }

/** Fraction of the pixels of each class present in a mask, largest first (ties: lower index first). */
export function classAreas(result: Pick<MaskLike, 'mask' | 'labels'>): ClassArea[] {
  const counts = new Float64Array(result.labels.length);
  for (const v of result.mask) counts[v]!++;
  const total = result.mask.length;
  return [...counts.keys()].filter((i) => counts[i]! > 0).sort((a, b) => counts[b]! - counts[a]! || a - b)
    .map((index) => ({ index, label: result.labels[index]!, fraction: counts[index]! / total }));
}

/** The mask as an RGB image in its palette's colors. */
export function colorize(seg: MaskLike): RGBImage {
  const data = new Uint8Array(seg.width * seg.height * 3);
  seg.mask.forEach((c, i) => data.set(seg.palette[c] ?? [0, 0, 0], i * 3));
  return { width: seg.width, height: seg.height, data };
}

export interface OverlayOptions {
  /** Weight of the mask's colors (mmseg: 0.5). */
  opacity?: number;
  /** Draw the legend beside the image (default true). */
  legend?: boolean;
  /** Legend rows at most; the rest are summarized in one line (default 24). */
  maxLegendRows?: number;
}

/** The image with the mask blended in and, to its right, a legend of the classes present. */
export function overlay(image: RGBImage, seg: MaskLike, options: OverlayOptions = {}): RGBImage {
  if (image.width !== seg.width || image.height !== seg.height) throw new Error(`mask ${seg.width}x${seg.height} does not match the image ${image.width}x${image.height}`);
  const opacity = options.opacity ?? 0.5;
  const blended = new Uint8Array(image.data.length);
  const colors = Uint8Array.from(seg.palette.flat());
  for (let i = 0; i < seg.mask.length; i++) {
    const c = seg.mask[i]! * 3;
    for (let k = 0; k < 3; k++) blended[i * 3 + k] = Math.round(image.data[i * 3 + k]! * (1 - opacity) + (colors[c + k] ?? 0) * opacity);
  }
  const picture = { width: image.width, height: image.height, data: blended };
  return options.legend === false ? picture : withLegend(picture, seg, options.maxLegendRows ?? 24);
}

function withLegend(picture: RGBImage, seg: MaskLike, maxRows: number): RGBImage {
  const areas = classAreas(seg);
  const scale = Math.max(1, Math.round(picture.height / 360));
  const pad = 4 * scale;
  const rowHeight = (GLYPH_HEIGHT + 4) * scale;
  const swatch = GLYPH_HEIGHT * scale;
  const shown = areas.length > maxRows ? areas.slice(0, maxRows - 1) : areas;
  const lines = shown.map((a) => `${a.label} ${(a.fraction * 100).toFixed(1)}%`);
  const rest = areas.length - shown.length;
  const more = rest > 0 ? `... ${rest} more` : undefined;
  const textColumn = Math.max(...lines.map((l) => textWidth(l, scale)), more ? textWidth(more, scale) : 0);
  const panelWidth = pad + swatch + pad + textColumn + pad;
  const panelHeight = pad + (lines.length + (more ? 1 : 0)) * rowHeight + pad;
  const out: RGBImage = { width: picture.width + panelWidth, height: Math.max(picture.height, panelHeight), data: new Uint8Array(0) };
  out.data = new Uint8Array(out.width * out.height * 3).fill(255);
  for (let y = 0; y < picture.height; y++) out.data.set(picture.data.subarray(y * picture.width * 3, (y + 1) * picture.width * 3), y * out.width * 3);
  const left = picture.width + pad;
  shown.forEach((a, row) => {
    const top = pad + row * rowHeight;
    fillRect(out, left - scale, top - scale, swatch + 2 * scale, swatch + 2 * scale, [60, 60, 60]);
    fillRect(out, left, top, swatch, swatch, seg.palette[a.index] ?? [0, 0, 0]);
    drawText(out, lines[row]!, left + swatch + pad, top, [20, 20, 20], scale);
  });
  if (more) drawText(out, more, left + swatch + pad, pad + lines.length * rowHeight, [90, 90, 90], scale);
  return out;
}
