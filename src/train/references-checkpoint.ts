/**
 * torchvision references/detection's checkpoint.pth, both ways: what `train.py` saves each epoch
 * and reads back with `--resume` (`model.load_state_dict`, `optimizer.load_state_dict`,
 * `lr_scheduler.load_state_dict`, `args.start_epoch = epoch + 1`):
 *
 *   model         the state dict, torchvision keys, in the order torch's state_dict lists them
 *   optimizer     torch 1.13's AdamW / SGD `state_dict()`: `state` keyed by parameter index,
 *                 one param group (train.py builds one without --norm-weight-decay)
 *   lr_scheduler  torch 1.13's MultiStepLR `state_dict()` (its milestones a collections.Counter)
 *   args          the run's settings under train.py's names (a plain dict where train.py pickles
 *                 an argparse.Namespace), plus `min_size`, `max_size`, `attention`
 *   epoch         the last completed epoch, 0-based
 *
 * torch's optimizer state names parameters by their position in the optimizer's list, which is
 * train.py's `[p for p in model.parameters() if p.requires_grad]`: every parameter of this Mask
 * R-CNN, in module registration order, i.e. the state_dict's order without the BatchNorm buffers.
 * Ours is `moduleOrder` of the state's keys (torchvision's state_dict order); reading, the order is
 * the checkpoint's own `model` entry.
 *
 * The warm-up of train.py is a LinearLR of epoch 0 that is not saved: a checkpoint written after
 * epoch 0 continues without one on either side, at the lr each group holds.
 */
import { SwiftFormerError } from '../core/errors.js';
import { isBuffer, type StateDict, type Tensor } from '../core/tensor.js';
import { renamedDetectionState, type MaskRcnnConfig } from '../models/maskrcnn.js';
import { PthCounter, selectStateDict, writePth, type PthValue } from '../weights/pth.js';
import type { DataSource } from './checkpoint.js';
import { moduleOrder } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { Optimizer, OptimizerConfig } from './optim.js';
import { lrAt, type LrSchedule } from './schedule.js';

/** The optimizer and the schedule a checkpoint's `optimizer` and `lr_scheduler` come from. */
export interface ReferencesTraining {
  optimizer: Optimizer;
  schedule: LrSchedule;
  stepsPerEpoch: number;
}

/** torch's `model.parameters()` order: the state_dict's order without the BatchNorm buffers. */
export function torchParameterOrder(keys: Iterable<string>): string[] {
  return moduleOrder(keys).filter((k) => !isBuffer(k));
}

const scalar = (v: number): Tensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });

/** The one param group as torch 1.13 keeps it (its keys in torch's order; `initial_lr` set by the scheduler). */
function paramGroup(config: OptimizerConfig, lr: number, initialLr: number, count: number): Record<string, PthValue> {
  const head: Record<string, PthValue> = config.kind === 'adamw'
    ? { lr, betas: [...config.betas], eps: config.eps, weight_decay: config.weightDecay, amsgrad: false, foreach: null, maximize: false, capturable: false }
    : { lr, momentum: config.momentum, dampening: 0, weight_decay: config.weightDecay, nesterov: config.nesterov, maximize: false, foreach: null, differentiable: false };
  return { ...head, initial_lr: initialLr, params: [...Array(count).keys()] };
}

/** torch's `optimizer.state_dict()` of our optimizer over `params` (torch's parameter order). */
function optimizerStateDict(optimizer: Optimizer, config: OptimizerConfig, params: readonly string[], lr: number, initialLr: number): PthValue {
  if (optimizer.groups.noDecay.length > 0) {
    throw new SwiftFormerError('UNSUPPORTED', `references/detection's train.py decays every parameter in one group; this run exempts ${optimizer.groups.noDecay.length} parameters`);
  }
  const trained = new Set(optimizer.keys);
  const moments = optimizer.moments();
  const state = new Map<number, PthValue>();
  params.forEach((key, i) => {
    if (!trained.has(key)) return; // torch keeps no state for a parameter that never had a gradient
    state.set(i, optimizer.kind === 'adamw'
      ? { step: scalar(optimizer.stepCount), exp_avg: moments.get(`exp_avg.${key}`)!, exp_avg_sq: moments.get(`exp_avg_sq.${key}`)! }
      : { momentum_buffer: moments.get(`momentum_buffer.${key}`) ?? null });
  });
  return { state, param_groups: [paramGroup(config, lr, initialLr, params.length)] };
}

/** torch's MultiStepLR `state_dict()` after `epochs` calls of `step()` (one per epoch, as train.py does). */
function multiStepState(schedule: LrSchedule, stepsPerEpoch: number, epochs: number, lr: number): PthValue {
  const milestones = schedule.kind === 'steps' ? schedule.milestones.map((m) => m / stepsPerEpoch) : [];
  const counts = new Map<number, number>();
  for (const m of milestones) counts.set(m, (counts.get(m) ?? 0) + 1);
  return {
    milestones: new PthCounter(counts), gamma: schedule.kind === 'steps' ? schedule.gamma : 1, base_lrs: [schedule.lr],
    last_epoch: epochs, verbose: false, _step_count: epochs + 1, _get_lr_called_within_step: false, _last_lr: [lr],
  };
}

/**
 * The dict references/detection's train.py saves (see the module comment), after `epochs`
 * completed epochs. With `training`, `optimizer` and `lr_scheduler` too, so that train.py's
 * --resume continues the run: each group's lr is the one our next step takes.
 */
export function referencesCheckpoint(state: StateDict, config: MaskRcnnConfig, run: TrainConfig, epochs: number, data?: DataSource, training?: ReferencesTraining): Uint8Array {
  const d = run.detection!;
  const opt = run.optimizer;
  const schedule = run.schedule.kind === 'steps' ? run.schedule : undefined;
  const args: Record<string, string | number | number[]> = {
    model: 'maskrcnn_swiftformer', dataset: 'coco', ...(data ? { data_path: data.source } : {}),
    opt: opt.kind, lr: run.lr, weight_decay: opt.weightDecay, ...(opt.kind === 'sgd' ? { momentum: opt.momentum } : {}),
    lr_scheduler: 'multisteplr', lr_steps: [...(schedule?.milestones ?? [])], lr_gamma: schedule?.gamma ?? 1,
    epochs: run.epochs, batch_size: run.batchSize, start_epoch: epochs,
    min_size: [...d.minSizes], max_size: d.maxSize, attention: config.backbone.attention,
  };
  const root: Record<string, PthValue> = { model: new Map(moduleOrder(state.keys()).map((k) => [k, state.get(k)!])) };
  if (training) {
    const lr = lrAt(training.schedule, epochs * training.stepsPerEpoch);
    root.optimizer = optimizerStateDict(training.optimizer, opt, torchParameterOrder(state.keys()), lr, training.schedule.lr);
    root.lr_scheduler = multiStepState(training.schedule, training.stepsPerEpoch, epochs, lr);
  }
  return writePth({ ...root, args, epoch: epochs - 1 }, { folder: 'checkpoint' });
}

// ---------------------------------------------------------------- reading train.py's checkpoint

/** What a run continued from a references checkpoint takes: the model, the optimizer's state and hyperparameters, the schedule, the epoch. */
export interface ReferencesResume {
  /** The `model` entry as saved (DetectionModel reads it). */
  model: StateDict;
  /** Completed epochs (the checkpoint's `epoch` + 1). */
  epochs: number;
  optimizer: OptimizerConfig;
  /** The schedule's base lr (`initial_lr`) and the lr the next step takes (the group's `lr`). */
  initialLr: number;
  lr: number;
  /** Steps torch's optimizer took (AdamW's `step`; for SGD, unknown: undefined). */
  stepCount?: number;
  /** `exp_avg.<key>` / `exp_avg_sq.<key>` or `momentum_buffer.<key>`, under our keys. */
  moments: StateDict;
  /** MultiStepLR's milestones (epochs) and gamma. */
  milestones: number[];
  gamma: number;
  /** train.py's args (an argparse.Namespace, or our plain dict). */
  args: Record<string, unknown>;
}

function field(map: unknown, key: string, what: string): unknown {
  if (!(map instanceof Map) || !map.has(key)) throw new SwiftFormerError('BAD_CHECKPOINT', `${what} has no '${key}'`);
  return map.get(key);
}

function num(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new SwiftFormerError('BAD_CHECKPOINT', `${what} is not a number`);
  return value;
}

/** The hyperparameters of the one param group; what this library's optimizers cannot do is UNSUPPORTED. */
function groupConfig(group: Map<unknown, unknown>, name: string): OptimizerConfig {
  const unsupported = (why: string) => new SwiftFormerError('UNSUPPORTED', `${name}: ${why}`);
  const at = (k: string) => field(group, k, `${name} optimizer.param_groups[0]`);
  for (const flag of ['amsgrad', 'maximize']) if (group.get(flag) === true) throw unsupported(`the optimizer uses ${flag}`);
  const weightDecay = num(at('weight_decay'), `${name} weight_decay`);
  if (group.has('betas')) {
    const betas = at('betas');
    if (!Array.isArray(betas) || betas.length !== 2) throw new SwiftFormerError('BAD_CHECKPOINT', `${name}: betas is not a pair`);
    return { kind: 'adamw', weightDecay, betas: [num(betas[0], `${name} betas`), num(betas[1], `${name} betas`)], eps: num(at('eps'), `${name} eps`), decayAll: true };
  }
  if (group.has('momentum')) {
    if ((group.get('dampening') ?? 0) !== 0) throw unsupported('SGD dampening is not 0');
    return { kind: 'sgd', weightDecay, momentum: num(at('momentum'), `${name} momentum`), nesterov: group.get('nesterov') === true, decayAll: true };
  }
  throw unsupported(`the optimizer is neither AdamW nor SGD (its group has ${[...group.keys()].join(', ')})`);
}

/** torch's per-parameter state, under our keys: the moments and the (common) step count. */
function parameterState(optimizer: unknown, params: readonly string[], kind: OptimizerConfig['kind'], name: string): { moments: StateDict; stepCount?: number } {
  const bad = (why: string) => new SwiftFormerError('BAD_CHECKPOINT', `${name}: ${why}`);
  const state = field(optimizer, 'state', `${name} optimizer`);
  if (!(state instanceof Map)) throw bad('optimizer.state is not a dict');
  const moments: StateDict = new Map();
  let stepCount: number | undefined;
  for (const [index, entry] of state) {
    const key = typeof index === 'number' ? params[index] : undefined;
    if (key === undefined) throw bad(`optimizer.state names parameter ${String(index)}, the model has ${params.length}`);
    const slots = kind === 'adamw' ? ['exp_avg', 'exp_avg_sq'] : ['momentum_buffer'];
    for (const slot of slots) {
      const t = field(entry, slot, `${name} optimizer.state[${index}]`);
      if (t === null) continue; // SGD without momentum
      if (!(typeof t === 'object' && (t as Tensor).dtype === 'float32')) throw bad(`optimizer.state[${index}].${slot} is not a float tensor`);
      moments.set(`${slot}.${key}`, t as Tensor);
    }
    if (kind === 'adamw') {
      const step = field(entry, 'step', `${name} optimizer.state[${index}]`);
      const n = typeof step === 'number' ? step : (step as Tensor | null)?.dtype === 'float32' && (step as Tensor).data.length === 1 ? Number((step as Tensor).data[0]) : NaN;
      if (!Number.isInteger(n) || n < 0) throw bad(`optimizer.state[${index}].step is not a step count`);
      if (stepCount !== undefined && n !== stepCount) throw new SwiftFormerError('UNSUPPORTED', `${name}: parameters have taken different numbers of steps (${stepCount} and ${n}); this library steps them together`);
      stepCount = n;
    }
  }
  return { moments, ...(stepCount !== undefined ? { stepCount } : {}) };
}

/** MultiStepLR's milestones and gamma, checked to be at the epoch the checkpoint says. */
function schedulerState(scheduler: unknown, epochs: number, name: string): { milestones: number[]; gamma: number } {
  const what = `${name} lr_scheduler`;
  if (!(scheduler instanceof Map) || !scheduler.has('milestones')) {
    throw new SwiftFormerError('UNSUPPORTED', `${what} is not a MultiStepLR (train.py --lr-scheduler multisteplr), the schedule this library continues`);
  }
  const counts = scheduler.get('milestones');
  if (!(counts instanceof Map)) throw new SwiftFormerError('BAD_CHECKPOINT', `${what}.milestones is not a Counter`);
  const milestones: number[] = [];
  for (const [m, count] of counts) {
    if (!Number.isInteger(m) || (m as number) < 1) throw new SwiftFormerError('BAD_CHECKPOINT', `${what}.milestones holds ${String(m)}, not an epoch`);
    if (count !== 1) throw new SwiftFormerError('UNSUPPORTED', `${what}: milestone ${m} is counted ${String(count)} times`);
    milestones.push(m as number);
  }
  const lastEpoch = num(field(scheduler, 'last_epoch', what), `${what}.last_epoch`);
  if (lastEpoch !== epochs) throw new SwiftFormerError('BAD_CHECKPOINT', `${what}.last_epoch is ${lastEpoch}, but the checkpoint completed ${epochs} epochs (train.py steps it once per epoch)`);
  return { milestones: milestones.sort((a, b) => a - b), gamma: num(field(scheduler, 'gamma', what), `${what}.gamma`) };
}

/** A references/detection checkpoint.pth (already read by readPth) as a run to continue; `name` for messages. */
export function readReferencesCheckpoint(root: unknown, name: string): ReferencesResume {
  const model = selectStateDict(root, 'model');
  if (!(root instanceof Map) || !root.has('optimizer') || !root.has('lr_scheduler')) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${name} holds no optimizer or lr_scheduler state to resume: start from its weights with --finetune instead`);
  }
  const epoch = field(root, 'epoch', name);
  if (!Number.isInteger(epoch) || (epoch as number) < 0) throw new SwiftFormerError('BAD_CHECKPOINT', `${name}: epoch ${String(epoch)} is not a completed epoch`);
  const epochs = (epoch as number) + 1;
  const optimizer = root.get('optimizer');
  const groups = field(optimizer, 'param_groups', `${name} optimizer`);
  if (!Array.isArray(groups) || groups.length !== 1 || !(groups[0] instanceof Map)) {
    throw new SwiftFormerError('UNSUPPORTED', `${name}: the optimizer has ${Array.isArray(groups) ? groups.length : 'no'} parameter groups; train.py without --norm-weight-decay has one`);
  }
  const group = groups[0] as Map<unknown, unknown>;
  const params = [...renamedDetectionState(model).keys()].filter((k) => !isBuffer(k));
  const ids = field(group, 'params', `${name} optimizer.param_groups[0]`);
  if (!Array.isArray(ids) || ids.length !== params.length || ids.some((id, i) => id !== i)) {
    throw new SwiftFormerError('UNSUPPORTED', `${name}: the optimizer holds ${Array.isArray(ids) ? ids.length : 'no'} parameters, not the model's ${params.length} in order (were some frozen?)`);
  }
  const config = groupConfig(group, name);
  const { moments, stepCount } = parameterState(optimizer, params, config.kind, name);
  const args = root.get('args');
  return {
    model, epochs, optimizer: config, moments, ...(stepCount !== undefined ? { stepCount } : {}),
    initialLr: num(field(group, 'initial_lr', `${name} optimizer.param_groups[0]`), `${name} initial_lr`), lr: num(field(group, 'lr', `${name} optimizer.param_groups[0]`), `${name} lr`),
    ...schedulerState(root.get('lr_scheduler'), epochs, name),
    args: args instanceof Map ? Object.fromEntries(args) : typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {},
  };
}
