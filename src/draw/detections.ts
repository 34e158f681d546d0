/**
 * Pictures of detections: each object's mask blended over the image in its class's color, its box
 * outlined, and a label tag ("person 0.98") above the box, in the built-in bitmap font. Sizes scale
 * with the image, so a 4K photo and a 160x120 thumbnail both stay readable.
 */
import type { RGBImage } from '../core/image.js';
import { drawText, fillRect, GLYPH_HEIGHT, textWidth } from './font.js';

type RGB = readonly [number, number, number];

export interface DrawnDetection {
  index: number;
  label: string;
  score: number;
  box: { xmin: number; ymin: number; xmax: number; ymax: number };
  /** width x height bytes over the image, non-zero inside the object. */
  mask?: { width: number; height: number; data: Uint8Array };
}

export interface DetectionPictureOptions {
  /** Weight of a mask's color over the image (default 0.45). */
  opacity?: number;
  /** Color of class `index` (default: `classColor`). */
  color?: (index: number) => RGB;
}

/** A bright color per class: hues spread by the golden angle, so neighbouring indices differ. */
export function classColor(index: number): RGB {
  const h = ((index * 137.508) % 360) / 60;
  const [s, v] = [0.75, 0.95];
  const c = v * s;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const [r, g, b] = h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] : h < 4 ? [0, x, c] : h < 5 ? [x, 0, c] : [c, 0, x];
  const m = v - c;
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** Black or white, whichever reads better on `color`. */
function textOn(color: RGB): RGB {
  return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 ? [0, 0, 0] : [255, 255, 255];
}

function blendMask(picture: RGBImage, mask: NonNullable<DrawnDetection['mask']>, color: RGB, opacity: number): void {
  if (mask.width !== picture.width || mask.height !== picture.height) {
    throw new Error(`mask ${mask.width}x${mask.height} does not match the image ${picture.width}x${picture.height}`);
  }
  const d = picture.data;
  for (let p = 0; p < mask.data.length; p++) {
    if (mask.data[p] === 0) continue;
    for (let k = 0; k < 3; k++) d[3 * p + k] = Math.round(d[3 * p + k]! * (1 - opacity) + color[k]! * opacity);
  }
}

function outline(picture: RGBImage, x0: number, y0: number, x1: number, y1: number, t: number, color: RGB): void {
  fillRect(picture, x0, y0, x1 - x0, t, color);
  fillRect(picture, x0, y1 - t, x1 - x0, t, color);
  fillRect(picture, x0, y0, t, y1 - y0, color);
  fillRect(picture, x1 - t, y0, t, y1 - y0, color);
}

/** A copy of `image` with the detections drawn: masks first (lowest score first), then boxes and tags. */
export function drawDetections(image: RGBImage, detections: readonly DrawnDetection[], options: DetectionPictureOptions = {}): RGBImage {
  const picture: RGBImage = { width: image.width, height: image.height, data: image.data.slice() };
  const colorOf = options.color ?? classColor;
  const opacity = options.opacity ?? 0.45;
  const order = [...detections].sort((a, b) => a.score - b.score);
  for (const d of order) if (d.mask) blendMask(picture, d.mask, colorOf(d.index), opacity);
  const scale = Math.max(1, Math.round(Math.min(image.width, image.height) / 400));
  const thickness = Math.max(1, scale + (Math.min(image.width, image.height) >= 200 ? 1 : 0));
  const pad = scale;
  for (const d of order) {
    const color = colorOf(d.index);
    const x0 = Math.max(0, Math.floor(d.box.xmin));
    const y0 = Math.max(0, Math.floor(d.box.ymin));
    const x1 = Math.min(image.width, Math.ceil(d.box.xmax));
    const y1 = Math.min(image.height, Math.ceil(d.box.ymax));
    if (x1 <= x0 || y1 <= y0) continue;
    outline(picture, x0, y0, x1, y1, Math.min(thickness, x1 - x0, y1 - y0), color);
    const tag = `${d.label} ${d.score.toFixed(2)}`;
    const tagW = textWidth(tag, scale) + 2 * pad;
    const tagH = GLYPH_HEIGHT * scale + 2 * pad;
    // Above the box when there is room, else inside its top edge; kept within the image.
    const tx = Math.min(Math.max(0, x0), Math.max(0, image.width - tagW));
    const ty = y0 - tagH >= 0 ? y0 - tagH : Math.min(y0, Math.max(0, image.height - tagH));
    fillRect(picture, tx, ty, tagW, tagH, color);
    drawText(picture, tag, tx + pad, ty + pad, textOn(color), scale);
  }
  return picture;
}
