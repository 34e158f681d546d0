/**
 * Semantic FPN training: the TaskRun (run.ts) around the segmentation step graph
 * (segmentation-step.ts), as mmsegmentation 0.x's IterBasedRunner trains EfficientFormer's ADE20K
 * config, which SwiftFormer follows:
 *
 *   loader (mmseg's pipeline, segmentation-augment.ts) -> SegmentationTrainStep.run (per-pixel
 *   cross-entropy on logits resized to the label size, Dropout2d with a drawn mask) -> run.ts
 *   (NaN/inf stop, BatchNorm running stats, AdamW at the poly schedule's lr)
 *
 * then, each round, mmseg's whole-image evaluation on the val split (the model's test pipeline:
 * keep-ratio resize into the training img_scale, logits back at the image's size, argmax) into
 * the streaming mIoU accumulator. A run is `epochs` rounds of `stepsPerRound` iterations: by
 * default a round is one pass over the training set, or, as mmseg counts, `iterations` split
 * into rounds of `evalInterval`.
 *
 * The iteration stream: iteration g takes batch g mod P of pass floor(g / P) (P full batches per
 * pass, the last incomplete one dropped); each pass is a seeded shuffle, each sample's
 * augmentation draws from Random(seed, pass, position) and each batch's dropout mask from
 * Random(seed, pass, batch): every batch is a pure function of (seed, iteration), whatever was
 * prefetched, resumed or interrupted.
 *
 * Per round the run directory gets, beside run.ts's checkpoint (checkpoint.safetensors in mmseg's
 * keys with the model card), the mmseg-layout checkpoints latest.pth and best_mIoU.pth
 * ({'meta': {CLASSES, PALETTE, ...}, 'state_dict'}) and best.safetensors.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SwiftFormerError } from '../core/errors.js';
import { Random } from '../core/random.js';
import type { FloatTensor, StateDict } from '../core/tensor.js';
import type { SegmentationDataset } from '../data/segmentation.js';
import { SegmentationAccumulator, type SegmentationMetrics } from '../metrics/segmentation.js';
import { cardMetadata, type RGB } from '../models/card.js';
import type { FitReport } from '../models/fit.js';
import { CONFIG_KEY, loadSemanticFpn, SCALE_KEY, SegmentationModel } from '../models/segmentation.js';
import type { SemanticFpnConfig } from '../models/semfpn.js';
import { readModelSource } from '../models/source.js';
import type { SwiftFormerConfig } from '../models/swiftformer.js';
import { writeFileAtomic } from '../node/files.js';
import type { Preprocessing } from '../preprocess/transforms.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../preprocess/transforms.js';
import type { SessionOptions } from '../runtime/runtime.js';
import { writePth } from '../weights/pth.js';
import { writeSafetensors } from '../weights/safetensors.js';
import { deriveSeed } from './augment.js';
import { moduleOrder, type DataSource, type EpochMetrics } from './checkpoint.js';
import { SEGMENTATION_DEFAULTS, type DeepPartial, type RequestedConfig, type SegmentationSettings, type TrainConfig } from './config.js';
import { prefetched, SALT, sampleOrder } from './loader.js';
import { cloneState } from './optim.js';
import { planRun, runEpochs, type StepOutput, type TaskRun, type TrainProgress } from './run.js';
import { lrAt } from './schedule.js';
import { augmentPair, writeTrainingPair, type SegmentationPipeline } from './segmentation-augment.js';
import { dropoutMask, SegmentationTrainStep } from './segmentation-step.js';
import { updateRunningStats } from './step.js';

// ---------------------------------------------------------------- options

export interface SegmentationTrainOptions {
  train: SegmentationDataset;
  /** Evaluated every round (mIoU, aAcc, mAcc); absent: no evaluation and no best checkpoint. */
  val?: SegmentationDataset;
  /** Backbone of a new model: a variant id or config (default 'xs'; with `weights`: read off them). */
  model?: string | SwiftFormerConfig;
  /**
   * Start from: a classification or fork_feat checkpoint (official, Hugging Face, timm, trained
   * here) as the backbone, neck and head initialized as mmseg does (the paper's recipe); or Semantic
   * FPN weights, whose head is re-initialized for another class count.
   */
  weights?: string | Uint8Array | StateDict;
  /** FPN and head widths and Dropout2d of a new model (default 256, 128, 0.1). */
  neckChannels?: number;
  headChannels?: number;
  dropout?: number;
  /** Rounds of evaluation and checkpointing (default 12 passes over the training set). */
  epochs?: number;
  /** mmseg's length in iterations, split into rounds of `evalInterval` (default: one pass over the training set). */
  iterations?: number;
  evalInterval?: number;
  /** Default 8. */
  batchSize?: number;
  /** Default 2e-4 (AdamW). */
  lr?: number;
  /** AdamW's decoupled weight decay on every parameter (default 1e-4). */
  weightDecay?: number;
  /** Poly schedule: power (default 0.9) and floor (default 0). */
  power?: number;
  minLr?: number;
  /** Crop (default 512): the training input, a multiple of 32; a number for a square. */
  cropSize?: number | [number, number];
  /** mmseg's img_scale (long, short), also the test scale (default (4 x short side of the crop, long side of the crop): (2048, 512) for 512). */
  imgScale?: [number, number];
  /** Random rescale ratios (default [0.5, 2]); null: a fixed rescale into imgScale. */
  ratioRange?: [number, number] | null;
  /** RandomCrop's cat_max_ratio (default 0.75; 1 turns it off). */
  catMaxRatio?: number;
  /** Default 0.5. */
  flipProb?: number;
  /** PhotoMetricDistortion (default true). */
  photometric?: boolean;
  /** Loss averaging: 'all' pixels (mmseg's default) or the 'non-ignored' ones (avg_non_ignore). */
  average?: 'all' | 'non-ignored';
  seed?: number;
  threads?: number;
  /** Batches prepared ahead (default 1). */
  prefetch?: number;
  /** Output directory: checkpoints (run.ts and mmseg's), metrics.jsonl, chart.svg, labels.json, config.json. */
  out?: string;
  /** Continue from the checkpoint in `out`. */
  resume?: boolean;
  dataSource?: DataSource;
  onProgress?: (event: TrainProgress) => void;
  signal?: AbortSignal;
}

export interface SegmentationTrainResult {
  config: SemanticFpnConfig;
  state: StateDict;
  history: EpochMetrics[];
  labels: string[];
  palette: RGB[];
  trainConfig: TrainConfig;
  /** How the starting weights were matched (a backbone's: the neck and head are its missing keys). */
  fit?: FitReport;
}

// ---------------------------------------------------------------- the configuration

function sizeHW(size: number | [number, number]): [number, number] {
  return Array.isArray(size) ? size : [size, size];
}

/** mmseg's img_scale for a crop, as its configs pair them: (2048, 512) for 512 crops, (2048, 1024) for Cityscapes' 512 x 1024. */
export function defaultImgScale([h, w]: [number, number]): [number, number] {
  return [4 * Math.min(h, w), Math.max(h, w)];
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The run length: rounds and iterations per round, from epochs, or from mmseg's iterations and interval. */
function roundsOf(options: SegmentationTrainOptions, stored: TrainConfig | undefined, batchesPerPass: number): { epochs?: number; stepsPerRound?: number } {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  const { iterations, evalInterval } = options;
  if (iterations !== undefined && options.epochs !== undefined) throw bad('give the run length as epochs (passes over the data) or as iterations, not both');
  const stepsPerRound = evalInterval ?? stored?.segmentation?.stepsPerRound ?? (iterations !== undefined ? Math.min(iterations, batchesPerPass) : batchesPerPass);
  if (iterations === undefined) return defined({ epochs: options.epochs, stepsPerRound: stored && evalInterval === undefined ? undefined : stepsPerRound });
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw bad(`iterations must be a positive integer, got ${iterations}`);
  if (stepsPerRound < 1 || iterations % stepsPerRound !== 0) {
    throw bad(`${iterations} iterations do not split into rounds of ${stepsPerRound} (the evaluation interval${evalInterval === undefined ? ', one pass over the training set' : ''}): give an interval that divides them`);
  }
  return { epochs: iterations / stepsPerRound, ...(stored && evalInterval === undefined ? {} : { stepsPerRound }) };
}

/** What `options` sets, as TrainConfig fields (defaults and a resumed run's values fill the rest). */
function requestedConfig(options: SegmentationTrainOptions, stored: TrainConfig | undefined): RequestedConfig {
  const batchSize = options.batchSize ?? stored?.batchSize ?? SEGMENTATION_DEFAULTS.batchSize;
  const cropSize = options.cropSize === undefined ? undefined : sizeHW(options.cropSize);
  const imgScale = options.imgScale ?? (cropSize ? defaultImgScale(cropSize) : undefined);
  const pipeline: DeepPartial<SegmentationPipeline> = defined({
    cropSize, imgScale, ratioRange: options.ratioRange, catMaxRatio: options.catMaxRatio, flipProb: options.flipProb, photometric: options.photometric,
  });
  const segmentation: DeepPartial<SegmentationSettings> = {
    pipeline: { ...pipeline, ignoreIndex: options.train.ignoreIndex }, reduceZeroLabel: options.train.reduceZeroLabel, ...defined({ average: options.average }),
  };
  const { epochs, stepsPerRound } = roundsOf(options, stored, Math.floor(options.train.length / batchSize));
  if (stepsPerRound !== undefined) segmentation.stepsPerRound = stepsPerRound;
  return {
    task: 'segmentation',
    ...defined({ epochs, batchSize: options.batchSize, seed: options.seed, lr: options.lr }),
    optimizer: defined({ weightDecay: options.weightDecay }),
    schedule: defined({ kind: 'poly' as const, power: options.power, minLr: options.minLr }),
    ...(cropSize ? { preprocessing: { inputSize: cropSize } } : {}),
    dataset: { trainImages: options.train.length, numClasses: options.train.classes.length },
    segmentation,
  };
}

/** The run's record of its input pipeline: the crop, and mmseg's normalization on the [0, 1] scale (ImageNet's). */
function basePreprocessing(): Preprocessing {
  const crop = SEGMENTATION_DEFAULTS.cropSize;
  return { inputSize: [crop, crop], normalization: { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] }, pad: 0, cropPct: 1 };
}

// ---------------------------------------------------------------- the model

interface StartingModel { config: SemanticFpnConfig; state: StateDict; fit?: FitReport }

/** A new run's model: random, a classifier's backbone with mmseg's neck and head, or Semantic FPN weights re-headed to this dataset. */
async function initialModel(options: SegmentationTrainOptions, run: TrainConfig): Promise<StartingModel> {
  const numClasses = run.dataset.numClasses;
  const architecture = defined({
    numClasses, neckChannels: options.neckChannels, headChannels: options.headChannels, dropout: options.dropout, seed: run.seed,
    ...(options.model !== undefined ? { model: options.model } : {}),
  });
  const source = options.weights === undefined ? undefined : await readModelSource(options.weights);
  const model = source ? SegmentationModel.fromSource(source, { ...architecture, strict: false }) : loadSemanticFpn(undefined, {}, architecture);
  try {
    const config = { ...model.config, ...(options.dropout !== undefined ? { dropout: options.dropout } : {}) };
    const state = cloneState(model.state);
    if (source) keepBatchCounts(source.state, state);
    return { config, state, ...(model.report ? { fit: model.report } : {}) };
  } finally {
    await model.release();
  }
}

/** BatchNorm's num_batches_tracked of the starting weights, which the fit leaves out, carried over (mmcv counts on). */
function keepBatchCounts(source: StateDict, state: StateDict): void {
  for (const [key, t] of source) {
    if (!key.endsWith('.num_batches_tracked') || t.dtype !== 'int64') continue;
    const bn = key.slice(0, -'.num_batches_tracked'.length);
    for (const target of [bn, `backbone.${bn}`]) {
      if (state.has(`${target}.running_mean`)) state.set(`${target}.num_batches_tracked`, { dtype: 'int64', shape: [...t.shape], data: t.data.slice() });
    }
  }
}

// ---------------------------------------------------------------- the task

/** Iteration `g`'s place in the stream: its pass and its batch within the pass. */
function placeOf(g: number, batchesPerPass: number): { pass: number; batch: number } {
  return { pass: Math.floor(g / batchesPerPass), batch: g % batchesPerPass };
}

export interface SegmentationBatch { index: number; pixels: FloatTensor; labels: FloatTensor; mask?: FloatTensor; dataMs: number }

/** The training batches: mmseg's pipeline per sample, seeded per (pass, position) (exported for bench/segmentation-train.ts). */
export class SegmentationLoader {
  readonly batchesPerPass: number;
  private readonly orders = new Map<number, Uint32Array>();

  constructor(
    readonly dataset: SegmentationDataset, readonly batchSize: number, readonly pipeline: SegmentationPipeline, readonly seed: number,
    readonly dropout: { channels: number; p: number },
  ) {
    this.batchesPerPass = Math.floor(dataset.length / batchSize);
  }

  private order(pass: number): Uint32Array {
    let order = this.orders.get(pass);
    if (!order) {
      order = sampleOrder(this.dataset.length, { seed: this.seed, epoch: pass });
      this.orders.clear(); // passes are consumed in order: keep the current one
      this.orders.set(pass, order);
    }
    return order;
  }

  /** Iteration `g` as a batch (index: its position in its round). */
  async batch(g: number, index: number): Promise<SegmentationBatch> {
    const start = performance.now();
    const { pass, batch } = placeOf(g, this.batchesPerPass);
    const order = this.order(pass);
    const n = this.batchSize;
    const [h, w] = this.pipeline.cropSize;
    const pixels: FloatTensor = { dtype: 'float32', shape: [n, 3, h, w], data: new Float32Array(n * 3 * h * w) };
    const labels: FloatTensor = { dtype: 'float32', shape: [n, h, w], data: new Float32Array(n * h * w) };
    const first = batch * n;
    const samples = await Promise.all(Array.from({ length: n }, (_, i) => this.dataset.sample(order[first + i]!)));
    samples.forEach((sample, i) => {
      const rng = new Random(deriveSeed(this.seed, SALT.sample, pass, first + i));
      const pair = augmentPair({ image: sample.image, label: sample.label }, rng, this.pipeline);
      writeTrainingPair(pair, this.pipeline.cropSize, this.pipeline.ignoreIndex, pixels.data, i * 3 * h * w, labels.data, i * h * w);
    });
    const { channels, p } = this.dropout;
    const maskRng = new Random(deriveSeed(this.seed, SALT.dropout, pass, batch));
    const mask = p > 0 ? dropoutMask(n, channels, p, () => maskRng.next()) : undefined;
    return { index, pixels, labels, ...(mask ? { mask } : {}), dataMs: performance.now() - start };
  }
}

/** mmseg's metrics of a model on a dataset with its test pipeline (`segment`), images decoded one ahead. */
export async function evaluateSegmentation(
  model: SegmentationModel, data: SegmentationDataset, onProgress?: (done: number, total: number) => void,
): Promise<SegmentationMetrics> {
  const acc = new SegmentationAccumulator({ numClasses: model.numClasses, ignoreIndex: data.ignoreIndex });
  let done = 0;
  for await (const sample of prefetched(0, data.length, 2, (i) => data.sample(i))) {
    const result = await model.segment(sample.image);
    acc.add(result.mask, sample.label.data, sample.name);
    onProgress?.(++done, data.length);
  }
  return acc.summary();
}

/** The mmseg checkpoint mmcv's save_checkpoint writes: meta (classes, palette, where in the run) and the state dict. */
export function mmsegCheckpoint(state: StateDict, meta: { labels: readonly string[]; palette: readonly RGB[]; config: SemanticFpnConfig; scale: [number, number]; epoch: number; iter: number }): Uint8Array {
  return writePth({
    meta: {
      CLASSES: [...meta.labels], PALETTE: meta.palette.map((c) => [...c]), epoch: meta.epoch, iter: meta.iter,
      config: `Semantic FPN (EncoderDecoder, FPN ${meta.config.neckChannels}, FPNHead ${meta.config.headChannels}) on SwiftFormer [${meta.config.backbone.embedDims}], written by swiftformer`,
      [CONFIG_KEY]: JSON.stringify(meta.config), [SCALE_KEY]: JSON.stringify(meta.scale),
    },
    state_dict: new Map(moduleOrder(state.keys()).map((k) => [k, state.get(k)!])),
  }, { folder: 'checkpoint' });
}

async function segmentationTask(
  options: SegmentationTrainOptions, run: TrainConfig, model: StartingModel, session: SessionOptions,
): Promise<TaskRun & { release(): Promise<void> }> {
  const settings = run.segmentation!;
  const { pipeline } = settings;
  const { config, state } = model;
  const labels = [...options.train.classes];
  const palette = options.train.palette.map((c) => [...c] as RGB);
  const loader = new SegmentationLoader(options.train, run.batchSize, pipeline, run.seed, { channels: config.headChannels, p: config.dropout });
  if (loader.batchesPerPass < 1) throw new SwiftFormerError('BAD_ARGUMENT', `batch size ${run.batchSize} is larger than the ${options.train.length} training images`);
  const step = await SegmentationTrainStep.create(config, { batch: run.batchSize, inputSize: pipeline.cropSize, average: settings.average, ignoreIndex: pipeline.ignoreIndex }, session);
  const S = settings.stepsPerRound;
  const card = { task: 'segmentation' as const, labels, palette };
  const weightsMetadata = { ...cardMetadata(card), [CONFIG_KEY]: JSON.stringify(config), [SCALE_KEY]: JSON.stringify(pipeline.imgScale) };
  const { val } = options;
  return {
    state, params: step.step.params, stepsPerEpoch: S, model: config, labels,
    title: `Semantic FPN training (${labels.length} classes)`,
    weightsMetadata,
    async *steps(round: number): AsyncGenerator<StepOutput> {
      let mark = performance.now();
      const first = round * S;
      for await (const batch of prefetched(first, first + S, options.prefetch ?? 1, (g) => loader.batch(g, g - first))) {
        const t0 = performance.now();
        const result = await step.run(state, batch.pixels, batch.labels, batch.mask);
        const t1 = performance.now();
        yield {
          index: batch.index, loss: result.loss, grads: result.grads, samples: run.batchSize,
          timing: { data: t0 - mark, prepare: batch.dataMs, step: t1 - t0 },
          commit: () => updateRunningStats(state, result.stats, 0.1),
        };
        mark = performance.now();
      }
    },
    ...(val ? {
      evaluate: async (weights: StateDict, _which: 'model' | 'ema', onProgress: (done: number, total: number) => void) => {
        const evaluator = new SegmentationModel(config, weights, card, pipeline.imgScale, undefined, { session });
        try {
          const m = await evaluateSegmentation(evaluator, val, onProgress);
          return { metrics: { mIoU: m.mIoU, aAcc: m.aAcc, mAcc: m.mAcc } };
        } finally {
          await evaluator.release();
        }
      },
    } : {}),
    async writeModelFiles(out: string, history: readonly EpochMetrics[]): Promise<void> {
      const last = history.at(-1)!;
      const meta = { labels, palette, config, scale: pipeline.imgScale, epoch: last.epoch, iter: last.epoch * S };
      await writeFileAtomic(join(out, 'latest.pth'), mmsegCheckpoint(state, meta));
      const miou = last.test_mIoU;
      if (miou === undefined || history.slice(0, -1).some((m) => (m.test_mIoU ?? -Infinity) >= miou)) return;
      await writeFileAtomic(join(out, 'best_mIoU.pth'), mmsegCheckpoint(state, meta));
      const ordered = new Map(moduleOrder(state.keys()).map((k) => [k, state.get(k)!]));
      await writeFileAtomic(join(out, 'best.safetensors'), writeSafetensors(ordered, { ...weightsMetadata, epoch: String(last.epoch) }));
    },
    release: () => step.release(),
  };
}

// ---------------------------------------------------------------- the run

/** Trains (or fine-tunes, resumes, extends) a Semantic FPN segmenter; see SegmentationTrainOptions. */
export async function trainSegmentation(options: SegmentationTrainOptions): Promise<SegmentationTrainResult> {
  const { train, val } = options;
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  if (train.classes.length < 2) throw bad(`training needs at least 2 classes, ${train.name} has ${train.classes.length}`);
  if (val && (val.classes.length !== train.classes.length || val.ignoreIndex !== train.ignoreIndex)) throw bad(`the val split has ${val.classes.length} classes, the training split ${train.classes.length}`);
  const plan = await planRun({
    task: 'segmentation',
    request: (stored) => requestedConfig(options, stored),
    base: () => ({ preprocessing: basePreprocessing(), dataset: { trainImages: train.length, numClasses: train.classes.length } }),
    stepsPerEpoch: (c) => c.segmentation!.stepsPerRound,
    ...(options.out ? { out: options.out } : {}), ...(options.resume ? { resume: true } : {}),
    ...(options.dataSource ? { data: options.dataSource } : {}),
  });
  const { config } = plan;
  if (plan.restored && (options.weights !== undefined || options.model !== undefined)) throw bad(`the model of a resumed run is the one in ${options.out}`);
  const session: SessionOptions = options.threads === undefined ? {} : { threads: options.threads };
  const model: StartingModel = plan.restored
    ? { config: plan.restored.sidecar.model as SemanticFpnConfig, state: plan.restored.state } // planRun checked the task
    : await initialModel(options, config);
  const task = await segmentationTask(options, config, model, session);
  try {
    const params = task.params.reduce((n, k) => n + task.state.get(k)!.data.length, 0);
    const { rescheduled } = plan;
    const fpn = model.config;
    options.onProgress?.({
      phase: 'start', epochs: config.epochs, startEpoch: plan.startEpoch, stepsPerEpoch: plan.stepsPerEpoch,
      config: { ...fpn.backbone, numClasses: fpn.numClasses }, params, ...(model.fit ? { fit: model.fit } : {}),
      title: `Semantic FPN (FPN ${fpn.neckChannels}, head ${fpn.headChannels}) on SwiftFormer [${fpn.backbone.embedDims}] x [${fpn.backbone.depths}], ${fpn.numClasses} classes`,
      ...(rescheduled ? { rescheduled: { ...rescheduled, kind: plan.schedule.kind, nextLr: lrAt(plan.schedule, plan.startEpoch * plan.stepsPerEpoch) } } : {}),
    });
    const result = await runEpochs(task, plan, { ...(options.onProgress ? { onProgress: options.onProgress } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return {
      config: fpn, state: result.state, history: result.history, labels: [...task.labels], palette: train.palette.map((c) => [...c] as RGB),
      trainConfig: config, ...(model.fit ? { fit: model.fit } : {}),
    };
  } finally {
    await task.release();
  }
}
