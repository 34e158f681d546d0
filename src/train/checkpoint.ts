/**
 * Training checkpoints in an output directory, written so that a run killed at any moment can
 * resume from its last completed epoch:
 *
 *   train-state-<epoch>.safetensors  everything resuming needs: `model.<key>` (weights and BN
 *                                    buffers), `exp_avg.<key>` / `exp_avg_sq.<key>` (AdamW
 *                                    moments), `ema.<key>` (EMA weights, when on)
 *   checkpoint.json                  the sidecar: epoch, step, where the state is, optimizer,
 *                                    schedule and RNG state, config, labels, preprocessing, history
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
import type { AdamW } from './optim.js';
import { writePth, type PthValue } from '../weights/pth.js';
import { readSafetensors, writeSafetensors } from '../weights/safetensors.js';
import type { SwiftFormerConfig } from '../models/swiftformer.js';
import { isBuffer, type StateDict, type Tensor } from '../core/tensor.js';

export const CHECKPOINT_FORMAT = 'swiftformer-train/1';
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
  train_acc: number;
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
}

export interface Sidecar {
  format: typeof CHECKPOINT_FORMAT;
  /** Completed epochs. */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  stateFile: string;
  optimizer: { name: 'adamw'; file: string; keys: string; step: number; lr: number; betas: [number, number]; eps: number; weightDecay: number; noDecay: string[] };
  schedule: { kind: 'cosine'; lr: number; totalSteps: number; warmupSteps: number; warmupLr: number; minLr: number; stepsPerEpoch: number; nextStep: number };
  /** Every random draw is derived from (seed, stream, epoch, index): the seed and the next epoch are the whole RNG state. */
  rng: { seed: number; nextEpoch: number; scheme: string };
  ema?: { decay: number; file: string };
  config: SwiftFormerConfig;
  labels: string[];
  preprocessing: Preprocessing;
  /** Hyperparameters of the run; resuming checks them. */
  hyper: Record<string, unknown>;
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
  sidecar: Omit<Sidecar, 'format' | 'stateFile' | 'optimizer' | 'ema'> & { optimizer: Omit<Sidecar['optimizer'], 'file' | 'keys'>; ema?: { decay: number } };
  state: StateDict;
  optimizer: AdamW;
  ema?: StateDict;
  /** Also write checkpoint.pth in the official layout. */
  pth?: boolean;
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
  const sidecar: Sidecar = {
    format: CHECKPOINT_FORMAT,
    ...rest,
    stateFile,
    optimizer: { ...parts.sidecar.optimizer, file: stateFile, keys: 'exp_avg.<key>, exp_avg_sq.<key>' },
    ...(emaInfo && ema ? { ema: { decay: emaInfo.decay, file: stateFile } } : {}),
  };
  await writeFileAtomic(join(dir, SIDECAR), `${JSON.stringify(sidecar, null, 2)}\n`);

  const meta = modelMetadata(sidecar);
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
    'swiftformer.config': JSON.stringify(sidecar.config),
    'swiftformer.labels': JSON.stringify(sidecar.labels),
    'swiftformer.preprocessing': JSON.stringify(sidecar.preprocessing),
    epoch: String(sidecar.epoch),
  };
}

export interface LoadedCheckpoint {
  sidecar: Sidecar;
  state: StateDict;
  moments: StateDict;
  ema?: StateDict;
}

/** Reads the sidecar and the state file it names; undefined when `dir` has no checkpoint. */
export async function readCheckpoint(dir: string): Promise<LoadedCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, SIDECAR), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SwiftFormerError('IO', `cannot read ${join(dir, SIDECAR)}: ${(err as Error).message}`);
  }
  let sidecar: Sidecar;
  try {
    sidecar = JSON.parse(text) as Sidecar;
  } catch (err) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${join(dir, SIDECAR)} is not valid JSON: ${(err as Error).message}`);
  }
  if (sidecar.format !== CHECKPOINT_FORMAT) throw new SwiftFormerError('BAD_CHECKPOINT', `${join(dir, SIDECAR)} is not a ${CHECKPOINT_FORMAT} checkpoint`);
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

// ---------------------------------------------------------------- official .pth

/** timm's `param_groups_weight_decay` membership, which the official main.py's optimizer has. */
function timmNoDecay(key: string, shape: readonly number[]): boolean {
  return shape.length <= 1 || key.endsWith('.bias');
}

/**
 * The dict the official main.py saves and resumes from: `model`, `optimizer` (torch AdamW
 * state_dict with timm's two groups, so `optimizer.load_state_dict` accepts it), `lr_scheduler`
 * (timm CosineLRScheduler fields, per epoch as the official code schedules), `epoch` (the last
 * completed, 0-based: the official code resumes at epoch + 1), `model_ema`, `scaler`.
 */
export function officialPth(sidecar: Sidecar, state: StateDict, optimizer: AdamW, ema?: StateDict): Uint8Array {
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
  const lr = sidecar.optimizer.lr;
  const group = (keys: string[], weightDecay: number): PthValue => ({
    lr, betas: [...optimizer.betas], eps: optimizer.eps, weight_decay: weightDecay, amsgrad: false, foreach: null,
    maximize: false, capturable: false, differentiable: false, fused: null, params: keys.map((k) => index.get(k)!),
    initial_lr: sidecar.schedule.lr,
  });
  const epochs = sidecar.schedule.totalSteps / sidecar.schedule.stepsPerEpoch;
  const root: Record<string, PthValue> = {
    model: inModuleOrder(state),
    optimizer: { state: optState, param_groups: [group(noDecay, 0), group(decay, optimizer.weightDecay)] },
    lr_scheduler: {
      sched_epoch: sidecar.epoch - 1, t_initial: epochs, lr_min: sidecar.schedule.minLr,
      warmup_t: sidecar.schedule.warmupSteps / sidecar.schedule.stepsPerEpoch, warmup_lr_init: sidecar.schedule.warmupLr,
      base_values: [sidecar.schedule.lr], param_group_field: 'lr',
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
