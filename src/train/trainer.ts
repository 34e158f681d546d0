/**
 * The training loop around the compiled train step (train/step.ts):
 *
 *   loader -> TrainStep.run -> updateRunningStats -> clipping -> AdamW (cosine schedule) -> EMA
 *
 * then, each epoch, top-1 accuracy on the test set with the eval graph (BatchNorm folded, so a
 * fresh session per evaluation), metrics (metrics.jsonl, chart.svg) and a checkpoint that
 * `resume` continues from exactly: same weights, moments, schedule position and data order.
 */
import { makeDirectory } from '../node/files.js';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { augmentFor, sampleTransform, type AugmentOptions, type MixupOptions, type SampleTransform } from './augment.js';
import { trainingChart } from './chart.js';
import { readCheckpoint, writeCheckpoint, type DataSource, type EpochMetrics, type Normalization, type Preprocessing } from './checkpoint.js';
import { IdxDataset, type ImageDataset } from '../data/dataset.js';
import { Loader } from '../train/loader.js';
import { SwiftFormerError } from '../core/errors.js';
import { writeFileAtomic } from '../node/files.js';
import { SwiftFormerModel } from '../models/model.js';
import {
  AdamW, ModelEma, adaptiveClipGrad, cloneState, clipGradNorm, globalGradNorm,
} from './optim.js';
import { argmaxRow, hardDistillTargets, softDistillTargets } from './targets.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import { CosineSchedule } from './schedule.js';
import { TrainStep, updateRunningStats } from './step.js';
import { initialWeights, inputHW, variantConfig, type SwiftFormerConfig } from '../models/swiftformer.js';
import type { FloatTensor, StateDict } from '../core/tensor.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../preprocess/transforms.js';
import type { FitReport } from '../models/fit.js';

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

/**
 * An ONNX classifier as the teacher, run through the platform backend. `input` defaults to the
 * model's first input, `output` to `logits` when present, else the first output.
 */
export async function onnxTeacher(
  model: string | Uint8Array, options: { input?: string; output?: string; session?: SessionOptions } = {},
): Promise<Teacher> {
  const session = await getBackend().createSession(model, options.session);
  const input = options.input ?? session.inputNames[0]!;
  const output = options.output ?? (session.outputNames.includes('logits') ? 'logits' : session.outputNames[0]!);
  for (const [what, name, names] of [['input', input, session.inputNames], ['output', output, session.outputNames]] as const) {
    if (!names.includes(name)) throw new SwiftFormerError('BAD_ARGUMENT', `teacher has no ${what} '${name}' (it has ${names.join(', ')})`);
  }
  return {
    logits: async (pixels) => (await session.run({ [input]: pixels }))[output]!,
    release: () => session.release(),
  };
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

export interface TrainOptions {
  /** Architecture: a variant id or a config (numClasses follows the data; distillation follows `distill`). Default 'xs'. */
  model?: string | SwiftFormerConfig;
  /** Fine-tune from these weights; a head of another class count is re-initialized. */
  weights?: string | Uint8Array | StateDict;
  train: ImageDataset;
  test?: ImageDataset;
  epochs: number;
  batchSize: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** AdamW decoupled weight decay (default 0.025, the official recipe's). */
  weightDecay?: number;
  warmupEpochs?: number;
  /** Learning rate at the start of the warm-up (default 1e-6). */
  warmupLr?: number;
  /** Floor of the cosine (default 0). */
  minLr?: number;
  /** Label smoothing (default 0.1). */
  labelSmoothing?: number;
  /** Gradient clipping: 'norm' (global L2, value = max norm), 'agc' (value = clip factor, official 0.01), 'none' (default). */
  clip?: { mode: 'norm' | 'agc' | 'none'; value?: number };
  /** EMA of the weights, evaluated beside them (default off; decay 0.9996). */
  ema?: boolean | { decay?: number };
  mixup?: MixupOptions;
  /**
   * true: `augmentFor(inputSize)`, i.e. timm's DEFAULT_AUGMENT (random resized crop, flip, color
   * jitter, random erasing), or for inputs up to 64 px the small-image preset (shifts, flip, random
   * erasing); or chosen parts.
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
  /** Also write checkpoint.pth in the official layout each epoch. */
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

export type TrainProgress =
  | { phase: 'start'; epochs: number; startEpoch: number; stepsPerEpoch: number; config: SwiftFormerConfig; params: number; fit?: FitReport }
  | { phase: 'train'; epoch: number; epochs: number; step: number; steps: number; loss: number; acc: number; lr: number; imgPerSec: number }
  | { phase: 'eval'; epoch: number; epochs: number; done: number; total: number; ema: boolean }
  | { phase: 'epoch'; metrics: EpochMetrics; checkpoint?: string; checkpointMs?: number };

export interface TrainResult {
  config: SwiftFormerConfig;
  state: StateDict;
  ema?: StateDict;
  history: EpochMetrics[];
  labels: string[];
  preprocessing: Preprocessing;
  /** How fine-tuning weights were matched (re-initialized keys are its missing and mismatched). */
  fit?: FitReport;
}

// ---------------------------------------------------------------- helpers

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

function baseDataset(dataset: ImageDataset): ImageDataset {
  return dataset.base ?? dataset;
}

/** Preprocessing defaults for a dataset (see TrainOptions). */
export function defaultPreprocessing(dataset: ImageDataset, options: Pick<TrainOptions, 'inputSize' | 'normalization' | 'pad' | 'evalCropPct'> = {}): Preprocessing {
  const base = baseDataset(dataset);
  const idx = base instanceof IdxDataset ? base : undefined;
  let pad = options.pad ?? 0;
  let inputSize: [number, number] = [224, 224];
  if (idx && options.pad === undefined) {
    const side = Math.max(idx.height, idx.width);
    pad = Math.floor((Math.ceil(side / 32) * 32 - side) / 2);
  }
  if (idx) inputSize = [idx.height + 2 * pad, idx.width + 2 * pad];
  if (options.inputSize !== undefined) inputSize = Array.isArray(options.inputSize) ? options.inputSize : [options.inputSize, options.inputSize];
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

function resolveAugment(augment: TrainOptions['augment'], inputSize: [number, number]): AugmentOptions | undefined {
  if (!augment) return undefined;
  return augment === true ? augmentFor(inputSize) : augment;
}

function finite(x: number): boolean {
  return Number.isFinite(x);
}

/** Mean cross-entropy and correct count of logits (N,K) against labels. */
function scoreLogits(logits: FloatTensor, labels: Int32Array): { lossSum: number; correct: number } {
  const [n, k] = logits.shape as [number, number];
  let lossSum = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = i * k;
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, logits.data[row + j]!);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits.data[row + j]! - max);
    lossSum += Math.log(sum) + max - logits.data[row + labels[i]!]!;
    if (argmaxRow(logits.data, row, k) === labels[i]) correct++;
  }
  return { lossSum, correct };
}

/**
 * Top-1 accuracy and mean cross-entropy of weights on a dataset, with the eval graph. BatchNorm is
 * folded into the weights, so each evaluation builds a fresh session: for XS at 32x32 that is
 * ~0.2 s against ~3 s for the 10,000 Fashion-MNIST test images, so nothing is cached.
 */
export async function evaluate(
  config: SwiftFormerConfig, state: StateDict, loader: Loader, session: SessionOptions = {}, onBatch?: (done: number, total: number) => void,
): Promise<{ acc: number; loss: number }> {
  const model = await SwiftFormerModel.load({ model: config, weights: state, attention: config.attention, session });
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

async function initialModel(options: TrainOptions, numClasses: number): Promise<{ config: SwiftFormerConfig; state: StateDict; fit?: FitReport }> {
  const distillation = !!options.distill;
  const seed = options.seed ?? 0;
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

function describeDiff(a: unknown, b: unknown): string {
  return `${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

// ---------------------------------------------------------------- train

/** Trains (or fine-tunes, or resumes) a SwiftFormer classifier; see TrainOptions. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { train: trainData, test: testData, epochs, batchSize } = options;
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw bad(`epochs must be a positive integer, got ${epochs}`);
  if (!(Number.isInteger(batchSize) && batchSize >= 2)) throw bad(`batch size must be an integer >= 2 (BatchNorm needs batch statistics), got ${batchSize}`);
  if (batchSize > trainData.length) throw bad(`batch size ${batchSize} is larger than the ${trainData.length} training images: every epoch would be empty (the last incomplete batch is dropped)`);
  if (options.resume && !options.out) throw bad('resume needs the output directory of the run to continue');
  const numClasses = trainData.classes.length;
  if (numClasses < 2) throw bad(`training needs at least 2 classes, ${trainData.name} has ${numClasses}`);
  if (testData && testData.classes.length !== numClasses) throw bad(`the test set has ${testData.classes.length} classes, the training set ${numClasses}`);

  const preprocessing = defaultPreprocessing(trainData, options);
  inputHW(preprocessing.inputSize);
  const augment = resolveAugment(options.augment, preprocessing.inputSize);
  const lr = options.lr ?? 1e-3;
  const weightDecay = options.weightDecay ?? 0.025;
  const labelSmoothing = options.labelSmoothing ?? 0.1;
  const clip = options.clip ?? { mode: 'none' as const };
  if (clip.mode !== 'none' && !(clip.value! > 0)) throw bad(`clipping '${clip.mode}' needs a value > 0, got ${clip.value}`);
  const emaDecay = options.ema ? (typeof options.ema === 'object' ? options.ema.decay ?? 0.9996 : 0.9996) : undefined;
  const seed = options.seed ?? 0;
  const distill = options.distill;
  const session: SessionOptions = options.threads === undefined ? {} : { threads: options.threads };

  const trainTransform = options.transforms?.train ?? sampleTransform({
    inputSize: preprocessing.inputSize, mean: preprocessing.normalization.mean, std: preprocessing.normalization.std, pad: preprocessing.pad,
    ...(augment ? { augment } : {}), cropPct: 1,
  });
  const testTransform = options.transforms?.test ?? sampleTransform({
    inputSize: preprocessing.inputSize, mean: preprocessing.normalization.mean, std: preprocessing.normalization.std, pad: preprocessing.pad,
    cropPct: preprocessing.cropPct,
  });
  const loader = new Loader(trainData, {
    batchSize, transform: trainTransform, shuffle: true, dropLast: true, seed, labelSmoothing,
    ...(options.mixup ? { mixup: options.mixup } : {}), prefetch: options.prefetch ?? 1,
  });
  const evalBatch = options.evalBatchSize ?? Math.max(batchSize, 100);
  const testLoader = testData ? new Loader(testData, { batchSize: evalBatch, transform: testTransform, prefetch: options.prefetch ?? 1 }) : undefined;
  const stepsPerEpoch = loader.batchesPerEpoch;
  const totalSteps = epochs * stepsPerEpoch;
  const warmupSteps = Math.round((options.warmupEpochs ?? 0) * stepsPerEpoch);
  const schedule = new CosineSchedule({ lr, totalSteps, warmupSteps, warmupLr: options.warmupLr ?? 1e-6, minLr: options.minLr ?? 0 });

  const hyper: Record<string, unknown> = {
    epochs, batchSize, lr, weightDecay, warmupEpochs: options.warmupEpochs ?? 0, warmupLr: options.warmupLr ?? 1e-6, minLr: options.minLr ?? 0,
    labelSmoothing, clip, ema: emaDecay ?? null, mixup: options.mixup ?? null, augment: augment ?? null, seed, preprocessing,
    distill: distill ? { type: distill.type ?? 'hard', temperature: distill.temperature ?? 1, weight: distill.weight ?? 0.5 } : null,
    trainImages: trainData.length, numClasses,
  };

  // ---- state: fresh, fine-tuned, or resumed
  let config: SwiftFormerConfig;
  let state: StateDict;
  let fit: FitReport | undefined;
  let startEpoch = 0;
  let history: EpochMetrics[] = [];
  let resumed: Awaited<ReturnType<typeof readCheckpoint>>;
  if (options.out) {
    await makeDirectory(options.out);
    resumed = await readCheckpoint(options.out);
    if (resumed && !options.resume) throw bad(`${options.out} already holds a training checkpoint (epoch ${resumed.sidecar.epoch}); resume it or choose another output directory`);
    if (!resumed && options.resume) throw bad(`nothing to resume: ${options.out} has no checkpoint.json`);
  }
  if (resumed) {
    const saved = resumed.sidecar.hyper;
    const diffs = Object.keys(hyper).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(hyper[k]));
    if (diffs.length > 0) {
      throw bad(`cannot resume ${options.out} with other settings: ${diffs.map((k) => `${k} ${describeDiff(hyper[k], saved[k])} (given vs checkpoint)`).join('; ')}`);
    }
    config = resumed.sidecar.config;
    state = resumed.state;
    startEpoch = resumed.sidecar.epoch;
    history = resumed.sidecar.history;
  } else {
    ({ config, state, fit } = await initialModel(options, numClasses));
  }
  const labels = [...trainData.classes];

  const step = await TrainStep.create(config, { batch: batchSize, inputSize: preprocessing.inputSize, distill: !!distill, distillWeight: distill?.weight ?? 0.5 }, session);
  try {
    const optimizer = new AdamW(state, step.step.params, { lr, weightDecay });
    if (resumed) optimizer.loadMoments(resumed.moments, resumed.sidecar.optimizer.step);
    // The EMA has taken one update per optimizer step, which a resumed run continues from.
    const ema = emaDecay !== undefined ? new ModelEma(resumed?.ema ?? state, emaDecay, true, resumed?.sidecar.optimizer.step ?? 0) : undefined;
    if (resumed && emaDecay !== undefined && !resumed.ema) throw new SwiftFormerError('BAD_CHECKPOINT', `${options.out}: the checkpoint has no EMA weights`);
    const params = step.step.params.reduce((n, k) => n + state.get(k)!.data.length, 0);
    options.onProgress?.({ phase: 'start', epochs, startEpoch, stepsPerEpoch, config, params, ...(fit ? { fit } : {}) });
    if (options.out && !resumed) {
      const info = { config, labels, preprocessing, hyper, ...(options.dataSource ? { data: options.dataSource } : {}) };
      await writeFileAtomic(join(options.out, 'config.json'), `${JSON.stringify(info, null, 2)}\n`);
      await writeFileAtomic(join(options.out, 'labels.json'), `${JSON.stringify(labels, null, 2)}\n`);
    }

    let globalStep = startEpoch * stepsPerEpoch;
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const epochStart = performance.now();
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let lastLr = schedule.lrAt(globalStep);
      const phase = { data: 0, step: 0, update: 0, eval: 0 };
      let checkpointMs = 0;
      let mark = performance.now();
      let trainTime = 0;
      for await (const batch of loader.epoch(epoch)) {
        options.signal?.throwIfAborted();
        const t0 = performance.now();
        phase.data += t0 - mark;
        const stepLr = schedule.lrAt(globalStep);
        let distTargets: FloatTensor | undefined;
        if (distill) {
          const teacher = await distill.teacher.logits(batch.pixels);
          distTargets = (distill.type ?? 'hard') === 'hard' ? hardDistillTargets(teacher) : softDistillTargets(teacher, distill.temperature ?? 1);
        }
        const result = await step.run(state, batch.pixels, batch.targets, distTargets);
        const t1 = performance.now();
        phase.step += t1 - t0;
        const gradNorm = finite(result.loss) ? globalGradNorm(result.grads, step.step.params) : NaN;
        if (!finite(result.loss) || !finite(gradNorm)) {
          const what = !finite(result.loss) ? `the loss is ${result.loss}` : `the gradient norm is ${gradNorm}`;
          const last = options.out && history.length > 0
            ? `the last good checkpoint (epoch ${history.length}) is intact in ${options.out}`
            : 'no checkpoint had been written yet';
          throw new SwiftFormerError('DIVERGED', `training diverged: ${what} at epoch ${epoch + 1}, step ${batch.index + 1} of ${stepsPerEpoch} (lr ${stepLr.toPrecision(3)}); stopped, ${last}. Try a lower learning rate or gradient clipping`);
        }
        updateRunningStats(state, result.stats, 0.1);
        if (clip.mode === 'norm') clipGradNorm(result.grads, clip.value!, step.step.params);
        else if (clip.mode === 'agc') adaptiveClipGrad(state, result.grads, clip.value!, 1e-3, step.step.params);
        optimizer.step(result.grads, stepLr);
        ema?.update(state);
        lastLr = stepLr;
        globalStep++;
        const score = scoreLogits(result.logits, batch.labels);
        lossSum += result.loss * batch.labels.length;
        correct += score.correct;
        seen += batch.labels.length;
        mark = performance.now();
        phase.update += mark - t1;
        trainTime = mark - epochStart;
        options.onProgress?.({
          phase: 'train', epoch: epoch + 1, epochs, step: batch.index + 1, steps: stepsPerEpoch,
          loss: lossSum / seen, acc: correct / seen, lr: stepLr, imgPerSec: (seen / trainTime) * 1000,
        });
      }
      const metrics: EpochMetrics = {
        epoch: epoch + 1, train_loss: lossSum / seen, train_acc: correct / seen, lr: lastLr,
        img_per_s: (seen / trainTime) * 1000, seconds: 0, steps: stepsPerEpoch,
      };
      if (testLoader) {
        options.signal?.throwIfAborted();
        const t = performance.now();
        const report = (ema: boolean) => (done: number, total: number) =>
          options.onProgress?.({ phase: 'eval', epoch: epoch + 1, epochs, done, total, ema });
        const result = await evaluate(config, state, testLoader, session, report(false));
        metrics.test_loss = result.loss;
        metrics.test_acc = result.acc;
        if (ema) metrics.test_acc_ema = (await evaluate(config, ema.state, testLoader, session, report(true))).acc;
        phase.eval = performance.now() - t;
      }
      metrics.seconds = (performance.now() - epochStart) / 1000;
      metrics.phase_ms = Object.fromEntries(Object.entries(phase).map(([k, v]) => [k, Math.round(v)]));
      history.push(metrics);
      let checkpoint: string | undefined;
      if (options.out) {
        const t = performance.now();
        const sidecar: Parameters<typeof writeCheckpoint>[1]['sidecar'] = {
          epoch: epoch + 1,
          step: globalStep,
          optimizer: { name: 'adamw', step: optimizer.stepCount, lr, betas: optimizer.betas, eps: optimizer.eps, weightDecay, noDecay: optimizer.groups.noDecay },
          schedule: { kind: 'cosine', lr, totalSteps, warmupSteps, warmupLr: options.warmupLr ?? 1e-6, minLr: options.minLr ?? 0, stepsPerEpoch, nextStep: globalStep },
          rng: { seed, nextEpoch: epoch + 1, scheme: 'Random(deriveSeed(seed, stream, epoch, index)) per shuffle, sample and batch' },
          ...(emaDecay !== undefined ? { ema: { decay: emaDecay } } : {}),
          config, labels, preprocessing, hyper, history,
          ...(options.dataSource ? { data: options.dataSource } : {}),
        };
        await writeCheckpoint(options.out, { sidecar, state, optimizer, ...(ema ? { ema: ema.state } : {}), pth: !!options.savePth });
        await writeFileAtomic(join(options.out, 'metrics.jsonl'), history.map((m) => JSON.stringify(m)).join('\n') + '\n');
        await writeFileAtomic(join(options.out, 'chart.svg'), trainingChart(history, { epochs, title: `SwiftFormer training (${labels.length} classes)` }));
        checkpoint = join(options.out, 'checkpoint.json');
        checkpointMs = performance.now() - t;
      }
      options.onProgress?.({ phase: 'epoch', metrics, ...(checkpoint ? { checkpoint, checkpointMs } : {}) });
    }
    return { config, state, ...(ema ? { ema: ema.state } : {}), history, labels, preprocessing, ...(fit ? { fit } : {}) };
  } finally {
    await step.release();
  }
}

