/**
 * COCO evaluation of a detector, as torchvision's references/detection `evaluate` runs it: every
 * image of the split through the model (eval mode, all of its detections: the graph's own 0.05
 * score threshold), the outputs as COCO results (data/coco-results.ts), then pycocotools'
 * COCOeval per IoU type (bbox, and segm for Mask R-CNN) on the images evaluated.
 *
 * The results are scored after a round trip through their JSON form (loadRes's completion of
 * area and ids), so that the summary printed is what `swiftformer score detection` gives on the
 * saved file.
 */
import type { CocoDataset } from '../data/coco.js';
import { parseCocoResults } from '../data/coco.js';
import { addCocoResults, type CocoResults } from '../data/coco-results.js';
import { evaluateCoco, type CocoEvalResult, type IouType } from '../metrics/cocoeval.js';
import type { DetectionModel } from '../models/detector.js';
import type { CocoInstances } from '../node/coco-data.js';

export interface DetectionEvaluation {
  results: CocoResults;
  bbox: CocoEvalResult;
  segm?: CocoEvalResult;
  images: number;
}

/** Runs `model` over every image of `data`; `onProgress(done, total, detections so far)`. */
export async function detectionResults(
  model: DetectionModel, data: CocoInstances, onProgress?: (done: number, total: number, detections: number) => void,
): Promise<CocoResults> {
  const out: CocoResults = { bbox: [], ...(model.hasMasks ? { segm: [] } : {}) };
  for (let i = 0; i < data.length; i++) {
    const image = await data.image(i);
    const found = await model.detect(image, { threshold: 0, masks: model.hasMasks });
    addCocoResults(out, data.imageIds[i]!, found, data.labels);
    onProgress?.(i + 1, data.length, out.bbox.length);
  }
  return out;
}

/** The ground truth restricted to the evaluated images (pycocotools' params.imgIds). */
export function restrictToImages(gt: CocoDataset, imageIds: readonly number[]): CocoDataset {
  const keep = new Set(imageIds);
  if (keep.size === gt.images.length) return gt;
  const images = gt.images.filter((i) => keep.has(i.id));
  const annotations = gt.annotations.filter((a) => keep.has(a.imageId));
  return {
    ...gt, images, annotations,
    imageById: new Map(images.map((i) => [i.id, i])),
    annotationsByImage: new Map([...gt.annotationsByImage].filter(([id]) => keep.has(id))),
  };
}

/** COCOeval of results (in their JSON form) on `gt`, per IoU type. */
export function scoreCocoResults(gt: CocoDataset, results: CocoResults, onProgress?: (iouType: IouType, done: number, total: number) => void): Pick<DetectionEvaluation, 'bbox' | 'segm'> {
  const score = (json: unknown[], iouType: IouType) => {
    const { detections } = parseCocoResults(JSON.parse(JSON.stringify(json)), gt, `${iouType} results`);
    return evaluateCoco(gt, detections, iouType, onProgress ? { onProgress: (d, t) => onProgress(iouType, d, t) } : {});
  };
  const bbox = score(results.bbox, 'bbox');
  return { bbox, ...(results.segm ? { segm: score(results.segm, 'segm') } : {}) };
}

/** The whole evaluation of `model` on `data`. */
export async function evaluateDetection(
  model: DetectionModel, data: CocoInstances, onProgress?: (done: number, total: number, detections: number) => void,
): Promise<DetectionEvaluation> {
  const results = await detectionResults(model, data, onProgress);
  const gt = restrictToImages(data.coco, data.imageIds);
  return { results, ...scoreCocoResults(gt, results), images: data.length };
}
