/**
 * COCO instance annotations and detection results, parsed and checked: the ground truth as
 * pycocotools' COCO class indexes it, results as its loadRes completes them, and segmentations
 * turned into RLEs as its annToRLE does. Malformed fields are errors that name the annotation
 * (or result) and the field.
 *
 * The parsed form is plain data (camelCase fields, maps by id) so that training readers can share
 * it; nothing here reads files.
 */
import { SwiftFormerError } from '../core/errors.js';
import { rleFromPolygon } from './polygon.js';
import { checkCountsTotal, checkRleSize, mergeRles, rleArea, rleFromString, rleToBbox, type Bbox, type Rle } from './rle.js';

export interface CocoImage {
  id: number;
  /** Absent in some hand-made files; needed only to rasterize polygons. */
  width?: number;
  height?: number;
  fileName?: string;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

/** A segmentation as COCO stores it: polygons (flat x, y lists), or an RLE (counts as numbers = uncompressed, as a string = compressed). */
export type CocoSegmentation = number[][] | { size: [number, number]; counts: number[] | string };

export interface CocoAnnotation {
  id: number;
  imageId: number;
  categoryId: number;
  bbox?: Bbox;
  area: number;
  iscrowd: boolean;
  segmentation?: CocoSegmentation;
}

export interface CocoDataset {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
  imageById: Map<number, CocoImage>;
  categoryById: Map<number, CocoCategory>;
  /** Annotations per image, in file order (pycocotools' imgToAnns). */
  annotationsByImage: Map<number, CocoAnnotation[]>;
}

/** A detection as loadRes completes it: id = position + 1, area and bbox filled in, never crowd. */
export interface CocoDetection {
  id: number;
  imageId: number;
  categoryId: number;
  score: number;
  bbox: Bbox;
  area: number;
  segmentation?: CocoSegmentation;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(where: string, message: string): never {
  throw new SwiftFormerError('BAD_DATA', `${where}: ${message}`);
}

function integerField(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(where, `'${key}' must be an integer, got ${JSON.stringify(v)}`);
  return v;
}

function idOf(o: unknown, kind: string, index: number): number {
  if (!isObject(o)) bad(`${kind} ${index} (position in the list)`, `must be an object`);
  return integerField(o, 'id', `${kind} at position ${index}`);
}

function list(root: Json, key: string, source: string, required: boolean): unknown[] {
  const v = root[key];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) bad(source, `'${key}' must be a list`);
  return v;
}

/** Parses a COCO instances file (already JSON-parsed). `source` names it in errors. */
export function parseCocoInstances(json: unknown, source = 'annotations'): CocoDataset {
  if (!isObject(json)) bad(source, `a COCO annotation file is a JSON object with 'images', 'annotations' and 'categories'`);
  const images = list(json, 'images', source, true).map((o, i) => parseImage(o, i));
  const categories = list(json, 'categories', source, true).map((o, i) => parseCategory(o, i));
  const imageById = uniqueById(images, 'image', source);
  const categoryById = uniqueById(categories, 'category', source);
  const annotations = list(json, 'annotations', source, true).map((o, i) => parseAnnotation(o, i, imageById, categoryById));
  uniqueById(annotations, 'annotation', source);
  const annotationsByImage = new Map<number, CocoAnnotation[]>();
  for (const a of annotations) {
    const l = annotationsByImage.get(a.imageId);
    if (l) l.push(a);
    else annotationsByImage.set(a.imageId, [a]);
  }
  return { images, annotations, categories, imageById, categoryById, annotationsByImage };
}

function uniqueById<T extends { id: number }>(items: T[], kind: string, source: string): Map<number, T> {
  const byId = new Map<number, T>();
  for (const item of items) {
    if (byId.has(item.id)) bad(source, `${kind} id ${item.id} appears more than once`);
    byId.set(item.id, item);
  }
  return byId;
}

function parseImage(o: unknown, index: number): CocoImage {
  const id = idOf(o, 'image', index);
  const img = o as Json;
  const where = `image ${id}`;
  const out: CocoImage = { id };
  for (const key of ['width', 'height'] as const) {
    if (img[key] === undefined) continue;
    const v = integerField(img, key, where);
    if (v <= 0) bad(where, `'${key}' must be positive, got ${v}`);
    out[key] = v;
  }
  if (typeof img.file_name === 'string') out.fileName = img.file_name;
  return out;
}

function parseCategory(o: unknown, index: number): CocoCategory {
  const id = idOf(o, 'category', index);
  const c = o as Json;
  const name = typeof c.name === 'string' ? c.name : String(id);
  return typeof c.supercategory === 'string' ? { id, name, supercategory: c.supercategory } : { id, name };
}

function parseAnnotation(o: unknown, index: number, images: Map<number, CocoImage>, categories: Map<number, CocoCategory>): CocoAnnotation {
  const id = idOf(o, 'annotation', index);
  const a = o as Json;
  const where = `annotation ${id}`;
  const imageId = integerField(a, 'image_id', where);
  const image = images.get(imageId);
  if (!image) bad(where, `'image_id' ${imageId} is not among the images`);
  const categoryId = integerField(a, 'category_id', where);
  if (!categories.has(categoryId)) bad(where, `'category_id' ${categoryId} is not among the categories`);
  const area = a.area;
  if (typeof area !== 'number' || !Number.isFinite(area) || area < 0) {
    bad(where, `'area' must be a non-negative number, got ${JSON.stringify(area)} (COCOeval takes the area ranges from it)`);
  }
  const crowd = a.iscrowd ?? 0; // pycocotools needs the field; a file without it means no crowds
  if (crowd !== 0 && crowd !== 1 && crowd !== true && crowd !== false) bad(where, `'iscrowd' must be 0 or 1, got ${JSON.stringify(crowd)}`);
  const out: CocoAnnotation = { id, imageId, categoryId, area, iscrowd: crowd === 1 || crowd === true };
  if (a.bbox !== undefined) out.bbox = parseBbox(a.bbox, where);
  if (a.segmentation !== undefined) out.segmentation = parseSegmentation(a.segmentation, where);
  return out;
}

export function parseBbox(v: unknown, where: string): Bbox {
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    bad(where, `'bbox' must be [x, y, width, height] (4 finite numbers), got ${JSON.stringify(v)}`);
  }
  if (v[2] < 0 || v[3] < 0) bad(where, `'bbox' ${JSON.stringify(v)} has a negative width or height`);
  return [v[0], v[1], v[2], v[3]];
}

/** Checks a segmentation's shape (and an RLE's counts) without rasterizing it. */
export function parseSegmentation(v: unknown, where: string): CocoSegmentation {
  if (Array.isArray(v)) {
    if (v.length === 0) bad(where, `'segmentation' is an empty list of polygons`);
    v.forEach((poly, i) => {
      if (!Array.isArray(poly) || !poly.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        bad(where, `'segmentation' polygon ${i} must be a list of finite numbers`);
      }
      // pycocotools reads the list by its first polygon, which must have more than 4 numbers; later
      // ones may be degenerate (a segment, a point: some COCO annotations have them) and rasterize to little.
      if (poly.length % 2 !== 0) bad(where, `'segmentation' polygon ${i} has ${poly.length} coordinates, an odd number`);
      if (poly.length < (i === 0 ? 6 : 2)) {
        bad(where, `'segmentation' polygon ${i} has ${poly.length} coordinates (${i === 0 ? 'the first polygon needs at least 6' : 'at least one vertex'})`);
      }
    });
    return v as number[][];
  }
  if (!isObject(v)) bad(where, `'segmentation' must be a list of polygons or an RLE {size, counts}, got ${JSON.stringify(v)}`);
  const size = v.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((x) => Number.isInteger(x) && x >= 0)) {
    bad(where, `'segmentation' RLE 'size' must be [height, width], got ${JSON.stringify(size)}`);
  }
  const [h, w] = size as [number, number];
  checkRleSize(h, w, `${where}: 'segmentation'`);
  const counts = v.counts;
  let rle: Rle;
  if (typeof counts === 'string') {
    try {
      rle = rleFromString(counts, h, w);
    } catch (err) {
      bad(where, `'segmentation' ${(err as Error).message}`);
    }
  } else if (Array.isArray(counts) && counts.every((c) => Number.isInteger(c) && c >= 0)) {
    rle = { height: h, width: w, counts: Uint32Array.from(counts as number[]) };
  } else {
    bad(where, `'segmentation' RLE 'counts' must be a string (compressed) or a list of non-negative integers`);
  }
  checkCountsTotal(rle, `${where}: 'segmentation'`);
  // An RLE keeps its own size, as in pycocotools (one that differs from the image's makes IoUs -1).
  return { size: [h, w], counts: counts as number[] | string };
}

/**
 * annToRLE: polygons rasterized on the image (parts merged), uncompressed RLE converted, compressed
 * RLE decoded. Counts were checked when parsed.
 */
export function segmentationToRle(segm: CocoSegmentation, image: CocoImage | undefined, where: string): Rle {
  if (Array.isArray(segm)) {
    if (!image || image.height === undefined || image.width === undefined) {
      bad(where, `a polygon segmentation needs the image's width and height, which image ${image?.id ?? '?'} lacks`);
    }
    const { height, width } = image as Required<CocoImage>;
    return mergeRles(segm.map((poly) => rleFromPolygon(poly, height, width)));
  }
  const [h, w] = segm.size;
  return typeof segm.counts === 'string' ? rleFromString(segm.counts, h, w) : { height: h, width: w, counts: Uint32Array.from(segm.counts) };
}

export interface ParsedResults {
  detections: CocoDetection[];
  /** Detections whose category is not in the ground truth: kept, but COCOeval never looks at them. */
  unknownCategories: number;
}

/**
 * loadRes: results as a list of { image_id, category_id, score, bbox | segmentation }. As in
 * pycocotools the first result decides the kind: with a non-empty bbox every result is a box
 * (area = w * h, its segmentation, if any, kept, else the box's polygon); otherwise every result
 * is a segmentation (area and, when absent, bbox from its RLE). Every result's image must be in
 * the ground truth.
 */
export function parseCocoResults(json: unknown, gt: CocoDataset, source = 'results'): ParsedResults {
  if (!Array.isArray(json)) bad(source, `COCO results are a JSON list of {image_id, category_id, score, bbox | segmentation}`);
  const first = json[0];
  const boxes = isObject(first) && Array.isArray(first.bbox) && first.bbox.length > 0;
  let unknownCategories = 0;
  const detections = json.map((o, i): CocoDetection => {
    const where = `result ${i}`;
    if (!isObject(o)) bad(where, `must be an object`);
    const imageId = integerField(o, 'image_id', where);
    const image = gt.imageById.get(imageId);
    if (!image) bad(where, `'image_id' ${imageId} is not among the ground truth's images`);
    const categoryId = integerField(o, 'category_id', where);
    if (!gt.categoryById.has(categoryId)) unknownCategories++;
    const score = o.score;
    if (typeof score !== 'number' || !Number.isFinite(score)) bad(where, `'score' must be a finite number, got ${JSON.stringify(score)}`);
    const id = i + 1;
    if (boxes) {
      if (o.bbox === undefined) bad(where, `'bbox' is missing (the first result has one, so all are boxes)`);
      const bbox = parseBbox(o.bbox, where);
      const det: CocoDetection = { id, imageId, categoryId, score, bbox, area: bbox[2] * bbox[3] };
      if (o.segmentation !== undefined) det.segmentation = parseSegmentation(o.segmentation, where);
      return det;
    }
    if (o.segmentation === undefined) bad(where, `'segmentation' is missing (the first result has no bbox, so all are segmentations)`);
    const segmentation = parseSegmentation(o.segmentation, where);
    const rle = segmentationToRle(segmentation, image, where);
    const given = Array.isArray(o.bbox) && o.bbox.length === 0 ? undefined : o.bbox; // [] counts as absent
    const bbox = given === undefined ? rleToBbox(rle) : parseBbox(given, where);
    return { id, imageId, categoryId, score, bbox, area: rleArea(rle), segmentation };
  });
  return { detections, unknownCategories };
}

/** The segmentation of a box result in a segm evaluation: loadRes's polygon of its corners. */
export function boxSegmentation(bbox: Bbox): number[][] {
  const [x1, y1] = bbox;
  const x2 = bbox[0] + bbox[2];
  const y2 = bbox[1] + bbox[3];
  return [[x1, y1, x1, y2, x2, y2, x2, y1]];
}
