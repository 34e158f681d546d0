/**
 * OpenCV's `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)` on 8-bit RGB images, bit for
 * bit (checked against OpenCV 4.6 by test/segmentation.test.ts): mmcv's `imresize` / `imrescale`,
 * and so mmsegmentation's Resize, run it on every test image.
 *
 * OpenCV's algorithm for 8-bit images, as its resize.cpp describes it:
 * - per axis, the source coordinate f = (d + 0.5) * (1 / (dsize / ssize)) - 0.5 (double, then
 *   float), s = floor(f), weights (1 - (f - s), f - s) rounded to 11-bit fixed point separately;
 *   horizontally a coordinate left of 0 or right of the last pixel is clamped with weight (1, 0),
 *   vertically the two source rows are clamped into the image;
 * - a horizontal pass gives int rows D = S[s] a0 + S[s+1] a1 (scale 2^11);
 * - the vertical pass rounds back to 8 bits as ((D0 >> 4) b0 >> 16) + ((D1 >> 4) b1 >> 16), then
 *   (+2) >> 2 (the vector loop's arithmetic, which OpenCV 4.6 also uses for a row's tail);
 * - halving both sides exactly switches to INTER_AREA: each 2x2 block's sum, (+2) >> 2;
 * - the same size is a copy.
 */
import { checkRGBImage, type RGBImage } from './resize.js';
// cvRound (saturate_cast's rounding) is the FPU's default, half to even.
import { roundHalfEven } from './transforms.js';

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

interface Axis { offset: Int32Array; w0: Int32Array; w1: Int32Array }

/** Source index and fixed-point weights of every destination index; `clampEdges`: the horizontal axis's rule. */
function axis(src: number, dst: number, clampEdges: boolean): Axis {
  const scale = 1 / (dst / src);
  const offset = new Int32Array(dst);
  const w0 = new Int32Array(dst);
  const w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampEdges && s < 0) [f, s] = [0, 0];
    if (clampEdges && s >= src - 1) [f, s] = [0, src - 1];
    offset[d] = s;
    w0[d] = roundHalfEven(Math.fround(Math.fround(1 - f) * COEF_SCALE));
    w1[d] = roundHalfEven(Math.fround(f * COEF_SCALE));
  }
  return { offset, w0, w1 };
}

/** One source row filtered horizontally: ints at scale 2^11, 3 channels interleaved. */
function horizontal(src: RGBImage, row: number, x: Axis, out: Int32Array): void {
  const base = row * src.width * 3;
  const last = src.width - 1;
  for (let d = 0; d < x.offset.length; d++) {
    const s = x.offset[d]!;
    const a = base + s * 3;
    const b = base + Math.min(s + 1, last) * 3;
    const w0 = x.w0[d]!;
    const w1 = x.w1[d]!;
    for (let c = 0; c < 3; c++) out[d * 3 + c] = src.data[a + c]! * w0 + src.data[b + c]! * w1;
  }
}

const clampByte = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** OpenCV INTER_LINEAR resize of an RGB8 image to width x height. */
export function cvResizeLinear(src: RGBImage, width: number, height: number): RGBImage {
  checkRGBImage(src);
  if (width === src.width && height === src.height) return { width, height, data: src.data.slice() };
  if (width * 2 === src.width && height * 2 === src.height) return halve(src);
  const x = axis(src.width, width, true);
  const y = axis(src.height, height, false);
  const rowLength = width * 3;
  const out = new Uint8Array(rowLength * height);
  const rows = [new Int32Array(rowLength), new Int32Array(rowLength)];
  const cached = [-1, -1];
  const rowOf = (r: number, slot: number): Int32Array => {
    const other = 1 - slot;
    if (cached[slot] === r) return rows[slot]!;
    if (cached[other] === r) {
      rows[slot]!.set(rows[other]!);
    } else {
      horizontal(src, r, x, rows[slot]!);
    }
    cached[slot] = r;
    return rows[slot]!;
  };
  for (let d = 0; d < height; d++) {
    const s = y.offset[d]!;
    const clip = (r: number) => Math.min(Math.max(r, 0), src.height - 1);
    const r0 = rowOf(clip(s), 0);
    const r1 = rowOf(clip(s + 1), 1);
    const b0 = y.w0[d]!;
    const b1 = y.w1[d]!;
    const o = d * rowLength;
    for (let i = 0; i < rowLength; i++) out[o + i] = clampByte(((((r0[i]! >> 4) * b0) >> 16) + (((r1[i]! >> 4) * b1) >> 16) + 2) >> 2);
  }
  return { width, height, data: out };
}

/** INTER_AREA at exactly half size: each 2x2 block's sum, (+2) >> 2. */
function halve(src: RGBImage): RGBImage {
  const width = src.width / 2;
  const height = src.height / 2;
  const rowLength = width * 3;
  const out = new Uint8Array(rowLength * height);
  const stride = src.width * 3;
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < rowLength; i++) {
      const a = 2 * y * stride + 2 * Math.floor(i / 3) * 3 + (i % 3);
      out[y * rowLength + i] = (src.data[a]! + src.data[a + 3]! + src.data[a + stride]! + src.data[a + stride + 3]! + 2) >> 2;
    }
  }
  return { width, height, data: out };
}

/**
 * mmcv's `rescale_size` for a (long, short) scale tuple: the largest factor that keeps the long
 * side within max(scale) and the short side within min(scale), sizes as int(x * factor + 0.5).
 */
export function rescaleSize(width: number, height: number, scale: readonly [number, number]): { width: number; height: number; factor: number } {
  const factor = Math.min(Math.max(...scale) / Math.max(width, height), Math.min(...scale) / Math.min(width, height));
  return { width: Math.trunc(width * factor + 0.5), height: Math.trunc(height * factor + 0.5), factor };
}
