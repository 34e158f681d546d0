/**
 * Semantic segmentation datasets as the library sees them, whatever their files: an image and its
 * label map (class index per pixel) by index, in the class space of the model. Reading the
 * layouts on disk (ADE20K's, mmseg's generic one) is the platform's (node/segmentation-data.ts);
 * here are the rules every pair must satisfy, ADE20K's label convention and its classes.
 *
 * Labels are what mmseg's LoadAnnotations hands the pipeline: with reduce_zero_label (ADE20K, whose
 * 0 is "other") 0 becomes the ignore index 255 and k becomes k - 1, so that the 150 classes are
 * 0..149; every value must then be a class (0..K-1) or the ignore index.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { RGBImage } from '../preprocess/resize.js';

/** mmseg's ignore index in label maps. */
export const IGNORE_INDEX = 255;

/** Class index per pixel, row-major: 8-bit PNGs give a Uint8Array, 16-bit ones a Uint16Array. */
export interface LabelImage {
  width: number;
  height: number;
  data: Uint8Array | Uint16Array;
}

export interface SegmentationSample {
  image: RGBImage;
  /** In the model's class space (reduce_zero_label applied), the image's size. */
  label: LabelImage;
  /** The label file (or another name for messages). */
  name: string;
}

export interface SegmentationDataset {
  readonly name: string;
  readonly length: number;
  /** Class names, index = label value. */
  readonly classes: readonly string[];
  readonly palette: readonly (readonly [number, number, number])[];
  readonly ignoreIndex: number;
  /** The labels on disk are ADE20K-style (0 = other); `sample` has already reduced them. */
  readonly reduceZeroLabel: boolean;
  sample(i: number): Promise<SegmentationSample>;
}

/** mmseg's LoadAnnotations(reduce_zero_label=True) in uint8 arithmetic: 0 -> 255, k -> k - 1, 255 stays 255. */
export function reduceZeroLabel(data: Uint8Array | Uint16Array): Uint8Array | Uint16Array {
  const out = data.slice();
  for (let i = 0; i < out.length; i++) out[i] = reducedValue(out[i]!);
  return out;
}

/** label[label == 0] = 255; label = label - 1; label[label == 254] = 255 (a 256 in a 16-bit map becomes 255 too, as in mmseg). */
function reducedValue(raw: number): number {
  return raw === 0 || raw === IGNORE_INDEX ? IGNORE_INDEX : raw - 1;
}

/**
 * The errors a pair can have, each naming the file: a label map of another size than its image,
 * or a value that is neither a class (0..K-1) nor the ignore index (reported in the file's own
 * values, before reduce_zero_label).
 */
export function checkSegmentationPair(
  image: RGBImage, label: LabelImage, options: { numClasses: number; ignoreIndex: number; reduceZeroLabel: boolean; labelFile: string; imageFile: string },
): void {
  const { numClasses, ignoreIndex, reduceZeroLabel: reduce, labelFile, imageFile } = options;
  if (label.width !== image.width || label.height !== image.height) {
    throw new SwiftFormerError('BAD_DATA', `${labelFile} is ${label.width}x${label.height}, its image ${imageFile} is ${image.width}x${image.height}`);
  }
  const data = label.data;
  for (let i = 0; i < data.length; i++) {
    const raw = data[i]!;
    const value = reduce ? reducedValue(raw) : raw;
    if (value < numClasses || value === ignoreIndex) continue;
    const x = i % label.width;
    const y = Math.floor(i / label.width);
    const classes = reduce ? `labels 1-${numClasses} (reduce_zero_label: 0 is "other", ignored)` : `classes 0-${numClasses - 1}`;
    throw new SwiftFormerError('BAD_DATA', `${labelFile}: pixel (${x}, ${y}) has label ${raw}, which is neither one of the ${numClasses} ${classes} nor the ignore index ${ignoreIndex}`);
  }
}

/** `n` of `length` indices spread evenly (every part of a sorted listing keeps its share). */
export function evenlySpaced(n: number, length: number): number[] {
  return Array.from({ length: Math.min(n, length) }, (_, i) => Math.floor((i * length) / Math.min(n, length)));
}

/** At most `n` samples of a dataset, spread evenly. */
export function limitSegmentation(dataset: SegmentationDataset, n: number): SegmentationDataset {
  if (n >= dataset.length) return dataset;
  const indices = evenlySpaced(n, dataset.length);
  const { classes, palette, ignoreIndex, reduceZeroLabel: reduce } = dataset;
  return {
    name: `${dataset.name} [${n} of ${dataset.length}, evenly spaced]`, length: n, classes, palette, ignoreIndex, reduceZeroLabel: reduce,
    sample: (i) => dataset.sample(indices[i]!),
  };
}

// ---------------------------------------------------------------- ADE20K

/** ADE20K's (SceneParsing) 150 classes in mmsegmentation's order and spelling ('bed ' included). */
export const ADE20K_CLASSES: readonly string[] = [
  'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ', 'windowpane', 'grass', 'cabinet', 'sidewalk', 'person', 'earth',
  'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug',
  'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column',
  'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs',
  'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet',
  'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar',
  'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth',
  'television receiver', 'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet',
  'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel',
  'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot',
  'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray',
  'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
];

/** mmsegmentation's ADE20K palette, one [r, g, b] per class. */
export const ADE20K_PALETTE: readonly (readonly [number, number, number])[] = [
  [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80], [140, 140, 140], [204, 5, 255],
  [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82],
  [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3], [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
  [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224],
  [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7],
  [255, 122, 8], [0, 255, 20], [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
  [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
  [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255], [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255],
  [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0], [0, 143, 255], [51, 255, 0],
  [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0], [0, 255, 153], [255, 92, 0], [255, 0, 255],
  [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20], [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255],
  [255, 0, 204], [0, 255, 194], [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255],
  [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0],
  [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112],
  [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
  [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255], [255, 0, 122], [255, 245, 0],
  [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255], [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204],
  [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255], [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255],
  [184, 255, 0], [0, 133, 255], [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
];
