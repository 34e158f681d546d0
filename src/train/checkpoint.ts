/**
 * Training checkpoints in an output directory, written so that a run killed at any moment can
 * resume from its last completed epoch:
 *
 *   train-state-<epoch>.safetensors  everything resuming needs: `model.<key>` (weights and BN
 *                                    buffers), the optimizer's state (`exp_avg.<key>` /
 *                                    `exp_avg_sq.<key>` for AdamW, `momentum_buffer.<key>` for
 *                                    SGD), `ema.<key>` (EMA weights, when on)
 *   checkpoint.json                  the sidecar: epoch, step, where the state is, the TrainConfig
 *                                    (config.ts), the schedule in steps, optimizer and RNG state,
 *                                    the architecture, labels, history
 *   checkpoint.safetensors           the model weights alone (official keys), for inference
 *   checkpoint-ema.safetensors       the EMA weights, when on
 *   checkpoint.pth                   on request: the official training-checkpoint layout
 *
 * Order of writes: the state file (new name), then the sidecar that points to it (the commit
 * point), then the convenience files, then the previous state file is removed. Every file goes
 * through writeFileAtomic, so a reader sees either the old or the new version of each.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Preprocessing } from '../preprocess/transforms.js';
import { SwiftFormerError } from '../core/errors.js';
import { writeFileAtomic } from '../node/files.js';
import type { TrainConfig } from './config.js';
import { AdamW, timmNoDecay, type Optimizer, type OptimizerConfig } from './optim.js';
import { cosineLr, type LrSchedule } from './schedule.js';
import { writePth, type PthValue } from '../weights/pth.js';
import { readSafetensors, writeSafetensors } from '../weights/safetensors.js';
import type { SemanticFpnConfig } from '../models/semfpn.js';
import type { MaskRcnnConfig } from '../models/maskrcnn.js';
import type { SwiftFormerConfig } from '../models/swiftformer.js';
import { isBuffer, type StateDict, type Tensor } from '../core/tensor.js';

export const CHECKPOINT_FORMAT = 'swiftformer-train/2';
/** The format before the TrainConfig (settings in a loose `hyper` record); still read. */
const CHECKPOINT_FORMAT_V1 = 'swiftformer-train/1';
export const SIDECAR = 'checkpoint.json';

export type { Normalization, Preprocessing } from '../preprocess/transforms.js';

/** A data location as the CLI takes it (`fashion-mnist`, an IDX or image-folder directory) and the --limit. */
export interface DataSource {
  source: string;
  limit?: number;
}

/** One line of metrics.jsonl. */
export interface EpochMetrics {
  epoch: number;
  train_loss: number;
  train_acc?: number;
  test_loss?: number;
  test_acc?: number;
  test_acc_ema?: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  /** Training throughput: images per second of the training loop (evaluation excluded). */
  img_per_s: number;
  /** Wall time of the epoch, evaluation included (checkpoint writing excluded). */
  seconds: number;
  steps: number;
  /** Where the epoch's time went (ms): data preparation, train step, optimizer etc., evaluation. */
  phase_ms?: Record<string, number>;
  /** A task's further numbers: the named parts of its loss (`train_loss_box_reg`), its test metrics (`test_miou`). */
  [metric: `train_${string}` | `test_${string}`]: number | undefined;
}

/** The architecture a run trains: a SwiftFormer classifier, or a Semantic FPN on its backbone. */
export type TrainedModelConfig = SwiftFormerConfig | SemanticFpnConfig | MaskRcnnConfig;

export interface Sidecar {
  format: typeof CHECKPOINT_FORMAT;
  /** Completed epochs. */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  stateFile: string;
  /** The run's configuration; a resumed run starts from it (config.ts). */
  train: TrainConfig;
  /** The schedule in steps, as planned for `train.epochs` epochs. */
  schedule: LrSchedule;
  stepsPerEpoch: number;
  /** Each time a resumed run changed its length and the schedule was planned again. */
  replans?: { atEpoch: number; fromEpochs: number; toEpochs: number }[];
  optimizer: { kind: OptimizerConfig['kind']; step: number; file: string; keys: string; noDecay: string[] };
  /** Every random draw is derived from (seed, stream, epoch, index): the seed and the next epoch are the whole RNG state. */
  rng: { seed: number; nextEpoch: number; scheme: string };
  ema?: { decay: number; file: string };
  /** The model's architecture. */
  model: TrainedModelConfig;
  labels: string[];
  /** Where the data came from (the CLI resumes from it). */
  data?: DataSource;
  history: EpochMetrics[];
}

/** Keys in the order torch's state_dict lists them: a module's own tensors before its children's. */
export function moduleOrder(keys: Iterable<string>): string[] {
  interface Node { leaves: string[]; children: Map<string, Node> }
  const root: Node = { leaves: [], children: new Map() };
  for (const key of keys) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      let child = node.children.get(part);
      if (!child) node.children.set(part, (child = { leaves: [], children: new Map() }));
      node = child;
    }
    node.leaves.push(key);
  }
  const out: string[] = [];
  const walk = (node: Node): void => {
    out.push(...node.leaves);
    for (const child of node.children.values()) walk(child);
  };
  walk(root);
  return out;
}

function inModuleOrder(state: StateDict): StateDict {
  return new Map(moduleOrder(state.keys()).map((k) => [k, state.get(k)!]));
}

function stateFileName(epoch: number): string {
  return `train-state-${String(epoch).padStart(4, '0')}.safetensors`;
}

export interface CheckpointParts {
  sidecar: Omit<Sidecar, 'format' | 'stateFile' | 'optimizer' | 'ema'> & { ema?: { decay: number } };
  state: StateDict;
  optimizer: Optimizer;
  ema?: StateDict;
  /** Also write checkpoint.pth in the official layout. */
  pth?: boolean;
  /** Metadata of checkpoint.safetensors (and the EMA file) instead of `modelMetadata(sidecar)`. */
  metadata?: Record<string, string>;
}

/** Writes one epoch's checkpoint into `dir` (see the module comment for the order). */
export async function writeCheckpoint(dir: string, parts: CheckpointParts): Promise<Sidecar> {
  const { state, optimizer, ema } = parts;
  const epoch = parts.sidecar.epoch;
  const stateFile = stateFileName(epoch);
  const everything: StateDict = new Map();
  for (const [k, t] of state) everything.set(`model.${k}`, t);
  for (const [k, t] of optimizer.moments()) everything.set(k, t);
  if (ema) for (const [k, t] of ema) everything.set(`ema.${k}`, t);
  await writeFileAtomic(join(dir, stateFile), writeSafetensors(everything, { format: CHECKPOINT_FORMAT, epoch: String(epoch) }));

  const { ema: emaInfo, ...rest } = parts.sidecar;
  const slots = [...new Set([...optimizer.moments().keys()].map((k) => k.slice(0, k.indexOf('.'))))];
  const sidecar: Sidecar = {
    format: CHECKPOINT_FORMAT,
    ...rest,
    stateFile,
    optimizer: { kind: optimizer.kind, step: optimizer.stepCount, file: stateFile, keys: slots.map((p) => `${p}.<key>`).join(', '), noDecay: [...optimizer.groups.noDecay] },
    ...(emaInfo && ema ? { ema: { decay: emaInfo.decay, file: stateFile } } : {}),
  };
  await writeFileAtomic(join(dir, SIDECAR), `${JSON.stringify(sidecar, null, 2)}\n`);

  const meta = parts.metadata ? { ...parts.metadata, epoch: String(epoch) } : modelMetadata(sidecar);
  await writeFileAtomic(join(dir, 'checkpoint.safetensors'), writeSafetensors(inModuleOrder(state), meta));
  if (ema) await writeFileAtomic(join(dir, 'checkpoint-ema.safetensors'), writeSafetensors(inModuleOrder(ema), meta));
  if (parts.pth) await writeFileAtomic(join(dir, 'checkpoint.pth'), officialPth(sidecar, state, optimizer, ema));

  for (const name of await readdir(dir)) {
    if (/^train-state-\d+\.safetensors$/.test(name) && name !== stateFile) await rm(join(dir, name), { force: true });
  }
  return sidecar;
}

/** Metadata stored in the weight files, so inference can rebuild the model and its preprocessing. */
export function modelMetadata(sidecar: Sidecar): Record<string, string> {
  return {
    'swiftformer.config': JSON.stringify(sidecar.model),
    'swiftformer.labels': JSON.stringify(sidecar.labels),
    'swiftformer.preprocessing': JSON.stringify(sidecar.train.preprocessing),
    epoch: String(sidecar.epoch),
  };
}

export interface LoadedCheckpoint {
  sidecar: Sidecar;
  state: StateDict;
  moments: StateDict;
  ema?: StateDict;
}

/** Reads a run directory's sidecar (either format); undefined when `dir` has none. */
export async function readSidecar(dir: string): Promise<Sidecar | undefined> {
  const where = join(dir, SIDECAR);
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new SwiftFormerError('IO', `cannot read ${where}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${where} is not valid JSON: ${(err as Error).message}`);
  }
  const format = (parsed as { format?: unknown } | null)?.format;
  if (format !== CHECKPOINT_FORMAT && format !== CHECKPOINT_FORMAT_V1) throw new SwiftFormerError('BAD_CHECKPOINT', `${where} is not a ${CHECKPOINT_FORMAT} checkpoint`);
  const sidecar = format === CHECKPOINT_FORMAT_V1 ? fromV1(parsed as SidecarV1) : (parsed as Sidecar);
  const bad = (what: string) => new SwiftFormerError('BAD_CHECKPOINT', `${where}: ${what}`);
  if (!(Number.isInteger(sidecar.epoch) && sidecar.epoch >= 1)) throw bad(`epoch ${JSON.stringify(sidecar.epoch)} is not a completed epoch`);
  if (typeof sidecar.stateFile !== 'string' || !/^train-state-\d+\.safetensors$/.test(sidecar.stateFile)) throw bad(`the state file ${JSON.stringify(sidecar.stateFile)} is not a train-state-<epoch>.safetensors beside it`);
  if (typeof sidecar.train !== 'object' || sidecar.train === null || !Array.isArray(sidecar.history)) throw bad('it has no training configuration or history');
  return sidecar;
}

/** Reads the sidecar and the state file it names; undefined when `dir` has no checkpoint. */
export async function readCheckpoint(dir: string): Promise<LoadedCheckpoint | undefined> {
  const sidecar = await readSidecar(dir);
  if (!sidecar) return undefined;
  const path = join(dir, sidecar.stateFile);
  let bytes: Uint8Array;
  try {
    const buf = await readFile(path);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${join(dir, SIDECAR)} names ${sidecar.stateFile}, which cannot be read: ${(err as Error).message}`);
  }
  const file = readSafetensors(bytes);
  if (file.metadata.epoch !== String(sidecar.epoch)) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${path} holds epoch ${file.metadata.epoch}, the sidecar says ${sidecar.epoch}`);
  }
  const state: StateDict = new Map();
  const moments: StateDict = new Map();
  const ema: StateDict = new Map();
  for (const [key, t] of file.tensors) {
    const copy = { ...t, data: t.data.slice() } as Tensor;
    if (key.startsWith('model.')) state.set(key.slice(6), copy);
    else if (key.startsWith('ema.')) ema.set(key.slice(4), copy);
    else moments.set(key, copy);
  }
  return { sidecar, state, moments, ...(ema.size > 0 ? { ema } : {}) };
}

/** A swiftformer-train/1 sidecar: the same run, its settings in `hyper` as the trainer named them then. */
interface SidecarV1 {
  epoch: number;
  step: number;
  stateFile: string;
  optimizer: { step: number; betas: [number, number]; eps: number; noDecay: string[]; file: string; keys: string };
  schedule: { lr: number; totalSteps: number; warmupSteps: number; warmupLr: number; minLr: number; stepsPerEpoch: number };
  rng: Sidecar['rng'];
  ema?: Sidecar['ema'];
  config: SwiftFormerConfig;
  labels: string[];
  preprocessing: Preprocessing;
  hyper: {
    epochs: number; batchSize: number; lr: number; weightDecay: number; warmupEpochs: number; warmupLr: number; minLr: number;
    labelSmoothing: number; clip: TrainConfig['clip']; ema: number | null; mixup: NonNullable<TrainConfig['classification']>['mixup'];
    augment: NonNullable<TrainConfig['classification']>['augment']; seed: number; preprocessing: Preprocessing;
    distill: NonNullable<TrainConfig['classification']>['distill']; trainImages: number; numClasses: number;
  };
  data?: DataSource;
  history: EpochMetrics[];
}

function fromV1(v1: SidecarV1): Sidecar {
  const h = v1.hyper;
  const { lr, totalSteps, warmupSteps, warmupLr, minLr, stepsPerEpoch } = v1.schedule;
  return {
    format: CHECKPOINT_FORMAT, epoch: v1.epoch, step: v1.step, stateFile: v1.stateFile,
    train: {
      task: 'classification', epochs: h.epochs, batchSize: h.batchSize, seed: h.seed, lr: h.lr,
      optimizer: { kind: 'adamw', weightDecay: h.weightDecay, betas: v1.optimizer.betas, eps: v1.optimizer.eps },
      schedule: { kind: 'cosine', warmupEpochs: h.warmupEpochs, warmupLr: h.warmupLr, minLr: h.minLr },
      clip: h.clip, ema: h.ema === null ? null : { decay: h.ema }, preprocessing: h.preprocessing,
      dataset: { trainImages: h.trainImages, numClasses: h.numClasses },
      classification: { labelSmoothing: h.labelSmoothing, mixup: h.mixup, augment: h.augment, distill: h.distill },
    },
    schedule: { kind: 'cosine', lr, totalSteps, warmupSteps, warmupLr, minLr },
    stepsPerEpoch,
    optimizer: { kind: 'adamw', step: v1.optimizer.step, file: v1.optimizer.file, keys: v1.optimizer.keys, noDecay: v1.optimizer.noDecay },
    rng: v1.rng, ...(v1.ema ? { ema: v1.ema } : {}), model: v1.config, labels: v1.labels,
    ...(v1.data ? { data: v1.data } : {}), history: v1.history,
  };
}

// ---------------------------------------------------------------- official .pth

/** Why a run cannot be written as the official main.py's checkpoint, if it cannot. */
export function officialPthUnsupported(train: Pick<TrainConfig, 'task' | 'optimizer' | 'schedule'>): string | undefined {
  if (train.task !== 'classification') return `checkpoint.pth is the official classification checkpoint; this run is ${train.task}`;
  if (train.optimizer.kind !== 'adamw') return `checkpoint.pth holds an AdamW state as the official main.py trains; this run uses ${train.optimizer.kind}`;
  if (train.schedule.kind !== 'cosine') return `checkpoint.pth holds timm's cosine scheduler as the official main.py trains; this run's schedule is ${train.schedule.kind}`;
  return undefined;
}

/**
 * The dict the official main.py saves and resumes from: `model`, `optimizer` (torch AdamW
 * state_dict with the official two param groups, optim.ts timmNoDecay, so that
 * `optimizer.load_state_dict` accepts it), `lr_scheduler` (timm CosineLRScheduler fields, per
 * epoch as the official code schedules), `epoch` (the last completed, 0-based: the official code
 * resumes at epoch + 1), `model_ema`, `scaler`. Each group's `lr` is what the official loop holds
 * after `lr_scheduler.step(epoch)`: timm's per-epoch cosine at the last completed epoch, the rate
 * its next epoch trains at.
 */
export function officialPth(sidecar: Sidecar, state: StateDict, optimizer: Optimizer, ema?: StateDict): Uint8Array {
  const unsupported = officialPthUnsupported(sidecar.train);
  if (unsupported || !(optimizer instanceof AdamW) || sidecar.schedule.kind !== 'cosine') {
    throw new SwiftFormerError('UNSUPPORTED', unsupported ?? 'checkpoint.pth needs an AdamW optimizer and a cosine schedule');
  }
  const params = moduleOrder(optimizer.keys);
  const shapeOf = (k: string) => state.get(k)!.shape;
  const noDecay = params.filter((k) => timmNoDecay(k, shapeOf(k)));
  const decay = params.filter((k) => !timmNoDecay(k, shapeOf(k)));
  const index = new Map([...noDecay, ...decay].map((k, i) => [k, i]));
  const moments = optimizer.moments();
  const optState = new Map<number, PthValue>();
  for (const key of [...noDecay, ...decay]) {
    optState.set(index.get(key)!, {
      step: { dtype: 'float32', shape: [], data: Float32Array.of(optimizer.stepCount) },
      exp_avg: moments.get(`exp_avg.${key}`)!,
      exp_avg_sq: moments.get(`exp_avg_sq.${key}`)!,
    });
  }
  const schedule = sidecar.schedule;
  const epochs = schedule.totalSteps / sidecar.stepsPerEpoch;
  const perEpoch = {
    lr: schedule.lr, totalSteps: epochs, warmupSteps: schedule.warmupSteps / sidecar.stepsPerEpoch,
    warmupLr: schedule.warmupLr, minLr: schedule.minLr,
  };
  const lr = cosineLr(sidecar.epoch - 1, perEpoch);
  const group = (keys: string[], weightDecay: number): PthValue => ({
    lr, betas: [...optimizer.betas], eps: optimizer.eps, weight_decay: weightDecay, amsgrad: false, foreach: null,
    maximize: false, capturable: false, differentiable: false, fused: null, params: keys.map((k) => index.get(k)!),
    initial_lr: schedule.lr,
  });
  const root: Record<string, PthValue> = {
    model: inModuleOrder(state),
    optimizer: { state: optState, param_groups: [group(noDecay, 0), group(decay, optimizer.weightDecay)] },
    lr_scheduler: {
      sched_epoch: sidecar.epoch - 1, t_initial: epochs, lr_min: schedule.minLr,
      warmup_t: perEpoch.warmupSteps, warmup_lr_init: schedule.warmupLr,
      base_values: [schedule.lr], param_group_field: 'lr',
    },
    epoch: sidecar.epoch - 1,
    scaler: { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, _growth_tracker: 0 },
  };
  if (ema) root.model_ema = inModuleOrder(ema);
  return writePth(root, { folder: 'checkpoint' });
}

/** The trainable keys of a state dict (no BN buffers). */
export function trainableKeys(state: StateDict): string[] {
  return [...state.keys()].filter((k) => !isBuffer(k));
}
