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
import { boxSegmentation, segmentationToRle, type CocoAnnotation, type CocoDataset, type CocoDetection } from './coco.js';
import { formatFixed, numpyMean } from './numeric.js';
import { bboxIou, rleIou, type Bbox, type Rle } from './rle.js';

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

/** What evaluateImg returns for one image, category and area range (null where it returns None). */
export interface EvalImg {
  imageId: number;
  categoryId: number;
  dtIds: number[];
  gtIds: number[];
  /** [T][D]: the matched ground truth's id, 0 for none. */
  dtMatches: Float64Array[];
  /** [T][G]: the matched detection's id, 0 for none. */
  gtMatches: Float64Array[];
  dtScores: number[];
  gtIgnore: Uint8Array;
  /** [T][D] */
  dtIgnore: Uint8Array[];
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

interface Prepared {
  gts: Map<string, CocoAnnotation[]>;
  dts: Map<string, CocoDetection[]>;
}

const key = (imageId: number, categoryId: number) => `${imageId},${categoryId}`;

/** The full evaluation: evaluate(), accumulate(), summarize() of pycocotools. */
export function evaluateCoco(gt: CocoDataset, detections: readonly CocoDetection[], iouType: IouType, params: CocoEvalParams = defaultParams()): CocoEvalResult {
  const p = { ...params, maxDets: [...params.maxDets].sort((a, b) => a - b) };
  const imageIds = [...new Set(gt.images.map((i) => i.id))].sort((a, b) => a - b);
  const categoryIds = [...new Set(gt.categories.map((c) => c.id))].sort((a, b) => a - b);
  const prepared = prepare(gt, detections, imageIds, categoryIds);
  const regionOf = regions(gt, iouType);
  const maxDet = p.maxDets[p.maxDets.length - 1]!;

  const ious = new Map<string, Float64Array[]>();
  for (const imageId of imageIds) {
    for (const categoryId of categoryIds) ious.set(key(imageId, categoryId), computeIou(prepared, imageId, categoryId, maxDet, iouType, regionOf));
  }
  // evalImgs in pycocotools' order: category, then area range, then image.
  const evalImgs: (EvalImg | null)[] = [];
  for (const categoryId of categoryIds) {
    for (const aRng of p.areaRng) {
      for (const imageId of imageIds) evalImgs.push(evaluateImg(prepared, ious, imageId, categoryId, aRng, maxDet, p.iouThrs));
    }
  }
  const acc = accumulate(evalImgs, p, imageIds.length, categoryIds.length);
  const result = { iouType, params: p, imageIds, categoryIds, ...acc, stats: [] as number[] };
  result.stats = summarizeStats(result);
  return result;
}

/** _prepare: annotations and detections of the evaluated images and categories, per (image, category), in file order. */
function prepare(gt: CocoDataset, detections: readonly CocoDetection[], imageIds: number[], categoryIds: number[]): Prepared {
  const images = new Set(imageIds);
  const categories = new Set(categoryIds);
  const gts = new Map<string, CocoAnnotation[]>();
  const dts = new Map<string, CocoDetection[]>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
    const l = m.get(k);
    if (l) l.push(v);
    else m.set(k, [v]);
  };
  // getAnnIds walks imgToAnns image by image (sorted ids), each image's annotations in file order.
  for (const imageId of imageIds) {
    for (const a of gt.annotationsByImage.get(imageId) ?? []) if (categories.has(a.categoryId)) push(gts, key(a.imageId, a.categoryId), a);
  }
  const dtsByImage = new Map<number, CocoDetection[]>();
  for (const d of detections) {
    if (!images.has(d.imageId) || !categories.has(d.categoryId)) continue;
    const l = dtsByImage.get(d.imageId);
    if (l) l.push(d);
    else dtsByImage.set(d.imageId, [d]);
  }
  for (const imageId of imageIds) for (const d of dtsByImage.get(imageId) ?? []) push(dts, key(d.imageId, d.categoryId), d);
  return { gts, dts };
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
function computeIou(
  prepared: Prepared, imageId: number, categoryId: number, maxDet: number, iouType: IouType,
  regionOf: ReturnType<typeof regions>,
): Float64Array[] {
  const g = prepared.gts.get(key(imageId, categoryId)) ?? [];
  let d = prepared.dts.get(key(imageId, categoryId)) ?? [];
  if (g.length === 0 || d.length === 0) return [];
  d = argsortDescending(d.map((x) => x.score)).slice(0, maxDet).map((i) => d[i]!);
  const crowd = g.map((x) => x.iscrowd);
  const gr = g.map(regionOf);
  const dr = d.map(regionOf);
  if (iouType === 'bbox') return bboxIou(dr.map((r) => (r as { bbox: Bbox }).bbox), gr.map((r) => (r as { bbox: Bbox }).bbox), crowd);
  return rleIou(dr.map((r) => (r as { rle: Rle }).rle), gr.map((r) => (r as { rle: Rle }).rle), crowd);
}

/** evaluateImg for one image, category and area range. */
function evaluateImg(
  prepared: Prepared, ious: Map<string, Float64Array[]>, imageId: number, categoryId: number,
  aRng: [number, number], maxDet: number, iouThrs: number[],
): EvalImg | null {
  const k = key(imageId, categoryId);
  const gt0 = prepared.gts.get(k) ?? [];
  const dt0 = prepared.dts.get(k) ?? [];
  if (gt0.length === 0 && dt0.length === 0) return null;
  const outside = (area: number) => area < aRng[0] || area > aRng[1];
  const ignore0 = gt0.map((g) => (g.iscrowd || outside(g.area) ? 1 : 0));
  // Ground truth with ignored ones last (stable), detections by score (stable), cut to maxDet.
  const gtind = gt0.map((_, i) => i).sort((a, b) => ignore0[a]! - ignore0[b]! || a - b);
  const gt = gtind.map((i) => gt0[i]!);
  const dt = argsortDescending(dt0.map((d) => d.score)).slice(0, maxDet).map((i) => dt0[i]!);
  const iscrowd = gt.map((g) => g.iscrowd);
  const gtIg = Uint8Array.from(gtind, (i) => ignore0[i]!);
  const rows = ious.get(k)!;
  const T = iouThrs.length;
  const G = gt.length;
  const D = dt.length;
  const gtm = Array.from({ length: T }, () => new Float64Array(G));
  const dtm = Array.from({ length: T }, () => new Float64Array(D));
  const dtIg = Array.from({ length: T }, () => new Uint8Array(D));
  if (rows.length > 0) {
    iouThrs.forEach((t, tind) => {
      dt.forEach((d, dind) => {
        let iou = Math.min(t, 1 - 1e-10);
        let m = -1;
        const row = rows[dind]!;
        for (let gind = 0; gind < G; gind++) {
          if (gtm[tind]![gind]! > 0 && !iscrowd[gind]) continue; // taken, and not a crowd
          if (m > -1 && gtIg[m] === 0 && gtIg[gind] === 1) break; // matched a real one; the rest are ignored
          const v = row[gtind[gind]!]!;
          if (v < iou) continue;
          iou = v;
          m = gind;
        }
        if (m === -1) return;
        dtIg[tind]![dind] = gtIg[m]!;
        dtm[tind]![dind] = gt[m]!.id; // an annotation with id 0 reads as unmatched later, as in pycocotools
        gtm[tind]![m] = d.id;
      });
    });
  }
  // Unmatched detections outside the area range are ignored.
  dt.forEach((d, dind) => {
    if (!outside(d.area)) return;
    for (let t = 0; t < T; t++) if (dtm[t]![dind] === 0) dtIg[t]![dind] = 1;
  });
  return {
    imageId, categoryId, dtIds: dt.map((d) => d.id), gtIds: gt.map((g) => g.id),
    dtMatches: dtm, gtMatches: gtm, dtScores: dt.map((d) => d.score), gtIgnore: gtIg, dtIgnore: dtIg,
  };
}

/** accumulate: precision at the recall points and the final recall per threshold, category, area, maxDets. */
function accumulate(evalImgs: (EvalImg | null)[], p: CocoEvalParams, I: number, K: number): Pick<CocoEvalResult, 'precision' | 'recall' | 'scores'> {
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  const pIndex = (t: number, r: number, k: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
  const rIndex = (t: number, k: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < A; a++) {
      const E = evalImgs.slice((k * A + a) * I, (k * A + a + 1) * I).filter((e): e is EvalImg => e !== null);
      if (E.length === 0) continue;
      const npig = E.reduce((n, e) => n + e.gtIgnore.reduce((c, g) => c + (g === 0 ? 1 : 0), 0), 0);
      p.maxDets.forEach((maxDet, m) => {
        const dtScores = E.flatMap((e) => e.dtScores.slice(0, maxDet));
        const inds = argsortDescending(dtScores);
        if (npig === 0) return;
        // Detections of every image, in score order, with their match and ignore flags per threshold.
        const offsets: [EvalImg, number][] = E.flatMap((e) => e.dtScores.slice(0, maxDet).map((_, d): [EvalImg, number] => [e, d]));
        const nd = inds.length;
        for (let t = 0; t < T; t++) {
          const rc = new Float64Array(nd);
          const pr = new Float64Array(nd);
          let tp = 0;
          let fp = 0;
          for (let j = 0; j < nd; j++) {
            const [e, d] = offsets[inds[j]!]!;
            const matched = e.dtMatches[t]![d] !== 0;
            if (!e.dtIgnore[t]![d]) {
              if (matched) tp++;
              else fp++;
            }
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + Number.EPSILON); // np.spacing(1)
          }
          recall[rIndex(t, k, a, m)] = nd ? rc[nd - 1]! : 0;
          for (let i = nd - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
          // np.searchsorted(rc, recThrs, side='left'); recall points past the last detection keep 0.
          let pi = 0;
          for (let ri = 0; ri < R; ri++) {
            while (pi < nd && rc[pi]! < p.recThrs[ri]!) pi++;
            if (pi >= nd) {
              for (let r = ri; r < R; r++) {
                precision[pIndex(t, r, k, a, m)] = 0;
                scores[pIndex(t, r, k, a, m)] = 0;
              }
              break;
            }
            precision[pIndex(t, ri, k, a, m)] = pr[pi]!;
            scores[pIndex(t, ri, k, a, m)] = dtScores[inds[pi]!]!;
          }
        }
      });
    }
  }
  return { precision, recall, scores };
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
