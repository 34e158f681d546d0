/**
 * mmsegmentation's test pipeline up to the model input (the way back, from logits to a mask at
 * the image's own size, is models/segmentation.ts's).
 *
 * In: Resize(img_scale, keep_ratio=True) (mmcv.imrescale: the rescale rule and OpenCV's bilinear
 * resize, cv-resize.ts), Normalize (mean/std on 0..255 RGB, as mmcv's imnormalize computes it in
 * float32), zero padding at the bottom and right to a multiple of 32 (the backbone's stride).
 */
import { SwiftFormerError } from '../core/errors.js';
import { float32, type FloatTensor } from '../core/tensor.js';
import { cvResizeLinear, rescaleSize } from './cv-resize.js';
import { checkRGBImage, type RGBImage } from './resize.js';
import type { Normalization } from './transforms.js';

/** mmseg's ImageNet normalization on 0..255 RGB (img_norm_cfg of its ADE20K configs). */
export const MMSEG_NORMALIZATION: Normalization = { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };

/** The backbone's output stride: inputs are padded to a multiple of it. */
export const SIZE_DIVISOR = 32;

export interface SegmentationInput {
  /** (1, 3, H, W), H and W multiples of 32. */
  pixels: FloatTensor;
  /** The image after the keep-ratio resize (the part of `pixels` that is not padding). */
  resized: { width: number; height: number };
  original: { width: number; height: number };
}

/**
 * The model input for `image`: rescaled into `scale` (long, short), or kept at its size with
 * `scale` null, normalized, zero-padded to a multiple of 32.
 */
export function segmentationInput(image: RGBImage, scale: readonly [number, number] | null, normalization: Normalization = MMSEG_NORMALIZATION): SegmentationInput {
  checkRGBImage(image);
  let resized = image;
  if (scale) {
    const size = rescaleSize(image.width, image.height, scale);
    if (size.width < 1 || size.height < 1) throw new SwiftFormerError('BAD_IMAGE', `a ${image.width}x${image.height} image rescaled into ${scale.join('x')} has no pixels left`);
    resized = cvResizeLinear(image, size.width, size.height);
  }
  const { width, height } = resized;
  const [h, w] = [Math.ceil(height / SIZE_DIVISOR) * SIZE_DIVISOR, Math.ceil(width / SIZE_DIVISOR) * SIZE_DIVISOR];
  const pixels = float32([1, 3, h, w]);
  writeNormalizedPadded(resized, pixels.data, 0, h, w, normalization);
  return { pixels, resized: { width, height }, original: { width: image.width, height: image.height } };
}

/**
 * mmcv's imnormalize of an RGB8 image into 3 planes of h x w at `offset` of `out`, the image in the
 * top-left corner, the rest left as it is (zeros in a fresh buffer: mmseg's Pad after Normalize).
 * Per channel (v - mean) * (1 / std) in float32, through a table of the 256 values.
 */
export function writeNormalizedPadded(image: RGBImage, out: Float32Array, offset: number, h: number, w: number, normalization: Normalization = MMSEG_NORMALIZATION): void {
  const { width, height, data } = image;
  if (width > w || height > h) throw new SwiftFormerError('BAD_SHAPE', `a ${width}x${height} image does not fit a ${w}x${h} input`);
  const plane = h * w;
  for (let c = 0; c < 3; c++) {
    const table = mmsegTable(normalization.mean[c]!, normalization.std[c]!);
    for (let y = 0; y < height; y++) {
      const row = offset + c * plane + y * w;
      for (let x = 0, src = y * width * 3 + c; x < width; x++, src += 3) out[row + x] = table[data[src]!]!;
    }
  }
}

const tables = new Map<string, Float32Array>();

function mmsegTable(mean: number, std: number): Float32Array {
  const key = `${mean},${std}`;
  let table = tables.get(key);
  if (!table) {
    const m = Math.fround(mean);
    const inv = Math.fround(1 / std);
    table = Float32Array.from({ length: 256 }, (_, v) => Math.fround(v - m) * inv);
    tables.set(key, table);
  }
  return table;
}
