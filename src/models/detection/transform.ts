/**
 * torchvision's GeneralizedRCNNTransform in the graph: normalize, resize, pad into a batch
 * (before the network) and back to the input image (after it: boxes rescaled, masks pasted).
 *
 * The resize is torch's `interpolate(bilinear, align_corners=False)` as its CPU kernel computes
 * it, composed from Gather and arithmetic rather than ONNX Resize, whose source coordinates
 * ((x + 0.5) / scale - 0.5, scale = out / in in float32) put it up to 1e-3 off torch's on
 * detailed images: torch's float32 ratio in / out, source positions in double, the same two taps
 * and float32 weights, the width interpolated first. The one difference left: torch's AVX2 kernel
 * evaluates w0 * v0 + w1 * v1 as a fused multiply-add, here it is two products and a sum, so
 * values differ by at most 2 units in the last place (4.8e-7 on normalized pixels), as torch's
 * own builds for CPUs with and without FMA do; emulating the fusion in double would triple the
 * resize's time.
 */
import type { GraphBuilder } from '../../graph/graph.js';
import {
  and, arith, cast, compare, concat, dimOf, expand, gather, intScalar, matmul, maximum, minimum, padZeros, pick, range, reduce,
  scalar, squeeze, symbolic, transpose, unary, unsqueeze, where,
} from '../../graph/ops.js';
import type { TransformSettings } from './settings.js';
import { SwiftFormerError } from '../../core/errors.js';

// ---------------------------------------------------------------- sizes (TypeScript, for checks)

/**
 * The size torchvision resizes an h x w image to: scale = min(min_size / short side, max_size /
 * long side) in float32, where `number / tensor` is torch's reciprocal-then-multiply
 * (480 x 640 -> 800 x 1066, not 799), and each side floor(side * scale) in double
 * (recompute_scale_factor=True).
 */
export function resizedSize(height: number, width: number, t: Pick<TransformSettings, 'minSize' | 'maxSize'>): [number, number] {
  const f = Math.fround;
  const scale = Math.min(f(f(1 / Math.min(height, width)) * t.minSize), f(f(1 / Math.max(height, width)) * t.maxSize));
  return [Math.floor(height * scale), Math.floor(width * scale)];
}

/** An image the configured sizes cannot take: a side would resize to nothing. */
export function checkImageSize(height: number, width: number, t: TransformSettings, name = 'image'): [number, number] {
  const [h, w] = resizedSize(height, width, t);
  if (h < 1 || w < 1) {
    throw new SwiftFormerError(
      'BAD_IMAGE',
      `${name} is ${width}x${height}: resized for min size ${t.minSize} / max size ${t.maxSize} it would be ${w}x${h} pixels; ` +
        'an image this elongated needs a larger max size',
    );
  }
  return [h, w];
}

// ---------------------------------------------------------------- bilinear weights

interface AxisTaps {
  /** Source indices of the two taps (int64) and their float32 weights, one per output position. */
  i0: string;
  i1: string;
  w0: string;
  w1: string;
}

const f64 = (b: GraphBuilder, v: number) => cast(b, scalar(b, v), 'float64');

/**
 * torch's linear interpolation taps along one axis from `inSize` to the output positions
 * `positions` (int64), align_corners=False: ratio in / out in float32, src = ratio * (p + 0.5) -
 * 0.5 in double clamped at 0, i0 = floor(src), i1 = i0 + 1 unless at the edge, w1 = src - i0
 * (float32), w0 = 1 - w1. `inSize` and `outSize` are float32 (scalars or per-row vectors).
 */
function linearTaps(b: GraphBuilder, inSize: string, outSize: string, positions: string, inLast: string): AxisTaps {
  const ratio = cast(b, arith(b, 'Div', inSize, outSize), 'float64');
  const src = maximum(b, arith(b, 'Sub', arith(b, 'Mul', ratio, arith(b, 'Add', cast(b, positions, 'float64'), f64(b, 0.5))), f64(b, 0.5)), f64(b, 0));
  const i0 = cast(b, src, 'int64');
  const i1 = arith(b, 'Add', i0, cast(b, compare(b, 'Less', i0, inLast), 'int64'));
  const w1 = cast(b, minimum(b, maximum(b, arith(b, 'Sub', src, cast(b, i0, 'float64')), f64(b, 0)), f64(b, 1)), 'float32');
  return { i0, i1, w0: arith(b, 'Sub', scalar(b, 1), w1), w1 };
}

/** w0 * v0 + w1 * v1 in float32. */
function twoTap(b: GraphBuilder, w0: string, v0: string, w1: string, v1: string): string {
  return arith(b, 'Add', arith(b, 'Mul', w0, v0), arith(b, 'Mul', w1, v1));
}

/**
 * torch's bilinear resize of (N, C, H, W) to (outH, outW) (int64 scalars). Taps are gathered
 * along the second-to-last axis, where a Gather copies whole rows: the width pass works on the
 * transposed maps.
 */
export function bilinearResize(b: GraphBuilder, x: string, outH: string, outW: string, channels: number): string {
  const axis = (inDim: string, out: string) => linearTaps(
    b, cast(b, inDim, 'float32'), cast(b, out, 'float32'), range(b, 0, out), arith(b, 'Sub', inDim, intScalar(b, 1)),
  );
  const n = b.shape(x)[0]!;
  const cols = axis(dimOf(b, x, 3), outW);
  const rows = axis(dimOf(b, x, 2), outH);
  const column = (v: string) => unsqueeze(b, v, [1]);
  const t = transpose(b, x, [0, 1, 3, 2]);
  const widthDone = transpose(b, twoTap(b, column(cols.w0), gather(b, t, cols.i0, 2), column(cols.w1), gather(b, t, cols.i1, 2)), [0, 1, 3, 2]);
  const out = twoTap(b, column(rows.w0), gather(b, widthDone, rows.i0, 2), column(rows.w1), gather(b, widthDone, rows.i1, 2));
  b.graph.shapes.set(out, [n, channels, symbolic('resized_height'), symbolic('resized_width')]);
  return out;
}

// ---------------------------------------------------------------- before the network

export interface ImageBatch {
  /** Normalized, resized, zero-padded images (N, 3, H', W'), H' and W' multiples of size_divisible. */
  images: string;
  /** (N, 2) int64: each image's resized height and width (`image_sizes`). */
  imageSizes: string;
  /** (N, 2) int64: each image's size before resizing. */
  originalSizes: string;
}

/** (N, 2) int64 rows (h, w) for every image of a batch whose images share one size. */
function sizeRows(b: GraphBuilder, n: string, h: string, w: string): string {
  const row = concat(b, [unsqueeze(b, h, [0]), unsqueeze(b, w, [0])], 0);
  return expand(b, unsqueeze(b, row, [0]), concat(b, [unsqueeze(b, n, [0]), b.ints([2])], 0), [symbolic('batch'), 2]);
}

/**
 * GeneralizedRCNNTransform on a batch of same-size images `pixels` (N, 3, H, W), RGB in [0, 1]:
 * (x - mean) / std, resized to torchvision's size, zero-padded to a multiple of size_divisible.
 */
export function transformImages(b: GraphBuilder, pixels: string, t: TransformSettings): ImageBatch {
  const normalized = arith(b, 'Div', arith(b, 'Sub', pixels, b.constant(t.mean, [1, 3, 1, 1])), b.constant(t.std, [1, 3, 1, 1]));
  const [h, w] = [dimOf(b, pixels, 2), dimOf(b, pixels, 3)];
  const [hf, wf] = [cast(b, h, 'float32'), cast(b, w, 'float32')];
  // torch evaluates `python number / tensor` as reciprocal(tensor) * number.
  const ratio = (size: number, side: string) => arith(b, 'Mul', b.node('Reciprocal', [side], []), scalar(b, size));
  const scale = minimum(b, ratio(t.minSize, minimum(b, hf, wf)), ratio(t.maxSize, maximum(b, hf, wf)));
  const side = (d: string) => cast(b, unary(b, 'Floor', arith(b, 'Mul', cast(b, d, 'float64'), cast(b, scale, 'float64'))), 'int64');
  const [rh, rw] = [side(h), side(w)];
  const resized = bilinearResize(b, normalized, rh, rw, 3);
  const stride = intScalar(b, t.sizeDivisible);
  const padTo = (d: string) => arith(b, 'Sub', arith(b, 'Mul', arith(b, 'Div', arith(b, 'Add', d, intScalar(b, t.sizeDivisible - 1)), stride), stride), d);
  const pads = concat(b, [b.ints([0, 0, 0, 0, 0, 0]), unsqueeze(b, padTo(rh), [0]), unsqueeze(b, padTo(rw), [0])], 0);
  const images = padZeros(b, resized, pads, [b.shape(pixels)[0]!, 3, symbolic('padded_height'), symbolic('padded_width')]);
  const n = dimOf(b, pixels, 0);
  return { images, imageSizes: sizeRows(b, n, rh, rw), originalSizes: sizeRows(b, n, h, w) };
}

/** (N, 4) float32 (w, h, w, h) per image from (N, 2) int64 sizes: the clip limits of boxes. */
export function clipLimits(b: GraphBuilder, sizes: string): string {
  return cast(b, gather(b, sizes, b.ints([1, 0, 1, 0]), 1), 'float32');
}

// ---------------------------------------------------------------- after the network

/** transform.resize_boxes back to the original image: x * (orig_w / w), y * (orig_h / h) in float32. */
export function boxesToOriginal(b: GraphBuilder, boxes: string, batch: string, imageSizes: string, originalSizes: string): string {
  const ratios = arith(b, 'Div', cast(b, originalSizes, 'float32'), cast(b, imageSizes, 'float32'));
  return arith(b, 'Mul', boxes, gather(b, gather(b, ratios, batch, 0), b.ints([1, 0, 1, 0]), 1));
}

/**
 * The (D, canvas, in) matrix that resizes each detection's `in`-pixel mask axis onto its box and
 * places it on the canvas axis: torch's bilinear taps for the box's length, rows outside the box
 * or the image zero (paste_mask_in_image's slicing). start / end: the box's int64 first and last
 * pixel (D); limit: the image's length (D); canvas: the canvas length (scalar).
 */
function pasteMatrix(b: GraphBuilder, start: string, end: string, limit: string, canvas: string, inSize: number): string {
  const length = maximum(b, arith(b, 'Add', arith(b, 'Sub', end, start), intScalar(b, 1)), intScalar(b, 1));
  const pixel = unsqueeze(b, range(b, 0, canvas, 1, 'canvas'), [0]);
  const column = (v: string) => unsqueeze(b, v, [1]);
  const offset = arith(b, 'Sub', pixel, column(start));
  const taps = linearTaps(b, scalar(b, inSize), column(cast(b, length, 'float32')), offset, intScalar(b, inSize - 1));
  const inside = and(b,
    compare(b, 'GreaterOrEqual', pixel, column(maximum(b, start, intScalar(b, 0)))),
    compare(b, 'Less', pixel, column(minimum(b, arith(b, 'Add', end, intScalar(b, 1)), limit))));
  const source = b.ints([...Array(inSize).keys()], [1, 1, inSize]);
  const weight = (i: string, w: string) => where(b, compare(b, 'Equal', unsqueeze(b, i, [2]), source), unsqueeze(b, w, [2]), scalar(b, 0));
  const matrix = arith(b, 'Add', weight(taps.i0, taps.w0), weight(taps.i1, taps.w1));
  return where(b, unsqueeze(b, inside, [2]), matrix, scalar(b, 0));
}

/**
 * paste_masks_in_image: `masks` (D, 1, M, M) probabilities on `boxes` (D, 4) in original pixels,
 * each padded by one pixel (expand_masks), its box scaled by (M + 2) / M and truncated to
 * integers (expand_boxes), the mask resized bilinearly to the box and written into a zero canvas
 * of the largest original size, cut at its own image's border. (D, 1, H, W).
 */
export function pasteMasks(b: GraphBuilder, masks: string, boxes: string, batch: string, originalSizes: string, maskSize: number): string {
  const padded = padZeros(b, squeeze(b, masks, [1]), [0, 1, 1, 0, 1, 1], [symbolic('detections'), maskSize + 2, maskSize + 2]);
  const half = scalar(b, 0.5);
  const scale = scalar(b, (maskSize + 2) / maskSize);
  const c = (i: number) => pick(b, boxes, i, 1);
  const halfW = arith(b, 'Mul', arith(b, 'Mul', arith(b, 'Sub', c(2), c(0)), half), scale);
  const halfH = arith(b, 'Mul', arith(b, 'Mul', arith(b, 'Sub', c(3), c(1)), half), scale);
  const ctrX = arith(b, 'Mul', arith(b, 'Add', c(2), c(0)), half);
  const ctrY = arith(b, 'Mul', arith(b, 'Add', c(3), c(1)), half);
  const int = (v: string) => cast(b, v, 'int64');
  const sizes = gather(b, originalSizes, batch, 0);
  const canvas = reduce(b, 'ReduceMax', originalSizes, [0], false);
  const rows = pasteMatrix(b, int(arith(b, 'Sub', ctrY, halfH)), int(arith(b, 'Add', ctrY, halfH)), pick(b, sizes, 0, 1), pick(b, canvas, 0, 0), maskSize + 2);
  const cols = pasteMatrix(b, int(arith(b, 'Sub', ctrX, halfW)), int(arith(b, 'Add', ctrX, halfW)), pick(b, sizes, 1, 1), pick(b, canvas, 1, 0), maskSize + 2);
  // Width first, as torch interpolates: (D, M+2, M+2) @ (D, M+2, W), then (D, H, M+2) @ that.
  const widthDone = matmul(b, padded, transpose(b, cols, [0, 2, 1]));
  const pasted = matmul(b, rows, widthDone);
  const out = unsqueeze(b, pasted, [1]);
  b.graph.shapes.set(out, [symbolic('detections'), 1, symbolic('height'), symbolic('width')]);
  return out;
}
