/**
 * One Mask R-CNN training batch from resized images, their targets and the RPN's proposals: what
 * torchvision 0.14 computes without gradient between its forward pass's stages (rpn.py
 * assign_targets_to_anchors + fg_bg_sampler; roi_heads.py select_training_samples and the mask
 * branch's positives), turned into the inputs of the training graph (detection-step.ts).
 *
 *  - the batch: images zero-padded to the largest size rounded up to 32 (batch_images); gt masks
 *    padded by repeating their last row and column, so that RoIAlign's edge rule reads what it
 *    reads on the unpadded mask;
 *  - RPN: anchors matched to the gt (IoU 0.7 / 0.3, low-quality matches kept), 256 sampled per
 *    image at half positives; weights 1 / (number sampled in the batch);
 *  - RoI heads: proposals with the gt appended, matched at IoU 0.5, 512 sampled per image at a
 *    quarter positives, in index order per image (torch.where of the sampled mask); weights
 *    1 / (number of sampled RoIs); the positives go to the mask head, weights 1 / (positives x 28^2).
 *
 * Samples may be given (the fixture's, drawn by torch.randperm) instead of drawn. The sampled RoIs go
 * in pyramid-level order, index order within a level (the losses are sums over rows, so the order is
 * free; the graph pools each level's block from its level); the positives in index order with their
 * levels one-hot. Rows beyond the
 * real ones (`pad`) are padding with weight 0 and an ignored label, so that batches share a graph.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { MaskRcnnConfig } from '../models/maskrcnn.js';
import {
  anchorGrid, levelScale, roiAssignment, roiLevels, rpnAssignment, sampleBalanced,
} from '../models/detection/targets.js';
import type { DetectionStepShape } from './detection-step.js';

/** One image after the model's transform: normalized and resized, targets in its resized pixels. */
export interface ResizedImage {
  /** (3, height, width): normalized (before the transform, TrainingImage: RGB in [0, 1]). */
  pixels: Float32Array;
  height: number;
  width: number;
  /** K x 4 x1, y1, x2, y2. */
  boxes: Float32Array;
  /** K labels (1..numClasses-1). */
  labels: Int32Array;
  /** K x height x width, 0 / 1 (Mask R-CNN). */
  masks?: Uint8Array;
}

/** Sample masks per image, as torchvision's sampler returns them. */
export interface Samples {
  rpnPos: Uint8Array[];
  rpnNeg: Uint8Array[];
  roiPos: Uint8Array[];
  roiNeg: Uint8Array[];
}

export interface BatchOptions {
  /** Inject these samples (each must be a subset of what the matcher allows). */
  samples?: Samples;
  /** Drawn samples' randomness (uniform in [0, 1)). */
  random?: () => number;
  /**
   * Graph sizes to pad to (at least the real counts): `rois` / `maskRois` are minimum totals,
   * `levelMultiple` rounds each pyramid level's block of sampled RoIs up to one, `multiple` the
   * positives and the gt masks (`maskMultiple`, when given, the positives); `roiLevels` are
   * minimum blocks per level.
   */
  pad?: { rois?: number; maskRois?: number; gtMasks?: number; multiple?: number; maskMultiple?: number; levelMultiple?: number; roiLevels?: readonly number[] };
}

export interface AssembledBatch {
  shape: DetectionStepShape;
  feeds: Record<string, Tensor>;
  /** Real rows: sampled anchors, sampled RoIs, positives. */
  counts: { anchors: number; rois: number; positives: number };
}

const ceil32 = (v: number) => Math.ceil(v / 32) * 32;
const floats = (shape: number[], data: Float32Array): Tensor => ({ dtype: 'float32', shape, data });
const ints = (shape: number[], data: ArrayLike<number>): Tensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(Array.from(data, (v) => BigInt(v))) });

/** The pyramid's grids for a padded size: strides 4, 8, 16, 32, then 'pool' (every other cell of the last). */
export function pyramidGrids(height: number, width: number): [number, number][] {
  const grids: [number, number][] = [4, 8, 16, 32].map((s) => [height / s, width / s]);
  const last = grids[3]!;
  grids.push([Math.ceil(last[0] / 2), Math.ceil(last[1] / 2)]);
  return grids;
}

function checkSubset(mask: Uint8Array, allowed: (i: number) => boolean, what: string): void {
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] && !allowed(i)) throw new SwiftFormerError('BAD_DATA', `injected ${what} sample ${i} is not one the matcher allows`);
  }
}

/** Assembles the graph inputs of one batch (see the file comment). `proposals[i]`: image i's RPN output (T_i x 4). */
export function assembleBatch(images: readonly ResizedImage[], proposals: readonly Float32Array[], cfg: MaskRcnnConfig, options: BatchOptions = {}): AssembledBatch {
  const n = images.length;
  const s = cfg.settings;
  const random = options.random ?? Math.random;
  const height = ceil32(Math.max(...images.map((i) => i.height)));
  const width = ceil32(Math.max(...images.map((i) => i.width)));
  const imageHeight = Math.max(...images.map((i) => i.height));
  const anchors = anchorGrid([height, width], pyramidGrids(height, width), s.anchors);
  const a = anchors.length / 4;

  // RPN targets
  const rpnLabels = new Float32Array(n * a);
  const rpnWeights = new Float32Array(n * a);
  const rpnBoxWeights = new Float32Array(n * a);
  const rpnMatched = new Float32Array(n * a * 4);
  const rpnSamples = images.map((img, i) => {
    const { labels, matched } = rpnAssignment(anchors, img.boxes, s.rpn.fgIouThresh, s.rpn.bgIouThresh);
    const given = options.samples;
    const drawn = given ? { pos: given.rpnPos[i]!, neg: given.rpnNeg[i]! } : sampleBalanced(labels, s.rpn.batchSizePerImage, s.rpn.positiveFraction, random);
    if (given) {
      checkSubset(drawn.pos, (k) => labels[k] === 1, `image ${i} RPN positive`);
      checkSubset(drawn.neg, (k) => labels[k] === 0, `image ${i} RPN negative`);
    }
    return { labels, matched, ...drawn };
  });
  const sampledAnchors = rpnSamples.reduce((t, r) => t + r.pos.reduce((u, v) => u + v, 0) + r.neg.reduce((u, v) => u + v, 0), 0);
  rpnSamples.forEach((r, i) => {
    const img = images[i]!;
    for (let k = 0; k < a; k++) {
      const row = i * a + k;
      rpnLabels[row] = r.labels[k] === 1 ? 1 : 0;
      if (r.pos[k] || r.neg[k]) rpnWeights[row] = 1 / sampledAnchors;
      const positive = r.pos[k] === 1;
      if (positive) rpnBoxWeights[row] = 1 / sampledAnchors;
      // Unweighted rows get their anchor as target (a zero delta, never NaN).
      const src = positive ? img.boxes.subarray(4 * r.matched[k]!, 4 * r.matched[k]! + 4) : anchors.subarray(4 * k, 4 * k + 4);
      rpnMatched.set(src, 4 * row);
    }
  });

  // RoI-head samples, in index order per image
  type Row = { image: number; box: Float32Array; label: number; gt: Float32Array; gtIndex: number };
  const rows: Row[] = [];
  let gtOffset = 0;
  images.forEach((img, i) => {
    const r = roiAssignment(proposals[i]!, img.boxes, img.labels, s.roi.fgIouThresh, s.roi.bgIouThresh);
    const given = options.samples;
    const drawn = given ? { pos: given.roiPos[i]!, neg: given.roiNeg[i]! } : sampleBalanced(r.labels, s.roi.batchSizePerImage, s.roi.positiveFraction, random);
    if (given) {
      checkSubset(drawn.pos, (k) => r.labels[k]! >= 1, `image ${i} RoI positive`);
      checkSubset(drawn.neg, (k) => r.labels[k] === 0, `image ${i} RoI negative`);
    }
    for (let k = 0; k < r.labels.length; k++) {
      if (!drawn.pos[k] && !drawn.neg[k]) continue;
      const box = r.boxes.subarray(4 * k, 4 * k + 4);
      const label = drawn.pos[k] ? r.labels[k]! : 0;
      rows.push({ image: i, box, label, gt: label > 0 ? img.boxes.subarray(4 * r.matched[k]!, 4 * r.matched[k]! + 4) : box, gtIndex: gtOffset + r.matched[k]! });
    }
    gtOffset += img.labels.length;
  });
  const positives = rows.filter((r) => r.label > 0);
  const multiple = options.pad?.multiple ?? 1;
  const up = (v: number, m = multiple) => Math.ceil(v / m) * m;
  const G = Math.max(up(gtOffset), options.pad?.gtMasks ?? 0, 1);
  const K = cfg.numClasses;
  const scales = pyramidGrids(height, width).slice(0, 4).map(([h]) => levelScale(h, imageHeight));
  const kMin = -Math.log2(scales[0]!);
  const kMax = -Math.log2(scales[3]!);
  /** The rows grouped by pyramid level (index order kept within a level), each level's block padded up to a multiple, at least `minimum` rows in all. */
  const levelsOf = (list: Row[]) => {
    const boxes = new Float32Array(list.length * 4);
    list.forEach((r, j) => boxes.set(r.box, 4 * j));
    return roiLevels(boxes, kMin, kMax, s.roi.canonicalScale, s.roi.canonicalLevel);
  };
  const byLevel = (list: Row[], levelMultiple: number, minimum: number, capacity: readonly number[] = []): { slots: (Row | undefined)[]; counts: number[] } => {
    const level = levelsOf(list);
    const groups: Row[][] = [[], [], [], []];
    list.forEach((r, j) => groups[level[j]!]!.push(r));
    const counts = groups.map((g, l) => Math.max(up(g.length, levelMultiple), capacity[l] ?? 0));
    const total = counts.reduce((t, c) => t + c, 0);
    if (total < minimum) counts[0]! += up(minimum - total, levelMultiple);
    return { slots: groups.flatMap((g, l) => [...g, ...new Array<undefined>(counts[l]! - g.length).fill(undefined)]), counts };
  };
  const dummy = Float32Array.of(0, 0, 1, 1);
  const roiTable = (slots: (Row | undefined)[]) => {
    const count = slots.length;
    const boxes = new Float32Array(count * 4);
    const gt = new Float32Array(count * 4);
    const batch = new Int32Array(count);
    const onehot = new Float32Array(count * K);
    slots.forEach((r, j) => {
      boxes.set(r ? r.box : dummy, 4 * j);
      gt.set(r ? r.gt : dummy, 4 * j);
      batch[j] = r ? r.image : 0;
      if (r && r.label > 0) onehot[j * K + r.label] = 1;
    });
    return { boxes, gt, batch, onehot };
  };
  const box = byLevel(rows, options.pad?.levelMultiple ?? 1, Math.max(options.pad?.rois ?? 0, 1), options.pad?.roiLevels);
  const R = box.slots.length;
  const roi = roiTable(box.slots);
  const feeds: Record<string, Tensor> = {
    images: floats([n, 3, height, width], padImages(images, height, width)),
    anchors: floats([a, 4], anchors),
    rpn_labels: floats([n, a], rpnLabels), rpn_weights: floats([n, a], rpnWeights),
    rpn_box_weights: floats([n, a], rpnBoxWeights), rpn_matched: floats([n, a, 4], rpnMatched),
    rois: floats([R, 4], roi.boxes), roi_batch: ints([R], roi.batch),
    roi_labels: ints([R], box.slots.map((r) => r?.label ?? -100)),
    roi_class: floats([R, K], roi.onehot), roi_matched: floats([R, 4], roi.gt),
    roi_box_weights: floats([R], Float32Array.from(box.slots, (r) => ((r?.label ?? 0) > 0 ? 1 / rows.length : 0))),
    roi_count_inverse: floats([1], Float32Array.of(1 / Math.max(rows.length, 1))),
  };
  const P = Math.max(up(positives.length, options.pad?.maskMultiple ?? multiple), options.pad?.maskRois ?? 0, 1);
  if (cfg.maskLayers) {
    const slots = Array.from({ length: P }, (_, j) => positives[j]);
    const mask = roiTable(slots);
    const levels = new Float32Array(P * 4);
    levelsOf(positives).forEach((l, j) => (levels[j * 4 + l] = 1));
    const m = 2 * s.roi.maskOutputSize;
    Object.assign(feeds, {
      mask_rois: floats([P, 4], mask.boxes), mask_batch: ints([P], mask.batch), mask_levels: floats([P, 4], levels),
      mask_class: floats([P, K], mask.onehot),
      mask_weights: floats([P], Float32Array.from(slots, (r) => (r ? 1 / (positives.length * m * m) : 0))),
      gt_masks: floats([G, 1, height, width], padMasks(images, G, height, width)),
      mask_gt: ints([P], slots.map((r) => r?.gtIndex ?? 0)),
    });
  }
  const shape: DetectionStepShape = { batch: n, height, width, imageHeight, anchors: a, rois: R, maskRois: P, gtMasks: G, roiLevels: box.counts };
  return { shape, feeds, counts: { anchors: sampledAnchors, rois: rows.length, positives: positives.length } };
}

/** batch_images: each image at the top left of a zero canvas. */
function padImages(images: readonly ResizedImage[], height: number, width: number): Float32Array {
  const out = new Float32Array(images.length * 3 * height * width);
  images.forEach((img, i) => {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < img.height; y++) {
        const src = (c * img.height + y) * img.width;
        out.set(img.pixels.subarray(src, src + img.width), ((i * 3 + c) * height + y) * width);
      }
    }
  });
  return out;
}

/** Every image's gt masks, one after the other, each padded by repeating its last row and column. */
function padMasks(images: readonly ResizedImage[], count: number, height: number, width: number): Float32Array {
  const out = new Float32Array(count * height * width);
  let g = 0;
  for (const img of images) {
    const k = img.labels.length;
    if (k > 0 && !img.masks) throw new SwiftFormerError('BAD_DATA', 'Mask R-CNN training needs every image\'s gt masks');
    for (let j = 0; j < k; j++, g++) {
      const base = j * img.height * img.width;
      for (let y = 0; y < height; y++) {
        const sy = Math.min(y, img.height - 1);
        for (let x = 0; x < width; x++) out[(g * height + y) * width + x] = img.masks![base + sy * img.width + Math.min(x, img.width - 1)]!;
      }
    }
  }
  return out;
}
