/**
 * torchvision's RoIHeads at test time (keys under the prefix, `roi_heads.`): MultiScaleRoIAlign,
 * TwoMLPHead (`box_head.fc6`, `fc7`) and FastRCNNPredictor (`box_predictor.cls_score`,
 * `bbox_pred`), postprocess_detections (per-class decoding with weights (10, 10, 5, 5), softmax,
 * clipping, background dropped, score threshold, small-box removal, NMS per class, the best
 * detections_per_img per image), then the mask branch: MaskRCNNHeads (`mask_head.<i>.0`, 3x3 conv
 * + ReLU each), MaskRCNNPredictor (`mask_predictor.conv5_mask`, a 2x2 stride-2 transposed conv,
 * ReLU, `mask_predictor.mask_fcn_logits`) and the sigmoid of the predicted class's mask.
 *
 * Detections leave flattened: (D, ...) rows sorted by image, then by descending score, with the
 * image of each row in `batch`.
 */
import { attr, type GraphBuilder } from '../../graph/graph.js';
import {
  and, arith, compare, concat, dimOf, filled, gather, gatherND, intScalar, nonZero, pick, reshapeTo, scatterND, shapeOf,
  slice, squeeze, symbolic, transpose, unary, unsqueeze,
} from '../../graph/ops.js';
import { toLayout, type Maps } from '../../graph/layout.js';
import { conv, relu, type Emit } from '../modules.js';
import { clipBoxes, decodeBoxes, largeEnough } from './boxes.js';
import { candidateScores, isCandidate, nmsBoxes, nonMaxSuppression } from './nms.js';
import { multiScaleRoiAlign, roiLevels, type LevelScales } from './poolers.js';
import { topPerRow, type Proposals } from './rpn.js';
import type { RoiSettings } from './settings.js';

export interface RoiHeadsShape {
  /** FPN channels. */
  channels: number;
  /** TwoMLPHead width (`representation_size`). */
  representation: number;
  /** Classes including the background (index 0). */
  numClasses: number;
  /** Widths of the mask head's convs; undefined for a detector without masks (Faster R-CNN). */
  maskLayers?: number[];
  /** Width of the mask predictor's transposed conv (`dim_reduced`). */
  maskDimReduced?: number;
}

export interface Detections {
  /** (D, 4) boxes in resized-image pixels. */
  boxes: string;
  /** (D) class probabilities. */
  scores: string;
  /** (D) int64 classes (1 .. numClasses - 1). */
  labels: string;
  /** (D) int64 image of each detection. */
  batch: string;
}

/** RoIs of a padded proposal batch, flattened: boxes (M, 4), their image (M) and (image, slot) (M, 2). */
export interface Rois { boxes: string; batch: string; positions: string }

export function flattenProposals(b: GraphBuilder, proposals: Proposals): Rois {
  const positions = transpose(b, nonZero(b, proposals.valid, 'rois'), [1, 0]);
  return { boxes: gatherND(b, proposals.boxes, positions), batch: pick(b, positions, 0, 1), positions };
}

/** Rows of int64 columns side by side: (K) x n -> (K, n). */
function stack(b: GraphBuilder, columns: string[]): string {
  return concat(b, columns.map((c) => unsqueeze(b, c, [-1])), 1);
}

function linear(b: GraphBuilder, x: string, key: string, inF: number, outF: number): string {
  return b.linear(x, b.param(`${key}.weight`, [outF, inF]), b.param(`${key}.bias`, [outF]));
}

/** TwoMLPHead + FastRCNNPredictor on pooled RoIs (M, C, s, s): class logits (M, K) and deltas (M, 4K). */
export function boxHead(e: Emit, pooled: string, s: RoiHeadsShape, size: number, prefix: string): { classLogits: string; boxRegression: string } {
  const { b } = e;
  const m = b.shape(pooled)[0]!;
  const inF = s.channels * size * size;
  const flat = reshapeTo(b, pooled, [0, -1], [m, inF]);
  const fc6 = unary(b, 'Relu', linear(b, flat, `${prefix}box_head.fc6`, inF, s.representation));
  const fc7 = unary(b, 'Relu', linear(b, fc6, `${prefix}box_head.fc7`, s.representation, s.representation));
  return {
    classLogits: linear(b, fc7, `${prefix}box_predictor.cls_score`, s.representation, s.numClasses),
    boxRegression: linear(b, fc7, `${prefix}box_predictor.bbox_pred`, s.representation, 4 * s.numClasses),
  };
}

/**
 * postprocess_detections on the box head's outputs for `rois` of the padded `proposals`.
 * `limits` (N, 4): each image's clip limits; `threshold` (a float32 scalar value): detections at
 * or below it are dropped after the top-k (0 keeps torchvision's output).
 */
export function postprocessDetections(
  b: GraphBuilder, head: { classLogits: string; boxRegression: string }, rois: Rois, proposals: Proposals, limits: string,
  numClasses: number, o: RoiSettings, threshold: string,
): Detections {
  const fg = numClasses - 1;
  const m = symbolic('rois');
  const deltas = reshapeTo(b, head.boxRegression, [0, numClasses, 4], [m, numClasses, 4]);
  const decoded = decodeBoxes(b, deltas, unsqueeze(b, rois.boxes, [1]), o.boxCoderWeights);
  const clipped = clipBoxes(b, decoded, unsqueeze(b, gather(b, limits, rois.batch, 0), [1]));
  const probs = b.softmax(head.classLogits, 1);
  // Background dropped; back to the padded (image, slot) layout that NMS per image needs.
  const grid = shapeOf(b, proposals.valid);
  const t = dimOf(b, proposals.valid, 1);
  const boxes = scatterND(b, filled(b, concat(b, [grid, b.ints([fg, 4])], 0), 0, 'float32', ['batch', 'proposals', fg, 4]), rois.positions,
    slice(b, clipped, [1], [numClasses], [1]));
  const scores = scatterND(b, filled(b, concat(b, [grid, b.ints([fg])], 0), -1, 'float32', ['batch', 'proposals', fg]), rois.positions,
    slice(b, probs, [1], [numClasses], [1]));
  const candidates = and(b, unsqueeze(b, compare(b, 'Greater', scores, b.constant([o.scoreThresh])), [-1]), largeEnough(b, boxes, o.minSize));
  const categories = b.constant(Float32Array.from({ length: fg }, (_, i) => i + 1), [fg, 1]);
  const nmsInput = nmsBoxes(b, boxes, candidates, categories, [1, 2]);
  // One NMS batch per (image, class): (N * (K-1), T, 4) boxes, (N * (K-1), 1, T) scores.
  const masked = candidateScores(b, squeeze(b, candidates, [-1]), scores);
  const tVector = unsqueeze(b, t, [0]);
  const perClassBoxes = reshapeTo(b, transpose(b, nmsInput, [0, 2, 1, 3]), concat(b, [b.ints([-1]), tVector, b.ints([4])], 0), ['groups', 'proposals', 4]);
  const perClassScores = reshapeTo(b, transpose(b, masked, [0, 2, 1]), concat(b, [b.ints([-1, 1]), tVector], 0), ['groups', 1, 'proposals']);
  const selected = nonMaxSuppression(b, perClassBoxes, perClassScores, o.nmsThresh);
  const group = pick(b, selected, 0, 1);
  const slot = pick(b, selected, 2, 1);
  const image = arith(b, 'Div', group, intScalar(b, fg));
  const cls = b.node('Mod', [group, intScalar(b, fg)], b.shape(group));
  // Rank the kept (class, slot) pairs of each image by score: the top detections_per_img.
  const keptScores = gatherND(b, scores, stack(b, [image, slot, cls]));
  const flatIndex = arith(b, 'Add', arith(b, 'Mul', cls, t), slot);
  const pairs = concat(b, [shapeOf(b, proposals.valid, 0, 1), unsqueeze(b, arith(b, 'Mul', t, intScalar(b, fg)), [0])], 0);
  const ranking = scatterND(b, filled(b, pairs, -1, 'float32', ['batch', 'pairs']), stack(b, [image, flatIndex]), keptScores);
  const [best, index] = topPerRow(b, ranking, o.detectionsPerImage, 'top_detections');
  const keep = and(b, isCandidate(b, best), compare(b, 'Greater', best, threshold));
  const rows = transpose(b, nonZero(b, keep, 'detections'), [1, 0]);
  const chosen = gatherND(b, index, rows);
  const detCls = arith(b, 'Div', chosen, t);
  const detSlot = b.node('Mod', [chosen, t], b.shape(chosen));
  const batch = pick(b, rows, 0, 1);
  return {
    boxes: gatherND(b, boxes, stack(b, [batch, detSlot, detCls])),
    scores: gatherND(b, best, rows),
    labels: arith(b, 'Add', detCls, intScalar(b, 1)),
    batch,
  };
}

/** MultiScaleRoIAlign of RoIs (M, 4) of images `batch` from the pyramid's first levels. */
export function poolRois(
  b: GraphBuilder, features: Maps[], channels: number, rois: string, batch: string, scales: LevelScales, o: RoiSettings, size: number,
): string {
  const levels = roiLevels(b, rois, scales, o.canonicalScale, o.canonicalLevel);
  return multiScaleRoiAlign(b, features.map((f) => f.value), channels, rois, batch, levels, scales, { outputSize: size, samplingRatio: o.samplingRatio });
}

/** MaskRCNNHeads + MaskRCNNPredictor on pooled RoIs (D, C, 14, 14): mask logits (D, K, 28, 28). */
export function maskHead(e: Emit, pooled: string, s: RoiHeadsShape, prefix: string): string {
  const { b } = e;
  const layers = s.maskLayers ?? [];
  let x: Maps = toLayout(b, pooled, 'nchw');
  let width = s.channels;
  layers.forEach((next, i) => {
    x = relu(e, conv(e, x, `${prefix}mask_head.${i}.0`, width, next, 3));
    width = next;
  });
  const reduced = s.maskDimReduced ?? width;
  const weight = b.param(`${prefix}mask_predictor.conv5_mask.weight`, [width, reduced, 2, 2]);
  const bias = b.param(`${prefix}mask_predictor.conv5_mask.bias`, [reduced]);
  const [d, , h, w] = b.shape(x.value);
  const up = b.node('ConvTranspose', [x.value, weight, bias], [d!, reduced, typeof h === 'number' ? 2 * h : 'mask', typeof w === 'number' ? 2 * w : 'mask'], {
    kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]),
  });
  const upMaps = relu(e, toLayout(b, up, 'nchw'));
  return conv(e, upMaps, `${prefix}mask_predictor.mask_fcn_logits`, reduced, s.numClasses, 1).value;
}

/** maskrcnn_inference: the sigmoid of each detection's own class's mask logits: (D, 1, M, M). */
export function maskProbabilities(b: GraphBuilder, logits: string, labels: string): string {
  const own = gatherND(b, logits, unsqueeze(b, labels, [-1]), 1);
  return unsqueeze(b, unary(b, 'Sigmoid', own), [1]);
}

