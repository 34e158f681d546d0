/**
 * torchvision's RegionProposalNetwork at test time: RPNHead (keys `conv.<i>.0`, `cls_logits`,
 * `bbox_pred` under the prefix) on every level, anchors, box decoding, then filter_proposals: the
 * top pre_nms_top_n objectness logits per level, sigmoid, clipping, small-box and score removal,
 * NMS per level, and the post_nms_top_n best per image.
 *
 * Proposals leave as a padded batch: boxes (N, T, 4) in descending score order per image and a
 * bool (N, T) of which are real (images keep different numbers).
 */
import type { GraphBuilder } from '../../graph/graph.js';
import {
  and, cast, compare, concat, expand, filled, gather, gatherND, intScalar, minimum, reshapeTo, scatterND, shapeOf,
  symbolic, topK, transpose, unary, unsqueeze,
} from '../../graph/ops.js';
import type { Maps } from '../../graph/layout.js';
import { conv, relu, type Emit } from '../modules.js';
import { cellAnchors, gridAnchors, levelStride } from './anchors.js';
import { clipBoxes, decodeBoxes, largeEnough } from './boxes.js';
import { candidateScores, isCandidate, nmsBoxes, nonMaxSuppression } from './nms.js';
import type { AnchorSettings, RpnSettings } from './settings.js';

export interface RpnShape {
  channels: number;
  /** Anchors per position (sizes x aspect ratios of a level). */
  anchors: number;
  /** 3x3 conv + ReLU layers before the two 1x1 heads (torchvision default 1). */
  convDepth: number;
}

export interface Proposals {
  /** (N, T, 4) boxes in resized-image pixels, best first. */
  boxes: string;
  /** (N, T) bool: real proposals (the rest is padding). */
  valid: string;
}

/** RPNHead on one level: objectness logits (N, h*w*A) and deltas (N, h*w*A, 4), anchors innermost. */
export function rpnHead(e: Emit, x: Maps, s: RpnShape, prefix: string): { logits: string; deltas: string } {
  const { b } = e;
  let t = x;
  for (let i = 0; i < s.convDepth; i++) t = relu(e, conv(e, t, `${prefix}conv.${i}.0`, s.channels, s.channels, 3));
  const logits = conv(e, t, `${prefix}cls_logits`, s.channels, s.anchors, 1).value;
  const deltas = conv(e, t, `${prefix}bbox_pred`, s.channels, 4 * s.anchors, 1).value;
  const n = b.shape(x.value)[0]!;
  const k = symbolic('level_anchors');
  // (N, A, h, w) -> (N, h, w, A) -> (N, h*w*A); (N, A*4, h, w) -> (N, A, 4, h*w) -> (N, h*w, A, 4) -> (N, h*w*A, 4).
  const flatLogits = reshapeTo(b, transpose(b, logits, [0, 2, 3, 1]), [0, -1], [n, k]);
  const grouped = reshapeTo(b, deltas, [0, s.anchors, 4, -1], [n, s.anchors, 4, 'hw']);
  const flatDeltas = reshapeTo(b, transpose(b, grouped, [0, 3, 1, 2]), [0, -1, 4], [n, k, 4]);
  return { logits: flatLogits, deltas: flatDeltas };
}

/** The k largest per row of (N, K) (k = min(limit, K), as torchvision's _topk_min). [values, indices]. */
export function topPerRow(b: GraphBuilder, x: string, limit: number, name: string): [string, string] {
  return topK(b, x, minimum(b, shapeOf(b, x, 1, 2), b.ints([limit])), 1, name);
}

/** Rows of `x` (N, K, ...) at `indices` (N, k) per image: (N, k, ...). */
export function gatherRows(b: GraphBuilder, x: string, indices: string): string {
  return gatherND(b, x, unsqueeze(b, indices, [-1]), 1);
}

/**
 * The RPN: `features` (levels '0'..'pool', NCHW), `images` the padded batch (for the strides),
 * `limits` (N, 1, 4) the clip limits (w, h, w, h) of each resized image. `heads`: the RPNHead's
 * outputs per level when the graph has them already (the training step's), else emitted here.
 */
export function regionProposals(
  e: Emit, features: Maps[], images: string, limits: string, s: RpnShape, anchors: AnchorSettings, r: RpnSettings, prefix: string,
  heads?: { logits: string; deltas: string }[],
): Proposals {
  const { b } = e;
  const scores: string[] = [];
  const boxes: string[] = [];
  const levels: string[] = [];
  features.forEach((x, level) => {
    const head = heads?.[level] ?? rpnHead(e, x, s, prefix);
    const cell = cellAnchors(anchors.sizes[level]!, anchors.aspectRatios[level]!);
    const grid = gridAnchors(b, x.value, levelStride(b, images, x.value), cell);
    // Decoding is per anchor, so decoding only the kept ones gives the same boxes.
    const [top, idx] = topPerRow(b, head.logits, r.preNmsTopNTest, 'level_top');
    scores.push(top);
    boxes.push(decodeBoxes(b, gatherRows(b, head.deltas, idx), gather(b, grid, idx, 0), [1, 1, 1, 1]));
    levels.push(expand(b, intScalar(b, level), shapeOf(b, top, 1, 2), [symbolic('level_top')]));
  });
  const logits = concat(b, scores, 1, 'candidates');
  const prob = unary(b, 'Sigmoid', logits);
  const clipped = clipBoxes(b, concat(b, boxes, 1, 'candidates'), limits);
  const level = concat(b, levels, 0, 'candidates');
  const candidates = and(b, largeEnough(b, clipped, r.minSize), unsqueeze(b, compare(b, 'GreaterOrEqual', prob, b.constant([r.scoreThresh])), [-1]));
  // batched_nms by level: NMS per (image, level) via the group axis of ONNX NMS.
  const nmsInput = nmsBoxes(b, clipped, candidates, unsqueeze(b, cast(b, level, 'float32'), [-1]), [1]);
  const groups = b.ints([...features.keys()], [1, features.length, 1]);
  const inGroup = and(b, compare(b, 'Equal', unsqueeze(b, level, [0, 1]), groups), transpose(b, candidates, [0, 2, 1]));
  const grouped = candidateScores(b, inGroup, unsqueeze(b, prob, [1]));
  const selected = nonMaxSuppression(b, nmsInput, grouped, r.nmsThresh);
  const kept = keptMask(b, selected, prob);
  const [best, order] = topPerRow(b, candidateScores(b, kept, prob), r.postNmsTopNTest, 'proposals');
  return { boxes: gatherRows(b, clipped, order), valid: isCandidate(b, best) };
}

/** bool (N, K): which boxes NMS kept, from its (batch, group, box) rows. */
function keptMask(b: GraphBuilder, selected: string, like: string): string {
  const where2 = gather(b, selected, b.ints([0, 2]), 1);
  const ones = expand(b, b.constant([1]), shapeOf(b, selected, 0, 1), [symbolic('selected')]);
  const marks = scatterND(b, filled(b, shapeOf(b, like), 0, 'float32', b.shape(like)), where2, ones);
  return compare(b, 'Greater', marks, b.constant([0.5]));
}

