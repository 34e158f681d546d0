/**
 * Training data: IDX files (MNIST / Fashion-MNIST), ImageFolder trees (one subfolder per class),
 * and a Loader that shuffles with a seeded RNG, batches, transforms, mixes and prefetches.
 *
 * Every random draw of an epoch is derived from (seed, epoch, sample or batch index), never from
 * a stream that depends on how far the loader got: a batch is the same whether it was prefetched,
 * computed after a resume, or on another machine.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { deriveSeed, mixBatch, type MixupOptions, type SampleTransform } from './augment.js';
import { SwiftFormerError } from './errors.js';
import { checkSmoothing, smoothTargets } from './optim.js';
import { Random } from './random.js';
import type { RGBImage } from './resize.js';
import { concatBatch, type FloatTensor } from './tensor.js';

/** A labelled image collection. `image(i)` may decode lazily. */
export interface ImageDataset {
  readonly name: string;
  readonly length: number;
  /** Class names, index = label. */
  readonly classes: readonly string[];
  label(i: number): number;
  image(i: number): RGBImage | Promise<RGBImage>;
  /** The dataset a subset was taken from. */
  readonly base?: ImageDataset;
}

// ---------------------------------------------------------------- IDX

export interface IdxArray {
  /** Dimension sizes, e.g. [60000, 28, 28] for images, [60000] for labels. */
  dims: number[];
  data: Uint8Array;
}

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
    const code = (err as NodeJS.ErrnoException).code;
    throw new SwiftFormerError('IO', `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
}

export async function readIdx(path: string): Promise<IdxArray> {
  return parseIdx(await readBytes(path), path);
}

/** Grayscale (or single-channel) images in one array, N x H x W, with byte labels. */
export class IdxDataset implements ImageDataset {
  readonly length: number;
  readonly height: number;
  readonly width: number;

  constructor(readonly name: string, readonly images: IdxArray, readonly labels: IdxArray, readonly classes: readonly string[]) {
    if (images.dims.length !== 3) throw dataError(name, `images need 3 dimensions (N, H, W), got [${images.dims}]`);
    if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
      throw new SwiftFormerError('BAD_DATA', `${name}: ${labels.dims[0]} labels for ${images.dims[0]} images`);
    }
    [this.length, this.height, this.width] = images.dims as [number, number, number];
    for (let i = 0; i < this.length; i++) {
      if (labels.data[i]! >= classes.length) throw new SwiftFormerError('BAD_DATA', `${name}: label ${labels.data[i]} of image ${i} is not below the ${classes.length} classes`);
    }
  }

  label(i: number): number {
    return this.labels.data[i]!;
  }

  /** Gray -> RGB (the value replicated in the three channels). */
  image(i: number): RGBImage {
    const plane = this.height * this.width;
    const src = this.images.data.subarray(i * plane, (i + 1) * plane);
    const data = new Uint8Array(plane * 3);
    for (let p = 0, q = 0; p < plane; p++, q += 3) data[q] = data[q + 1] = data[q + 2] = src[p]!;
    return { width: this.width, height: this.height, data };
  }
}

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

/**
 * Fashion-MNIST's own pixel statistics (training set, values in [0, 1]), used for all three
 * channels of the replicated gray image.
 */
export const FASHION_MNIST_NORMALIZATION = { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] } as const;

const IDX_SPLITS = { train: 'train', test: 't10k' } as const;

/** The IDX file of a split in `dir`: `<prefix>-<kind>-idx<n>-ubyte`, gzipped or not, dash or dot. */
async function findIdxFile(dir: string, split: keyof typeof IDX_SPLITS, kind: 'images' | 'labels'): Promise<string | undefined> {
  const prefix = IDX_SPLITS[split];
  const n = kind === 'images' ? 3 : 1;
  for (const sep of ['-', '.']) {
    for (const ext of ['', '.gz']) {
      const path = join(dir, `${prefix}-${kind}${sep}idx${n}-ubyte${ext}`);
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

/** True when `dir` holds MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...). */
export async function hasIdxFiles(dir: string): Promise<boolean> {
  return (await findIdxFile(dir, 'train', 'images')) !== undefined;
}

/**
 * The train or test split of an MNIST-family directory. Class names default to Fashion-MNIST's
 * when the directory is Debian's Fashion-MNIST, else to the digits '0' .. 'K-1'.
 */
export async function loadIdxDataset(dir: string, split: 'train' | 'test', options: { classes?: readonly string[] } = {}): Promise<IdxDataset> {
  const imagesPath = await findIdxFile(dir, split, 'images');
  const labelsPath = await findIdxFile(dir, split, 'labels');
  if (!imagesPath || !labelsPath) {
    const prefix = IDX_SPLITS[split];
    throw new SwiftFormerError('IO', `${dir} has no ${split} split: expected ${prefix}-images-idx3-ubyte and ${prefix}-labels-idx1-ubyte (optionally .gz)`);
  }
  const [images, labels] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)]);
  let classes = options.classes;
  if (!classes) {
    let max = 0;
    for (const l of labels.data) max = Math.max(max, l);
    classes = /fashion/i.test(dir) && max < 10 ? FASHION_MNIST_CLASSES : Array.from({ length: max + 1 }, (_, i) => String(i));
  }
  return new IdxDataset(`${dir} (${split})`, images, labels, classes);
}

// ---------------------------------------------------------------- ImageFolder

/** torchvision's IMG_EXTENSIONS: the files ImageFolder takes (.ppm, .bmp and .pgm then fail to decode here). */
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

// ---------------------------------------------------------------- subsets

/** A view of `indices` of a dataset. */
export function subset(dataset: ImageDataset, indices: readonly number[], name = `${dataset.name} [subset of ${indices.length}]`): ImageDataset {
  return {
    name,
    length: indices.length,
    classes: dataset.classes,
    base: dataset.base ?? dataset,
    label: (i) => dataset.label(indices[i]!),
    image: (i) => dataset.image(indices[i]!),
  };
}

/** At most `n` samples spread evenly over the dataset (so that sorted folders keep every class). */
export function limitDataset(dataset: ImageDataset, n: number): ImageDataset {
  if (n >= dataset.length) return dataset;
  const indices = Array.from({ length: n }, (_, i) => Math.floor((i * dataset.length) / n));
  return subset(dataset, indices, `${dataset.name} [first ${n} of ${dataset.length}, evenly spaced]`);
}

/** The dataset in order as model inputs, `batchSize` images per batch, each made by `transform`. */
export async function* inputBatches(data: ImageDataset, transform: (image: RGBImage) => FloatTensor, batchSize: number): AsyncGenerator<FloatTensor> {
  for (let start = 0; start < data.length; start += batchSize) {
    const tensors: FloatTensor[] = [];
    for (let i = start; i < Math.min(data.length, start + batchSize); i++) tensors.push(transform(await data.image(i)));
    yield concatBatch(tensors);
  }
}

// ---------------------------------------------------------------- loader

export interface Batch {
  /** Position of the batch in its epoch. */
  index: number;
  /** (N,3,H,W), normalized (and mixed when mixup is on). */
  pixels: FloatTensor;
  labels: Int32Array;
  /** (N,K) target distributions: one-hot, smoothed, mixed. */
  targets: FloatTensor;
}

export interface LoaderOptions {
  batchSize: number;
  transform: SampleTransform;
  /** Shuffle each epoch (training). Default false. */
  shuffle?: boolean;
  /** Drop the last incomplete batch (training: the train step has a fixed batch size). Default false. */
  dropLast?: boolean;
  seed?: number;
  /** Label smoothing of the targets. Default 0. */
  labelSmoothing?: number;
  mixup?: MixupOptions;
  /** Batches prepared ahead (default 1). */
  prefetch?: number;
  /** Samples whose images are decoded concurrently (lazy datasets; default 16). */
  concurrency?: number;
}

/** Stream salts, so that shuffling, per-sample transforms and mixing draw independent numbers. */
const SALT = { shuffle: 1, sample: 2, mix: 3 } as const;

export class Loader {
  readonly batchSize: number;
  readonly numClasses: number;

  constructor(readonly dataset: ImageDataset, readonly options: LoaderOptions) {
    this.batchSize = options.batchSize;
    this.numClasses = dataset.classes.length;
    if (!(Number.isInteger(this.batchSize) && this.batchSize >= 1)) throw new SwiftFormerError('BAD_ARGUMENT', `batch size must be a positive integer, got ${this.batchSize}`);
    checkSmoothing(options.labelSmoothing ?? 0);
  }

  get batchesPerEpoch(): number {
    const n = this.dataset.length / this.batchSize;
    return this.options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The sample order of an epoch: a seeded Fisher-Yates shuffle, or 0..N-1. */
  order(epoch: number): Uint32Array {
    const n = this.dataset.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (this.options.shuffle) {
      const rng = new Random(deriveSeed(this.options.seed ?? 0, SALT.shuffle, epoch));
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    return order;
  }

  /** Batches of `epoch`, from `startBatch` on, with up to `prefetch` prepared ahead of the consumer. */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const total = this.batchesPerEpoch;
    const depth = Math.max(1, this.options.prefetch ?? 1);
    const pending: Promise<Batch>[] = [];
    let next = startBatch;
    const fill = () => {
      while (pending.length < depth && next < total) {
        const p = this.prepare(order, epoch, next++);
        p.catch(() => undefined); // surfaced when awaited
        pending.push(p);
      }
    };
    fill();
    while (pending.length > 0) {
      const batch = await pending.shift()!;
      fill();
      yield batch;
    }
  }

  /** Builds batch `index` of an epoch. Yields to the event loop between chunks of samples. */
  async prepare(order: Uint32Array, epoch: number, index: number): Promise<Batch> {
    const start = index * this.batchSize;
    const n = Math.min(this.batchSize, order.length - start);
    const [h, w] = this.options.transform.options.inputSize;
    const size = 3 * h * w;
    const pixels: FloatTensor = { dtype: 'float32', shape: [n, 3, h, w], data: new Float32Array(n * size) };
    const labels = new Int32Array(n);
    const seed = this.options.seed ?? 0;
    const concurrency = Math.max(1, this.options.concurrency ?? 16);
    for (let chunk = 0; chunk < n; chunk += concurrency) {
      const end = Math.min(n, chunk + concurrency);
      const images: (RGBImage | Promise<RGBImage>)[] = [];
      for (let i = chunk; i < end; i++) images.push(this.dataset.image(order[start + i]!));
      const resolved = images.some((im) => im instanceof Promise) ? await Promise.all(images) : (images as RGBImage[]);
      for (let i = chunk; i < end; i++) {
        const sample = order[start + i]!;
        labels[i] = this.dataset.label(sample);
        const rng = new Random(deriveSeed(seed, SALT.sample, epoch, start + i));
        this.options.transform.apply(resolved[i - chunk]!, rng, pixels.data, i * size);
      }
      if (end < n) await new Promise((r) => setImmediate(r));
    }
    const smoothing = this.options.labelSmoothing ?? 0;
    const mixup = this.options.mixup;
    const targets = mixup && (mixup.mixupAlpha || mixup.cutmixAlpha)
      ? mixBatch(pixels, labels, this.numClasses, smoothing, new Random(deriveSeed(seed, SALT.mix, epoch, index)), mixup).targets
      : smoothTargets(labels, this.numClasses, smoothing);
    return { index, pixels, labels, targets };
  }
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
  let dir = source;
  if (source === 'fashion-mnist') {
    dir = FASHION_MNIST_DIR;
    if (!(await hasIdxFiles(dir))) {
      throw new SwiftFormerError('IO', `Fashion-MNIST is not installed in ${dir}: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or pass --data <directory>`);
    }
  }
  if (!(await isDirectory(dir))) throw new SwiftFormerError('IO', `data directory ${dir} does not exist or is not a directory`);
  const limit = (d: ImageDataset) => (options.limit === undefined ? d : limitDataset(d, options.limit));
  if (await hasIdxFiles(dir)) {
    const classes = source === 'fashion-mnist' ? FASHION_MNIST_CLASSES : undefined;
    const train = await loadIdxDataset(dir, 'train', classes ? { classes } : {});
    const hasTest = (await findIdxFile(dir, 'test', 'images')) !== undefined;
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
