/**
 * Segmentation datasets on disk, in the two layouts mmsegmentation reads:
 *
 *   ADE20K     images/{training,validation}/<stem>.jpg, annotations/{training,validation}/<stem>.png;
 *              the 150 classes of ADE20KDataset, labels with 0 = "other" (reduce_zero_label)
 *   generic    img_dir/{train,val}/<stem>.<image ext>, ann_dir/{train,val}/<stem>.png (CustomDataset);
 *              class names and palette from a dataset.json beside them ({ "classes", "palette" }, as
 *              scripts/make-scenes.ts writes it) or the class count given
 *
 * Label PNGs are read as indices (node/png.ts: a palette PNG gives its indices, not its colors).
 * Pairs are matched by file stem when a dataset is opened (an image without its label map is an
 * error naming both); each sample is checked when it is read (size, label values), also naming
 * the file.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { SwiftFormerError } from '../core/errors.js';
import {
  ADE20K_CLASSES, ADE20K_PALETTE, checkSegmentationPair, IGNORE_INDEX, limitSegmentation, reduceZeroLabel,
  type SegmentationDataset, type SegmentationSample,
} from '../data/segmentation.js';
import { checkPalette, type RGB } from '../models/card.js';
import { defaultPalette } from '../models/segmentation.js';
import { codePointCompare, IMAGE_EXTENSIONS, isDirectory, isFile } from './datasets.js';
import { decodeImage } from './decode.js';
import { readLabelPng } from './png.js';

export type SegmentationLayout = 'ade20k' | 'generic';
export type SegmentationSplit = 'train' | 'val';

const LAYOUTS: Record<SegmentationLayout, { images: string; labels: string; splits: Record<SegmentationSplit, string> }> = {
  ade20k: { images: 'images', labels: 'annotations', splits: { train: 'training', val: 'validation' } },
  generic: { images: 'img_dir', labels: 'ann_dir', splits: { train: 'train', val: 'val' } },
};

/** The layout `root` holds (an image folder and a label folder of some split), or undefined. */
export async function segmentationLayout(root: string): Promise<SegmentationLayout | undefined> {
  for (const layout of ['ade20k', 'generic'] as const) {
    const { images, labels, splits } = LAYOUTS[layout];
    for (const split of Object.values(splits)) {
      if (await isDirectory(join(root, images, split)) && await isDirectory(join(root, labels, split))) return layout;
    }
  }
  return undefined;
}

/** The folders a layout's split lives in (for messages and tests). */
export function splitFolders(root: string, layout: SegmentationLayout, split: SegmentationSplit): { images: string; labels: string } {
  const l = LAYOUTS[layout];
  return { images: join(root, l.images, l.splits[split]), labels: join(root, l.labels, l.splits[split]) };
}

/** One split of a layout: image and label files paired by stem, samples decoded and checked on reading. */
export class SegmentationFolder implements SegmentationDataset {
  constructor(
    readonly name: string,
    readonly images: readonly string[],
    readonly labels: readonly string[],
    readonly classes: readonly string[],
    readonly palette: readonly RGB[],
    readonly reduceZeroLabel: boolean,
    readonly ignoreIndex: number = IGNORE_INDEX,
    private readonly maxPixels?: number,
  ) {}

  get length(): number {
    return this.images.length;
  }

  async sample(i: number): Promise<SegmentationSample> {
    const imageFile = this.images[i]!;
    const labelFile = this.labels[i]!;
    const [image, png] = await Promise.all([
      decodeImage(imageFile, this.maxPixels === undefined ? {} : { maxPixels: this.maxPixels }),
      readLabelPng(labelFile),
    ]);
    const label = { width: png.width, height: png.height, data: png.data };
    checkSegmentationPair(image, label, { numClasses: this.classes.length, ignoreIndex: this.ignoreIndex, reduceZeroLabel: this.reduceZeroLabel, labelFile, imageFile });
    return { image, label: this.reduceZeroLabel ? { ...label, data: reduceZeroLabel(label.data) } : label, name: labelFile };
  }
}

/** Image files of a folder by stem, sorted; two images with one stem are an error naming both. */
async function imagesByStem(dir: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SwiftFormerError('IO', `image folder ${dir} ${code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be read: ${(err as Error).message}`}`);
  }
  const out = new Map<string, string>();
  for (const name of names.sort(codePointCompare)) {
    const ext = extname(name);
    if (!IMAGE_EXTENSIONS.includes(ext.toLowerCase()) || name.startsWith('.')) continue;
    const stem = name.slice(0, -ext.length);
    const other = out.get(stem);
    if (other) throw new SwiftFormerError('BAD_DATA', `${join(dir, name)} and ${other} have the same stem: which one ${stem}.png labels is ambiguous`);
    out.set(stem, join(dir, name));
  }
  return out;
}

/** The classes and palette of a generic dataset: its dataset.json, or `numClasses` indices. */
async function genericClasses(root: string, numClasses: number | undefined): Promise<{ classes: string[]; palette: RGB[] }> {
  const path = join(root, 'dataset.json');
  let info: { classes?: unknown; palette?: unknown } | undefined;
  if (await isFile(path)) {
    try {
      info = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new SwiftFormerError('BAD_DATA', `${path} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const classes = info?.classes;
  if (classes !== undefined && !(Array.isArray(classes) && classes.every((c) => typeof c === 'string') && classes.length >= 2)) {
    throw new SwiftFormerError('BAD_DATA', `${path}: "classes" must be a list of at least 2 class names`);
  }
  if (classes && numClasses !== undefined && classes.length !== numClasses) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${path} names ${classes.length} classes, the class count given is ${numClasses}`);
  }
  const k = classes?.length ?? numClasses;
  if (k === undefined) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${root} does not say how many classes it has: pass the class count (--num-classes K) or add a dataset.json with "classes"`);
  }
  if (!(Number.isInteger(k) && k >= 2 && k <= 65536)) throw new SwiftFormerError('BAD_ARGUMENT', `the class count must be an integer in [2, 65536], got ${k}`);
  let palette = info?.palette === undefined ? undefined : checkPalette(info.palette, `${path}: "palette"`);
  if (palette && palette.length < k) throw new SwiftFormerError('BAD_DATA', `${path}: "palette" has ${palette.length} colors for ${k} classes`);
  palette = palette?.slice(0, k) ?? defaultPalette(k);
  return { classes: classes ?? Array.from({ length: k }, (_, i) => `class ${i}`), palette };
}

/** One split, paired by stem; a missing label map is an error naming the image and the expected file. */
async function openSplit(
  root: string, layout: SegmentationLayout, split: SegmentationSplit, meta: { classes: readonly string[]; palette: readonly RGB[]; reduceZeroLabel: boolean; maxPixels?: number },
): Promise<SegmentationFolder> {
  const dirs = splitFolders(root, layout, split);
  const byStem = await imagesByStem(dirs.images);
  if (byStem.size === 0) throw new SwiftFormerError('IO', `${dirs.images} holds no images (${IMAGE_EXTENSIONS.join(' ')})`);
  const images: string[] = [];
  const labels: string[] = [];
  for (const [stem, image] of byStem) {
    const label = join(dirs.labels, `${stem}.png`);
    if (!(await isFile(label))) throw new SwiftFormerError('BAD_DATA', `${image} has no label map: expected ${label}`);
    images.push(image);
    labels.push(label);
  }
  return new SegmentationFolder(`${root} (${split})`, images, labels, meta.classes, meta.palette, meta.reduceZeroLabel, IGNORE_INDEX, meta.maxPixels);
}

export interface SegmentationData {
  layout: SegmentationLayout;
  /** Absent when the dataset has only the other split. */
  train?: SegmentationDataset;
  val?: SegmentationDataset;
  classes: readonly string[];
  palette: readonly RGB[];
  reduceZeroLabel: boolean;
}

export interface OpenSegmentationOptions {
  /** Class count of a generic dataset without dataset.json (checked against it otherwise). */
  numClasses?: number;
  /** Splits to open (default both that exist). */
  splits?: readonly SegmentationSplit[];
  /** At most this many images of each split, evenly spaced. */
  limit?: number;
  /** Refuse larger images (decodeImage's maxPixels). */
  maxPixels?: number;
}

/** Opens a segmentation dataset in either layout; a directory in neither is an error saying what was expected. */
export async function openSegmentationData(root: string, options: OpenSegmentationOptions = {}): Promise<SegmentationData> {
  if (!(await isDirectory(root))) throw new SwiftFormerError('IO', `data directory ${root} does not exist or is not a directory`);
  const layout = await segmentationLayout(root);
  if (!layout) {
    throw new SwiftFormerError('BAD_DATA', `${root} is not a segmentation dataset: expected img_dir/{train,val} and ann_dir/{train,val} (mmseg's generic layout) or images/{training,validation} and annotations/{training,validation} (ADE20K)`);
  }
  const ade = layout === 'ade20k';
  if (ade && options.numClasses !== undefined && options.numClasses !== ADE20K_CLASSES.length) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${root} is in ADE20K's layout, whose labels are its ${ADE20K_CLASSES.length} classes; the class count given is ${options.numClasses}`);
  }
  const { classes, palette } = ade ? { classes: ADE20K_CLASSES, palette: ADE20K_PALETTE as RGB[] } : await genericClasses(root, options.numClasses);
  const meta = { classes, palette, reduceZeroLabel: ade, ...(options.maxPixels !== undefined ? { maxPixels: options.maxPixels } : {}) };
  const out: SegmentationData = { layout, classes, palette, reduceZeroLabel: ade };
  for (const split of options.splits ?? ['train', 'val'] as const) {
    const dirs = splitFolders(root, layout, split);
    if (!(await isDirectory(dirs.images))) {
      if (options.splits) throw new SwiftFormerError('IO', `${root} has no ${split} split: ${dirs.images} does not exist`);
      continue;
    }
    const data = await openSplit(root, layout, split, meta);
    out[split] = options.limit === undefined ? data : limitSegmentation(data, options.limit);
  }
  return out;
}
