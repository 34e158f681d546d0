/**
 * The training configuration in one typed place: what a run is (task, length, batch, optimizer,
 * schedule, clipping, EMA, preprocessing, the task's own settings), its defaults, and how a
 * resumed run's configuration comes about: the stored one, plus the settings that may change
 * (`RESUMABLE`: the number of epochs, which replans the schedule), with every other setting
 * given again required to agree.
 *
 * The checkpoint's sidecar stores the TrainConfig as it is; the model's architecture, labels and
 * where the data came from are stored beside it (checkpoint.ts).
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Preprocessing } from '../preprocess/transforms.js';
import { checkAugment, type AugmentOptions, type MixupOptions } from './augment.js';
import type { OptimizerConfig } from './optim.js';
import type { ScheduleConfig } from './schedule.js';
import type { SegmentationPipeline } from './segmentation-augment.js';

/** What is trained: classification (trainer.ts) and segmentation (segmentation-trainer.ts) have their TaskRun. */
export type TrainTask = 'classification' | 'segmentation' | 'detection';

/** Gradient clipping: global L2 norm (value = max norm), timm's AGC (value = clip factor), or none. */
export type ClipConfig = { mode: 'none' } | { mode: 'norm' | 'agc'; value: number };

/** Classification's own settings. */
export interface ClassificationSettings {
  labelSmoothing: number;
  mixup: MixupOptions | null;
  /**
   * The resolved augmentation (`augment: true` is recorded as what it meant at this input size:
   * for photos the official recipe, RandAugment's policy string and the interpolation included).
   */
  augment: AugmentOptions | null;
  /** Distillation into dist_head; the teacher itself is given to every run, never stored. */
  distill: { type: 'hard' | 'soft'; temperature: number; weight: number } | null;
}

/** Segmentation's own settings (Semantic FPN on an mmseg dataset, segmentation-trainer.ts). */
export interface SegmentationSettings {
  /** mmseg's training pipeline; its imgScale is also the test scale of the evaluations. */
  pipeline: SegmentationPipeline;
  /** Loss averaging: over all label pixels (mmseg's default) or over the pixels not ignored (avg_non_ignore). */
  average: 'all' | 'non-ignored';
  /** Optimizer steps per round of evaluation and checkpointing (mmseg's evaluation interval): an epoch of the run. */
  stepsPerRound: number;
  /** The labels on disk have 0 = "other" (ADE20K): 0 is ignored, k is class k - 1. */
  reduceZeroLabel: boolean;
}

/** Detection's own settings (Mask R-CNN on a COCO dataset, detection-trainer.ts). */
export interface DetectionTrainSettings {
  /** GeneralizedRCNNTransform's short sides, one drawn per image (multi-scale training), and the long side's limit. */
  minSizes: number[];
  maxSize: number;
  /** RandomHorizontalFlip's probability (references/detection: 0.5). */
  flipProb: number;
}

export interface TrainConfig {
  task: TrainTask;
  epochs: number;
  /** Samples per optimizer step (the step graph's fixed batch). */
  batchSize: number;
  /** Every random draw derives from it (loader.ts). */
  seed: number;
  /** Peak learning rate: the schedule's base value. */
  lr: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  clip: ClipConfig;
  ema: { decay: number } | null;
  preprocessing: Preprocessing;
  /** The training set the run was planned for: its size fixes the steps per epoch. */
  dataset: { trainImages: number; numClasses: number };
  /** Present when task is 'classification'. */
  classification?: ClassificationSettings;
  /** Present when task is 'segmentation'. */
  segmentation?: SegmentationSettings;
  /** Present when task is 'detection'. */
  detection?: DetectionTrainSettings;
}

/** Recursively optional (arrays whole): what a caller set, the rest to come from defaults or from the stored run. */
export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export type RequestedConfig = DeepPartial<TrainConfig>;

/** Every training default, stated once (the recipe of the issue's Fashion-MNIST benchmark, and the official code's). */
export const DEFAULTS = {
  epochs: 9,
  batchSize: 128,
  seed: 0,
  lr: 1e-3,
  /** AdamW's decoupled weight decay (the official recipe's 0.025). */
  weightDecay: 0.025,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  /** SGD: momentum and (coupled) weight decay, the detection recipes' (Mask R-CNN 1x). */
  momentum: 0.9,
  sgdWeightDecay: 1e-4,
  warmupEpochs: 0,
  /** timm's warmup_lr_init as the official main.py sets it. */
  warmupLr: 1e-6,
  minLr: 0,
  /** mmseg's poly power. */
  polyPower: 0.9,
  stepGamma: 0.1,
  labelSmoothing: 0.1,
  emaDecay: 0.9996,
  /** DeiT's hard distillation, dist_head loss weight 0.5. */
  distillType: 'hard' as const,
  distillTemperature: 1,
  distillWeight: 0.5,
  /** Clip values when only the mode is given: max norm 1; AGC factor 0.01 (the official recipe's). */
  clipNorm: 1,
  clipAgc: 0.01,
};

/**
 * Semantic FPN's recipe (EfficientFormer's ADE20K config, which SwiftFormer follows): AdamW
 * 2e-4 with weight decay 1e-4 on every parameter (mmseg's optimizer has no parameter-wise
 * rules), poly 0.9 to 0 by iteration, mmseg's ADE20K pipeline (512 crops of img_scale
 * (2048, 512) rescaled by 0.5-2.0, cat_max_ratio 0.75, flip, photometric distortion). Batch 8 and
 * 12 rounds are this library's defaults for one machine (the recipe: 32 images x 40k iterations).
 */
export const SEGMENTATION_DEFAULTS = {
  epochs: 12,
  batchSize: 8,
  lr: 2e-4,
  weightDecay: 1e-4,
  cropSize: 512,
  ratioRange: [0.5, 2.0] as [number, number],
  catMaxRatio: 0.75,
  flipProb: 0.5,
  ignoreIndex: 255,
};

/**
 * Mask R-CNN's two recipes: EfficientFormer's COCO config, which SwiftFormer follows (AdamW 2e-4,
 * weight decay 1e-4, 12 epochs with steps at 8 and 11, mmdet's 500-iteration linear warm-up from
 * 0.001 x lr), and torchvision's references/detection (SGD 0.02 for 16 images, momentum 0.9,
 * weight decay 1e-4, the same steps, 1000 iterations of warm-up from 0.001 x lr). Batch 2 per
 * step is one GPU's share of either; the SGD lr is scaled to it (linear scaling rule).
 */
export const DETECTION_DEFAULTS = {
  epochs: 12,
  batchSize: 2,
  adamwLr: 2e-4,
  sgdLr: (0.02 * 2) / 16,
  weightDecay: 1e-4,
  milestones: [8, 11],
  warmupIterations: { adamw: 500, sgd: 1000 },
  warmupFactor: 0.001,
  minSize: 800,
  maxSize: 1333,
  flipProb: 0.5,
};

/** Settings a resumed run may change; everything else given again must equal the stored value. */
export const RESUMABLE: ReadonlySet<string> = new Set(['epochs']);

/** Objects compared (and replaced) whole, not field by field. */
const ATOMIC = new Set(['clip', 'preprocessing.normalization', 'classification.mixup', 'classification.augment', 'detection.minSizes']);

/** Sections that are off (null) by default and, when switched on, start from these values. */
const SECTION_DEFAULTS: Record<string, () => object> = {
  ema: () => ({ decay: DEFAULTS.emaDecay }),
  'classification.distill': () => ({ type: DEFAULTS.distillType, temperature: DEFAULTS.distillTemperature, weight: DEFAULTS.distillWeight }),
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The defaults for a run of `task` whose optimizer and schedule kinds are those requested (AdamW, cosine otherwise). */
export function defaultConfig(
  task: TrainTask, requested: RequestedConfig, base: Pick<TrainConfig, 'preprocessing' | 'dataset'>,
): TrainConfig {
  const seg = task === 'segmentation';
  const det = task === 'detection';
  // mmseg's and the detection references' optimizers decay every parameter.
  const decayAll = seg || det ? { decayAll: true } : {};
  const sgd = requested.optimizer?.kind === 'sgd';
  const optimizer: OptimizerConfig = sgd
    ? { kind: 'sgd', weightDecay: DEFAULTS.sgdWeightDecay, momentum: DEFAULTS.momentum, nesterov: false, ...decayAll }
    : { kind: 'adamw', weightDecay: seg ? SEGMENTATION_DEFAULTS.weightDecay : det ? DETECTION_DEFAULTS.weightDecay : DEFAULTS.weightDecay, betas: [...DEFAULTS.betas], eps: DEFAULTS.eps, ...decayAll };
  const common = { warmupEpochs: DEFAULTS.warmupEpochs, warmupLr: DEFAULTS.warmupLr, minLr: DEFAULTS.minLr };
  const kind = requested.schedule?.kind ?? (seg ? 'poly' : det ? 'steps' : 'cosine');
  const schedule: ScheduleConfig = kind === 'poly' ? { kind, power: DEFAULTS.polyPower, ...common }
    : kind === 'steps' ? { kind, milestones: det ? [...DETECTION_DEFAULTS.milestones] : [], gamma: DEFAULTS.stepGamma, ...common }
    : { kind: 'cosine', ...common };
  const d = seg ? SEGMENTATION_DEFAULTS : det ? { ...DETECTION_DEFAULTS, lr: sgd ? DETECTION_DEFAULTS.sgdLr : DETECTION_DEFAULTS.adamwLr } : DEFAULTS;
  return {
    task, epochs: d.epochs, batchSize: d.batchSize, seed: DEFAULTS.seed, lr: d.lr,
    optimizer, schedule, clip: { mode: 'none' }, ema: null, preprocessing: base.preprocessing, dataset: base.dataset,
    ...(task === 'classification' ? { classification: { labelSmoothing: DEFAULTS.labelSmoothing, mixup: null, augment: null, distill: null } } : {}),
    ...(seg ? { segmentation: defaultSegmentation() } : {}),
    ...(det ? { detection: { minSizes: [DETECTION_DEFAULTS.minSize], maxSize: DETECTION_DEFAULTS.maxSize, flipProb: DETECTION_DEFAULTS.flipProb } } : {}),
  };
}

/** The segmentation section before what a run requests (its crop, scale and round length come from the data and flags). */
function defaultSegmentation(): SegmentationSettings {
  const S = SEGMENTATION_DEFAULTS;
  return {
    pipeline: {
      cropSize: [S.cropSize, S.cropSize], imgScale: [4 * S.cropSize, S.cropSize], ratioRange: [...S.ratioRange],
      catMaxRatio: S.catMaxRatio, flipProb: S.flipProb, photometric: true, ignoreIndex: S.ignoreIndex,
    },
    average: 'all', stepsPerRound: 1, reduceZeroLabel: false,
  };
}

/** `base` with what `over` sets laid over it (atomic objects replaced whole, sections switched on from their defaults). */
function overlay<T>(base: T, over: unknown, path = ''): T {
  if (over === undefined) return base;
  if (!isObject(over) || ATOMIC.has(path)) return structuredClone(over) as T;
  const start = isObject(base) ? base : (SECTION_DEFAULTS[path]?.() as Record<string, unknown> | undefined) ?? {};
  const out: Record<string, unknown> = { ...start };
  for (const [k, v] of Object.entries(over)) out[k] = overlay(out[k], v, path ? `${path}.${k}` : k);
  return out as T;
}

/** A new run's configuration: the defaults with what was requested laid over them. */
export function freshConfig(task: TrainTask, requested: RequestedConfig, base: Pick<TrainConfig, 'preprocessing' | 'dataset'>): TrainConfig {
  const config = overlay(defaultConfig(task, requested, base), requested);
  checkConfig(config);
  return config;
}

function describe(v: unknown): string {
  return v === null || v === undefined ? 'off' : JSON.stringify(v);
}

/** Requested settings that differ from the stored ones, as `path given vs stored`, outside RESUMABLE. */
function conflicts(requested: unknown, stored: unknown, path = '', out: string[] = []): string[] {
  if (!isObject(requested)) return out;
  for (const [k, r] of Object.entries(requested)) {
    const p = path ? `${path}.${k}` : k;
    const s = isObject(stored) ? stored[k] : undefined;
    if (r === undefined || RESUMABLE.has(p)) continue;
    if (isObject(r) && !ATOMIC.has(p)) {
      if (isObject(s)) conflicts(r, s, p, out);
      else out.push(`${p} on vs ${describe(s)}`);
    } else if (JSON.stringify(r) !== JSON.stringify(s)) {
      out.push(`${p} ${describe(r)} vs ${describe(s)}`);
    }
  }
  return out;
}

export interface ResumedConfig {
  config: TrainConfig;
  /** The run's length changed: the schedule must be planned again. */
  epochsChanged?: { from: number; to: number };
}

/**
 * A resumed run's configuration: the stored one, with the RESUMABLE settings as requested. Any
 * other requested setting that differs is a BAD_ARGUMENT listing them all.
 */
export function resumedConfig(stored: TrainConfig, requested: RequestedConfig, completedEpochs: number, where: string): ResumedConfig {
  const diffs = conflicts(requested, stored);
  if (diffs.length > 0) {
    throw new SwiftFormerError('BAD_ARGUMENT', `cannot resume ${where} with other settings: ${diffs.map((d) => `${d} (given vs checkpoint)`).join('; ')}`);
  }
  const epochs = requested.epochs ?? stored.epochs;
  if (epochs === stored.epochs) return { config: stored };
  if (!(Number.isInteger(epochs) && epochs >= completedEpochs && epochs >= 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${where} has completed ${completedEpochs} epochs: the run cannot end after ${epochs}`);
  }
  const config = { ...stored, epochs };
  checkConfig(config);
  return { config, epochsChanged: { from: stored.epochs, to: epochs } };
}

/** Throws a BAD_ARGUMENT naming the first setting a run cannot start with. */
export function checkConfig(c: TrainConfig): void {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  if (!(Number.isInteger(c.epochs) && c.epochs >= 1)) throw bad(`epochs must be a positive integer, got ${c.epochs}`);
  if (!(Number.isInteger(c.batchSize) && c.batchSize >= 2)) throw bad(`batch size must be an integer >= 2 (BatchNorm needs batch statistics), got ${c.batchSize}`);
  if (c.batchSize > c.dataset.trainImages) {
    throw bad(`batch size ${c.batchSize} is larger than the ${c.dataset.trainImages} training images: every epoch would be empty (the last incomplete batch is dropped)`);
  }
  if (!(Number.isFinite(c.lr) && c.lr >= 0)) throw bad(`learning rate must be a finite number >= 0, got ${c.lr}`);
  if (!(c.optimizer.weightDecay >= 0)) throw bad(`weight decay must be >= 0, got ${c.optimizer.weightDecay}`);
  if (c.clip.mode !== 'none' && !(c.clip.value > 0)) throw bad(`clipping '${c.clip.mode}' needs a value > 0, got ${c.clip.value}`);
  if (c.ema && !(c.ema.decay > 0 && c.ema.decay < 1)) throw bad(`EMA decay must be in (0, 1), got ${c.ema.decay}`);
  if (!(c.schedule.warmupEpochs >= 0)) throw bad(`warm-up epochs must be >= 0, got ${c.schedule.warmupEpochs}`);
  if (c.classification?.augment) checkAugment(c.classification.augment);
  if (c.segmentation) checkSegmentation(c.segmentation);
}

function checkSegmentation(s: SegmentationSettings): void {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  const p = s.pipeline;
  const positiveInts = (v: readonly number[]) => v.length === 2 && v.every((x) => Number.isInteger(x) && x >= 1);
  if (!positiveInts(p.cropSize) || p.cropSize.some((x) => x % 32 !== 0)) throw bad(`the crop size must be two multiples of 32 (height, width), got [${p.cropSize}]`);
  if (!positiveInts(p.imgScale)) throw bad(`the image scale must be two positive integers (long, short), got [${p.imgScale}]`);
  if (p.ratioRange && !(p.ratioRange.length === 2 && p.ratioRange[0]! > 0 && p.ratioRange[0]! <= p.ratioRange[1]!)) {
    throw bad(`the ratio range must be two numbers 0 < low <= high, got [${p.ratioRange}]`);
  }
  if (!(p.catMaxRatio > 0 && p.catMaxRatio <= 1)) throw bad(`cat_max_ratio must be in (0, 1], got ${p.catMaxRatio}`);
  if (!(p.flipProb >= 0 && p.flipProb <= 1)) throw bad(`the flip probability must be in [0, 1], got ${p.flipProb}`);
  if (!Number.isInteger(p.ignoreIndex)) throw bad(`the ignore index must be an integer, got ${p.ignoreIndex}`);
  if (!(Number.isInteger(s.stepsPerRound) && s.stepsPerRound >= 1)) throw bad(`iterations per round must be a positive integer, got ${s.stepsPerRound}`);
  if (s.average !== 'all' && s.average !== 'non-ignored') throw bad(`loss averaging must be 'all' or 'non-ignored', got '${String(s.average)}'`);
}
