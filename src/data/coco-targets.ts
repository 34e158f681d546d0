/**
 * COCO instances as a detector trains and is scored on them, the way torchvision's
 * references/detection reads them (coco_utils.py):
 *
 *  - images in ascending id order (CocoDetection's `sorted(coco.imgs.keys())`); for training, the
 *    images without a usable annotation are left out (_coco_remove_images_without_annotations: no
 *    annotation at all, or every box, crowds included, at most 1 pixel wide or high);
 *  - a target (ConvertCocoPolysToMask): crowd annotations dropped, boxes x, y, w, h -> x1, y1, x2,
 *    y2 in float32 clamped to the image, masks rasterized as pycocotools' frPyObjects + decode
 *    (polygons, uncompressed or compressed RLE), and the instances whose clamped box is empty
 *    (x2 <= x1 or y2 <= y1) left out;
 *  - labels: torchvision's COCO models take the category ids themselves as labels (91 classes for
 *    COCO's ids 1..90, gaps included). A model whose class count is not the largest id + 1 gets
 *    contiguous labels instead, 1..K in ascending category id (FilterAndRemapCocoCategories with
 *    remap=True, after the background), and results map them back.
 *
 * Plain data in and out; reading files is node/coco-data.ts's.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from './coco.js';
import { segmentationToRle } from './coco.js';
import { decodeRle } from './rle.js';

/** Category ids <-> model labels (0 is the background). */
export interface LabelMap {
  /** 'identity': label = category id (torchvision's COCO convention); 'contiguous': 1..K by ascending id. */
  kind: 'identity' | 'contiguous';
  /** Classes the model needs, background included. */
  numClasses: number;
  /** Category id of each label (index 0, the background: -1; labels no category has: -1). */
  categoryOf: number[];
  labelOf: Map<number, number>;
  /** Class names by label ('__background__' first; gaps of the identity map are 'N/A', as torchvision's COCO names). */
  names: string[];
}

/**
 * The label map of `categories`: identity when the model's class count (`numClasses`, default:
 * the largest id + 1 when the ids are 1..K without a gap) is the largest id + 1, contiguous otherwise.
 */
export function cocoLabelMap(categories: readonly CocoCategory[], numClasses?: number): LabelMap {
  if (categories.length === 0) throw new SwiftFormerError('BAD_DATA', `the annotations have no categories: a detector needs at least one`);
  const sorted = [...categories].sort((a, b) => a.id - b.id);
  const maxId = sorted.at(-1)!.id;
  const minId = sorted[0]!.id;
  const gapless = minId === 1 && maxId === sorted.length;
  const identity = minId >= 1 && (numClasses === undefined ? gapless : numClasses === maxId + 1);
  if (identity) {
    const categoryOf = Array.from({ length: maxId + 1 }, () => -1);
    const names = Array.from({ length: maxId + 1 }, (_, i): string => (i === 0 ? '__background__' : 'N/A'));
    for (const c of sorted) {
      categoryOf[c.id] = c.id;
      names[c.id] = c.name;
    }
    return { kind: 'identity', numClasses: maxId + 1, categoryOf, labelOf: new Map(sorted.map((c) => [c.id, c.id])), names };
  }
  const k = sorted.length + 1;
  if (numClasses !== undefined && numClasses !== k) {
    throw new SwiftFormerError('BAD_ARGUMENT', `the model has ${numClasses} classes (background included), the annotations ${sorted.length} categories with ids ${minId}..${maxId}: it needs either ${k} (contiguous labels) or ${maxId + 1} (labels = category ids)`);
  }
  return {
    kind: 'contiguous', numClasses: k,
    categoryOf: [-1, ...sorted.map((c) => c.id)],
    labelOf: new Map(sorted.map((c, i) => [c.id, i + 1])),
    names: ['__background__', ...sorted.map((c) => c.name)],
  };
}

/** The category id of a model label; a label the map does not know is an error (a model with more classes than the data). */
export function categoryOfLabel(map: LabelMap, label: number): number {
  const id = map.categoryOf[label];
  if (id === undefined || id < 0) throw new SwiftFormerError('BAD_DATA', `model label ${label} is no category of the annotations (labels 1..${map.numClasses - 1}, ${map.kind} map)`);
  return id;
}

/** Image ids in CocoDetection's order: ascending. */
export function sortedImageIds(dataset: CocoDataset): number[] {
  return dataset.images.map((i) => i.id).sort((a, b) => a - b);
}

/** _coco_remove_images_without_annotations: ids of images with an annotation whose box is larger than 1 pixel both ways (crowds count). */
export function trainingImageIds(dataset: CocoDataset): number[] {
  return sortedImageIds(dataset).filter((id) => {
    const anns = dataset.annotationsByImage.get(id) ?? [];
    return anns.length > 0 && !anns.every((a) => a.bbox === undefined || a.bbox[2] <= 1 || a.bbox[3] <= 1);
  });
}

/** One image's training target, in its original pixels. */
export interface InstanceTarget {
  imageId: number;
  width: number;
  height: number;
  /** K x 4 float32 x1, y1, x2, y2. */
  boxes: Float32Array;
  /** K model labels. */
  labels: Int32Array;
  /** K x height x width, 0 / 1, row-major; absent when masks were not asked for. */
  masks?: Uint8Array;
  /** Annotation ids of the K instances (for messages). */
  annotationIds: number[];
}

function bad(where: string, message: string): never {
  throw new SwiftFormerError('BAD_DATA', `${where}: ${message}`);
}

/**
 * ConvertCocoPolysToMask for image `imageId` of `width` x `height` pixels (the decoded file's size:
 * a different size in the annotations is an error naming the image). Every kept annotation needs
 * a bbox, and a segmentation when `masks` is on; both are errors naming the annotation otherwise.
 */
export function instanceTarget(dataset: CocoDataset, imageId: number, size: { width: number; height: number }, map: LabelMap, options: { masks?: boolean } = {}): InstanceTarget {
  const image = dataset.imageById.get(imageId);
  if (!image) throw new SwiftFormerError('BAD_DATA', `image id ${imageId} is not among the annotations' images`);
  const { width, height } = size;
  checkImageSize(image, width, height);
  const withMasks = options.masks ?? true;
  const sized = { ...image, width, height };
  const kept = (dataset.annotationsByImage.get(imageId) ?? []).filter((a) => !a.iscrowd);
  const boxes: number[] = [];
  const labels: number[] = [];
  const ids: number[] = [];
  const masks: Uint8Array[] = [];
  for (const a of kept) {
    const box = clampedBox(a, width, height);
    const label = map.labelOf.get(a.categoryId);
    if (label === undefined) bad(`annotation ${a.id}`, `'category_id' ${a.categoryId} has no label`);
    // The mask is rasterized before the empty-box filter, as torchvision does: a bad one is still an error.
    const mask = withMasks ? instanceMask(a, sized) : undefined;
    if (!(box[3]! > box[1]! && box[2]! > box[0]!)) continue;
    boxes.push(...box);
    labels.push(label);
    ids.push(a.id);
    if (mask) masks.push(mask);
  }
  const target: InstanceTarget = { imageId, width, height, boxes: Float32Array.from(boxes), labels: Int32Array.from(labels), annotationIds: ids };
  if (withMasks) {
    const all = new Uint8Array(masks.length * width * height);
    masks.forEach((m, i) => all.set(m, i * width * height));
    target.masks = all;
  }
  return target;
}

function checkImageSize(image: CocoImage, width: number, height: number): void {
  if ((image.width !== undefined && image.width !== width) || (image.height !== undefined && image.height !== height)) {
    bad(`image ${image.id}${image.fileName ? ` (${image.fileName})` : ''}`, `the annotations give ${image.width}x${image.height}, the file is ${width}x${height}`);
  }
}

/** x, y, w, h -> x1, y1, x2, y2 in float32 (torch.as_tensor(float32), then boxes[:, 2:] += boxes[:, :2]), clamped to the image. */
function clampedBox(a: CocoAnnotation, width: number, height: number): number[] {
  if (!a.bbox) bad(`annotation ${a.id}`, `'bbox' is missing (a detector trains on boxes)`);
  const f = Math.fround;
  const [x, y, w, h] = a.bbox.map(f) as [number, number, number, number];
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  return [clamp(x, width), clamp(y, height), clamp(f(x + w), width), clamp(f(y + h), height)];
}

/** frPyObjects + decode + any over the parts: the instance's 0 / 1 mask, row-major. */
function instanceMask(a: CocoAnnotation, image: CocoImage & { width: number; height: number }): Uint8Array {
  const where = `annotation ${a.id}`;
  if (!a.segmentation) bad(where, `'segmentation' is missing (Mask R-CNN trains on masks)`);
  const rle = segmentationToRle(a.segmentation, image, where);
  if (rle.height !== image.height || rle.width !== image.width) {
    bad(where, `'segmentation' RLE size [${rle.height}, ${rle.width}] is not image ${image.id}'s [${image.height}, ${image.width}]`);
  }
  return decodeRle(rle);
}
