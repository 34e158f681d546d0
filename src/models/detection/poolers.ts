/**
 * torchvision's MultiScaleRoIAlign on ONNX's RoiAlign.
 *
 * ONNX Runtime's RoiAlign with coordinate_transformation_mode 'output_half_pixel' is torchvision's
 * roi_align(aligned=False) operation for operation: no half-pixel offset, RoIs at least 1x1,
 * `sampling_ratio` x `sampling_ratio` bilinear samples per bin with the same boundary rules,
 * averaged (checked bit for bit by test/detection.test.ts). The level scales are computed in the
 * graph as torchvision infers them (from the feature and image sizes, so odd aspect ratios get
 * the same scales), and the RoIs are multiplied by them before a RoiAlign with spatial scale 1:
 * the products are the same floats, as the scales are powers of two.
 */
import { attr, type GraphBuilder } from '../../graph/graph.js';
import {
  and, arith, cast, compare, concat, dimOf, expand, filled, gather, indicesWhere, intScalar, maximum, minimum, not, pick, range,
  reduce, scalar, scatterElements, shapeOf, symbolic, unary,
} from '../../graph/ops.js';
import { boxArea } from './boxes.js';

export interface LevelScales {
  /** Per level, 2^round(log2(feature height / largest image height)): float32 scalars. */
  scales: string[];
  /** The LevelMapper's k_min and k_max (-log2 of the first and last scale), float32 scalars. */
  kMin: string;
  kMax: string;
}

/**
 * MultiScaleRoIAlign._setup_scales / _infer_scale: `features` (N, C, h, w) per level,
 * `imageSizes` (N, 2) int64 (resized heights and widths). The ratio is taken in double and
 * rounded to float32 before log2, as torchvision does.
 */
export function levelScales(b: GraphBuilder, features: string[], imageSizes: string): LevelScales {
  const maxHeight = cast(b, reduce(b, 'ReduceMax', pick(b, imageSizes, 0, 1), [0], false), 'float64');
  const ln2 = scalar(b, Math.fround(Math.LN2));
  const exponents = features.map((f) => {
    const ratio = cast(b, arith(b, 'Div', cast(b, dimOf(b, f, 2), 'float64'), maxHeight), 'float32');
    return unary(b, 'Round', arith(b, 'Div', unary(b, 'Log', ratio), ln2));
  });
  const scales = exponents.map((e) => arith(b, 'Pow', scalar(b, 2), e));
  return { scales, kMin: unary(b, 'Neg', exponents[0]!), kMax: unary(b, 'Neg', exponents.at(-1)!) };
}

/**
 * LevelMapper: level index (int64, from 0) of each RoI (M, 4):
 * clamp(floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6), k_min, k_max) - k_min.
 */
export function roiLevels(b: GraphBuilder, rois: string, scales: LevelScales, canonicalScale: number, canonicalLevel: number): string {
  const side = unary(b, 'Sqrt', pick(b, boxArea(b, rois), 0, -1));
  const log2 = arith(b, 'Div', unary(b, 'Log', arith(b, 'Div', side, scalar(b, canonicalScale))), scalar(b, Math.fround(Math.LN2)));
  const target = unary(b, 'Floor', arith(b, 'Add', arith(b, 'Add', scalar(b, canonicalLevel), log2), scalar(b, 1e-6)));
  const clamped = minimum(b, maximum(b, target, scales.kMin), scales.kMax);
  return arith(b, 'Sub', cast(b, clamped, 'int64'), cast(b, scales.kMin, 'int64'));
}

export interface RoiAlignOptions {
  outputSize: number;
  samplingRatio: number;
}

/** RoiAlign with spatial scale 1 on RoIs already scaled to the feature map. (K, C, s, s). */
function roiAlign(b: GraphBuilder, features: string, rois: string, batch: string, channels: number, o: RoiAlignOptions): string {
  return b.node('RoiAlign', [features, rois, batch], [symbolic('rois'), channels, o.outputSize, o.outputSize], {
    coordinate_transformation_mode: attr.string('output_half_pixel'),
    mode: attr.string('avg'),
    output_height: attr.int(o.outputSize),
    output_width: attr.int(o.outputSize),
    sampling_ratio: attr.int(o.samplingRatio),
    spatial_scale: attr.float(1),
  });
}

/**
 * MultiScaleRoIAlign: RoIs (M, 4) in image pixels of images `batch` (M, int64), pooled from
 * the level `levels` (M, int64) names. RoIs whose level is outside the feature list (torchvision
 * leaves them zero: possible when odd image shapes shift k_min) pool to zeros. (M, C, s, s).
 */
export function multiScaleRoiAlign(
  b: GraphBuilder, features: string[], channels: number, rois: string, batch: string, levels: string, scales: LevelScales, o: RoiAlignOptions,
): string {
  const orders: string[] = [];
  const pooled: string[] = [];
  features.forEach((f, level) => {
    const idx = indicesWhere(b, compare(b, 'Equal', levels, intScalar(b, level)), 'level_rois');
    const scaled = arith(b, 'Mul', gather(b, rois, idx), scales.scales[level]!);
    orders.push(idx);
    pooled.push(roiAlign(b, f, scaled, gather(b, batch, idx), channels, o));
  });
  const inside = and(b, compare(b, 'GreaterOrEqual', levels, intScalar(b, 0)), compare(b, 'Less', levels, intScalar(b, features.length)));
  const outside = indicesWhere(b, not(b, inside), 'outside_rois');
  orders.push(outside);
  const zerosShape = concat(b, [shapeOf(b, outside), b.ints([channels, o.outputSize, o.outputSize])], 0);
  pooled.push(filled(b, zerosShape, 0, 'float32', [symbolic('outside_rois'), channels, o.outputSize, o.outputSize]));
  // Pooled in level order; put each RoI back in its place with the inverse permutation.
  const order = concat(b, orders, 0, 'rois');
  const all = concat(b, pooled, 0, 'rois');
  const count = shapeOf(b, rois, 0, 1);
  const inverse = scatterElements(b, expand(b, intScalar(b, 0), count, [symbolic('rois')]), order, range(b, 0, dimOf(b, rois, 0), 1, 'rois'), 0);
  return gather(b, all, inverse, 0);
}
