/**
 * mmsegmentation 0.x's training pipeline on an image and its label map, operation by operation as
 * mmseg and mmcv compute them (mmseg reads images as BGR; every operation here is the same on RGB:
 * the resizes act per channel and OpenCV's BGR2HSV of BGR pixels is its RGB2HSV of RGB ones):
 *
 *   Resize(img_scale, ratio_range)   ratio = U[lo, hi) (np.random.random_sample), target scale
 *                                    (int(long * ratio), int(short * ratio)), mmcv.imrescale's
 *                                    keep-ratio size; the image with OpenCV's INTER_LINEAR
 *                                    (preprocess/cv-resize.ts), the label with INTER_NEAREST
 *   RandomCrop(crop, cat_max_ratio)  offsets np.random.randint(0, margin + 1); up to 10 redraws
 *                                    while the crop has a single class or one class holds
 *                                    >= cat_max_ratio of its labelled (not ignored) pixels
 *   RandomFlip(prob)                 horizontal, np.random.rand() < prob
 *   PhotoMetricDistortion            brightness (+-32), contrast ([0.5, 1.5]) first or last,
 *                                    saturation ([0.5, 1.5]) and hue (+-18) in OpenCV's 8-bit HSV,
 *                                    each with probability 1/2, its draws in mmseg's order
 *   Normalize + Pad(crop, 0, 255)    mmcv's imnormalize (preprocess/segmentation.ts), image padded
 *                                    with 0 and the label with 255 at the bottom and right
 *
 * Every draw comes from the `Random` the caller seeds per sample (loader: seed, pass, index), in
 * mmseg's order, with numpy's semantics for each kind of draw.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Random } from '../core/random.js';
import type { LabelImage } from '../data/segmentation.js';
import { cvResizeLinear, rescaleSize } from '../preprocess/cv-resize.js';
import type { RGBImage } from '../preprocess/resize.js';
import { MMSEG_NORMALIZATION, writeNormalizedPadded } from '../preprocess/segmentation.js';
import { roundHalfEven, type Normalization } from '../preprocess/transforms.js';
import { flipRows } from './augment.js';

/** The pipeline's settings (TrainConfig's segmentation section holds them). */
export interface SegmentationPipeline {
  /** Crop (height, width): the training input size. */
  cropSize: [number, number];
  /** mmseg's img_scale (long, short) that the ratio multiplies. */
  imgScale: [number, number];
  /** Ratio range of the random rescale; null: mmseg's single-scale Resize to imgScale. */
  ratioRange: [number, number] | null;
  /** RandomCrop's cat_max_ratio (1: any crop). */
  catMaxRatio: number;
  /** RandomFlip's probability. */
  flipProb: number;
  photometric: boolean;
  ignoreIndex: number;
}

/** An image and its label map of the same size (the label one value per pixel). */
export interface Pair { image: RGBImage; label: LabelImage }

// ---------------------------------------------------------------- numpy's draws

/** np.random.randint(low, high): an integer in [low, high). */
function randint(rng: Random, low: number, high: number): number {
  return low + Math.floor(rng.next() * (high - low));
}

/** np.random.uniform(low, high). */
function uniform(rng: Random, low: number, high: number): number {
  return low + (high - low) * rng.next();
}

// ---------------------------------------------------------------- geometry

/**
 * OpenCV's INTER_NEAREST (resizeNN): destination x takes source min(floor(x * sw / dw), sw - 1),
 * the ratio computed as 1 / (dw / sw) in double, as OpenCV does.
 */
export function resizeLabelNearest(label: LabelImage, width: number, height: number): LabelImage {
  const { width: sw, height: sh, data } = label;
  if (width === sw && height === sh) return { width, height, data: data.slice() };
  const fx = 1 / (width / sw);
  const fy = 1 / (height / sh);
  const xs = Int32Array.from({ length: width }, (_, x) => Math.min(Math.floor(x * fx), sw - 1));
  const out = new (data.constructor as Uint8ArrayConstructor | Uint16ArrayConstructor)(width * height);
  for (let y = 0; y < height; y++) {
    const row = Math.min(Math.floor(y * fy), sh - 1) * sw;
    for (let x = 0; x < width; x++) out[y * width + x] = data[row + xs[x]!]!;
  }
  return { width, height, data: out };
}

/** mmcv.imrescale of the pair into `scale` (long, short): bilinear image, nearest label. */
export function rescalePair(pair: Pair, scale: readonly [number, number]): Pair {
  const { width, height } = rescaleSize(pair.image.width, pair.image.height, scale);
  if (width < 1 || height < 1) throw new SwiftFormerError('BAD_IMAGE', `a ${pair.image.width}x${pair.image.height} image rescaled into ${scale.join('x')} has no pixels left`);
  return { image: cvResizeLinear(pair.image, width, height), label: resizeLabelNearest(pair.label, width, height) };
}

/** Resize's random_sample_ratio: the target scale for a ratio drawn from `ratioRange`. */
export function randomScale(rng: Random, imgScale: readonly [number, number], ratioRange: readonly [number, number]): [number, number] {
  const [lo, hi] = ratioRange;
  const ratio = rng.next() * (hi - lo) + lo;
  return [Math.trunc(imgScale[0] * ratio), Math.trunc(imgScale[1] * ratio)];
}

/** Rows y..y+h, columns x..x+w of an interleaved plane. */
function cropPlane<T extends Uint8Array | Uint16Array>(data: T, width: number, channels: number, x: number, y: number, w: number, h: number): T {
  const out = new (data.constructor as { new(n: number): T })(w * h * channels);
  for (let r = 0; r < h; r++) out.set(data.subarray(((y + r) * width + x) * channels, ((y + r) * width + x + w) * channels), r * w * channels);
  return out;
}

/** The pair cut to the box (clipped to the image, as numpy slicing clips). */
export function cropPair(pair: Pair, x: number, y: number, w: number, h: number): Pair {
  const { image, label } = pair;
  const cw = Math.min(w, image.width - x);
  const ch = Math.min(h, image.height - y);
  return {
    image: { width: cw, height: ch, data: cropPlane(image.data, image.width, 3, x, y, cw, ch) },
    label: { width: cw, height: ch, data: cropPlane(label.data, label.width, 1, x, y, cw, ch) },
  };
}

/** Whether a crop of `label` passes cat_max_ratio: more than one class, none holding `ratio` or more of the labelled pixels. */
function cropBalanced(label: LabelImage, x: number, y: number, w: number, h: number, ratio: number, ignoreIndex: number): boolean {
  const counts = new Map<number, number>();
  const x1 = Math.min(x + w, label.width);
  const y1 = Math.min(y + h, label.height);
  for (let r = y; r < y1; r++) {
    for (let c = x; c < x1; c++) {
      const v = label.data[r * label.width + c]!;
      if (v !== ignoreIndex) counts.set(v, (counts.get(v) ?? 0) + 1);
    }
  }
  if (counts.size <= 1) return false;
  let max = 0;
  let sum = 0;
  for (const n of counts.values()) {
    max = Math.max(max, n);
    sum += n;
  }
  return max / sum < ratio;
}

/** mmseg's RandomCrop: the box drawn (and redrawn up to 10 times under cat_max_ratio), then cut. */
export function randomCrop(pair: Pair, rng: Random, crop: readonly [number, number], catMaxRatio: number, ignoreIndex: number): Pair {
  const [ch, cw] = crop;
  const draw = (): [number, number] => {
    const y = randint(rng, 0, Math.max(pair.image.height - ch, 0) + 1);
    const x = randint(rng, 0, Math.max(pair.image.width - cw, 0) + 1);
    return [x, y];
  };
  let [x, y] = draw();
  if (catMaxRatio < 1) {
    for (let i = 0; i < 10; i++) {
      if (cropBalanced(pair.label, x, y, cw, ch, catMaxRatio, ignoreIndex)) break;
      [x, y] = draw();
    }
  }
  return cropPair(pair, x, y, cw, ch);
}

/** Mirrors the pair left-right, in place. */
export function flipPair(pair: Pair): Pair {
  flipRows(pair.image.data, pair.image.width, pair.image.height, 3);
  flipRows(pair.label.data, pair.label.width, pair.label.height, 1);
  return pair;
}

// ---------------------------------------------------------------- photometric distortion

/** mmseg's `convert`: np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8), alpha and beta cast to float32 as numpy casts Python floats. */
export function convertScale(data: Uint8Array, alpha: number, beta: number, start = 0, step = 1): void {
  const a = Math.fround(alpha);
  const b = Math.fround(beta);
  for (let i = start; i < data.length; i += step) {
    const v = Math.fround(Math.fround(data[i]! * a) + b);
    data[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
}

const HSV_SHIFT = 12;
/** OpenCV's RGB2HSV_b tables: saturate_cast<int>((255 << 12) / i) and ((180 << 12) / (6 i)). */
const SDIV = Int32Array.from({ length: 256 }, (_, i) => (i === 0 ? 0 : roundHalfEven((255 << HSV_SHIFT) / i)));
const HDIV = Int32Array.from({ length: 256 }, (_, i) => (i === 0 ? 0 : roundHalfEven((180 << HSV_SHIFT) / (6 * i))));

/** OpenCV's COLOR_RGB2HSV on 8-bit pixels (H in [0, 180)), in place: fixed-point, as its RGB2HSV_b computes it. */
export function rgbToHsv8(data: Uint8Array): void {
  const half = 1 << (HSV_SHIFT - 1);
  for (let p = 0; p < data.length; p += 3) {
    const r = data[p]!;
    const g = data[p + 1]!;
    const b = data[p + 2]!;
    const v = Math.max(r, g, b);
    const diff = v - Math.min(r, g, b);
    const s = (diff * SDIV[v]! + half) >> HSV_SHIFT;
    let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * HDIV[diff]! + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    data[p] = h;
    data[p + 1] = s;
    data[p + 2] = v;
  }
}

/** Per sector (r, g, b) <- tab index: OpenCV's sector_data {b, g, r} rows read in RGB order. */
const SECTORS = [[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]] as const;
const HSCALE = Math.fround(6 / 180);
const INV255 = Math.fround(1 / 255);
const SIXTH = Math.fround(1 / 6);
/** Pixels per iteration of OpenCV's vector loop in HSV2RGB_b: 4 vectors of 8 floats (AVX2). */
export const HSV2RGB_BLOCK = 32;

/**
 * OpenCV 4.6's COLOR_HSV2RGB on 8-bit pixels, in place, row by row as cvtColor runs it: the
 * first floor(width / 32) * 32 pixels of a row take the vector loop (sector from truncation, the
 * result x * 255 truncated), the rest the scalar loop (fmod, an exact gray for S = 0, the result
 * rounded half to even), so a pixel's value depends on its column. Both in float32 with H scaled
 * by 6/180 and S, V by 1/255.
 */
export function hsv8ToRgb(data: Uint8Array, width: number = data.length / 3): void {
  const rowLength = width * 3;
  const vectorEnd = Math.floor(width / HSV2RGB_BLOCK) * HSV2RGB_BLOCK * 3;
  const tab = new Float32Array(4);
  for (let row = 0; row < data.length; row += rowLength) {
    for (let i = 0; i < rowLength; i += 3) hsvPixel(data, row + i, tab, i < vectorEnd);
  }
}

function hsvPixel(data: Uint8Array, p: number, tab: Float32Array, vector: boolean): void {
  const f = Math.fround;
  const s = f(data[p + 1]! * INV255);
  const v = f(data[p + 2]! * INV255);
  let sector: number;
  let h = f(data[p]! * HSCALE);
  if (vector) {
    const pre = Math.trunc(h);
    h = f(h - pre);
    sector = pre - Math.trunc(f(pre * SIXTH)) * 6;
  } else {
    if (s === 0) {
      data[p] = data[p + 1] = data[p + 2] = roundByte(f(v * 255));
      return;
    }
    h = f(h % 6); // fmod(h, 6.f): h >= 0 here
    sector = Math.floor(h);
    h = f(h - sector);
  }
  tab[0] = v;
  tab[1] = f(v * f(1 - s));
  // OpenCV's AVX2 build contracts 1 - s * x into one fused multiply-add (the product is exact in
  // double, so only the final rounding to float32 remains) everywhere but in the scalar loop's
  // last term, as its output shows (checked on every H < 180, S, V in both loops).
  tab[2] = f(v * f(1 - s * h));
  tab[3] = f(v * (vector ? f(1 - s * f(1 - h)) : f(1 - f(s * f(1 - h)))));
  const toByte = vector ? truncByte : roundByte;
  const [ri, gi, bi] = SECTORS[sector < 6 ? sector : 0]!;
  const [r, g, b] = [tab[ri]!, tab[gi]!, tab[bi]!];
  data[p] = toByte(f(r * 255));
  data[p + 1] = toByte(f(g * 255));
  data[p + 2] = toByte(f(b * 255));
}

/** saturate_cast<uchar>: cvRound, half to even. */
function roundByte(x: number): number {
  const v = roundHalfEven(x);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** v_trunc then v_pack_u's unsigned saturation. */
function truncByte(x: number): number {
  const v = Math.trunc(x);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** mmseg's PhotoMetricDistortion (brightness_delta 32, contrast and saturation [0.5, 1.5], hue_delta 18), in place. */
export function photometricDistortion(image: RGBImage, rng: Random): RGBImage {
  const { data } = image;
  if (randint(rng, 0, 2)) convertScale(data, 1, uniform(rng, -32, 32));
  const mode = randint(rng, 0, 2);
  const contrast = () => {
    if (randint(rng, 0, 2)) convertScale(data, uniform(rng, 0.5, 1.5), 0);
  };
  if (mode === 1) contrast();
  if (randint(rng, 0, 2)) {
    rgbToHsv8(data);
    convertScale(data, uniform(rng, 0.5, 1.5), 0, 1, 3);
    hsv8ToRgb(data, image.width);
  }
  if (randint(rng, 0, 2)) {
    rgbToHsv8(data);
    const delta = randint(rng, -18, 18);
    for (let p = 0; p < data.length; p += 3) data[p] = (((data[p]! + delta) % 180) + 180) % 180;
    hsv8ToRgb(data, image.width);
  }
  if (mode === 0) contrast();
  return image;
}

// ---------------------------------------------------------------- the pipeline

/** The training pipeline on one pair up to the crop (uint8 image and label, at most the crop size). */
export function augmentPair(pair: Pair, rng: Random, p: SegmentationPipeline): Pair {
  const scale = p.ratioRange ? randomScale(rng, p.imgScale, p.ratioRange) : p.imgScale;
  let out = rescalePair(pair, scale);
  out = randomCrop(out, rng, p.cropSize, p.catMaxRatio, p.ignoreIndex);
  if (rng.next() < p.flipProb) flipPair(out);
  if (p.photometric) photometricDistortion(out.image, rng);
  return out;
}

/**
 * Normalize and Pad of a pair no larger than the crop: the image's 3 planes into `pixels` at
 * `pixelOffset` (padding 0, so the buffer must be zeroed), the label as float32 class indices into
 * `labels` at `labelOffset` (padding `ignoreIndex`).
 */
export function writeTrainingPair(
  pair: Pair, crop: readonly [number, number], ignoreIndex: number,
  pixels: Float32Array, pixelOffset: number, labels: Float32Array, labelOffset: number, normalization: Normalization = MMSEG_NORMALIZATION,
): void {
  const [h, w] = crop;
  writeNormalizedPadded(pair.image, pixels, pixelOffset, h, w, normalization);
  const { width, height, data } = pair.label;
  labels.fill(ignoreIndex, labelOffset, labelOffset + h * w);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) labels[labelOffset + y * w + x] = data[y * width + x]!;
  }
}
