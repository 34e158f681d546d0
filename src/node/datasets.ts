/**
 * Datasets on disk: IDX files (MNIST / Fashion-MNIST), ImageFolder trees (one subfolder per class),
 * and `openTrainingData`, which finds which of them a directory holds.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SwiftFormerError } from '../core/errors.js';
import { fsReason, refuseOtherSchemes } from './files.js';
import type { RGBImage } from '../preprocess/resize.js';
import {
  FASHION_MNIST_CLASSES, IdxDataset, idxClassCount, limitDataset, type IdxArray, type ImageDataset,
} from '../data/dataset.js';

// ---------------------------------------------------------------- IDX

const IDX_TYPES: Record<number, string> = { 0x08: 'uint8', 0x09: 'int8', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };

function dataError(name: string, why: string): SwiftFormerError {
  return new SwiftFormerError('BAD_DATA', `${name} is not a valid IDX file: ${why}`);
}

/**
 * Parses an IDX file (gzipped or not): magic 0x0000, a type byte, a dimension count, then the
 * big-endian uint32 sizes and the data. Only unsigned bytes (type 0x08, the MNIST family's) are
 * accepted. The data must fill the file exactly: a truncated or padded file is an error naming it.
 */
export function parseIdx(input: Uint8Array, name = 'IDX data'): IdxArray {
  let bytes = input;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      const buf = gunzipSync(bytes);
      bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw dataError(name, `gzip stream is corrupt or truncated (${(err as Error).message})`);
    }
  }
  if (bytes.length < 4) throw dataError(name, `${bytes.length} bytes is shorter than the 4-byte magic`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw dataError(name, `bad magic ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')} (expected 00 00 <type> <ndim>)`);
  const type = bytes[2]!;
  const ndim = bytes[3]!;
  if (!IDX_TYPES[type]) throw dataError(name, `unknown data type 0x${type.toString(16)}`);
  if (type !== 0x08) throw dataError(name, `data type ${IDX_TYPES[type]} is not supported (only uint8 images and labels)`);
  if (ndim < 1) throw dataError(name, 'zero dimensions');
  const header = 4 + 4 * ndim;
  if (bytes.length < header) throw dataError(name, `${bytes.length} bytes cannot hold the ${ndim} dimension sizes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = bytes.length - header;
  if (have !== count) {
    throw dataError(name, `header says [${dims.join(', ')}] = ${count} bytes of data, the file has ${have}${have < count ? ' (truncated?)' : ''}`);
  }
  return { dims, data: bytes.subarray(header) };
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const buf = await readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new SwiftFormerError('IO', `cannot read ${path}: ${fsReason(err)}`, { cause: err });
  }
}

export async function readIdx(path: string): Promise<IdxArray> {
  return parseIdx(await readBytes(path), path);
}

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const IDX_SPLITS = { train: 'train', test: 't10k' } as const;

/** `<prefix>-<kind>-idx<n>-ubyte`, the name of an IDX file of a split (as messages give it). */
function idxName(split: keyof typeof IDX_SPLITS, kind: 'images' | 'labels', sep = '-'): string {
  return `${IDX_SPLITS[split]}-${kind}${sep}idx${kind === 'images' ? 3 : 1}-ubyte`;
}

/** The IDX file of a split in `dir`: `<prefix>-<kind>-idx<n>-ubyte`, gzipped or not, dash or dot. */
async function findIdxFile(dir: string, split: keyof typeof IDX_SPLITS, kind: 'images' | 'labels'): Promise<string | undefined> {
  for (const sep of ['-', '.']) {
    for (const ext of ['', '.gz']) {
      const path = join(dir, `${idxName(split, kind, sep)}${ext}`);
      if (await isFile(path)) return path;
    }
  }
  return undefined;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** True when `dir` holds any MNIST-style IDX file (train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte, ...). */
export async function hasIdxFiles(dir: string): Promise<boolean> {
  for (const split of ['train', 'test'] as const) {
    for (const kind of ['images', 'labels'] as const) if (await findIdxFile(dir, split, kind)) return true;
  }
  return false;
}

/** Debian's Fashion-MNIST directory, or the one IO error every command gives when it is not installed. */
export async function fashionMnistDir(dir = FASHION_MNIST_DIR): Promise<string> {
  if (!(await hasIdxFiles(dir))) {
    throw new SwiftFormerError('IO', `Fashion-MNIST is not installed in ${dir}: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or name a directory of IDX files instead`);
  }
  return dir;
}

/**
 * The train or test split of an MNIST-family directory. Without `classes`, the labels must cover
 * 0 .. K-1 without a gap (idxClassCount: a stray label is an error naming its record); the names
 * are Fashion-MNIST's for a Fashion-MNIST directory of up to 10 classes, else the digits '0' .. 'K-1'.
 */
export async function loadIdxDataset(dir: string, split: 'train' | 'test', options: { classes?: readonly string[] } = {}): Promise<IdxDataset> {
  const imagesPath = await findIdxFile(dir, split, 'images');
  const labelsPath = await findIdxFile(dir, split, 'labels');
  if (!imagesPath || !labelsPath) {
    const missing = !imagesPath && !labelsPath ? 'both are missing' : `${idxName(split, imagesPath ? 'labels' : 'images')} is missing`;
    throw new SwiftFormerError('IO', `${dir} has no ${split} split: expected ${idxName(split, 'images')} and ${idxName(split, 'labels')} (optionally .gz), but ${missing}`);
  }
  const [images, labels] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)]);
  let classes = options.classes;
  if (!classes) {
    const k = idxClassCount(labels, labelsPath);
    classes = /fashion/i.test(dir) && k <= 10 ? FASHION_MNIST_CLASSES : Array.from({ length: k }, (_, i) => String(i));
  }
  return new IdxDataset(`${dir} (${split})`, images, labels, classes);
}

// ---------------------------------------------------------------- ImageFolder

/** torchvision's IMG_EXTENSIONS: the files ImageFolder takes (decodeImage reads them all). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

export type DecodeFn = (path: string) => Promise<RGBImage>;

/** torchvision ImageFolder: classes are the sorted subfolder names; images are found recursively, sorted. */
export class ImageFolderDataset implements ImageDataset {
  constructor(
    readonly name: string,
    readonly classes: readonly string[],
    readonly files: readonly string[],
    private readonly labels: Uint16Array | Uint32Array,
    private readonly decode: DecodeFn,
  ) {}

  get length(): number {
    return this.files.length;
  }

  label(i: number): number {
    return this.labels[i]!;
  }

  image(i: number): Promise<RGBImage> {
    return this.decode(this.files[i]!);
  }
}

async function defaultDecode(): Promise<DecodeFn> {
  const { decodeImage } = await import('./decode.js');
  return (path) => decodeImage(path);
}

/** Python's string order (by code point), which sorted() uses and UTF-16 order is not. */
function codePointCompare(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

async function isDirOrLinkToDir(dir: string, e: Dirent): Promise<boolean> {
  return e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(join(dir, e.name))));
}

/** Sorted class folder names (torchvision's find_classes; links to folders count). */
async function findClasses(root: string): Promise<string[]> {
  refuseOtherSchemes(root, 'image folders are read from disk', 'IO');
  let entries: Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a directory' : (err as Error).message;
    throw new SwiftFormerError('IO', `image folder ${root} ${why}`);
  }
  const classes: string[] = [];
  for (const e of entries) if (await isDirOrLinkToDir(root, e)) classes.push(e.name);
  return classes.sort(codePointCompare);
}

/** Files under `dir` as a sorted os.walk yields them (links followed, cycles and unreadable folders skipped). */
async function walk(dir: string, out: { dir: string; files: string[] }[] = [], seen = new Set<string>()): Promise<{ dir: string; files: string[] }[]> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return out;
  }
  if (seen.has(real)) return out; // a symlink cycle
  seen.add(real);
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out; // os.walk skips unreadable folders too
  }
  const files: string[] = [];
  const subdirs: string[] = [];
  for (const e of entries) (await isDirOrLinkToDir(dir, e) ? subdirs : files).push(e.name);
  out.push({ dir, files });
  for (const s of subdirs) await walk(join(dir, s), out, seen);
  return out;
}

/**
 * torchvision's ImageFolder (find_classes + make_dataset): class index = position of the
 * subfolder in sorted order (or in `classes`, to align a test split with its training split),
 * files from a sorted walk with the given extensions.
 */
export async function loadImageFolder(
  dir: string,
  options: { decode?: DecodeFn; extensions?: readonly string[]; classes?: readonly string[] } = {},
): Promise<ImageFolderDataset> {
  const found = await findClasses(dir);
  const classes = options.classes ?? found;
  if (classes.length === 0) throw new SwiftFormerError('IO', `image folder ${dir} has no class subfolders (expected ${dir}/<class>/<image>)`);
  const extensions = (options.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase());
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classes.entries()) {
    if (!found.includes(name)) throw new SwiftFormerError('IO', `image folder ${dir} has no subfolder for class '${name}'`);
    const walked = (await walk(join(dir, name))).sort((a, b) => codePointCompare(a.dir, b.dir));
    for (const { dir: sub, files: names } of walked) {
      for (const f of names.sort(codePointCompare)) {
        if (!extensions.some((ext) => f.toLowerCase().endsWith(ext))) continue;
        files.push(join(sub, f));
        labels.push(label);
      }
    }
  }
  if (files.length === 0) throw new SwiftFormerError('IO', `image folder ${dir} has no images (${extensions.join(' ')}) in its class subfolders`);
  const decode = options.decode ?? (await defaultDecode());
  const labelArray = classes.length < 65536 ? Uint16Array.from(labels) : Uint32Array.from(labels);
  return new ImageFolderDataset(dir, classes, files, labelArray, decode);
}

// ---------------------------------------------------------------- opening a data source

export interface TrainingData {
  train: ImageDataset;
  test?: ImageDataset;
  /** What was found, for messages: 'IDX', 'image folders'. */
  kind: 'idx' | 'folders';
}

/**
 * Opens training data the way the CLI names it: `fashion-mnist` (Debian's dataset-fashion-mnist),
 * a directory of MNIST-style IDX files (train-* and t10k-*), or a directory with `train/` and
 * `val/` (or `test/`) image folders; a directory of class folders alone is a training set with
 * no test split. `limit` keeps at most that many images of each split, evenly spaced.
 */
export async function openTrainingData(source: string, options: { limit?: number; decode?: DecodeFn } = {}): Promise<TrainingData> {
  refuseOtherSchemes(source, 'training data is read from disk', 'IO');
  let dir = source;
  if (source === 'fashion-mnist') dir = await fashionMnistDir();
  if (!(await isDirectory(dir))) throw new SwiftFormerError('IO', `data directory ${dir} does not exist or is not a directory`);
  const limit = (d: ImageDataset) => (options.limit === undefined ? d : limitDataset(d, options.limit));
  if (await hasIdxFiles(dir)) {
    // Any IDX file makes it an IDX directory: a missing train file is then named, not taken for an image folder.
    const classes = source === 'fashion-mnist' ? FASHION_MNIST_CLASSES : undefined;
    const train = await loadIdxDataset(dir, 'train', classes ? { classes } : {});
    const hasTest = (await findIdxFile(dir, 'test', 'images')) !== undefined || (await findIdxFile(dir, 'test', 'labels')) !== undefined;
    const test = hasTest ? await loadIdxDataset(dir, 'test', { classes: train.classes }) : undefined;
    return { train: limit(train), ...(test ? { test: limit(test) } : {}), kind: 'idx' };
  }
  const decode = options.decode ? { decode: options.decode } : {};
  const trainDir = join(dir, 'train');
  if (await isDirectory(trainDir)) {
    const train = await loadImageFolder(trainDir, decode);
    for (const name of ['val', 'test']) {
      const testDir = join(dir, name);
      if (await isDirectory(testDir)) {
        const test = await loadImageFolder(testDir, { ...decode, classes: train.classes });
        return { train: limit(train), test: limit(test), kind: 'folders' };
      }
    }
    return { train: limit(train), kind: 'folders' };
  }
  return { train: limit(await loadImageFolder(dir, decode)), kind: 'folders' };
}
