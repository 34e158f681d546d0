/**
 * Classification training: the TaskRun (run.ts) around the compiled train step (train/step.ts),
 *
 *   loader -> [teacher] -> TrainStep.run -> (run.ts: NaN/inf stop, BatchNorm running stats,
 *   clipping, optimizer at the scheduled lr, EMA)
 *
 * then, each epoch, top-1 accuracy and cross-entropy on the test set with the eval graph
 * (BatchNorm folded, so a fresh session per evaluation). run.ts plans, restores, runs and saves
 * the epochs; `train` puts the two together.
 */
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { augmentFor, sampleTransform, type AugmentOptions, type MixupOptions, type SampleTransform } from './augment.js';
import type { EpochMetrics, Normalization, Preprocessing, DataSource } from './checkpoint.js';
import { DEFAULTS, type ClipConfig, type RequestedConfig, type TrainConfig } from './config.js';
import { IdxDataset, type ImageDataset } from '../data/dataset.js';
import { Loader } from './loader.js';
import { SwiftFormerError } from '../core/errors.js';
import { SwiftFormerModel } from '../models/model.js';
import { cloneState } from './optim.js';
import { planRun, runEpochs, type TaskRun, type StepOutput, type TrainProgress } from './run.js';
import { argmaxRow, hardDistillTargets, softDistillTargets } from './targets.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import { lrAt } from './schedule.js';
import { TrainStep, updateRunningStats } from './step.js';
import { initialWeights, inputHW, variantConfig, type SwiftFormerConfig } from '../models/swiftformer.js';
import type { FloatTensor, StateDict } from '../core/tensor.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../preprocess/transforms.js';
import type { FitReport } from '../models/fit.js';

export type { TrainProgress } from './run.js';

// ---------------------------------------------------------------- teachers

/** Anything that gives logits (N,K) for a batch of the student's inputs. */
export interface Teacher {
  logits(pixels: FloatTensor): Promise<FloatTensor>;
  release?(): Promise<void>;
}

/** A loaded model as the teacher (its eval graph: both heads averaged when it has two). */
export function modelTeacher(model: SwiftFormerModel): Teacher {
  return { logits: (pixels) => model.logits(pixels) };
}

/** A runtime's error message on one line (ONNX Runtime spreads its shape errors over several). */
function oneLine(err: unknown): string {
  const text = String((err as Error)?.message ?? err).replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/**
 * An ONNX classifier as the teacher, run through the platform backend. `input` defaults to the
 * model's first input, `output` to `logits` when present, else the first output. A file that is
 * missing or is not a model ONNX Runtime loads is a one-line error naming it.
 */
export async function onnxTeacher(
  model: string | Uint8Array, options: { input?: string; output?: string; session?: SessionOptions } = {},
): Promise<Teacher> {
  const name = typeof model === 'string' ? `teacher ${model}` : 'the teacher';
  if (typeof model === 'string' && !(await stat(model).then((s) => s.isFile(), () => false))) {
    throw new SwiftFormerError('IO', `teacher ${model} does not exist or is not a file`);
  }
  let session;
  try {
    session = await getBackend().createSession(model, options.session);
  } catch (err) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${name} is not an ONNX model ONNX Runtime can load (${oneLine(err)})`, { cause: err });
  }
  const input = options.input ?? session.inputNames[0]!;
  const output = options.output ?? (session.outputNames.includes('logits') ? 'logits' : session.outputNames[0]!);
  for (const [what, name, names] of [['input', input, session.inputNames], ['output', output, session.outputNames]] as const) {
    if (!names.includes(name)) {
      await session.release();
      throw new SwiftFormerError('BAD_ARGUMENT', `teacher has no ${what} '${name}' (it has ${names.join(', ')})`);
    }
  }
  return {
    logits: async (pixels) => (await session.run({ [input]: pixels }))[output]!,
    release: () => session.release(),
  };
}

/**
 * Runs the teacher once on a batch of the student's shape, so that a teacher made for another
 * input size, batch or class count fails before training with one line instead of at step 1.
 */
export async function checkTeacher(teacher: Teacher, batch: number, inputSize: [number, number], numClasses: number): Promise<void> {
  const [h, w] = inputSize;
  const pixels: FloatTensor = { dtype: 'float32', shape: [batch, 3, h, w], data: new Float32Array(batch * 3 * h * w) };
  let logits: FloatTensor;
  try {
    logits = await teacher.logits(pixels);
  } catch (err) {
    throw new SwiftFormerError('BAD_SHAPE', `the teacher does not take the student's input (${batch} x 3 x ${h} x ${w}): ${oneLine(err)}`, { cause: err });
  }
  if (logits.shape.length !== 2 || logits.shape[0] !== batch || logits.shape[1] !== numClasses) {
    throw new SwiftFormerError('BAD_SHAPE', `the teacher gives logits of shape [${logits.shape}] for ${batch} images; distillation needs [${batch}, ${numClasses}] (${numClasses} classes)`);
  }
}

export interface DistillOptions {
  teacher: Teacher;
  /** 'hard' (DeiT's, the official recipe's): teacher argmax one-hot; 'soft': teacher softmax at `temperature`. */
  type?: 'hard' | 'soft';
  temperature?: number;
  /** Weight of the dist_head loss (DeiT: 0.5). */
  weight?: number;
}

// ---------------------------------------------------------------- options

/**
 * A run as the library takes it. For a new run, what is not given takes its default
 * (config.ts DEFAULTS); on `resume`, what is not given is the stored run's, what is given must
 * agree with it, except `epochs`, which extends (or shortens) the run and plans its schedule again.
 */
export interface TrainOptions {
  /** Architecture: a variant id or a config (numClasses follows the data; distillation follows `distill`). Default 'xs'. */
  model?: string | SwiftFormerConfig;
  /** Fine-tune from these weights; a head of another class count is re-initialized. */
  weights?: string | Uint8Array | StateDict;
  train: ImageDataset;
  test?: ImageDataset;
  /** Default 9. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Optimizer kind and its own settings (default AdamW, betas (0.9, 0.999), eps 1e-8; SGD: momentum 0.9). */
  optimizer?: { kind: 'adamw'; betas?: [number, number]; eps?: number } | { kind: 'sgd'; momentum?: number; nesterov?: boolean };
  /** Weight decay (AdamW: decoupled, default 0.025, the official recipe's; SGD: coupled, default 1e-4). */
  weightDecay?: number;
  /** Schedule kind (default cosine, timm's; poly and steps as mmcv's, milestones in epochs). */
  schedule?: { kind: 'cosine' } | { kind: 'poly'; power?: number } | { kind: 'steps'; milestones: number[]; gamma?: number };
  warmupEpochs?: number;
  /** Learning rate at the start of the warm-up (default 1e-6). */
  warmupLr?: number;
  /** Floor of the schedule (default 0). */
  minLr?: number;
  /** Label smoothing (default 0.1). */
  labelSmoothing?: number;
  /** Gradient clipping: 'norm' (global L2, value = max norm, default 1), 'agc' (value = clip factor, default 0.01), 'none' (default). */
  clip?: { mode: 'norm' | 'agc' | 'none'; value?: number };
  /** EMA of the weights, evaluated beside them (default off; decay 0.9996). */
  ema?: boolean | { decay?: number };
  mixup?: MixupOptions;
  /**
   * true: `augmentFor(inputSize)`, i.e. the official recipe's DEFAULT_AUGMENT (bicubic random
   * resized crop, flip, RandAugment rand-m9-mstd0.5-inc1, random erasing), or for inputs up to
   * 64 px the small-image preset (shifts, flip, random erasing); or chosen parts.
   */
  augment?: boolean | AugmentOptions;
  distill?: DistillOptions;
  seed?: number;
  /** Model input size (default: IDX images padded to a multiple of 32, else 224). */
  inputSize?: number | [number, number];
  /** Default: the dataset's own statistics for IDX data, ImageNet's otherwise. */
  normalization?: Normalization;
  /** Zero padding per side (default: IDX images to a multiple of 32, else 0). */
  pad?: number;
  /** Evaluation crop ratio (default 1 for IDX data, 0.875 for image folders). */
  evalCropPct?: number;
  /** Replace the sample transforms (advanced; tests). */
  transforms?: { train?: SampleTransform; test?: SampleTransform };
  /** Output directory: checkpoints, metrics.jsonl, chart.svg, labels.json, config.json. */
  out?: string;
  /** Continue from the checkpoint in `out`. */
  resume?: boolean;
  /** Also write checkpoint.pth in the official layout each epoch (AdamW with the cosine schedule). */
  savePth?: boolean;
  threads?: number;
  evalBatchSize?: number;
  /** Batches prepared ahead (default 1). */
  prefetch?: number;
  /** Where the data came from, recorded in the checkpoint (the CLI resumes from it). */
  dataSource?: DataSource;
  onProgress?: (event: TrainProgress) => void;
  signal?: AbortSignal;
}

export interface TrainResult {
  config: SwiftFormerConfig;
  state: StateDict;
  ema?: StateDict;
  history: EpochMetrics[];
  labels: string[];
  preprocessing: Preprocessing;
  /** The run's TrainConfig, as its checkpoint stores it. */
  trainConfig: TrainConfig;
  /** How fine-tuning weights were matched (re-initialized keys are its missing and mismatched). */
  fit?: FitReport;
}

// ---------------------------------------------------------------- preprocessing defaults

/** Pixel mean and standard deviation of an IDX dataset, over all its images ([0, 1] scale). */
export function idxStatistics(dataset: IdxDataset): { mean: number; std: number } {
  const data = dataset.images.data;
  const hist = new Float64Array(256);
  for (let i = 0; i < data.length; i++) hist[data[i]!]! += 1;
  let sum = 0;
  let sq = 0;
  for (let v = 0; v < 256; v++) {
    sum += hist[v]! * (v / 255);
    sq += hist[v]! * (v / 255) ** 2;
  }
  const mean = sum / data.length;
  return { mean, std: Math.sqrt(sq / data.length - mean * mean) };
}

type PreprocessingOptions = Pick<TrainOptions, 'inputSize' | 'normalization' | 'pad' | 'evalCropPct'>;

function idxBase(dataset: ImageDataset): IdxDataset | undefined {
  const base = dataset.base ?? dataset;
  return base instanceof IdxDataset ? base : undefined;
}

function sizeHW(size: number | [number, number]): [number, number] {
  return Array.isArray(size) ? size : [size, size];
}

/** Padding and input size: IDX images zero-padded to a multiple of 32, else 224 and no padding. */
function defaultGeometry(dataset: ImageDataset, options: PreprocessingOptions): { pad: number; inputSize: [number, number] } {
  const idx = idxBase(dataset);
  let pad = options.pad ?? 0;
  let inputSize: [number, number] = [224, 224];
  if (idx && options.pad === undefined) {
    const side = Math.max(idx.height, idx.width);
    pad = Math.floor((Math.ceil(side / 32) * 32 - side) / 2);
  }
  if (idx) inputSize = [idx.height + 2 * pad, idx.width + 2 * pad];
  if (options.inputSize !== undefined) inputSize = sizeHW(options.inputSize);
  return { pad, inputSize };
}

/** Preprocessing defaults for a dataset (see TrainOptions). */
export function defaultPreprocessing(dataset: ImageDataset, options: PreprocessingOptions = {}): Preprocessing {
  const idx = idxBase(dataset);
  const { pad, inputSize } = defaultGeometry(dataset, options);
  let normalization = options.normalization;
  if (!normalization && idx) {
    const { mean, std } = idxStatistics(idx);
    const m = Number(mean.toFixed(4));
    const s = Number(std.toFixed(4));
    normalization = { mean: [m, m, m], std: [s, s, s] };
  }
  normalization ??= { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
  return { inputSize, normalization, pad, cropPct: options.evalCropPct ?? (idx ? 1 : 0.875), ...(idx ? { grayscale: true } : {}) };
}

// ---------------------------------------------------------------- evaluation

/** Cross-entropy sum and correct count of logits (N,K) against labels; a row with a NaN or infinity is never correct and makes the loss NaN. */
function scoreLogits(logits: FloatTensor, labels: Int32Array): { lossSum: number; correct: number } {
  const [n, k] = logits.shape as [number, number];
  let lossSum = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = i * k;
    let max = -Infinity;
    let finiteRow = true;
    for (let j = 0; j < k; j++) {
      const v = logits.data[row + j]!;
      if (!Number.isFinite(v)) finiteRow = false;
      max = Math.max(max, v);
    }
    if (!finiteRow) {
      lossSum = NaN;
      continue;
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits.data[row + j]! - max);
    lossSum += Math.log(sum) + max - logits.data[row + labels[i]!]!;
    if (argmaxRow(logits.data, row, k) === labels[i]) correct++;
  }
  return { lossSum, correct };
}

/**
 * Top-1 accuracy and mean cross-entropy of weights on a dataset, with the eval graph. BatchNorm is
 * folded into the weights, so each evaluation builds a fresh session (for XS at 32x32 that is
 * ~0.2 s against ~3 s for the 10,000 Fashion-MNIST test images); the weights already fit, so they
 * are bound to the graph emitted once for the run, not fitted again. Logits with a NaN or infinity
 * count as wrong and make the loss NaN.
 */
export async function evaluate(
  config: SwiftFormerConfig, state: StateDict, loader: Loader, session: SessionOptions = {}, onBatch?: (done: number, total: number) => void,
): Promise<{ acc: number; loss: number }> {
  const model = SwiftFormerModel.fromFitted(config, state, { session });
  try {
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    for await (const batch of loader.epoch(0)) {
      const score = scoreLogits(await model.logits(batch.pixels), batch.labels);
      lossSum += score.lossSum;
      correct += score.correct;
      count += batch.labels.length;
      onBatch?.(count, loader.dataset.length);
    }
    return { acc: correct / count, loss: lossSum / count };
  } finally {
    await model.release();
  }
}

// ---------------------------------------------------------------- the run

/** A new run's model: a variant's random initialization, or fine-tuning weights refit to this run's head. */
async function initialModel(options: TrainOptions, run: TrainConfig): Promise<{ config: SwiftFormerConfig; state: StateDict; fit?: FitReport }> {
  const distillation = !!run.classification?.distill;
  const { numClasses } = run.dataset;
  const { seed } = run;
  if (options.weights === undefined) {
    const base = typeof options.model === 'object' ? structuredClone(options.model) : variantConfig(options.model ?? 'xs');
    const config = { ...base, numClasses, distillation };
    return { config, state: initialWeights(config, 'classifier', seed) };
  }
  // Read the architecture off the weights (or take the given one), then refit with this run's head.
  const probe = await SwiftFormerModel.load({ weights: options.weights, strict: false, ...(options.model ? { model: options.model } : {}) });
  if (probe.head !== 'classifier') throw new SwiftFormerError('BAD_ARGUMENT', 'fine-tuning needs classifier weights, these are a feature backbone (fork_feat)');
  const config = { ...probe.config, numClasses, distillation };
  const model = await SwiftFormerModel.load({ model: config, weights: probe.state, attention: probe.config.attention, strict: false, seed });
  const fit = model.report ? { ...model.report, format: probe.report?.format ?? model.report.format } : undefined;
  return { config: model.config, state: cloneState(model.state), ...(fit ? { fit } : {}) };
}

/** `o` without its undefined members. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function clipConfig(clip: NonNullable<TrainOptions['clip']>): ClipConfig {
  if (clip.mode === 'none') return { mode: 'none' };
  return { mode: clip.mode, value: clip.value ?? (clip.mode === 'agc' ? DEFAULTS.clipAgc : DEFAULTS.clipNorm) };
}

/** What `options` sets, as TrainConfig fields (nothing else: defaults and stored values fill the rest). */
function requestedConfig(options: TrainOptions, stored: TrainConfig | undefined): RequestedConfig {
  const inputSize = options.inputSize === undefined ? undefined : sizeHW(options.inputSize);
  const augment = options.augment === undefined ? undefined
    : !options.augment ? null
    : options.augment === true ? augmentFor(inputSize ?? stored?.preprocessing.inputSize ?? defaultGeometry(options.train, options).inputSize)
    : options.augment;
  const ema = options.ema === undefined ? undefined : options.ema === false ? null : options.ema === true ? {} : defined({ decay: options.ema.decay });
  const distill = options.distill;
  return {
    task: 'classification',
    ...defined({ epochs: options.epochs, batchSize: options.batchSize, seed: options.seed, lr: options.lr }),
    optimizer: defined({ ...options.optimizer, weightDecay: options.weightDecay }) as RequestedConfig['optimizer'],
    schedule: defined({ ...options.schedule, warmupEpochs: options.warmupEpochs, warmupLr: options.warmupLr, minLr: options.minLr }) as RequestedConfig['schedule'],
    ...(options.clip ? { clip: clipConfig(options.clip) } : {}),
    ...(ema !== undefined ? { ema } : {}),
    preprocessing: defined({ inputSize, normalization: options.normalization, pad: options.pad, cropPct: options.evalCropPct }),
    dataset: { trainImages: options.train.length, numClasses: options.train.classes.length },
    classification: defined({
      labelSmoothing: options.labelSmoothing, mixup: options.mixup, augment,
      distill: distill ? defined({ type: distill.type, temperature: distill.temperature, weight: distill.weight }) : undefined,
    }),
  };
}

/** Classification as a TaskRun: loaders, the compiled step (with distillation targets), evaluation. */
async function classificationTask(
  options: TrainOptions, run: TrainConfig, model: { config: SwiftFormerConfig; state: StateDict }, session: SessionOptions,
): Promise<TaskRun & { release(): Promise<void> }> {
  const settings = run.classification!;
  const { preprocessing, batchSize, seed } = run;
  const geometry = { inputSize: preprocessing.inputSize, mean: preprocessing.normalization.mean, std: preprocessing.normalization.std, pad: preprocessing.pad };
  const trainTransform = options.transforms?.train ?? sampleTransform({ ...geometry, ...(settings.augment ? { augment: settings.augment } : {}), cropPct: 1 });
  const testTransform = options.transforms?.test ?? sampleTransform({ ...geometry, cropPct: preprocessing.cropPct });
  const prefetch = options.prefetch ?? 1;
  const loader = new Loader(options.train, {
    batchSize, transform: trainTransform, shuffle: true, dropLast: true, seed, labelSmoothing: settings.labelSmoothing,
    ...(settings.mixup ? { mixup: settings.mixup } : {}), prefetch,
  });
  const test = options.test;
  const testLoader = test ? new Loader(test, { batchSize: options.evalBatchSize ?? Math.max(batchSize, 100), transform: testTransform, prefetch }) : undefined;
  const distill = settings.distill;
  const teacher = options.distill?.teacher;
  if (distill && teacher) await checkTeacher(teacher, batchSize, preprocessing.inputSize, run.dataset.numClasses);
  const step = await TrainStep.create(model.config, {
    batch: batchSize, inputSize: preprocessing.inputSize, distill: !!distill, distillWeight: distill?.weight ?? DEFAULTS.distillWeight,
  }, session);
  const { state } = model;
  const labels = [...options.train.classes];
  return {
    state, params: step.step.params, stepsPerEpoch: loader.batchesPerEpoch, model: model.config, labels,
    title: `SwiftFormer training (${labels.length} classes)`,
    async *steps(epoch: number): AsyncGenerator<StepOutput> {
      let mark = performance.now();
      for await (const batch of loader.epoch(epoch)) {
        const t0 = performance.now();
        let distTargets: FloatTensor | undefined;
        if (distill && teacher) {
          const logits = await teacher.logits(batch.pixels);
          distTargets = distill.type === 'hard' ? hardDistillTargets(logits) : softDistillTargets(logits, distill.temperature);
        }
        const result = await step.run(state, batch.pixels, batch.targets, distTargets);
        const t1 = performance.now();
        yield {
          index: batch.index, loss: result.loss, grads: result.grads, samples: batch.labels.length,
          correct: scoreLogits(result.logits, batch.labels).correct, timing: { data: t0 - mark, step: t1 - t0 },
          commit: () => updateRunningStats(state, result.stats, 0.1),
        };
        mark = performance.now();
      }
    },
    ...(testLoader ? {
      evaluate: async (weights: StateDict, _which: 'model' | 'ema', onProgress: (done: number, total: number) => void) => {
        const { loss, acc } = await evaluate(model.config, weights, testLoader, session, onProgress);
        return { loss, metrics: { acc } };
      },
    } : {}),
    release: () => step.release(),
  };
}

/** Trains (or fine-tunes, or resumes, or extends) a SwiftFormer classifier; see TrainOptions. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { train: trainData, test: testData } = options;
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  const numClasses = trainData.classes.length;
  if (numClasses < 2) throw bad(`training needs at least 2 classes, ${trainData.name} has ${numClasses}`);
  if (testData && testData.classes.length !== numClasses) throw bad(`the test set has ${testData.classes.length} classes, the training set ${numClasses}`);

  const plan = await planRun({
    task: 'classification',
    request: (stored) => requestedConfig(options, stored),
    base: () => ({ preprocessing: defaultPreprocessing(trainData, options), dataset: { trainImages: trainData.length, numClasses } }),
    stepsPerEpoch: (c) => Math.floor(trainData.length / c.batchSize),
    ...(options.out ? { out: options.out } : {}), ...(options.resume ? { resume: true } : {}), ...(options.savePth ? { savePth: true } : {}),
    ...(options.dataSource ? { data: options.dataSource } : {}),
  });
  const { config } = plan;
  inputHW(config.preprocessing.inputSize);
  if (config.classification?.distill && !options.distill) throw bad(`${options.out} distills from a teacher: pass the teacher again (distill.teacher, --teacher) to resume it`);
  const session: SessionOptions = options.threads === undefined ? {} : { threads: options.threads };
  const model = plan.restored ? { config: plan.restored.sidecar.model, state: plan.restored.state } : await initialModel(options, config);
  const fit = 'fit' in model ? model.fit : undefined;
  const task = await classificationTask(options, config, model, session);
  try {
    const params = task.params.reduce((n, k) => n + task.state.get(k)!.data.length, 0);
    const { rescheduled } = plan;
    options.onProgress?.({
      phase: 'start', epochs: config.epochs, startEpoch: plan.startEpoch, stepsPerEpoch: plan.stepsPerEpoch, config: model.config, params,
      ...(fit ? { fit } : {}),
      ...(rescheduled ? { rescheduled: { ...rescheduled, kind: plan.schedule.kind, nextLr: lrAt(plan.schedule, plan.startEpoch * plan.stepsPerEpoch) } } : {}),
    });
    const result = await runEpochs(task, plan, { ...(options.onProgress ? { onProgress: options.onProgress } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return {
      config: model.config, state: result.state, ...(result.ema ? { ema: result.ema } : {}), history: result.history, labels: [...task.labels],
      preprocessing: config.preprocessing, trainConfig: config, ...(fit ? { fit } : {}),
    };
  } finally {
    await task.release();
  }
}
