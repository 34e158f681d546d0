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
  const mean = normalization.mean.map(Math.fround);
  const inv = normalization.std.map((s) => Math.fround(1 / s));
  const plane = h * w;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) pixels.data[c * plane + y * w + x] = Math.fround(resized.data[src + c]! - mean[c]!) * inv[c]!;
    }
  }
  return { pixels, resized: { width, height }, original: { width: image.width, height: image.height } };
}
