/**
 * torchvision.ops.FeaturePyramidNetwork with LastLevelMaxPool (keys `inner_blocks.i.0`,
 * `layer_blocks.i.0` under the prefix): a 1x1 lateral conv per level, top-down nearest upsampling
 * to each lateral's size, a 3x3 conv per level, and 'pool', a stride-2 subsampling of the last.
 */
import { attr } from '../../graph/graph.js';
import { shapeOf, slice } from '../../graph/ops.js';
import { combine, sameAs, type Maps } from '../../graph/layout.js';
import { conv, type Emit } from '../modules.js';

/** Nearest-neighbour resize of `x` to `like`'s spatial size (F.interpolate(mode='nearest', size=...)). */
function upsampleTo(e: Emit, x: Maps, like: Maps): Maps {
  const { b } = e;
  // ONNX 'asymmetric' + 'floor' is torch's nearest: source index floor(out_index * in / out).
  const resized = b.node('Resize', [x.value, '', '', shapeOf(b, like.value)], b.shape(like.value), {
    mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor'),
  });
  return sameAs(like, resized);
}

/**
 * The pyramid over backbone levels `features` (strides 4..32, widths `inChannels`): `channels`
 * maps per level, highest resolution first, then 'pool' (max_pool2d(x, 1, 2, 0) = every other pixel).
 */
export function featurePyramid(e: Emit, features: Maps[], inChannels: number[], channels: number, prefix: string): Maps[] {
  const last = features.length - 1;
  const inner = (i: number) => conv(e, features[i]!, `${prefix}inner_blocks.${i}.0`, inChannels[i]!, channels, 1);
  const layer = (x: Maps, i: number) => conv(e, x, `${prefix}layer_blocks.${i}.0`, channels, channels, 3);
  let top = inner(last);
  const results = [layer(top, last)];
  for (let i = last - 1; i >= 0; i--) {
    const lateral = inner(i);
    top = combine(e.b, 'Add', lateral, upsampleTo(e, top, lateral));
    results.unshift(layer(top, i));
  }
  const deepest = results[last]!;
  // Static sizes when the maps have them (training graphs need them), else symbolic.
  const [, , h, w] = e.b.shape(deepest.value);
  const dims = typeof h === 'number' && typeof w === 'number' ? [Math.ceil(h / 2), Math.ceil(w / 2)] : ['pool_height', 'pool_width'];
  const pooled = slice(e.b, deepest.value, [0, 0], [2 ** 31 - 1, 2 ** 31 - 1], [2, 3], [2, 2], dims);
  return [...results, sameAs(deepest, pooled)];
}
