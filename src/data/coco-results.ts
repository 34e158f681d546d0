/**
 * A detector's output as COCO results, as torchvision's references/detection CocoEvaluator writes
 * them (prepare_for_coco_detection / prepare_for_coco_segmentation): one entry per detection and
 * IoU type, the model label mapped back to its category id, the box x1, y1, x2, y2 turned into x,
 * y, w, h in float32 (w = x2 - x1 rounded to float32, as torch subtracts), the score as given, and
 * the mask (probability > 0.5) as a compressed RLE string.
 */
import { categoryOfLabel, type LabelMap } from './coco-targets.js';
import { encodeMask, rleToString } from './rle.js';

export interface DetectedObject {
  /** Model label (1..K-1). */
  index: number;
  score: number;
  box: { xmin: number; ymin: number; xmax: number; ymax: number };
  /** Binary mask over the image (nonzero inside), row-major. */
  mask?: { width: number; height: number; data: Uint8Array };
}

export interface CocoBoxResult { image_id: number; category_id: number; bbox: [number, number, number, number]; score: number }
export interface CocoSegmResult { image_id: number; category_id: number; segmentation: { size: [number, number]; counts: string }; score: number }

export interface CocoResults {
  bbox: CocoBoxResult[];
  /** Present when the detections have masks. */
  segm?: CocoSegmResult[];
}

/** Appends one image's detections to `out`. */
export function addCocoResults(out: CocoResults, imageId: number, detections: readonly DetectedObject[], labels: LabelMap): void {
  const f = Math.fround;
  for (const d of detections) {
    const category_id = categoryOfLabel(labels, d.index);
    const { xmin, ymin, xmax, ymax } = d.box;
    const score = f(d.score);
    out.bbox.push({ image_id: imageId, category_id, bbox: [f(xmin), f(ymin), f(f(xmax) - f(xmin)), f(f(ymax) - f(ymin))], score });
    if (d.mask) {
      const { width, height, data } = d.mask;
      (out.segm ??= []).push({ image_id: imageId, category_id, segmentation: { size: [height, width], counts: rleToString(encodeMask(data, height, width)) }, score });
    }
  }
}
