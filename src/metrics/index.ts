/** The metrics' public API: what api.ts re-exports for Node and the browser. */
export { SegmentationAccumulator, segmentationMetrics, segmentationJson, formatSegmentationTables } from './segmentation.js';
export type { LabelMap, SegmentationOptions, SegmentationMetrics, SegmentationJson, SegmentationTotals } from './segmentation.js';
export {
  encodeMask, decodeRle, mergeRles, rleArea, rleIou, rleToBbox, bboxIou, rleToString, rleFromString, MAX_RLE_PIXELS,
} from '../data/rle.js';
export type { Rle, Bbox } from '../data/rle.js';
export { rleFromPolygon, rleFromBbox } from '../data/polygon.js';
export { parseCocoInstances, parseCocoResults, segmentationToRle } from '../data/coco.js';
export type { CocoDataset, CocoImage, CocoAnnotation, CocoCategory, CocoSegmentation, CocoDetection, ParsedResults } from '../data/coco.js';
export { evaluateCoco, summaryLines, statsJson, defaultParams, STAT_NAMES } from './cocoeval.js';
export type { CocoEvalResult, CocoEvalParams, EvaluateOptions, IouType, StatName } from './cocoeval.js';
