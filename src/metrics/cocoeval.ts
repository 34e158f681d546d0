/**
 * pycocotools' COCOeval for boxes and masks, step for step (evaluate -> evaluateImg, accumulate,
 * summarize), so that every number, and the printed summary, is the one pycocotools gives:
 *
 *  - images and categories are the ground truth's, sorted; annotations and results are grouped per
 *    (image, category) in file order; crowd annotations are the ignored ones;
 *  - detections are sorted by score with a stable sort (np.argsort(-scores, kind='mergesort')) and
 *    cut to the largest maxDets before IoUs are computed;
 *  - matching per IoU threshold is greedy in score order: the best-IoU unmatched ground truth,
 *    ignored ones last (crowds may match many detections, and IoU with a crowd is the fraction of
 *    the detection inside it); unmatched detections outside the area range are ignored;
 *  - precision is interpolated (running max from the right) at 101 recall points; -1 marks
 *    settings without ground truth, and means skip them.
 */
import { SwiftFormerError } from '../core/errors.js';
import { boxSegmentation, segmentationToRle, type CocoAnnotation, type CocoDataset, type CocoDetection } from '../data/coco.js';
import { formatFixed, numpyMean } from './numeric.js';
import { bboxIou, rleIou, type Bbox, type Rle } from '../data/rle.js';

export type IouType = 'bbox' | 'segm';

export interface CocoEvalParams {
  iouThrs: number[];
  recThrs: number[];
  maxDets: number[];
  areaRng: [number, number][];
  areaRngLbl: string[];
}

/** np.linspace(start, stop, num): i * step + start, the last value exactly stop. */
function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

/** Params.setDetParams. */
export function defaultParams(): CocoEvalParams {
  return {
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0, 1, Math.round((1 - 0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
  };
}

/** The part of evaluateImg's result that accumulate reads, for one image, category and area range. */
interface EvalImg {
  /** [T, D] flat (t * D + d): the matched ground truth's id, 0 for none. */
  dtMatches: Float64Array;
  dtScores: number[];
  /** Ground truth that is neither crowd nor outside the area range. */
  notIgnored: number;
  /** [T, D] flat */
  dtIgnore: Uint8Array;
}

export interface CocoEvalResult {
  iouType: IouType;
  params: CocoEvalParams;
  imageIds: number[];
  categoryIds: number[];
  /** [T, R, K, A, M] in C order; -1 where there is no ground truth. */
  precision: Float64Array;
  /** [T, K, A, M] */
  recall: Float64Array;
  /** [T, R, K, A, M]: the score at each recall point. */
  scores: Float64Array;
  /** AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl; -1 where undefined. */
  stats: number[];
}

export const STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;
export type StatName = (typeof STAT_NAMES)[number];

/** Indices of `scores` sorted high to low, ties in their original order (a stable sort of -score). */
function argsortDescending(scores: readonly number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

type Region = { bbox: Bbox } | { rle: Rle };

/** What _prepare groups as _gts[image, category] and _dts[image, category], in file order. */
interface Cell {
  gts: CocoAnnotation[];
  dts: CocoDetection[];
}

export interface EvaluateOptions {
  /** Default: pycocotools' (defaultParams()). */
  params?: CocoEvalParams;
  /** Called after each category. */
  onProgress?: (categoriesDone: number, categories: number) => void;
}

/** The full evaluation: evaluate(), accumulate(), summarize() of pycocotools. */
export function evaluateCoco(gt: CocoDataset, detections: readonly CocoDetection[], iouType: IouType, options: EvaluateOptions = {}): CocoEvalResult {
  const params = options.params ?? defaultParams();
  const p = { ...params, maxDets: [...params.maxDets].sort((a, b) => a - b) };
  const imageIds = [...new Set(gt.images.map((i) => i.id))].sort((a, b) => a - b);
  const categoryIds = [...new Set(gt.categories.map((c) => c.id))].sort((a, b) => a - b);
  const byCategory = prepare(gt, detections, imageIds, categoryIds);
  const regionOf = regions(gt, iouType);
  const maxDet = p.maxDets[p.maxDets.length - 1]!;
  const out = emptyAccumulation(p, categoryIds.length);
  // One category at a time (pycocotools keeps every evalImg; the numbers do not depend on it). An
  // (image, category) without annotations and detections is None in evalImgs and skipped by accumulate.
  categoryIds.forEach((categoryId, k) => {
    const cells = byCategory.get(categoryId);
    options.onProgress?.(k + 1, categoryIds.length);
    if (!cells) return;
    const images = [...cells.keys()].sort((a, b) => a - b).map((imageId) => {
      const cell = cells.get(imageId)!;
      return { cell, ious: computeIou(cell, maxDet, iouType, regionOf) };
    });
    const evalImgs = p.areaRng.map((aRng) => images.map(({ cell, ious }) => evaluateImg(cell, ious, aRng, maxDet, p.iouThrs)));
    accumulateCategory(out, evalImgs, p, k, categoryIds.length);
  });
  const result = { iouType, params: p, imageIds, categoryIds, ...out, stats: [] as number[] };
  result.stats = summarizeStats(result);
  return result;
}

/** _prepare: annotations and detections of the evaluated images and categories, by category, then image. */
function prepare(gt: CocoDataset, detections: readonly CocoDetection[], imageIds: number[], categoryIds: number[]): Map<number, Map<number, Cell>> {
  const images = new Set(imageIds);
  const categories = new Set(categoryIds);
  const out = new Map<number, Map<number, Cell>>();
  const cell = (categoryId: number, imageId: number): Cell => {
    let cells = out.get(categoryId);
    if (!cells) out.set(categoryId, (cells = new Map()));
    let c = cells.get(imageId);
    if (!c) cells.set(imageId, (c = { gts: [], dts: [] }));
    return c;
  };
  // getAnnIds walks imgToAnns image by image, each image's annotations in file order.
  for (const imageId of imageIds) {
    for (const a of gt.annotationsByImage.get(imageId) ?? []) if (categories.has(a.categoryId)) cell(a.categoryId, imageId).gts.push(a);
  }
  for (const d of detections) if (images.has(d.imageId) && categories.has(d.categoryId)) cell(d.categoryId, d.imageId).dts.push(d);
  return out;
}

/** The box or the mask (annToRLE, computed once) of an annotation or a detection. */
function regions(gt: CocoDataset, iouType: IouType): (item: CocoAnnotation | CocoDetection) => Region {
  const cache = new WeakMap<object, Region>();
  return (item) => {
    const cached = cache.get(item);
    if (cached) return cached;
    // Results are named by their position in the list (their id is position + 1), as the parser names them.
    const name = 'score' in item ? `result ${item.id - 1}` : `annotation ${item.id}`;
    let region: Region;
    if (iouType === 'bbox') {
      if (!item.bbox) throw new SwiftFormerError('BAD_DATA', `${name}: 'bbox' is missing, and a bbox evaluation needs it`);
      region = { bbox: item.bbox };
    } else {
      const segm = item.segmentation ?? ('score' in item ? boxSegmentation(item.bbox) : undefined);
      if (!segm) throw new SwiftFormerError('BAD_DATA', `${name}: 'segmentation' is missing, and a segm evaluation needs it`);
      region = { rle: segmentationToRle(segm, gt.imageById.get(item.imageId), name) };
    }
    cache.set(item, region);
    return region;
  };
}

/** computeIoU: rows per detection (sorted by score, at most maxDet), columns per ground truth. */
function computeIou(cell: Cell, maxDet: number, iouType: IouType, regionOf: ReturnType<typeof regions>): Float64Array[] {
  const g = cell.gts;
  if (g.length === 0 || cell.dts.length === 0) return [];
  const d = argsortDescending(cell.dts.map((x) => x.score)).slice(0, maxDet).map((i) => cell.dts[i]!);
  const crowd = g.map((x) => x.iscrowd);
  const gr = g.map(regionOf);
  const dr = d.map(regionOf);
  if (iouType === 'bbox') return bboxIou(dr.map((r) => (r as { bbox: Bbox }).bbox), gr.map((r) => (r as { bbox: Bbox }).bbox), crowd);
  return rleIou(dr.map((r) => (r as { rle: Rle }).rle), gr.map((r) => (r as { rle: Rle }).rle), crowd);
}

/** evaluateImg for one image, category and area range. */
function evaluateImg(cell: Cell, rows: Float64Array[], aRng: [number, number], maxDet: number, iouThrs: number[]): EvalImg {
  const gt0 = cell.gts;
  const dt0 = cell.dts;
  const outside = (area: number) => area < aRng[0] || area > aRng[1];
  const ignore0 = gt0.map((g) => (g.iscrowd || outside(g.area) ? 1 : 0));
  // Ground truth with ignored ones last (stable), detections by score (stable), cut to maxDet.
  const gtind = gt0.map((_, i) => i).sort((a, b) => ignore0[a]! - ignore0[b]! || a - b);
  const gt = gtind.map((i) => gt0[i]!);
  const dt = argsortDescending(dt0.map((d) => d.score)).slice(0, maxDet).map((i) => dt0[i]!);
  const iscrowd = gt.map((g) => g.iscrowd);
  const gtIg = Uint8Array.from(gtind, (i) => ignore0[i]!);
  const T = iouThrs.length;
  const G = gt.length;
  const D = dt.length;
  const gtm = new Float64Array(T * G);
  const dtm = new Float64Array(T * D);
  const dtIg = new Uint8Array(T * D);
  if (rows.length > 0) {
    for (let tind = 0; tind < T; tind++) {
      for (let dind = 0; dind < D; dind++) {
        let iou = Math.min(iouThrs[tind]!, 1 - 1e-10);
        let m = -1;
        const row = rows[dind]!;
        for (let gind = 0; gind < G; gind++) {
          if (gtm[tind * G + gind]! > 0 && !iscrowd[gind]) continue; // taken, and not a crowd
          if (m > -1 && gtIg[m] === 0 && gtIg[gind] === 1) break; // matched a real one; the rest are ignored
          const v = row[gtind[gind]!]!;
          if (v < iou) continue;
          iou = v;
          m = gind;
        }
        if (m === -1) continue;
        dtIg[tind * D + dind] = gtIg[m]!;
        dtm[tind * D + dind] = gt[m]!.id; // an annotation with id 0 reads as unmatched later, as in pycocotools
        gtm[tind * G + m] = dt[dind]!.id;
      }
    }
  }
  // Unmatched detections outside the area range are ignored.
  for (let dind = 0; dind < D; dind++) {
    if (!outside(dt[dind]!.area)) continue;
    for (let t = 0; t < T; t++) if (dtm[t * D + dind] === 0) dtIg[t * D + dind] = 1;
  }
  let notIgnored = 0;
  for (const g of gtIg) if (g === 0) notIgnored++;
  return { dtMatches: dtm, dtScores: dt.map((d) => d.score), notIgnored, dtIgnore: dtIg };
}

type Accumulation = Pick<CocoEvalResult, 'precision' | 'recall' | 'scores'>;

/** accumulate's arrays before any category: -1 everywhere (no ground truth). */
function emptyAccumulation(p: CocoEvalParams, K: number): Accumulation {
  const n = p.iouThrs.length * p.recThrs.length * K * p.areaRng.length * p.maxDets.length;
  return {
    precision: new Float64Array(n).fill(-1),
    recall: new Float64Array(p.iouThrs.length * K * p.areaRng.length * p.maxDets.length).fill(-1),
    scores: new Float64Array(n).fill(-1),
  };
}

/**
 * accumulate for category k: precision at the recall points and the final recall, per threshold,
 * area range and maxDets. `evalImgs[a]` are the category's images with annotations or detections, in
 * image id order.
 */
function accumulateCategory(out: Accumulation, evalImgs: EvalImg[][], p: CocoEvalParams, k: number, K: number): void {
  const { precision, recall, scores } = out;
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const pIndex = (t: number, r: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
  const rIndex = (t: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
  for (let a = 0; a < A; a++) {
    const E = evalImgs[a]!;
    if (E.length === 0) continue;
    const npig = E.reduce((n, e) => n + e.notIgnored, 0);
    p.maxDets.forEach((maxDet, m) => {
      if (npig === 0) return;
      // The first maxDet detections of every image, concatenated in image order, then sorted by score (stable).
      const owner: number[] = [];
      const index: number[] = [];
      const dtScores: number[] = [];
      E.forEach((e, i) => {
        for (let d = 0; d < Math.min(maxDet, e.dtScores.length); d++) {
          owner.push(i);
          index.push(d);
          dtScores.push(e.dtScores[d]!);
        }
      });
      const inds = argsortDescending(dtScores);
      const nd = inds.length;
      const rc = new Float64Array(nd);
      const pr = new Float64Array(nd);
      for (let t = 0; t < T; t++) {
        let tp = 0;
        let fp = 0;
        for (let j = 0; j < nd; j++) {
          const e = E[owner[inds[j]!]!]!;
          const at = t * e.dtScores.length + index[inds[j]!]!;
          if (!e.dtIgnore[at]) {
            if (e.dtMatches[at] !== 0) tp++;
            else fp++;
          }
          rc[j] = tp / npig;
          pr[j] = tp / (fp + tp + Number.EPSILON); // np.spacing(1)
        }
        recall[rIndex(t, a, m)] = nd ? rc[nd - 1]! : 0;
        for (let i = nd - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
        // np.searchsorted(rc, recThrs, side='left'); recall points past the last detection keep 0.
        let pi = 0;
        for (let ri = 0; ri < R; ri++) {
          while (pi < nd && rc[pi]! < p.recThrs[ri]!) pi++;
          if (pi >= nd) {
            for (let r = ri; r < R; r++) {
              precision[pIndex(t, r, a, m)] = 0;
              scores[pIndex(t, r, a, m)] = 0;
            }
            break;
          }
          precision[pIndex(t, ri, a, m)] = pr[pi]!;
          scores[pIndex(t, ri, a, m)] = dtScores[inds[pi]!]!;
        }
      }
    });
  }
}

interface SummaryRow { ap: boolean; iouThr?: number; areaRng: string; maxDets: number }

/** The 12 rows of _summarizeDets. */
function summaryRows(p: CocoEvalParams): SummaryRow[] {
  const [m0, m1, m2] = [p.maxDets[0]!, p.maxDets[1]!, p.maxDets[2]!];
  return [
    { ap: true, areaRng: 'all', maxDets: 100 },
    { ap: true, iouThr: 0.5, areaRng: 'all', maxDets: m2 },
    { ap: true, iouThr: 0.75, areaRng: 'all', maxDets: m2 },
    { ap: true, areaRng: 'small', maxDets: m2 },
    { ap: true, areaRng: 'medium', maxDets: m2 },
    { ap: true, areaRng: 'large', maxDets: m2 },
    { ap: false, areaRng: 'all', maxDets: m0 },
    { ap: false, areaRng: 'all', maxDets: m1 },
    { ap: false, areaRng: 'all', maxDets: m2 },
    { ap: false, areaRng: 'small', maxDets: m2 },
    { ap: false, areaRng: 'medium', maxDets: m2 },
    { ap: false, areaRng: 'large', maxDets: m2 },
  ];
}

/** _summarize: the mean of the selected entries above -1 (NumPy's summation order), -1 when none. */
function summarizeOne(r: Pick<CocoEvalResult, 'params' | 'precision' | 'recall' | 'categoryIds'>, row: SummaryRow): number {
  const p = r.params;
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const K = r.categoryIds.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const ts = row.iouThr === undefined ? p.iouThrs.map((_, t) => t) : p.iouThrs.flatMap((v, t) => (v === row.iouThr ? [t] : []));
  const as = p.areaRngLbl.flatMap((l, a) => (l === row.areaRng ? [a] : []));
  const ms = p.maxDets.flatMap((v, m) => (v === row.maxDets ? [m] : []));
  const selected: number[] = [];
  for (const t of ts) {
    for (let rr = 0; rr < (row.ap ? R : 1); rr++) {
      for (let k = 0; k < K; k++) {
        for (const a of as) {
          for (const m of ms) {
            const v = row.ap ? r.precision[(((t * R + rr) * K + k) * A + a) * M + m]! : r.recall[((t * K + k) * A + a) * M + m]!;
            if (v > -1) selected.push(v);
          }
        }
      }
    }
  }
  return selected.length === 0 ? -1 : numpyMean(selected);
}

function summarizeStats(r: Pick<CocoEvalResult, 'params' | 'precision' | 'recall' | 'categoryIds'>): number[] {
  if (r.params.maxDets.length < 3) throw new SwiftFormerError('BAD_ARGUMENT', `the summary needs three maxDets, got [${r.params.maxDets}]`);
  return summaryRows(r.params).map((row) => summarizeOne(r, row));
}

/** The summary exactly as pycocotools prints it: 12 lines. */
export function summaryLines(r: CocoEvalResult): string[] {
  const p = r.params;
  return summaryRows(p).map((row, i) => {
    const title = (row.ap ? 'Average Precision' : 'Average Recall').padEnd(18);
    const type = row.ap ? '(AP)' : '(AR)';
    const iou = (row.iouThr === undefined ? `${formatFixed(p.iouThrs[0]!, 2)}:${formatFixed(p.iouThrs[p.iouThrs.length - 1]!, 2)}` : formatFixed(row.iouThr, 2)).padEnd(9);
    return ` ${title} ${type} @[ IoU=${iou} | area=${row.areaRng.padStart(6)} | maxDets=${String(row.maxDets).padStart(3)} ] = ${formatFixed(r.stats[i]!, 3)}`;
  });
}

/** `{ AP, AP50, ..., ARl }`, -1 where undefined. */
export function statsJson(stats: readonly number[]): Record<StatName, number> {
  return Object.fromEntries(STAT_NAMES.map((n, i) => [n, stats[i]!])) as Record<StatName, number>;
}
