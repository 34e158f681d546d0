/**
 * Semantic segmentation metrics exactly as mmsegmentation 0.x computes them
 * (mmseg/core/evaluation/metrics.py: intersect_and_union, total_intersect_and_union,
 * total_area_to_metrics; the tables of CustomDataset.evaluate):
 *
 *  - per image, pixels whose ground truth is the ignore index are dropped from both maps;
 *  - reduce_zero_label rewrites the ground truth only: 0 -> 255, k -> k - 1 (mmseg's literal 255,
 *    whatever the ignore index);
 *  - histograms are torch.histc(x, bins=K, min=0, max=K-1): on integer maps, values outside
 *    [0, K-1] fall out of every histogram (prediction, label and intersection alike);
 *  - intersections, predictions and labels are summed over the whole dataset, then
 *    IoU = I / (P + L - I), Acc = I / L (NaN where the denominator is 0), mIoU and mAcc are
 *    np.nanmean over classes, aAcc = sum I / sum L.
 *
 * The accumulator takes one image at a time, so an evaluation never holds the dataset.
 */
import { SwiftFormerError } from '../core/errors.js';
import { nanmean, npRound, pyFloatStr } from './numeric.js';
import { prettyTable } from './table.js';

/** A label map: class index per pixel, row-major, any integer array type. */
export type LabelMap = Uint8Array | Uint16Array | Uint32Array | Int8Array | Int16Array | Int32Array | readonly number[];

export interface SegmentationOptions {
  numClasses: number;
  /** Ground-truth value left out of the evaluation (mmseg's default 255). */
  ignoreIndex?: number;
  /** ADE20K's convention: ground truth 0 ("other") is ignored and k becomes k - 1. */
  reduceZeroLabel?: boolean;
}

/** Per-class pixel counts summed over the images, as mmseg's total_* tensors (float64). */
export interface SegmentationTotals {
  intersect: Float64Array;
  union: Float64Array;
  predLabel: Float64Array;
  label: Float64Array;
}

export interface SegmentationMetrics extends SegmentationTotals {
  numClasses: number;
  images: number;
  /** Pixels evaluated (ground truth not ignored), including those outside [0, K-1]. */
  pixels: number;
  /** Evaluated pixels whose ground truth is outside [0, K-1] (histc drops them; mmseg says nothing). */
  gtOutOfRange: number;
  /** Evaluated pixels whose prediction is outside [0, K-1]. */
  predOutOfRange: number;
  aAcc: number;
  mIoU: number;
  mAcc: number;
  /** Per class; NaN where the class is absent from both prediction and ground truth. */
  IoU: number[];
  /** Per class; NaN where the class is absent from the ground truth. */
  Acc: number[];
}

export class SegmentationAccumulator {
  readonly numClasses: number;
  readonly ignoreIndex: number;
  readonly reduceZeroLabel: boolean;
  private readonly totals: SegmentationTotals;
  private imageCount = 0;
  private pixelCount = 0;
  private gtOutside = 0;
  private predOutside = 0;

  constructor(options: SegmentationOptions) {
    const { numClasses, ignoreIndex = 255, reduceZeroLabel = false } = options;
    // histc with min == max widens the range to [-1, 1]: K = 1 is not a segmentation.
    if (!Number.isInteger(numClasses) || numClasses < 2 || numClasses > 65536) {
      throw new SwiftFormerError('BAD_ARGUMENT', `the number of classes must be an integer in [2, 65536], got ${numClasses}`);
    }
    if (!Number.isInteger(ignoreIndex)) throw new SwiftFormerError('BAD_ARGUMENT', `the ignore index must be an integer, got ${ignoreIndex}`);
    this.numClasses = numClasses;
    this.ignoreIndex = ignoreIndex;
    this.reduceZeroLabel = reduceZeroLabel;
    const zeros = () => new Float64Array(numClasses);
    this.totals = { intersect: zeros(), union: zeros(), predLabel: zeros(), label: zeros() };
  }

  get images(): number {
    return this.imageCount;
  }

  /** Adds one image. `name` (a file, say) goes into error messages. */
  add(pred: LabelMap, gt: LabelMap, name = `image ${this.imageCount}`): void {
    if (pred.length !== gt.length) {
      throw new SwiftFormerError('BAD_SHAPE', `${name}: the prediction has ${pred.length} pixels and the ground truth ${gt.length}`);
    }
    if (Array.isArray(pred)) checkIntegers(pred, `${name}: prediction`);
    if (Array.isArray(gt)) checkIntegers(gt, `${name}: ground truth`);
    const k = this.numClasses;
    // Per image, then added to the totals: the same float64 sums as mmseg's.
    const inter = new Float64Array(k);
    const predHist = new Float64Array(k);
    const labelHist = new Float64Array(k);
    const { ignoreIndex, reduceZeroLabel } = this;
    let pixels = 0;
    for (let i = 0; i < gt.length; i++) {
      let g = gt[i]!;
      if (reduceZeroLabel) {
        g = g === 0 ? 254 : g - 1; // label[label == 0] = 255; label = label - 1
        if (g === 254) g = 255; //    label[label == 254] = 255
      }
      if (g === ignoreIndex) continue;
      pixels++;
      const p = pred[i]!;
      const pIn = p >= 0 && p < k;
      if (pIn) predHist[p]!++;
      else this.predOutside++;
      if (g >= 0 && g < k) {
        labelHist[g]!++;
        if (p === g) inter[g]!++;
      } else {
        this.gtOutside++;
      }
    }
    const t = this.totals;
    for (let c = 0; c < k; c++) {
      t.intersect[c]! += inter[c]!;
      t.union[c]! += predHist[c]! + labelHist[c]! - inter[c]!;
      t.predLabel[c]! += predHist[c]!;
      t.label[c]! += labelHist[c]!;
    }
    this.pixelCount += pixels;
    this.imageCount++;
  }

  summary(): SegmentationMetrics {
    const { intersect, union, predLabel, label } = this.totals;
    const IoU = Array.from(intersect, (i, c) => i / union[c]!);
    const Acc = Array.from(intersect, (i, c) => i / label[c]!);
    let sumI = 0;
    let sumL = 0;
    for (let c = 0; c < this.numClasses; c++) {
      sumI += intersect[c]!;
      sumL += label[c]!;
    }
    return {
      numClasses: this.numClasses,
      images: this.imageCount,
      pixels: this.pixelCount,
      gtOutOfRange: this.gtOutside,
      predOutOfRange: this.predOutside,
      intersect: intersect.slice(),
      union: union.slice(),
      predLabel: predLabel.slice(),
      label: label.slice(),
      aAcc: sumI / sumL, // integer counts: exact in any summation order
      mIoU: nanmean(IoU),
      mAcc: nanmean(Acc),
      IoU,
      Acc,
    };
  }
}

function checkIntegers(values: readonly number[], what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isInteger(values[i])) throw new SwiftFormerError('BAD_DATA', `${what} pixel ${i} is ${values[i]}, not a class index`);
  }
}

/** Metrics of a whole set of (prediction, ground truth) pairs at once. */
export function segmentationMetrics(pairs: Iterable<readonly [LabelMap, LabelMap]>, options: SegmentationOptions): SegmentationMetrics {
  const acc = new SegmentationAccumulator(options);
  for (const [pred, gt] of pairs) acc.add(pred, gt);
  return acc.summary();
}

/** The JSON form: fractions, null where a value is undefined (NaN). */
export interface SegmentationJson {
  aAcc: number | null;
  mIoU: number | null;
  mAcc: number | null;
  IoU: (number | null)[];
  Acc: (number | null)[];
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

export function segmentationJson(m: SegmentationMetrics): SegmentationJson {
  return { aAcc: orNull(m.aAcc), mIoU: orNull(m.mIoU), mAcc: orNull(m.mAcc), IoU: m.IoU.map(orNull), Acc: m.Acc.map(orNull) };
}

/** mmseg's percentages: np.round(value * 100, 2), printed as Python prints a float. */
const percent = (x: number): string => pyFloatStr(npRound(x * 100, 2));

/**
 * The two tables mmseg logs after an evaluation, as PrettyTable draws them: per class
 * (Class, IoU, Acc) and the summary (aAcc, mIoU, mAcc), in percent rounded to 2 decimals.
 * Class names default to the indices, as mmseg's when the dataset has no CLASSES.
 */
export function formatSegmentationTables(m: SegmentationMetrics, classNames?: readonly string[]): string {
  const names = classNames ?? Array.from({ length: m.numClasses }, (_, c) => String(c));
  if (names.length !== m.numClasses) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${names.length} class names for ${m.numClasses} classes`);
  }
  const perClass = prettyTable([
    { header: 'Class', cells: [...names] },
    { header: 'IoU', cells: m.IoU.map(percent) },
    { header: 'Acc', cells: m.Acc.map(percent) },
  ]);
  const summary = prettyTable([
    { header: 'aAcc', cells: [percent(m.aAcc)] },
    { header: 'mIoU', cells: [percent(m.mIoU)] },
    { header: 'mAcc', cells: [percent(m.mAcc)] },
  ]);
  return `per class results:\n\n${perClass}\nSummary:\n\n${summary}`;
}
