/**
 * Box arithmetic in the graph, as torchvision's `_utils.BoxCoder` and `ops/boxes.py` compute it.
 * Boxes are (..., 4) float tensors (x1, y1, x2, y2). Every expression keeps torchvision's order of
 * float32 operations (a*b then + c, never fused), so the results are the same floats.
 */
import type { GraphBuilder } from '../../graph/graph.js';
import { and, arith, compare, concat, maximum, minimum, scalar, slice, unary } from '../../graph/ops.js';
import { BBOX_XFORM_CLIP } from './settings.js';

/** Coordinate `i` (0..3) of boxes (..., 4), keeping the last axis: (..., 1). */
export function coord(b: GraphBuilder, boxes: string, i: number): string {
  return slice(b, boxes, [i], [i + 1], [-1]);
}

export function boxWidths(b: GraphBuilder, boxes: string): string {
  return arith(b, 'Sub', coord(b, boxes, 2), coord(b, boxes, 0));
}

export function boxHeights(b: GraphBuilder, boxes: string): string {
  return arith(b, 'Sub', coord(b, boxes, 3), coord(b, boxes, 1));
}

/** box_area: (x2 - x1) * (y2 - y1), shape (..., 1). */
export function boxArea(b: GraphBuilder, boxes: string): string {
  return arith(b, 'Mul', boxWidths(b, boxes), boxHeights(b, boxes));
}

/**
 * BoxCoder.decode_single: `deltas` (..., 4) of (dx, dy, dw, dh) relative to `reference` boxes
 * broadcasting against them; each delta divided by its weight, dw and dh clamped at
 * log(1000/16) before exp. Returns (..., 4).
 */
export function decodeBoxes(b: GraphBuilder, deltas: string, reference: string, weights: readonly number[]): string {
  const widths = boxWidths(b, reference);
  const heights = boxHeights(b, reference);
  const half = scalar(b, 0.5);
  const ctrX = arith(b, 'Add', coord(b, reference, 0), arith(b, 'Mul', half, widths));
  const ctrY = arith(b, 'Add', coord(b, reference, 1), arith(b, 'Mul', half, heights));
  // x / 1 is x exactly: skip the division for unit weights (the RPN's).
  const scaled = (i: number) => (weights[i] === 1 ? coord(b, deltas, i) : arith(b, 'Div', coord(b, deltas, i), scalar(b, weights[i]!)));
  const clip = scalar(b, BBOX_XFORM_CLIP);
  const dw = minimum(b, scaled(2), clip);
  const dh = minimum(b, scaled(3), clip);
  const predCtrX = arith(b, 'Add', arith(b, 'Mul', scaled(0), widths), ctrX);
  const predCtrY = arith(b, 'Add', arith(b, 'Mul', scaled(1), heights), ctrY);
  const halfW = arith(b, 'Mul', half, arith(b, 'Mul', unary(b, 'Exp', dw), widths));
  const halfH = arith(b, 'Mul', half, arith(b, 'Mul', unary(b, 'Exp', dh), heights));
  return concat(b, [
    arith(b, 'Sub', predCtrX, halfW), arith(b, 'Sub', predCtrY, halfH),
    arith(b, 'Add', predCtrX, halfW), arith(b, 'Add', predCtrY, halfH),
  ], -1);
}

/**
 * BoxCoder.encode_single: the (dx, dy, dw, dh) that map `reference` (anchors or proposals) onto
 * `target` boxes, times the weights. The inverse of decodeBoxes, for training targets.
 */
export function encodeBoxes(b: GraphBuilder, target: string, reference: string, weights: readonly number[]): string {
  const half = scalar(b, 0.5);
  const center = (boxes: string, lo: number, size: string) => arith(b, 'Add', coord(b, boxes, lo), arith(b, 'Mul', half, size));
  const [rw, rh, tw, th] = [boxWidths(b, reference), boxHeights(b, reference), boxWidths(b, target), boxHeights(b, target)];
  const w = (i: number) => scalar(b, weights[i]!);
  // wx * (gt_ctr - ex_ctr) / ex_width, evaluated left to right as torchvision's encode_boxes.
  const dx = arith(b, 'Div', arith(b, 'Mul', w(0), arith(b, 'Sub', center(target, 0, tw), center(reference, 0, rw))), rw);
  const dy = arith(b, 'Div', arith(b, 'Mul', w(1), arith(b, 'Sub', center(target, 1, th), center(reference, 1, rh))), rh);
  const dw = arith(b, 'Mul', w(2), unary(b, 'Log', arith(b, 'Div', tw, rw)));
  const dh = arith(b, 'Mul', w(3), unary(b, 'Log', arith(b, 'Div', th, rh)));
  return concat(b, [dx, dy, dw, dh], -1);
}

/** clip_boxes_to_image: x clamped to [0, width], y to [0, height]; `limits` (.., 4) = (w, h, w, h) broadcasting. */
export function clipBoxes(b: GraphBuilder, boxes: string, limits: string): string {
  return minimum(b, maximum(b, boxes, scalar(b, 0)), limits);
}

/** remove_small_boxes as a mask: both sides at least `minSize` -> bool (..., 1). */
export function largeEnough(b: GraphBuilder, boxes: string, minSize: number): string {
  const min = scalar(b, minSize);
  return and(b, compare(b, 'GreaterOrEqual', boxWidths(b, boxes), min), compare(b, 'GreaterOrEqual', boxHeights(b, boxes), min));
}
