/**
 * COCO instance datasets on disk: an annotation file and its images directory, found in either
 * layout:
 *
 *   COCO       annotations/instances_{train,val}2017.json, images in {train,val}2017/
 *   generic    annotations/instances_{train,val}.json, images in img_dir/{train,val}/ (what
 *              scripts/make-scenes.ts writes, beside mmseg's segmentation layout) or {train,val}/
 *
 * or named directly (openCocoSplit: a file and a folder). `file_name` is relative to the images
 * directory. Images are decoded as PIL's Image.open(...).convert('RGB') reads them (no EXIF
 * rotation: COCO's annotations are in the stored orientation). Errors name the file, the image id
 * or the annotation id and field: a missing image file is reported when the split is opened, not
 * in the middle of a training run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inContext, SwiftFormerError } from '../core/errors.js';
import type { RGBImage } from '../core/image.js';
import { parseCocoInstances, type CocoDataset } from '../data/coco.js';
import { cocoLabelMap, instanceTarget, sortedImageIds, trainingImageIds, type InstanceTarget, type LabelMap } from '../data/coco-targets.js';
import { isDirectory, isFile } from './datasets.js';
import { decodeImage } from './decode.js';

export type CocoSplit = 'train' | 'val';

/** Where a split's annotations and images are, per layout, in the order tried. */
function candidates(root: string, split: CocoSplit): { annotations: string; images: string }[] {
  const coco = join(root, 'annotations', `instances_${split}2017.json`);
  const generic = join(root, 'annotations', `instances_${split}.json`);
  return [
    { annotations: coco, images: join(root, `${split}2017`) },
    { annotations: generic, images: join(root, 'img_dir', split) },
    { annotations: generic, images: join(root, split) },
  ];
}

/** The annotation file and images directory of a split of `root`, or undefined. */
export async function findCocoSplit(root: string, split: CocoSplit): Promise<{ annotations: string; images: string } | undefined> {
  for (const c of candidates(root, split)) if (await isFile(c.annotations) && await isDirectory(c.images)) return c;
  return undefined;
}

/** Whether `root` holds a COCO instances split in one of the layouts. */
export async function isCocoDataset(root: string): Promise<boolean> {
  return (await findCocoSplit(root, 'train')) !== undefined || (await findCocoSplit(root, 'val')) !== undefined;
}

export interface CocoSample {
  image: RGBImage;
  target: InstanceTarget;
  file: string;
}

/** One split: the parsed annotations, the images in the order used (ascending id), samples read on demand. */
export class CocoInstances {
  constructor(
    readonly name: string,
    readonly annotationFile: string,
    readonly imagesDir: string,
    readonly coco: CocoDataset,
    /** Image ids of the samples, in order. */
    readonly imageIds: readonly number[],
    readonly labels: LabelMap,
    private readonly options: { masks: boolean; maxPixels?: number },
  ) {}

  get length(): number {
    return this.imageIds.length;
  }

  file(i: number): string {
    return join(this.imagesDir, this.coco.imageById.get(this.imageIds[i]!)!.fileName!);
  }

  /** The image (RGB, as stored) of sample i, without its target (evaluation). */
  async image(i: number): Promise<RGBImage> {
    const file = this.file(i);
    return decodeImage(file, { autoOrient: false, name: file, ...(this.options.maxPixels !== undefined ? { maxPixels: this.options.maxPixels } : {}) });
  }

  /** Image and training target of sample i; errors name the file or the annotation. */
  async sample(i: number): Promise<CocoSample> {
    const image = await this.image(i);
    const file = this.file(i);
    try {
      return { image, target: instanceTarget(this.coco, this.imageIds[i]!, image, this.labels, { masks: this.options.masks }), file };
    } catch (err) {
      if (err instanceof SwiftFormerError) throw new SwiftFormerError(err.code, `${this.annotationFile}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** The same split restricted to the samples at `indices` (in that order). */
  subset(indices: readonly number[]): CocoInstances {
    return new CocoInstances(this.name, this.annotationFile, this.imagesDir, this.coco, indices.map((i) => this.imageIds[i]!), this.labels, this.options);
  }
}

export interface OpenCocoOptions {
  /** Training: leave out the images without a usable annotation, as torchvision's references do (default false). */
  training?: boolean;
  /** Classes of the model (background included): picks the label map (coco-targets.ts). */
  numClasses?: number;
  /** Rasterize masks into the targets (default true). */
  masks?: boolean;
  maxPixels?: number;
}

async function readAnnotations(file: string): Promise<CocoDataset> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SwiftFormerError('IO', `cannot read ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SwiftFormerError('BAD_DATA', `${file} is not JSON: ${(err as Error).message}`);
  }
  try {
    return parseCocoInstances(json, file);
  } catch (err) {
    throw inContext(err, file);
  }
}

/** Every image of the split must name a file that exists: one error listing the first missing ones. */
async function checkImageFiles(coco: CocoDataset, ids: readonly number[], dir: string, annotationFile: string): Promise<void> {
  const problems: string[] = [];
  for (const id of ids) {
    const image = coco.imageById.get(id)!;
    if (image.fileName === undefined) problems.push(`image ${id} has no 'file_name'`);
    else if (!(await isFile(join(dir, image.fileName)))) problems.push(`image ${id}: ${join(dir, image.fileName)} does not exist`);
    if (problems.length >= 3) break;
  }
  if (problems.length > 0) throw new SwiftFormerError('BAD_DATA', `${annotationFile}: ${problems.join('; ')}`);
}

/** One split from an annotation file and its images directory. */
export async function openCocoSplit(annotationFile: string, imagesDir: string, options: OpenCocoOptions = {}): Promise<CocoInstances> {
  if (!(await isDirectory(imagesDir))) throw new SwiftFormerError('IO', `images directory ${imagesDir} does not exist or is not a directory`);
  const coco = await readAnnotations(annotationFile);
  const ids = options.training ? trainingImageIds(coco) : sortedImageIds(coco);
  if (ids.length === 0) {
    throw new SwiftFormerError('BAD_DATA', `${annotationFile} has no ${options.training ? 'image with a usable annotation (a box larger than 1 pixel)' : 'images'}`);
  }
  await checkImageFiles(coco, ids, imagesDir, annotationFile);
  const labels = cocoLabelMap(coco.categories, options.numClasses);
  return new CocoInstances(`${annotationFile}`, annotationFile, imagesDir, coco, ids, labels, {
    masks: options.masks ?? true, ...(options.maxPixels !== undefined ? { maxPixels: options.maxPixels } : {}),
  });
}

/** A split of a dataset directory in either layout; a directory without it is an error saying what was looked for. */
export async function openCocoData(root: string, split: CocoSplit, options: OpenCocoOptions = {}): Promise<CocoInstances> {
  const found = await findCocoSplit(root, split);
  if (!found) {
    const tried = candidates(root, split).map((c) => `${c.annotations} + ${c.images}/`).join(', ');
    throw new SwiftFormerError('IO', `${root} has no COCO ${split} split: looked for ${tried}`);
  }
  return openCocoSplit(found.annotations, found.images, { ...options, training: options.training ?? split === 'train' });
}
