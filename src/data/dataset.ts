/**
 * Datasets as the library sees them, whatever their format on disk: labelled RGB8 images by index,
 * with views (subsets, evenly spread limits) and batching into model inputs. Reading formats from
 * files is the platform's (node/datasets.ts).
 */
import { SwiftFormerError } from '../core/errors.js';
import { concatBatch, type FloatTensor } from '../core/tensor.js';
import type { RGBImage } from '../preprocess/resize.js';

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

export interface IdxArray {
  /** Dimension sizes, e.g. [60000, 28, 28] for images, [60000] for labels. */
  dims: number[];
  data: Uint8Array;
}

/** Grayscale (or single-channel) images in one array, N x H x W, with byte labels. */
export class IdxDataset implements ImageDataset {
  readonly length: number;
  readonly height: number;
  readonly width: number;

  constructor(readonly name: string, readonly images: IdxArray, readonly labels: IdxArray, readonly classes: readonly string[]) {
    if (images.dims.length !== 3) throw new SwiftFormerError('BAD_DATA', `${name} is not a valid IDX file: images need 3 dimensions (N, H, W), got [${images.dims}]`);
    if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
      throw new SwiftFormerError('BAD_DATA', `${name}: ${labels.dims[0]} labels for ${images.dims[0]} images`);
    }
    [this.length, this.height, this.width] = images.dims as [number, number, number];
    for (let i = 0; i < this.length; i++) {
      if (labels.data[i]! >= classes.length) throw new SwiftFormerError('BAD_DATA', `${name}: label ${labels.data[i]} of record ${i} is not one of the ${classes.length} classes (0-${classes.length - 1})`);
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

/**
 * How many classes an IDX label array covers when nothing declares them: 0 .. K-1, K being the
 * first label no record has. A label beyond that gap (one stray 200 among the digits 0-9) is a
 * BAD_DATA error naming the first record that has one, rather than a model with 201 classes.
 */
export function idxClassCount(labels: IdxArray, name: string): number {
  const seen = new Uint8Array(256);
  for (const l of labels.data) seen[l] = 1;
  let k = 0;
  while (k < 256 && seen[k]) k++;
  const i = labels.data.findIndex((l) => l >= k);
  if (i >= 0) {
    const l = labels.data[i]!;
    const covered = k === 0 ? 'labels are class indices from 0 and no record has label 0' : `the other labels cover the classes 0-${k - 1} and no record has label ${l - 1 > k ? `${k}-${l - 1}` : k}`;
    throw new SwiftFormerError('BAD_DATA', `${name}: label ${l} of record ${i} is outside the class set (${covered})`);
  }
  return k;
}

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

/**
 * Fashion-MNIST's own pixel statistics (training set, values in [0, 1]), used for all three
 * channels of the replicated gray image.
 */
export const FASHION_MNIST_NORMALIZATION = { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] } as const;

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
