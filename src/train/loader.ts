/**
 * The training loader: shuffles with a seeded RNG, batches, transforms, mixes and prefetches.
 *
 * Every random draw of an epoch is derived from (seed, epoch, sample or batch index), never from
 * a stream that depends on how far the loader got: a batch is the same whether it was prefetched,
 * computed after a resume, or on another machine.
 */
import { SwiftFormerError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { concatBatch, type FloatTensor } from '../core/tensor.js';
import type { ImageDataset } from '../data/dataset.js';
import type { RGBImage } from '../preprocess/resize.js';
import { deriveSeed, mixBatch, type MixupOptions, type SampleTransform } from './augment.js';
import { checkSmoothing, smoothTargets } from './targets.js';

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

/** Stream salts, so that shuffling, per-sample transforms and mixing draw independent numbers (4: segmentation's dropout masks). */
export const SALT = { shuffle: 1, sample: 2, mix: 3, dropout: 4 } as const;

/** 0..n-1, or with `shuffle` a Fisher-Yates shuffle seeded by (seed, epoch). */
export function sampleOrder(n: number, shuffle?: { seed: number; epoch: number }): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (shuffle) {
    const rng = new Random(deriveSeed(shuffle.seed, SALT.shuffle, shuffle.epoch));
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
  }
  return order;
}

/** prepare(start) .. prepare(end - 1) in order, with up to `depth` of them under way ahead of the consumer. */
export async function* prefetched<T>(start: number, end: number, depth: number, prepare: (index: number) => Promise<T>): AsyncGenerator<T> {
  const pending: Promise<T>[] = [];
  let next = start;
  const fill = () => {
    while (pending.length < Math.max(1, depth) && next < end) {
      const p = prepare(next++);
      p.catch(() => undefined); // surfaced when awaited
      pending.push(p);
    }
  };
  fill();
  while (pending.length > 0) {
    const item = await pending.shift()!;
    fill();
    yield item;
  }
}

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
    return sampleOrder(this.dataset.length, this.options.shuffle ? { seed: this.options.seed ?? 0, epoch } : undefined);
  }

  /** Batches of `epoch`, from `startBatch` on, with up to `prefetch` prepared ahead of the consumer. */
  epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    return prefetched(startBatch, this.batchesPerEpoch, this.options.prefetch ?? 1, (index) => this.prepare(order, epoch, index));
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
