/**
 * Mask R-CNN training: the TaskRun (run.ts) around the detection step graphs, as torchvision's
 * references/detection train (and EfficientFormer's mmdet recipe, which SwiftFormer follows):
 *
 *   COCO samples (node/coco-data.ts: ConvertCocoPolysToMask) -> RandomHorizontalFlip -> the
 *   model's transform with a short side drawn per image (detection-transform.ts) -> the step's
 *   forward half up to the train-mode proposals (DetectionForward) -> matching and sampling
 *   (detection-targets.ts) -> the rest of the step from the forward's values (DetectionTrainStep:
 *   five losses, gradients, BatchNorm statistics) -> run.ts (NaN/inf stop,
 *   running statistics, SGD or AdamW at the step schedule's lr with linear warm-up)
 *
 * then, each epoch, COCO evaluation of the val split (box and mask AP, train/detection-eval.ts).
 * Every batch is a pure function of (seed, epoch, position): a seeded shuffle per epoch, each
 * image's flip and size from Random(seed, epoch, position), each batch's sampling from
 * Random(seed, epoch, batch), so a resumed run continues exactly.
 *
 * With savePth, each epoch also writes checkpoint.pth in torchvision references/detection's layout
 * with the optimizer and lr_scheduler (references-checkpoint.ts): train.py --resume continues the
 * run; `resumeFrom` continues a run train.py saved, as a new run here.
 *
 * Graphs have static shapes: one per padded batch size and per-level capacity (the sampled RoIs
 * sorted by pyramid level, each level's block padded to a multiple of 64, at least 512 per image in
 * all); the positives go through the mask head in chunks (MaskChunkStep), so their count makes no
 * step graphs. Within an epoch the RoI capacities only grow: a batch is padded up to the largest
 * blocks seen at its size (they settle after a few batches); they start afresh each epoch (exact
 * resume). The last few graphs stay compiled.
 */
import { performance } from 'node:perf_hooks';
import { SwiftFormerError } from '../core/errors.js';
import { Random } from '../core/random.js';
import type { StateDict } from '../core/tensor.js';
import type { MaskRcnnConfig } from '../models/maskrcnn.js';
import { DetectionModel } from '../models/detector.js';
import type { SwiftFormerConfig } from '../models/swiftformer.js';
import type { TokenNorm } from '../models/attention.js';
import type { CocoInstances } from '../node/coco-data.js';
import { IMAGENET_MEAN, IMAGENET_STD, type Preprocessing } from '../preprocess/transforms.js';
import type { SessionOptions } from '../runtime/runtime.js';
import { deriveSeed } from './augment.js';
import { join } from 'node:path';
import { writeFileAtomic } from '../node/files.js';
import { readFile } from 'node:fs/promises';
import { readPth } from '../weights/pth.js';
import type { DataSource, EpochMetrics } from './checkpoint.js';
import { DETECTION_DEFAULTS, type DetectionTrainSettings, type RequestedConfig, type TrainConfig } from './config.js';
import { evaluateDetection } from './detection-eval.js';
import {
  buildDetectionStepGraph, buildMaskChunkGraph, DetectionForward, DetectionTrainStep, frameShape, LOSS_NAMES, MaskChunkStep,
  type DetectionFrame, type DetectionStepResult, type DetectionStepShape,
} from './detection-step.js';
import { assembleBatch, type AssembledBatch, type ResizedImage } from './detection-targets.js';
import { flipImage, TrainTransform, type TrainingImage } from './detection-transform.js';
import { SALT, sampleOrder } from './loader.js';
import { cloneState } from './optim.js';
import { readReferencesCheckpoint, referencesCheckpoint, type ReferencesResume } from './references-checkpoint.js';
import { planRun, runEpochs, type ImportedRun, type StepOutput, type TaskRun, type TrainProgress } from './run.js';
import { lrAt } from './schedule.js';
import { updateRunningStats } from './step.js';

export interface DetectionTrainOptions {
  train: CocoInstances;
  /** Evaluated every epoch (COCO box and mask AP); absent: no evaluation. */
  val?: CocoInstances;
  /** Backbone of a new detector: a variant id or config (default: read off the weights, else 'xs'). */
  model?: string | SwiftFormerConfig;
  /** A classifier's or backbone's weights (the paper's recipe: ImageNet weights), or a Mask R-CNN to fine-tune. */
  weights?: string | Uint8Array | StateDict;
  epochs?: number;
  /** Images per step (default 2). */
  batchSize?: number;
  /** 'adamw' (EfficientFormer's recipe, default) or 'sgd' (torchvision's references). */
  optimizer?: 'adamw' | 'sgd';
  lr?: number;
  weightDecay?: number;
  /** Epochs at which the lr drops by 10x (default 8 and 11, scaled to the run length when it is not 12). */
  milestones?: number[];
  /** Linear warm-up, in steps (default 500 for AdamW, 1000 for SGD, at most one epoch). */
  warmupSteps?: number;
  /** Short sides to draw from per image (default [800]) and the long side's limit (1333). */
  minSizes?: number[];
  maxSize?: number;
  flipProb?: number;
  seed?: number;
  threads?: number;
  out?: string;
  resume?: boolean;
  /**
   * Continue a run that torchvision references/detection's train.py saved (its checkpoint.pth:
   * path or bytes) in `out`, a new output directory: its model, optimizer state, schedule
   * (MultiStepLR's milestones and gamma, the base lr) and epoch; its args give the defaults of
   * epochs, batch size and sizes. references-checkpoint.ts.
   */
  resumeFrom?: string | Uint8Array;
  /** Also write checkpoint.pth each epoch in torchvision references/detection's layout, optimizer and lr_scheduler included (references-checkpoint.ts). */
  savePth?: boolean;
  dataSource?: DataSource;
  onProgress?: (event: TrainProgress) => void;
  signal?: AbortSignal;
}

export interface DetectionTrainResult {
  config: MaskRcnnConfig;
  state: StateDict;
  history: EpochMetrics[];
  labels: string[];
  trainConfig: TrainConfig;
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

function requestedConfig(options: DetectionTrainOptions, stored: TrainConfig | undefined): RequestedConfig {
  const kind = options.optimizer ?? (stored?.optimizer.kind as 'adamw' | 'sgd' | undefined) ?? 'adamw';
  const batchSize = options.batchSize ?? stored?.batchSize ?? DETECTION_DEFAULTS.batchSize;
  const stepsPerEpoch = Math.floor(options.train.length / batchSize);
  const epochs = options.epochs ?? stored?.epochs ?? DETECTION_DEFAULTS.epochs;
  // The 1x schedule's steps (8 and 11 of 12) scaled to shorter or longer runs.
  const milestones = options.milestones ?? (stored ? undefined : DETECTION_DEFAULTS.milestones.map((m) => Math.max(1, Math.round((m * epochs) / DETECTION_DEFAULTS.epochs))));
  const lr = options.lr ?? stored?.lr ?? (kind === 'sgd' ? DETECTION_DEFAULTS.sgdLr : DETECTION_DEFAULTS.adamwLr);
  const warmup = options.warmupSteps ?? Math.min(DETECTION_DEFAULTS.warmupIterations[kind], stepsPerEpoch);
  return {
    task: 'detection',
    ...defined({ epochs: options.epochs, batchSize: options.batchSize, seed: options.seed, lr: options.lr }),
    optimizer: { kind, ...defined({ weightDecay: options.weightDecay ?? (stored ? undefined : DETECTION_DEFAULTS.weightDecay) }) },
    ...(stored ? {} : {
      schedule: {
        kind: 'steps' as const, ...(milestones ? { milestones: [...new Set(milestones)].sort((a, b) => a - b) } : {}),
        warmupEpochs: stepsPerEpoch > 0 ? warmup / stepsPerEpoch : 0, warmupLr: lr * DETECTION_DEFAULTS.warmupFactor,
      },
    }),
    dataset: { trainImages: options.train.length, numClasses: options.train.labels.numClasses },
    detection: defined({ minSizes: options.minSizes, maxSize: options.maxSize, flipProb: options.flipProb }),
  };
}

function basePreprocessing(): Preprocessing {
  return { inputSize: [DETECTION_DEFAULTS.minSize, DETECTION_DEFAULTS.minSize], normalization: { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] }, pad: 0, cropPct: 1 };
}

/** A new run's detector: fresh, a backbone from classifier weights, or Mask R-CNN weights (`attention`: the backbone's, when the weights' origin does not say). */
async function initialModel(options: DetectionTrainOptions, run: TrainConfig, attention?: TokenNorm): Promise<{ config: MaskRcnnConfig; state: StateDict }> {
  const d = run.detection!;
  const model = await DetectionModel.load({
    numClasses: run.dataset.numClasses, seed: run.seed, labels: options.train.labels.names,
    settings: { transform: { minSize: Math.max(...d.minSizes), maxSize: d.maxSize } }, ...(attention ? { attention } : {}),
    ...(options.weights !== undefined ? { weights: options.weights } : {}), ...(options.model !== undefined ? { model: options.model } : {}),
  });
  try {
    if (model.numClasses !== run.dataset.numClasses) {
      throw new SwiftFormerError('BAD_ARGUMENT', `the detector has ${model.numClasses} classes, ${options.train.name} needs ${run.dataset.numClasses}`);
    }
    return { config: structuredClone(model.config), state: cloneState(model.state) };
  } finally {
    await model.release();
  }
}

/** An image and its target in the trainer's form: CHW floats in [0, 1]. */
function trainingImage(image: { width: number; height: number; data: Uint8Array }, target: { boxes: Float32Array; labels: Int32Array; masks?: Uint8Array }): TrainingImage {
  const { width: w, height: h, data } = image;
  const pixels = new Float32Array(3 * h * w);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) pixels[c * h * w + p] = data[3 * p + c]! / 255;
  return { pixels, width: w, height: h, boxes: target.boxes, labels: target.labels, ...(target.masks ? { masks: target.masks } : {}) };
}

const roundUp = (v: number, m: number) => Math.ceil(v / m) * m;

/**
 * Each pyramid level's block of sampled RoIs is padded to a multiple of this (the gt masks' to 16,
 * the positives' last mask chunk to 4): a graph per capacity pattern, so coarse enough that few
 * patterns occur, fine enough that padding rows (pooled and run through the box head for nothing)
 * stay few.
 */
const LEVEL_MULTIPLE = 64;

/** Step graphs kept compiled (a few capacity patterns). */
const KEPT_STEP_GRAPHS = 6;

/** Compiled graphs by batch shape (compiling is slow; shapes repeat). */
class GraphCache {
  private readonly steps = new Map<string, Promise<DetectionTrainStep>>();
  private readonly forwards = new Map<string, Promise<DetectionForward>>();
  private readonly masks = new Map<string, Promise<MaskChunkStep>>();

  constructor(private readonly config: MaskRcnnConfig, private readonly session: SessionOptions) {}

  forward(frame: DetectionFrame): Promise<DetectionForward> {
    const key = `${frame.batch}x${frame.height}x${frame.width}`;
    let p = this.forwards.get(key);
    if (!p) this.forwards.set(key, (p = DetectionForward.create(this.config, frame, { session: this.session })));
    return p;
  }

  /** The mask chunk graphs of a shape's frame, gt mask count and scales (one set for every count of positives). */
  maskStep(shape: DetectionStepShape): Promise<MaskChunkStep> | undefined {
    if (!this.config.maskLayers) return undefined;
    const key = `${shape.batch}x${shape.height}x${shape.width}/${shape.imageHeight}/${shape.gtMasks}`;
    let p = this.masks.get(key);
    if (!p) this.masks.set(key, (p = MaskChunkStep.create(this.config, shape, { session: this.session })));
    return p;
  }

  /**
   * The step graph of `shape` (the positives' and gt masks' counts are the mask chunks' business,
   * so they do not make graphs). The last few are kept, the least recently used released beyond
   * that (each holds its own memory arena).
   */
  async trainStep(shape: DetectionStepShape): Promise<DetectionTrainStep> {
    const { maskRois: _p, gtMasks: _g, ...graphShape } = shape;
    const key = JSON.stringify(graphShape);
    let s = this.steps.get(key);
    if (s) this.steps.delete(key);
    else s = DetectionTrainStep.create(this.config, shape, { session: this.session });
    this.steps.set(key, s);
    while (this.steps.size > KEPT_STEP_GRAPHS) {
      const [oldest, graph] = this.steps.entries().next().value as [string, Promise<DetectionTrainStep>];
      this.steps.delete(oldest);
      await (await graph).release();
    }
    return s;
  }

  async release(): Promise<void> {
    for (const p of [...this.steps.values(), ...this.forwards.values(), ...this.masks.values()]) await (await p).release();
  }
}

/** A batch the step cannot take because its inputs are not finite (DetectionBatches.run); the trainer stops the run on it. */
export class NonFiniteBatch extends Error {}

/** The flip and short side drawn for the image at `position` of `epoch` (Random(seed, epoch, position)). */
export function imageDraw(d: Pick<DetectionTrainSettings, 'flipProb' | 'minSizes'>, seed: number, epoch: number, position: number): { flip: boolean; minSize: number } {
  const rng = new Random(deriveSeed(seed, SALT.sample, epoch, position));
  const flip = rng.next() < d.flipProb;
  return { flip, minSize: d.minSizes[Math.floor(rng.next() * d.minSizes.length)]! };
}

/**
 * The images of each epoch's batches as training draws them: image id, flip and short side per
 * position (full batches only, as the trainer runs them). bench/detection-train.ts hands it to
 * torchvision's side, so that both train on the same sequence of images.
 */
export function epochPlan(train: Pick<CocoInstances, 'length' | 'imageIds'>, d: Pick<DetectionTrainSettings, 'flipProb' | 'minSizes'>, seed: number, epoch: number, batchSize: number): { imageId: number; flip: boolean; minSize: number }[] {
  const order = sampleOrder(train.length, { seed, epoch });
  const positions = Math.floor(train.length / batchSize) * batchSize;
  return Array.from({ length: positions }, (_, p) => ({ imageId: train.imageIds[order[p]!]!, ...imageDraw(d, seed, epoch, p) }));
}

/**
 * One training batch after another, as the trainer draws them: for batch k of an epoch, its
 * images (flipped and resized per Random(seed, epoch, position)), the train-mode proposals, the
 * matching and sampling (Random(seed, epoch, k)) and the step graph's run on `state`. Shared by
 * the trainer and bench/detection-train.ts, so that what the benchmark times is what training does.
 */
export class DetectionBatches {
  private readonly transform: TrainTransform;
  private readonly graphs: GraphCache;
  /** Per padded size, the largest blocks seen so far (sampled RoIs per level, gt masks): a batch is padded up to them. */
  private readonly capacity = new Map<string, { roiLevels: number[]; gtMasks: number }>();
  private capacityEpoch = -1;

  constructor(
    private readonly config: MaskRcnnConfig, private readonly train: CocoInstances,
    private readonly d: DetectionTrainSettings, private readonly seed: number, readonly batchSize: number, session: SessionOptions,
  ) {
    this.transform = new TrainTransform({ ...config.settings.transform, maxSize: d.maxSize }, session);
    this.graphs = new GraphCache(config, session);
  }

  /** Batch k of `epoch` run on `state`: the step's result, the milliseconds by phase (data, targets, step), the graph's shape and the real counts. */
  async run(state: StateDict, epoch: number, k: number, order = sampleOrder(this.train.length, { seed: this.seed, epoch })): Promise<{ result: DetectionStepResult; timing: Record<string, number> } & Pick<AssembledBatch, 'shape' | 'counts'>> {
    const { config, d, batchSize: n } = this;
    const t0 = performance.now();
    const images: ResizedImage[] = [];
    for (let j = 0; j < n; j++) {
      const position = k * n + j;
      const sample = await this.train.sample(order[position]!);
      const { flip, minSize } = imageDraw(d, this.seed, epoch, position);
      const img = trainingImage(sample.image, sample.target);
      images.push(await this.transform.apply(flip ? flipImage(img) : img, minSize));
    }
    const t1 = performance.now();
    const height = roundUp(Math.max(...images.map((i) => i.height)), 32);
    const width = roundUp(Math.max(...images.map((i) => i.width)), 32);
    const padded = assembleBatch(images, images.map(() => new Float32Array(0)), config).feeds.images!;
    const { proposals, held } = await (await this.graphs.forward({ batch: n, height, width })).run(state, padded, images.map((i) => [i.height, i.width]));
    const sampler = new Random(deriveSeed(this.seed, SALT.mix, epoch, k));
    // Capacities start afresh each epoch, so that a batch's padding depends on (seed, epoch, k) alone and a resumed run pads as the straight one did.
    if (epoch !== this.capacityEpoch) {
      this.capacity.clear();
      this.capacityEpoch = epoch;
    }
    const size = `${height}x${width}`;
    const seen = this.capacity.get(size);
    const batch = assembleBatch(images, proposals, config, {
      random: () => sampler.next(),
      pad: { rois: n * config.settings.roi.batchSizePerImage, levelMultiple: LEVEL_MULTIPLE, multiple: 16, maskMultiple: 1, ...(seen ? { roiLevels: seen.roiLevels, gtMasks: seen.gtMasks } : {}) },
    });
    // Diverged weights give NaN proposals, which RoIAlign refuses with its own error: the run stops as for a NaN loss.
    if (!batch.feeds.rois!.data.every(Number.isFinite)) throw new NonFiniteBatch('the sampled RoIs are not finite');
    const { roiLevels, gtMasks } = batch.shape;
    this.capacity.set(size, { roiLevels, gtMasks });
    const step = await this.graphs.trainStep(batch.shape);
    const masks = await this.graphs.maskStep(batch.shape);
    const t2 = performance.now();
    const result = await step.run(state, batch.feeds, held, masks);
    const t3 = performance.now();
    return { result, timing: { data: t1 - t0, targets: t2 - t1, step: t3 - t2 }, shape: batch.shape, counts: batch.counts };
  }

  async release(): Promise<void> {
    await this.graphs.release();
    await this.transform.release();
  }
}

/** The parameters the step graphs train (those of any shape's graph). */
export function detectionParams(config: MaskRcnnConfig, batch: number): string[] {
  const shape = frameShape(config, { batch, height: 32, width: 32 });
  return [...buildDetectionStepGraph(config, shape).params, ...(config.maskLayers ? buildMaskChunkGraph(config, shape).params : [])];
}

async function detectionTask(
  options: DetectionTrainOptions, run: TrainConfig, model: { config: MaskRcnnConfig; state: StateDict }, session: SessionOptions,
): Promise<TaskRun & { release(): Promise<void> }> {
  const { config, state } = model;
  const { train, val } = options;
  const n = run.batchSize;
  const stepsPerEpoch = Math.floor(train.length / n);
  if (stepsPerEpoch < 1) throw new SwiftFormerError('BAD_ARGUMENT', `batch size ${n} is larger than the ${train.length} training images`);
  const batches = new DetectionBatches(config, train, run.detection!, run.seed, n, session);
  const labels = [...train.labels.names];
  const params = detectionParams(config, n);
  return {
    state, params, stepsPerEpoch, model: config, labels,
    title: `Mask R-CNN training (${labels.length - 1} classes)`,
    async *steps(epoch: number): AsyncGenerator<StepOutput> {
      const order = sampleOrder(train.length, { seed: run.seed, epoch });
      for (let k = 0; k < stepsPerEpoch; k++) {
        let out: Awaited<ReturnType<DetectionBatches['run']>>;
        try {
          out = await batches.run(state, epoch, k, order);
        } catch (err) {
          if (!(err instanceof NonFiniteBatch)) throw err;
          yield { index: k, loss: Number.NaN, grads: new Map(), samples: n, nonFinite: err.message };
          return;
        }
        const { result, timing } = out;
        yield {
          index: k, loss: result.loss, parts: result.losses, grads: result.grads, samples: n, timing,
          commit: () => updateRunningStats(state, result.stats, 0.1),
        };
      }
    },
    ...(options.savePth ? {
      writeModelFiles: async (out, history, training) => {
        await writeFileAtomic(join(out, 'checkpoint.pth'), referencesCheckpoint(state, config, run, history.at(-1)!.epoch, options.dataSource, training));
      },
    } : {}),
    ...(val ? {
      evaluate: async (weights: StateDict, _which: 'model' | 'ema', onProgress: (done: number, total: number) => void) => {
        const evaluator = DetectionModel.create(config, weights, labels, { session });
        try {
          const r = await evaluateDetection(evaluator, val, (done, total) => onProgress(done, total));
          return { metrics: { bbox_AP: r.bbox.stats[0]!, bbox_AP50: r.bbox.stats[1]!, ...(r.segm ? { segm_AP: r.segm.stats[0]!, segm_AP50: r.segm.stats[1]! } : {}) } };
        } finally {
          await evaluator.release();
        }
      },
    } : {}),
    release: () => batches.release(),
  };
}

/** A references/detection checkpoint.pth to continue (readReferencesCheckpoint), with the name messages give it. */
async function readResumeFrom(from: string | Uint8Array): Promise<ReferencesResume & { source: string }> {
  const source = typeof from === 'string' ? from : 'the references/detection checkpoint';
  let bytes = from as Uint8Array;
  if (typeof from === 'string') {
    try {
      const buf = await readFile(from);
      bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw new SwiftFormerError('IO', `cannot read ${from}: ${(err as Error).message}`);
    }
  }
  return { ...readReferencesCheckpoint((await readPth(bytes)).root, source), source };
}

/** The options of a run continued from a references checkpoint: what the caller gave, else what the checkpoint says. */
function continuedOptions(options: DetectionTrainOptions, from: ReferencesResume & { source: string }): DetectionTrainOptions {
  if (options.weights !== undefined || options.model !== undefined) throw new SwiftFormerError('BAD_ARGUMENT', `the model of a resumed run is the one in ${from.source}`);
  if (options.optimizer && options.optimizer !== from.optimizer.kind) throw new SwiftFormerError('BAD_ARGUMENT', `${from.source} holds ${from.optimizer.kind} state; it cannot continue with ${options.optimizer}`);
  const a = from.args;
  const positive = (v: unknown) => (Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined);
  const sizes = (Array.isArray(a.min_size) ? a.min_size : [a.min_size]).map(positive);
  return {
    ...defined({ epochs: positive(a.epochs), batchSize: positive(a.batch_size), maxSize: positive(a.max_size) }),
    ...(sizes.every((v) => v !== undefined) ? { minSizes: sizes as number[] } : {}),
    optimizer: from.optimizer.kind, lr: from.initialLr, weightDecay: from.optimizer.weightDecay, milestones: from.milestones,
    ...defined(options),
  } as DetectionTrainOptions;
}

/** requestedConfig with the checkpoint's optimizer hyperparameters (betas, eps, momentum, nesterov) and gamma. */
function continuedRequest(options: DetectionTrainOptions, from: ReferencesResume): RequestedConfig {
  const request = requestedConfig(options, undefined);
  return { ...request, optimizer: { ...from.optimizer, ...request.optimizer }, schedule: { ...request.schedule, gamma: from.gamma } };
}

/** Trains (or fine-tunes, resumes, extends) a Mask R-CNN detector on a COCO dataset; see DetectionTrainOptions. */
export async function trainDetection(given: DetectionTrainOptions): Promise<DetectionTrainResult> {
  const from = given.resumeFrom !== undefined ? await readResumeFrom(given.resumeFrom) : undefined;
  const options = from ? continuedOptions(given, from) : given;
  const { train } = options;
  const stepsPerEpoch = Math.floor(train.length / (options.batchSize ?? DETECTION_DEFAULTS.batchSize));
  const imported: ImportedRun | undefined = from && {
    // SGD's state has no step count: any positive one tells ours the buffers are started.
    epochs: from.epochs, moments: from.moments, optimizerStep: from.stepCount ?? from.epochs * stepsPerEpoch, source: from.source,
  };
  const plan = await planRun({
    task: 'detection',
    request: (stored) => (from ? continuedRequest(options, from) : requestedConfig(options, stored)),
    ...(imported ? { imported } : {}),
    base: () => ({ preprocessing: basePreprocessing(), dataset: { trainImages: train.length, numClasses: train.labels.numClasses } }),
    stepsPerEpoch: (c) => Math.floor(train.length / c.batchSize),
    ...(options.out ? { out: options.out } : {}), ...(options.resume ? { resume: true } : {}),
    ...(options.dataSource ? { data: options.dataSource } : {}),
  });
  const { config } = plan;
  if (plan.restored && (options.weights !== undefined || options.model !== undefined)) throw new SwiftFormerError('BAD_ARGUMENT', `the model of a resumed run is the one in ${options.out}`);
  const session: SessionOptions = options.threads === undefined ? {} : { threads: options.threads };
  const attention = from && (from.args.attention === 'l2' || from.args.attention === 'softmax') ? from.args.attention : undefined;
  const model = plan.restored ? { config: plan.restored.sidecar.model as MaskRcnnConfig, state: plan.restored.state }
    : await initialModel(from ? { ...options, weights: from.model } : options, config, attention);
  const task = await detectionTask(options, config, model, session);
  try {
    const params = task.params.reduce((t, k) => t + task.state.get(k)!.data.length, 0);
    const { rescheduled } = plan;
    options.onProgress?.({
      phase: 'start', epochs: config.epochs, startEpoch: plan.startEpoch, stepsPerEpoch: plan.stepsPerEpoch,
      config: model.config.backbone, params,
      title: `Mask R-CNN (FPN ${model.config.fpnChannels}) on SwiftFormer [${model.config.backbone.embedDims}] x [${model.config.backbone.depths}], ${model.config.numClasses} classes`,
      ...(rescheduled ? { rescheduled: { ...rescheduled, kind: plan.schedule.kind, nextLr: lrAt(plan.schedule, plan.startEpoch * plan.stepsPerEpoch) } } : {}),
    });
    const result = await runEpochs(task, plan, { ...(options.onProgress ? { onProgress: options.onProgress } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return { config: model.config, state: result.state, history: result.history, labels: [...task.labels], trainConfig: config };
  } finally {
    await task.release();
  }
}

export { LOSS_NAMES };
