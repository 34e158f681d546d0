/**
 * torchvision's batched_nms on ONNX's NonMaxSuppression.
 *
 * The two agree on what NMS is: candidates in descending score order, a box is dropped when its
 * IoU with a kept box is > the threshold, IoU = inter / (area1 + area2 - inter) with areas
 * (x2 - x1)(y2 - y1) (no +1), every product and sum in float32 in the same order. ONNX's box
 * layout is [y1, x1, y2, x2] for center_point_box = 0, but its IoU is symmetric in the two axes
 * (the same float products), so (x1, y1, x2, y2) boxes go in unchanged. Ties in score are
 * implementation-defined on both sides.
 *
 * What differs is the threshold's type: torchvision compares the float IoU with a double, ONNX
 * with a float32; `floatThreshold` gives the float32 that decides every IoU the same way. And
 * torchvision's batched_nms has two paths that can disagree in the last bit: per category
 * ("vanilla") when it has more than 4000 coordinates (1000 boxes) on the CPU, else one NMS over
 * boxes offset by category * (max coordinate + 1) ("coordinate trick"), whose IoUs are computed
 * on the offset coordinates. `nmsBoxes` reproduces the choice per image.
 */
import type { GraphBuilder } from '../../graph/graph.js';
import {
  arith, cast, compare, intScalar, reduce, scalar, symbolic, where,
} from '../../graph/ops.js';

/** The largest float32 not above `t`: `iou > t` (double) and `iou > floatThreshold(t)` (float32) agree for every float32 iou. */
export function floatThreshold(t: number): number {
  const f = Math.fround(t);
  if (f <= t) return f;
  const buf = new Float32Array([f]);
  const bits = new Int32Array(buf.buffer);
  bits[0]! += f > 0 ? -1 : 1;
  return buf[0]!;
}

/** torchvision's cut-over: the coordinate trick for at most this many boxes (4000 coordinates on the CPU). */
export const COORDINATE_TRICK_MAX_BOXES = 1000;

/**
 * Boxes as torchvision's batched_nms hands them to nms: offset by `category` * (max coordinate of
 * the image's candidates + 1) when an image has at most 1000 candidates, unchanged otherwise.
 * boxes (N, ..., 4); candidates bool (N, ..., 1); category float broadcasting against (N, ..., 1).
 * `imageAxes` are the axes reduced per image (all but the first and the last).
 */
export function nmsBoxes(b: GraphBuilder, boxes: string, candidates: string, category: string, imageAxes: number[]): string {
  const count = reduce(b, 'ReduceSum', cast(b, candidates, 'int64'), [...imageAxes, -1], true);
  const masked = where(b, candidates, boxes, scalar(b, -Infinity));
  const maxCoordinate = reduce(b, 'ReduceMax', masked, [...imageAxes, -1], true);
  const offsets = arith(b, 'Mul', category, arith(b, 'Add', maxCoordinate, scalar(b, 1)));
  const shifted = arith(b, 'Add', boxes, offsets);
  return where(b, compare(b, 'LessOrEqual', count, intScalar(b, COORDINATE_TRICK_MAX_BOXES)), shifted, boxes);
}

/** Score of a candidate that is not one: below the NMS score threshold, which every real score (>= 0) passes. */
export const NOT_A_CANDIDATE = -1;
const CANDIDATE_THRESHOLD = -0.5;

/**
 * ONNX NonMaxSuppression: boxes (B, S, 4), scores (B, G, S) with NOT_A_CANDIDATE for boxes
 * outside a group. Every group of every batch is suppressed on its own; no limit on the count.
 * Returns int64 (K, 3) rows (batch, group, box), each group's in descending score order.
 */
export function nonMaxSuppression(b: GraphBuilder, boxes: string, scores: string, iouThreshold: number): string {
  const inputs = [boxes, scores, b.ints([2 ** 31 - 1]), b.constant([floatThreshold(iouThreshold)], [1]), b.constant([CANDIDATE_THRESHOLD], [1])];
  return b.node('NonMaxSuppression', inputs, [symbolic('selected'), 3]);
}

/** Scores where `candidates`, NOT_A_CANDIDATE elsewhere. */
export function candidateScores(b: GraphBuilder, candidates: string, scores: string): string {
  return where(b, candidates, scores, scalar(b, NOT_A_CANDIDATE));
}

/** true where a masked score is a real one. */
export function isCandidate(b: GraphBuilder, maskedScores: string): string {
  return compare(b, 'Greater', maskedScores, scalar(b, CANDIDATE_THRESHOLD));
}

