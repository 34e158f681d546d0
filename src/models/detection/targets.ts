/**
 * The training targets of torchvision 0.14's two-stage detectors, in TypeScript (they steer the
 * training graph but take no gradient): anchors in the RPN's order, box IoU, the Matcher (with
 * low-quality matches for the RPN), the balanced positive / negative sampler, the RoI level
 * mapper, and the per-image RPN and RoI-head assignments. Float arithmetic is float32 in
 * torchvision's order of operations, so that thresholds and ties fall as they do there.
 */
import { cellAnchors } from './anchors.js';
import type { AnchorSettings } from './settings.js';

const f = Math.fround;

/** Matcher's codes for predictions without a match. */
export const BELOW_LOW_THRESHOLD = -1;
export const BETWEEN_THRESHOLDS = -2;

/**
 * AnchorGenerator's anchors for one padded batch size: per level (grid h x w, stride =
 * padded // grid per axis), positions row-major, the level's cell anchors innermost; (A, 4) flat.
 */
export function anchorGrid(padded: [number, number], grids: [number, number][], a: AnchorSettings): Float32Array {
  const parts: Float32Array[] = [];
  grids.forEach(([h, w], level) => {
    const cell = cellAnchors(a.sizes[level]!, a.aspectRatios[level]!);
    const k = cell.length / 4;
    const [sy, sx] = [Math.floor(padded[0] / h), Math.floor(padded[1] / w)];
    const out = new Float32Array(h * w * k * 4);
    let i = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const [dx, dy] = [x * sx, y * sy];
        for (let j = 0; j < k; j++) {
          out[i++] = f(dx + cell[4 * j]!);
          out[i++] = f(dy + cell[4 * j + 1]!);
          out[i++] = f(dx + cell[4 * j + 2]!);
          out[i++] = f(dy + cell[4 * j + 3]!);
        }
      }
    }
    parts.push(out);
  });
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}

/** box_iou(a, b): (M, N) flat, M = a.length / 4, in float32 as torchvision computes it. */
export function boxIou(a: Float32Array, b: Float32Array): Float32Array {
  const m = a.length / 4;
  const n = b.length / 4;
  const areaB = new Float32Array(n);
  for (let j = 0; j < n; j++) areaB[j] = f(f(b[4 * j + 2]! - b[4 * j]!) * f(b[4 * j + 3]! - b[4 * j + 1]!));
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const [x1, y1, x2, y2] = [a[4 * i]!, a[4 * i + 1]!, a[4 * i + 2]!, a[4 * i + 3]!];
    const areaA = f(f(x2 - x1) * f(y2 - y1));
    for (let j = 0; j < n; j++) {
      const w = Math.max(f(Math.min(x2, b[4 * j + 2]!) - Math.max(x1, b[4 * j]!)), 0);
      const h = Math.max(f(Math.min(y2, b[4 * j + 3]!) - Math.max(y1, b[4 * j + 1]!)), 0);
      const inter = f(w * h);
      out[i * n + j] = f(inter / f(f(areaA + areaB[j]!) - inter));
    }
  }
  return out;
}

/**
 * Matcher on an (M gt, N predictions) quality matrix: each prediction's best gt (the first on
 * ties) when its quality reaches `high`, BETWEEN_THRESHOLDS in [low, high), BELOW_LOW_THRESHOLD
 * under `low`; with `lowQuality`, every prediction that is some gt's best (ties included) keeps
 * its best gt whatever its quality.
 */
export function matchBoxes(quality: Float32Array, m: number, n: number, high: number, low: number, lowQuality: boolean): Int32Array {
  const matches = new Int32Array(n);
  const best = new Float32Array(n).fill(-Infinity);
  for (let j = 0; j < n; j++) {
    let k = 0;
    for (let i = 0; i < m; i++) {
      if (quality[i * n + j]! > best[j]!) {
        best[j] = quality[i * n + j]!;
        k = i;
      }
    }
    matches[j] = k;
  }
  const all = matches.slice();
  for (let j = 0; j < n; j++) {
    if (best[j]! < low) matches[j] = BELOW_LOW_THRESHOLD;
    else if (best[j]! < high) matches[j] = BETWEEN_THRESHOLDS;
  }
  if (lowQuality) {
    for (let i = 0; i < m; i++) {
      let top = -Infinity;
      for (let j = 0; j < n; j++) top = Math.max(top, quality[i * n + j]!);
      for (let j = 0; j < n; j++) if (quality[i * n + j] === top) matches[j] = all[j]!;
    }
  }
  return matches;
}

/**
 * BalancedPositiveNegativeSampler on labels (>= 1 positive, 0 negative, -1 ignored): at most
 * batchSize x fraction positives, negatives for the rest, each set drawn as a random
 * permutation's first elements (torch.randperm there; `random` here). Masks over the labels.
 */
export function sampleBalanced(labels: Int32Array, batchSize: number, fraction: number, random: () => number): { pos: Uint8Array; neg: Uint8Array } {
  const positive: number[] = [];
  const negative: number[] = [];
  labels.forEach((l, i) => {
    if (l >= 1) positive.push(i);
    else if (l === 0) negative.push(i);
  });
  const numPos = Math.min(positive.length, Math.floor(batchSize * fraction));
  const numNeg = Math.min(negative.length, batchSize - numPos);
  const pick = (from: number[], count: number, mask: Uint8Array) => {
    // A partial Fisher-Yates shuffle: the first `count` of a uniform random permutation.
    const pool = from.slice();
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(random() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      mask[pool[i]!] = 1;
    }
    return mask;
  };
  return { pos: pick(positive, numPos, new Uint8Array(labels.length)), neg: pick(negative, numNeg, new Uint8Array(labels.length)) };
}

/** One image's RPN assignment: labels over the anchors (1, 0, -1 ignored) and each anchor's matched gt (clamped to 0 when unmatched). */
export function rpnAssignment(anchors: Float32Array, gtBoxes: Float32Array, high: number, low: number): { labels: Int32Array; matched: Int32Array } {
  const n = anchors.length / 4;
  const m = gtBoxes.length / 4;
  if (m === 0) return { labels: new Int32Array(n), matched: new Int32Array(n) };
  const matches = matchBoxes(boxIou(gtBoxes, anchors), m, n, high, low, true);
  const labels = Int32Array.from(matches, (v) => (v >= 0 ? 1 : v === BELOW_LOW_THRESHOLD ? 0 : -1));
  return { labels, matched: Int32Array.from(matches, (v) => Math.max(v, 0)) };
}

/**
 * One image's RoI-head assignment on proposals with the gt boxes appended (add_gt_proposals):
 * labels (the matched gt's class, 0 background, -1 ignored) and matched gt (clamped).
 */
export function roiAssignment(proposals: Float32Array, gtBoxes: Float32Array, gtLabels: Int32Array, high: number, low: number): { boxes: Float32Array; labels: Int32Array; matched: Int32Array } {
  const boxes = new Float32Array(proposals.length + gtBoxes.length);
  boxes.set(proposals);
  boxes.set(gtBoxes, proposals.length);
  const n = boxes.length / 4;
  const m = gtBoxes.length / 4;
  if (m === 0) return { boxes, labels: new Int32Array(n), matched: new Int32Array(n) };
  const matches = matchBoxes(boxIou(gtBoxes, boxes), m, n, high, low, false);
  const labels = Int32Array.from(matches, (v) => (v === BELOW_LOW_THRESHOLD ? 0 : v === BETWEEN_THRESHOLDS ? -1 : gtLabels[v]!));
  return { boxes, labels, matched: Int32Array.from(matches, (v) => Math.max(v, 0)) };
}

/** MultiScaleRoIAlign's scale of a level: 2^round(log2(float32(feature height / largest image height))). */
export function levelScale(featureHeight: number, maxImageHeight: number): number {
  return 2 ** Math.round(Math.log2(f(featureHeight / maxImageHeight)));
}

/**
 * LevelMapper: the pyramid level (0-based) of each box (x1, y1, x2, y2 flat):
 * clamp(floor(canonicalLevel + log2(sqrt(area) / canonicalScale) + 1e-6), kMin, kMax) - kMin.
 */
export function roiLevels(boxes: Float32Array, kMin: number, kMax: number, canonicalScale: number, canonicalLevel: number): Int32Array {
  const n = boxes.length / 4;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const area = f(f(boxes[4 * i + 2]! - boxes[4 * i]!) * f(boxes[4 * i + 3]! - boxes[4 * i + 1]!));
    const s = f(Math.sqrt(area));
    const level = Math.floor(f(f(canonicalLevel + f(Math.log2(f(s / canonicalScale)))) + f(1e-6)));
    out[i] = Math.min(Math.max(level, kMin), kMax) - kMin;
  }
  return out;
}
