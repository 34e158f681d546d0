/**
 * Optimization in plain Float32Array loops: AdamW and SGD (PyTorch's arithmetic) behind one
 * `Optimizer` interface, the weight-decay groups, gradient clipping by global norm and adaptive (unit-wise) clipping, an exponential
 * moving average of the weights, and the training targets (label smoothing, distillation).
 *
 * Nothing here allocates per element: a step over SwiftFormer-XS's 3.5 M parameters is a few
 * passes over the arrays and takes milliseconds.
 */
import { SwiftFormerError } from '../core/errors.js';
import { DEFAULTS } from './config.js';
import { Float32Arena } from './simd.js';
import { isBuffer, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.js';

// ---------------------------------------------------------------- weight-decay groups

/**
 * The official groups: timm 0.5.4's `add_weight_decay`, which the official main.py's
 * `create_optimizer(args, model)` applies (SwiftFormer defines no `no_weight_decay` list):
 * no decay for 1-d tensors (norm weights and biases, every bias) and names ending in `.bias`
 * (0-d tensors, of which SwiftFormer has none, count with the 1-d ones as in later timm);
 * everything else decays, the layer scales (stored (C,1,1)) and `attn.w_g` (D,1) included.
 * The official `.pth` (and ours, checkpoint.ts officialPth) holds exactly these two groups:
 * [0] weight_decay 0, [1] weight_decay = --weight-decay, each in named_parameters order.
 */
export function timmNoDecay(key: string, shape: readonly number[]): boolean {
  return shape.length <= 1 || key.endsWith('.bias');
}

/** A layer scale of the official model: `layer_scale` (conv encoders), `layer_scale_1` / `_2` (attention blocks). */
export function isLayerScale(key: string): boolean {
  return /(^|\.)layer_scale(_\d+)?$/.test(key);
}

/**
 * The groups this library trains with: the official ones, and the layer scales exempt as well
 * (the training recipe's choice: their (C,1,1) shape is a storage detail, they are per-channel
 * gains like the norm weights). This is the one place that difference is decided. Because
 * PyTorch's `Optimizer.load_state_dict` keeps the group membership of the optimizer the official
 * main.py builds and refuses groups of other sizes, our `.pth` lists the layer scales in the decay
 * group; the official code resuming from it therefore decays them from then on (with the saved
 * weight_decay, lr and betas of each group and the moments mapped to parameters by position).
 */
export function noWeightDecay(key: string, shape: readonly number[]): boolean {
  return timmNoDecay(key, shape) || isLayerScale(key);
}

export interface ParamGroups {
  decay: string[];
  noDecay: string[];
}

/** Splits trainable keys into the two groups (`extra`: more keys to exempt, timm's no_weight_decay list). */
export function weightDecayGroups(state: StateDict, keys: Iterable<string>, extra: Iterable<string> = []): ParamGroups {
  const exempt = new Set(extra);
  const groups: ParamGroups = { decay: [], noDecay: [] };
  for (const key of keys) {
    const t = state.get(key);
    if (!t) throw new SwiftFormerError('KEY_MISMATCH', `no parameter ${key} to optimize`);
    (exempt.has(key) || noWeightDecay(key, t.shape) ? groups.noDecay : groups.decay).push(key);
  }
  return groups;
}

// ---------------------------------------------------------------- optimizers

/** An optimizer as a TrainConfig states it (the peak lr belongs to the schedule). */
export type OptimizerConfig =
  | { kind: 'adamw'; weightDecay: number; betas: [number, number]; eps: number }
  | { kind: 'sgd'; weightDecay: number; momentum: number; nesterov: boolean };

/** What the training loop needs of an optimizer: a step at a given lr, and its state to checkpoint. */
export interface Optimizer {
  readonly kind: OptimizerConfig['kind'];
  readonly keys: readonly string[];
  readonly groups: ParamGroups;
  /** Steps taken. */
  readonly stepCount: number;
  step(grads: ReadonlyMap<string, FloatTensor>, lr: number): void;
  /** Per-parameter state as tensors under `<slot>.<key>` (views, not copies). */
  moments(): StateDict;
  /** Restores what `moments()` gave and the step count. */
  loadMoments(moments: StateDict, stepCount: number): void;
}

/** The optimizer a config names, over `keys` of `state`, with this library's weight-decay groups. */
export function createOptimizer(config: OptimizerConfig, state: StateDict, keys: Iterable<string>): Optimizer {
  if (config.kind === 'adamw') return new AdamW(state, keys, { weightDecay: config.weightDecay, betas: config.betas, eps: config.eps });
  return new Sgd(state, keys, { weightDecay: config.weightDecay, momentum: config.momentum, nesterov: config.nesterov });
}

// ---------------------------------------------------------------- AdamW

export interface AdamWOptions {
  /** Default learning rate (each `step` may pass the scheduled one). */
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay of the decay group (default 0.01, PyTorch's). */
  weightDecay?: number;
  /** Keys exempt from weight decay beyond the default rule (timm's no_weight_decay). */
  noDecay?: Iterable<string>;
  /** Use the WebAssembly SIMD kernel when available (default true). */
  simd?: boolean;
}

/**
 * torch.optim.AdamW, per parameter p with gradient g at step t (1-based), in PyTorch's order:
 *   p *= 1 - lr * wd
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * Where WebAssembly SIMD is available (Node, modern browsers) the update runs as a float32 SIMD
 * kernel, and the optimizer keeps the parameters in its WebAssembly memory: the constructor
 * replaces each optimized tensor of `state` by a view there, with the same values (so hold on to
 * the state dict, not to the old arrays). Without SIMD, or with `simd: false`, a JavaScript loop
 * updates the arrays in place (in double precision, rounded to float32 on store).
 */
export class AdamW implements Optimizer {
  readonly kind = 'adamw';
  readonly keys: string[];
  readonly groups: ParamGroups;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  /** Steps taken (PyTorch keeps one per parameter; they are always equal here). */
  stepCount = 0;
  /** First and second moments by parameter key. */
  readonly expAvg = new Map<string, Float32Array>();
  readonly expAvgSq = new Map<string, Float32Array>();
  /** The WebAssembly memory holding parameters and moments, when the SIMD kernel is used. */
  readonly arena: Float32Arena | undefined;
  private readonly decays: Map<string, boolean>;
  private readonly scratch: Float32Array | undefined;

  constructor(readonly state: StateDict, keys: Iterable<string>, options: AdamWOptions = {}) {
    this.keys = [...keys];
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new SwiftFormerError('BAD_ARGUMENT', `AdamW betas must be in [0, 1), got [${this.betas}]`);
    if (!(this.eps >= 0) || !(this.weightDecay >= 0)) throw new SwiftFormerError('BAD_ARGUMENT', `AdamW eps and weight decay must be >= 0, got ${this.eps}, ${this.weightDecay}`);
    this.groups = weightDecayGroups(state, this.keys, options.noDecay);
    const noDecay = new Set(this.groups.noDecay);
    this.decays = new Map(this.keys.map((k) => [k, !noDecay.has(k)]));
    const lengths = this.keys.map((k) => param(state, k).data.length);
    const largest = Math.max(0, ...lengths);
    this.arena = options.simd === false ? undefined : Float32Arena.create(3 * Float32Arena.floatsFor(lengths) + Float32Arena.floatsFor([largest]));
    if (this.arena) {
      for (const key of this.keys) {
        const t = param(state, key);
        const view = this.arena.alloc(t.data.length);
        view.set(t.data);
        state.set(key, { ...t, data: view });
        this.expAvg.set(key, this.arena.alloc(t.data.length));
        this.expAvgSq.set(key, this.arena.alloc(t.data.length));
      }
      this.scratch = this.arena.alloc(largest);
    } else {
      for (const [i, key] of this.keys.entries()) {
        this.expAvg.set(key, new Float32Array(lengths[i]!));
        this.expAvgSq.set(key, new Float32Array(lengths[i]!));
      }
    }
  }

  /** One update of every parameter from `grads` (missing gradients are an error). */
  step(grads: ReadonlyMap<string, FloatTensor>, lr = this.lr): void {
    if (!Number.isFinite(lr) || lr < 0) throw new SwiftFormerError('BAD_ARGUMENT', `learning rate must be a finite number >= 0, got ${lr}`);
    this.stepCount += 1;
    const [b1, b2] = this.betas;
    const t = this.stepCount;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const eps = this.eps;
    for (const key of this.keys) {
      const p = param(this.state, key).data;
      const g = grads.get(key)?.data;
      if (!g || g.length !== p.length) throw new SwiftFormerError('KEY_MISMATCH', `AdamW: no gradient of ${p.length} values for ${key}`);
      const m = this.expAvg.get(key)!;
      const v = this.expAvgSq.get(key)!;
      const keep = this.decays.get(key) ? 1 - lr * this.weightDecay : 1;
      if (this.arena) {
        if (p.buffer !== this.arena.memory.buffer) throw new SwiftFormerError('BAD_ARGUMENT', `AdamW: parameter ${key} was replaced after the optimizer took it over`);
        this.scratch!.set(g);
        this.arena.adamw(p, this.scratch!, m, v, { b1, c1: 1 - b1, b2, c2: 1 - b2, keep, negStep: -stepSize, bc2Sqrt, eps });
        continue;
      }
      const c1 = 1 - b1;
      const c2 = 1 - b2;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = m[i]! * b1 + gi * c1);
        const vi = (v[i] = v[i]! * b2 + c2 * gi * gi);
        p[i] = p[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
      }
    }
  }

  /** Moments as tensors under `exp_avg.<key>` / `exp_avg_sq.<key>` (views, not copies). */
  moments(): StateDict {
    return slotTensors(this.state, this.keys, [['exp_avg', this.expAvg], ['exp_avg_sq', this.expAvgSq]]);
  }

  /** Restores moments saved by `moments()` and the step count. */
  loadMoments(moments: StateDict, stepCount: number): void {
    loadSlots(moments, this.keys, [['exp_avg', this.expAvg], ['exp_avg_sq', this.expAvgSq]]);
    this.stepCount = stepCount;
  }
}

/** Per-parameter state of `keys` as `<slot>.<key>` tensors (views). */
function slotTensors(state: StateDict, keys: readonly string[], slots: readonly (readonly [string, Map<string, Float32Array>])[]): StateDict {
  const out: StateDict = new Map();
  for (const key of keys) {
    const shape = param(state, key).shape;
    for (const [slot, arrays] of slots) out.set(`${slot}.${key}`, { dtype: 'float32', shape, data: arrays.get(key)! });
  }
  return out;
}

/** Copies saved `<slot>.<key>` tensors into the optimizer's arrays; a missing or misfit one is BAD_CHECKPOINT. */
function loadSlots(saved: StateDict, keys: readonly string[], slots: readonly (readonly [string, Map<string, Float32Array>])[]): void {
  for (const key of keys) {
    for (const [slot, target] of slots) {
      const t = saved.get(`${slot}.${key}`);
      const into = target.get(key)!;
      if (!t || t.dtype !== 'float32' || t.data.length !== into.length) {
        throw new SwiftFormerError('BAD_CHECKPOINT', `optimizer state has no ${slot} of ${into.length} values for ${key}`);
      }
      into.set(t.data);
    }
  }
}

// ---------------------------------------------------------------- SGD

export interface SgdOptions {
  /** Momentum (default 0.9, the detection recipes'; 0: plain SGD). */
  momentum?: number;
  nesterov?: boolean;
  /** Weight decay of the decay group, added to the gradient (PyTorch's coupled form). Default 0. */
  weightDecay?: number;
  /** Keys exempt from weight decay beyond the default rule. */
  noDecay?: Iterable<string>;
}

/**
 * torch.optim.SGD (dampening 0), per parameter p with gradient g at step t (1-based):
 *   d = g + wd p;  buf = d at t = 1, else momentum buf + d;  d = nesterov ? d + momentum buf : buf
 *   p -= lr d
 * in a JavaScript loop (double precision, rounded to float32 on store).
 */
export class Sgd implements Optimizer {
  readonly kind = 'sgd';
  readonly keys: string[];
  readonly groups: ParamGroups;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  stepCount = 0;
  readonly momentumBuffer = new Map<string, Float32Array>();
  private readonly decays: Map<string, boolean>;

  constructor(readonly state: StateDict, keys: Iterable<string>, options: SgdOptions = {}) {
    this.keys = [...keys];
    this.momentum = options.momentum ?? 0.9;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    if (!(this.momentum >= 0 && this.momentum < 1)) throw new SwiftFormerError('BAD_ARGUMENT', `SGD momentum must be in [0, 1), got ${this.momentum}`);
    if (!(this.weightDecay >= 0)) throw new SwiftFormerError('BAD_ARGUMENT', `SGD weight decay must be >= 0, got ${this.weightDecay}`);
    if (this.nesterov && this.momentum === 0) throw new SwiftFormerError('BAD_ARGUMENT', 'Nesterov momentum needs a momentum > 0');
    this.groups = weightDecayGroups(state, this.keys, options.noDecay);
    const noDecay = new Set(this.groups.noDecay);
    this.decays = new Map(this.keys.map((k) => [k, !noDecay.has(k)]));
    if (this.momentum > 0) for (const key of this.keys) this.momentumBuffer.set(key, new Float32Array(param(state, key).data.length));
  }

  step(grads: ReadonlyMap<string, FloatTensor>, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new SwiftFormerError('BAD_ARGUMENT', `learning rate must be a finite number >= 0, got ${lr}`);
    this.stepCount += 1;
    const { momentum, nesterov } = this;
    const first = this.stepCount === 1;
    for (const key of this.keys) {
      const p = param(this.state, key).data;
      const g = grads.get(key)?.data;
      if (!g || g.length !== p.length) throw new SwiftFormerError('KEY_MISMATCH', `SGD: no gradient of ${p.length} values for ${key}`);
      const wd = this.decays.get(key) ? this.weightDecay : 0;
      const buf = this.momentumBuffer.get(key);
      for (let i = 0; i < p.length; i++) {
        let d = g[i]! + wd * p[i]!;
        if (buf) {
          const b = (buf[i] = first ? d : momentum * buf[i]! + d);
          d = nesterov ? d + momentum * b : b;
        }
        p[i] = p[i]! - lr * d;
      }
    }
  }

  /** The momentum buffers under `momentum_buffer.<key>` (none without momentum). */
  moments(): StateDict {
    return slotTensors(this.state, this.momentum > 0 ? this.keys : [], [['momentum_buffer', this.momentumBuffer]]);
  }

  loadMoments(moments: StateDict, stepCount: number): void {
    loadSlots(moments, this.momentum > 0 ? this.keys : [], [['momentum_buffer', this.momentumBuffer]]);
    this.stepCount = stepCount;
  }
}

function param(state: StateDict, key: string): FloatTensor {
  const t = state.get(key);
  if (!t || t.dtype !== 'float32') throw new SwiftFormerError('KEY_MISMATCH', `no float32 parameter ${key}`);
  return t;
}

// ---------------------------------------------------------------- gradient clipping

/** L2 norm over every gradient, as one vector. */
export function globalGradNorm(grads: ReadonlyMap<string, FloatTensor>, keys: Iterable<string> = grads.keys()): number {
  let sum = 0;
  for (const key of keys) {
    const g = grads.get(key)?.data;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  }
  return Math.sqrt(sum);
}

/**
 * torch.nn.utils.clip_grad_norm_: scales every gradient by min(1, maxNorm / (norm + 1e-6)).
 * Returns the norm before clipping (NaN/inf pass through, so the caller can stop).
 */
export function clipGradNorm(grads: ReadonlyMap<string, FloatTensor>, maxNorm: number, keys: Iterable<string> = grads.keys()): number {
  const list = [...keys];
  const norm = globalGradNorm(grads, list);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const key of list) {
      const g = grads.get(key)?.data;
      if (!g) continue;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
    }
  }
  return norm;
}

/**
 * timm's `adaptive_clip_grad` (AGC, Brock et al. 2021), unit-wise: for each output unit (the first
 * axis; the whole tensor when it has at most one axis), a gradient whose norm exceeds
 * clipFactor * max(|w_unit|, eps) is scaled down to it: g * max_norm / max(|g_unit|, 1e-6).
 */
export function adaptiveClipGrad(
  state: StateDict, grads: ReadonlyMap<string, FloatTensor>, clipFactor = 0.01, eps = 1e-3, keys: Iterable<string> = grads.keys(),
): void {
  for (const key of keys) {
    const g = grads.get(key)?.data;
    if (!g) continue;
    const p = param(state, key);
    const units = p.shape.length <= 1 ? 1 : p.shape[0]!;
    const size = p.data.length / units;
    for (let u = 0; u < units; u++) {
      let pSum = 0;
      let gSum = 0;
      const end = (u + 1) * size;
      for (let i = u * size; i < end; i++) {
        pSum += p.data[i]! * p.data[i]!;
        gSum += g[i]! * g[i]!;
      }
      const maxNorm = Math.max(Math.sqrt(pSum), eps) * clipFactor;
      const gNorm = Math.sqrt(gSum);
      if (gNorm < maxNorm) continue;
      const scale = maxNorm / Math.max(gNorm, 1e-6);
      for (let i = u * size; i < end; i++) g[i] = g[i]! * scale;
    }
  }
}

// ---------------------------------------------------------------- EMA

/**
 * Exponential moving average of the weights, timm's ModelEmaV3 semantics: every float tensor,
 * BatchNorm running statistics included (so that they match the averaged weights), follows
 * ema = d ema + (1 - d) w; integer buffers are copied. With `warmup` the decay starts low,
 * d_t = min(decay, (1 + t) / (10 + t)), so that a short run's average is not dominated by the
 * random initialization.
 */
export class ModelEma {
  readonly state: StateDict;

  constructor(model: StateDict, readonly decay = DEFAULTS.emaDecay, readonly warmup = true, public updates = 0) {
    if (!(decay >= 0 && decay <= 1)) throw new SwiftFormerError('BAD_ARGUMENT', `EMA decay must be in [0, 1], got ${decay}`);
    this.state = cloneState(model);
  }

  /** The decay the next update applies. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.updates) / (10 + this.updates)) : this.decay;
  }

  update(model: StateDict): void {
    const d = this.currentDecay();
    this.updates++;
    // Buffers the model gained since (num_batches_tracked after its first train step) are copied in.
    for (const [key, t] of model) if (isBuffer(key) && !this.state.has(key)) this.state.set(key, { ...t, shape: [...t.shape], data: t.data.slice() } as Tensor);
    for (const [key, ema] of this.state) {
      const m = model.get(key);
      if (!m || m.data.length !== ema.data.length) throw new SwiftFormerError('KEY_MISMATCH', `EMA: model has no ${key} of ${ema.data.length} values`);
      if (ema.dtype !== 'float32' || m.dtype !== 'float32') {
        (ema.data as Float32Array | BigInt64Array).set(m.data as never);
        continue;
      }
      const e = ema.data;
      const src = m.data;
      for (let i = 0; i < e.length; i++) e[i] = d * e[i]! + (1 - d) * src[i]!;
    }
  }
}

/** A deep copy (own arrays) of a state dict. */
export function cloneState(state: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [key, t] of state) out.set(key, { ...t, shape: [...t.shape], data: t.data.slice() } as Tensor);
  return out;
}
