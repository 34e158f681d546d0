/**
 * The official SwiftFormer evaluation preprocessing (util/datasets.py `build_transform`, which
 * composes torchvision transforms on PIL images):
 *
 *   Resize(int(256 / 224 * size), BICUBIC) -> CenterCrop(size) -> ToTensor -> Normalize(ImageNet)
 *
 * Each step follows torchvision's exact arithmetic (truncations, banker's rounding, float32
 * math), so the tensor matches the reference pipeline's, not just approximately.
 */
import { SwiftFormerError } from '../core/errors.js';
import { float32 } from '../core/tensor.js';
import type { FloatTensor } from '../core/tensor.js';
import { checkRGBImage, MAX_IMAGE_DIMENSION, resizeRGB8 } from './resize.js';
import type { ResizeFilter, RGBImage } from './resize.js';

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];
export const DEFAULT_SIZE = 224;
/** The resize-then-crop ratio of the official evaluation (resize to 256, crop 224). */
export const DEFAULT_CROP_PCT = 224 / 256;
/** Model input sizes beyond this are surely a mistake. */
export const MAX_SIZE = 8192;

export interface EvalTransformOptions {
  /** Side of the square model input (default 224). */
  size?: number;
  /** Crop side / resized shorter side, in (0, 1] (default 224/256). */
  cropPct?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

/** RGB8 image -> normalized float32 tensor [1, 3, size, size], as the official evaluation sees it. */
export function evalTransform(image: RGBImage, options: EvalTransformOptions = {}): FloatTensor {
  const size = options.size ?? DEFAULT_SIZE;
  checkSize(size);
  const resized = resizeShorterSide(image, resizeTargetFor(size, options.cropPct ?? DEFAULT_CROP_PCT));
  return toNormalizedCHW(centerCrop(resized, size), options.mean, options.std);
}

/**
 * The shorter side the image is resized to before cropping. The official code computes
 * int(256 / 224 * size); floor(size / cropPct) equals it for every size in [1, MAX_SIZE] with the
 * default cropPct (checked in Python), and is timm's rule for other crop ratios.
 */
export function resizeTargetFor(size: number, cropPct: number): number {
  checkSize(size);
  if (!Number.isFinite(cropPct) || cropPct <= 0 || cropPct > 1) {
    throw new SwiftFormerError('BAD_ARGUMENT', `cropPct must be in (0, 1], got ${cropPct}`);
  }
  return Math.floor(size / cropPct);
}

/**
 * torchvision `Resize(target)` with an int: the shorter side becomes `target`, the longer one
 * int(target * long / short) (truncated, so the aspect ratio is kept as nearly as possible).
 */
export function resizeShorterSide(image: RGBImage, target: number, filter: ResizeFilter = 'bicubic'): RGBImage {
  checkRGBImage(image);
  if (!Number.isInteger(target) || target < 1 || target > MAX_IMAGE_DIMENSION) {
    throw new SwiftFormerError('BAD_ARGUMENT', `shorter-side target must be an integer in [1, ${MAX_IMAGE_DIMENSION}], got ${target}`);
  }
  const { width, height } = shorterSideSize(image.width, image.height, target);
  return resizeRGB8(image, width, height, filter);
}

export function shorterSideSize(width: number, height: number, target: number): { width: number; height: number } {
  // Evaluated in the same order as Python's `int(target * long / short)` so the doubles agree.
  if (width <= height) return { width: target, height: Math.trunc((target * height) / width) };
  return { width: Math.trunc((target * width) / height), height: target };
}

/**
 * torchvision `CenterCrop`: offsets are round((in - crop) / 2) with Python's round-half-to-even
 * (a 257-wide image is cropped from x = 16, not 17). A crop larger than the image is
 * zero-padded, the odd pixel of padding going to the right/bottom, as torchvision pads.
 */
export function centerCrop(image: RGBImage, width: number, height: number = width): RGBImage {
  checkRGBImage(image);
  for (const [name, n] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_IMAGE_DIMENSION) {
      throw new SwiftFormerError('BAD_ARGUMENT', `crop ${name} must be an integer in [1, ${MAX_IMAGE_DIMENSION}], got ${n}`);
    }
  }
  const left = cropOffset(image.width, width);
  const top = cropOffset(image.height, height);
  const data = new Uint8Array(width * height * 3);
  // The range of output columns that fall inside the source; the rest stay zero (padding).
  const x0 = Math.max(0, -left);
  const x1 = Math.min(width, image.width - left);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= image.height || x1 <= x0) continue;
    const from = (sy * image.width + left + x0) * 3;
    data.set(image.data.subarray(from, from + (x1 - x0) * 3), (y * width + x0) * 3);
  }
  return { width, height, data };
}

function cropOffset(inSize: number, cropSize: number): number {
  if (cropSize > inSize) return -Math.floor((cropSize - inSize) / 2);
  return roundHalfEven((inSize - cropSize) / 2);
}

/** Python 3's round(): ties go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

// ---------------------------------------------------------------- geometry and color on RGB8 images

/** Zero padding: `left`, `top`, `right`, `bottom` pixels of black. */
export function padImage(image: RGBImage, left: number, top: number, right = left, bottom = top): RGBImage {
  const width = image.width + left + right;
  const height = image.height + top + bottom;
  const data = new Uint8Array(width * height * 3);
  const row = image.width * 3;
  for (let y = 0; y < image.height; y++) {
    data.set(image.data.subarray(y * row, (y + 1) * row), ((y + top) * width + left) * 3);
  }
  return { width, height, data };
}

/** PIL's convert('L') of one pixel: (19595 R + 38470 G + 7471 B + 2^15) >> 16 (its L24 macro). */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Luma replicated to the three channels, with PIL's convert('L') weights and rounding. */
export function toGrayscale(image: RGBImage): RGBImage {
  const data = new Uint8Array(image.data.length);
  for (let i = 0; i < data.length; i += 3) data[i] = data[i + 1] = data[i + 2] = luma(image.data[i]!, image.data[i + 1]!, image.data[i + 2]!);
  return { width: image.width, height: image.height, data };
}

/** The pixels of the rectangle at (x, y), w x h, which must lie inside the image. */
export function cropImage(image: RGBImage, x: number, y: number, w: number, h: number): RGBImage {
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > image.width || y + h > image.height) {
    throw new SwiftFormerError('BAD_ARGUMENT', `crop ${w}x${h} at (${x}, ${y}) is outside the ${image.width}x${image.height} image`);
  }
  if (x === 0 && y === 0 && w === image.width && h === image.height) return image;
  const data = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    const from = ((y + r) * image.width + x) * 3;
    data.set(image.data.subarray(from, from + w * 3), r * w * 3);
  }
  return { width: w, height: h, data };
}


// ---------------------------------------------------------------- model inputs

export interface Normalization {
  mean: number[];
  std: number[];
}

/** How images become the inputs of a model trained here; its checkpoints record it, inference repeats it. */
export interface Preprocessing {
  inputSize: [number, number];
  normalization: Normalization;
  /** Zero padding on each side before resizing (Fashion-MNIST: 2). */
  pad: number;
  /** Evaluation resize: shorter side to size / cropPct, center crop (1: straight to size). */
  cropPct: number;
  /** Trained on gray images (IDX): color inputs are converted to luma first, as PIL's convert('L'). */
  grayscale?: boolean;
}

/**
 * The geometry of a trained-here model's inputs, to `height` x `width`: an image already at that
 * size is taken as it is (its test set was); otherwise the official eval geometry, the shorter
 * side resized (bicubic) to floor(max(height, width) / cropPct) and a center crop, or with
 * cropPct 1 and a non-square input a straight resize. `evalTransform` is the official pipeline
 * itself, which resizes every image.
 */
export function fitToInput(image: RGBImage, [height, width]: [number, number], cropPct = 1): RGBImage {
  if (image.width === width && image.height === height) return image;
  if (cropPct === 1 && height !== width) return resizeRGB8(image, width, height, 'bicubic');
  return centerCrop(resizeShorterSide(image, resizeTargetFor(Math.max(height, width), cropPct)), width, height);
}

/**
 * The evaluation input of a model trained by this library, as its training recorded it
 * (`swiftformer.preprocessing`): the same luma, pad, resize and normalization its test set went through.
 */
export function modelTransform(image: RGBImage, p: Preprocessing): FloatTensor {
  const [h, w] = p.inputSize;
  const gray = p.grayscale ? toGrayscale(image) : image;
  const fitted = fitToInput(p.pad ? padImage(gray, p.pad, p.pad) : gray, p.inputSize, p.cropPct);
  checkChannelStats(p.normalization.mean, p.normalization.std);
  const tensor = float32([1, 3, h, w]);
  writeNormalizedCHW(fitted, tensor.data, 0, p.normalization.mean, p.normalization.std);
  return tensor;
}

/** How an image becomes a model input: the official eval transform, or a trained model's own. */
export type InputOptions = EvalTransformOptions & {
  /** A trained model's recorded preprocessing; replaces the official evaluation transform. */
  preprocessing?: Preprocessing;
};

/** One image as the model input [1, 3, H, W]: `modelTransform` with recorded preprocessing, else `evalTransform`. */
export function inputFor(image: RGBImage, options: InputOptions = {}): FloatTensor {
  return options.preprocessing ? modelTransform(image, options.preprocessing) : evalTransform(image, options);
}

/**
 * torchvision `ToTensor` + `Normalize`: HWC uint8 -> [1, 3, H, W] float32, (v / 255 - mean) / std.
 * Every step is rounded to float32 as torch computes it, so the values are bit-identical.
 */
export function toNormalizedCHW(
  image: RGBImage,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): FloatTensor {
  checkRGBImage(image);
  checkChannelStats(mean, std);
  const tensor = float32([1, 3, image.height, image.width]);
  writeNormalizedCHW(image, tensor.data, 0, mean, std);
  return tensor;
}

/** ToTensor + Normalize of an RGB8 image into `out` at `offset`, as 3 planes (CHW): batches are written in place. */
export function writeNormalizedCHW(image: RGBImage, out: Float32Array, offset: number, mean: readonly number[], std: readonly number[]): void {
  const plane = image.width * image.height;
  const src = image.data;
  for (let c = 0; c < 3; c++) {
    // 256 possible inputs per channel: a lookup table is both exact and fast.
    const table = normalizationTable(mean[c]!, std[c]!);
    const base = offset + c * plane;
    for (let i = 0, p = c; i < plane; i++, p += 3) out[base + i] = table[src[p]!]!;
  }
}

const tables = new Map<string, Float32Array>();

function normalizationTable(mean: number, std: number): Float32Array {
  const key = `${mean},${std}`;
  let table = tables.get(key);
  if (!table) {
    const m = Math.fround(mean);
    const s = Math.fround(std);
    table = new Float32Array(256);
    // A double result rounded once to float32 equals float32 arithmetic for + - * /.
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v / 255) - m) / s;
    tables.set(key, table);
  }
  return table;
}

function checkChannelStats(mean: readonly number[], std: readonly number[]): void {
  const ok =
    mean.length === 3 &&
    std.length === 3 &&
    mean.every(Number.isFinite) &&
    std.every((s) => Number.isFinite(s) && s !== 0);
  if (!ok) {
    throw new SwiftFormerError('BAD_ARGUMENT', `mean and std need 3 finite values each (std non-zero), got [${mean}] and [${std}]`);
  }
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > MAX_SIZE) {
    throw new SwiftFormerError('BAD_ARGUMENT', `size must be an integer in [1, ${MAX_SIZE}], got ${size}`);
  }
}
