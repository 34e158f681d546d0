/**
 * The training step as one ONNX graph: the train-mode forward pass, the loss, and the gradient of
 * the loss with respect to every trainable parameter (graph/grad.ts), plus each BatchNorm's batch
 * statistics. ONNX Runtime runs it; the optimizer and running statistics live in JS.
 */
import { SwiftFormerError } from '../core/errors.js';
import { DEFAULTS } from './config.js';
import { backward } from '../graph/grad.js';
import { GraphBuilder, toOnnx, type BatchStat, type Graph } from '../graph/graph.js';
import type { Layout } from '../graph/layout.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import { emitSwiftFormer, type SwiftFormerConfig } from '../models/swiftformer.js';
import { emitVit, type VitConfig } from '../models/vit.js';
import { isBuffer, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.js';

export interface StepGraphOptions {
  batch: number;
  inputSize: number | [number, number];
  /** Train `dist_head` too, on targets `dist_targets` (hard or soft distillation). */
  distill?: boolean;
  /** Weight of the distillation loss when `distill` (DeiT: 0.5). */
  distillWeight?: number;
  /** Feature-map layout of the train graph (default 'cnhw', see layout.ts). */
  layout?: Layout;
}

export interface StepGraph {
  graph: Graph;
  /** Trainable parameters, in graph order; gradients come out as `grad:<name>`. */
  params: string[];
  batchStats: BatchStat[];
}

/** Mean over the batch of -sum_k targets_k log softmax(logits)_k. logits, targets: (N,K) -> scalar. */
export function crossEntropy(b: GraphBuilder, logits: string, targets: string): string {
  const [n] = b.shape(logits) as number[];
  const logProbs = b.node('LogSoftmax', [logits], b.shape(logits), { axis: { kind: 'int', value: 1 } });
  const total = b.reduce('ReduceSum', b.binary('Mul', targets, logProbs), [0, 1], false);
  return b.binary('Mul', total, b.constant([-1 / n!]));
}

/**
 * Inputs: `pixel_values` (N,3,H,W), `targets` (N,K) class probabilities (one-hot, smoothed or
 * mixed), with `distill` also `dist_targets` (N,K); every trainable parameter by its key.
 * Outputs: `loss`, `logits`, gradients, batch statistics (`<bn key>:mean`, `<bn key>:var`).
 */
export function buildStepGraph(cfg: SwiftFormerConfig, options: StepGraphOptions): StepGraph {
  const graph = emitSwiftFormer(cfg, { mode: 'train', batch: options.batch, inputSize: options.inputSize, ...(options.layout ? { layout: options.layout } : {}) });
  const b = new GraphBuilder(graph, 'loss/');
  const k = cfg.numClasses;
  let loss = crossEntropy(b, 'logits', b.input('targets', [options.batch, k]));
  if (options.distill && cfg.distillation) {
    const weight = options.distillWeight ?? DEFAULTS.distillWeight;
    const distLoss = crossEntropy(b, 'dist_logits', b.input('dist_targets', [options.batch, k]));
    loss = b.binary('Add', b.binary('Mul', loss, b.constant([1 - weight])), b.binary('Mul', distLoss, b.constant([weight])));
  }
  if (!options.distill) graph.outputs = graph.outputs.filter((o) => o.name !== 'dist_logits');
  return finishStepGraph(b, loss);
}

/**
 * Completes a train-mode forward graph into a step: `loss` (the value given) as an output, every
 * BatchNorm's batch statistics as outputs `<key>:mean` / `<key>:var`, and the gradient of the loss
 * with respect to every trainable parameter.
 */
export function finishStepGraph(b: GraphBuilder, loss: string, differentiated = loss): StepGraph {
  const { graph } = b;
  b.node('Identity', [loss], [], {}, 'loss');
  b.output('loss');
  for (const stat of graph.batchStats) {
    b.output(b.node('Identity', [stat.mean], b.shape(stat.mean), {}, `${stat.key}:mean`));
    b.output(b.node('Identity', [stat.variance], b.shape(stat.variance), {}, `${stat.key}:var`));
  }
  const used = new Set(graph.nodes.flatMap((n) => n.inputs));
  const params = [...graph.params.keys()].filter((key) => !isBuffer(key) && (used.has(key) || key.endsWith('.w_g')));
  backward(graph, differentiated === loss ? 'loss' : differentiated, params);
  return { graph, params, batchStats: graph.batchStats };
}

/**
 * The training step as one graph, as `buildStepGraph` does for SwiftFormer: inputs
 * `pixel_values`, `targets` (N,K) and every parameter; outputs `loss`, `logits`, `grad:<key>`.
 */
export function buildVitStepGraph(cfg: VitConfig, options: { batch: number; inputSize?: number | [number, number]; layout?: Layout }): StepGraph {
  const graph = emitVit(cfg, { mode: 'train', batch: options.batch, ...(options.inputSize ? { inputSize: options.inputSize } : {}), ...(options.layout ? { layout: options.layout } : {}) });
  if (cfg.numClasses === 0) throw new SwiftFormerError('BAD_ARGUMENT', 'a training step needs a classifier (numClasses > 0)');
  const b = new GraphBuilder(graph, 'loss/');
  const loss = crossEntropy(b, 'logits', b.input('targets', [options.batch, cfg.numClasses]));
  b.node('Identity', [loss], [], {}, 'loss');
  b.output('loss');
  const params = [...graph.params.keys()];
  backward(graph, 'loss', params);
  return { graph, params, batchStats: [] };
}


export function stepOnnx(step: StepGraph): Uint8Array {
  return toOnnx(step.graph, {}, { paramsAsInputs: true });
}

export interface StepResult {
  loss: number;
  /** Train-mode logits of `head` (N,K). */
  logits: FloatTensor;
  grads: Map<string, FloatTensor>;
  /** Per BatchNorm key: batch mean and biased variance, and how many values each averaged. */
  stats: Map<string, { mean: Float32Array; variance: Float32Array; count: number }>;
}

/** A compiled training step: feed parameters and a batch, get loss, gradients, batch statistics. */
export class TrainStep {
  private constructor(readonly step: StepGraph, private readonly session: Session, readonly options: StepGraphOptions) {}

  static async create(cfg: SwiftFormerConfig, options: StepGraphOptions, session: SessionOptions = {}, backend?: string): Promise<TrainStep> {
    const step = buildStepGraph(cfg, options);
    return new TrainStep(step, await getBackend(backend).createSession(stepOnnx(step), session), options);
  }

  async run(state: StateDict, pixels: FloatTensor, targets: FloatTensor, distTargets?: FloatTensor): Promise<StepResult> {
    const feeds: Record<string, FloatTensor> = { pixel_values: pixels, targets };
    if (distTargets) feeds.dist_targets = distTargets;
    return runStep(this.session, this.step, state, feeds, 'logits');
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** `feeds` with every other input of a session taken from `state` (its parameters); one missing is KEY_MISMATCH naming `what` and it. */
export function withParameters<T extends Tensor>(inputNames: readonly string[], state: StateDict, feeds: Record<string, T>, what: string): Record<string, T | FloatTensor> {
  const all: Record<string, T | FloatTensor> = { ...feeds };
  for (const name of inputNames) {
    if (all[name]) continue;
    const t = state.get(name);
    if (!t || t.dtype !== 'float32') throw new SwiftFormerError('KEY_MISMATCH', `${what} needs parameter ${name}`);
    all[name] = t;
  }
  return all;
}

/** Runs a step session: `feeds` plus every parameter from `state`; `logits` names the logits output. */
export async function runStep(session: Session, step: StepGraph, state: StateDict, feeds: Record<string, FloatTensor>, logits: string): Promise<StepResult> {
  const out = await session.run(withParameters(session.inputNames, state, feeds, 'training step'));
  const grads = new Map<string, FloatTensor>();
  for (const p of step.params) grads.set(p, out[`grad:${p}`]!);
  const stats = new Map(step.batchStats.map((s) => [s.key, { mean: out[`${s.key}:mean`]!.data, variance: out[`${s.key}:var`]!.data, count: s.count }]));
  return { loss: out.loss!.data[0]!, logits: out[logits]!, grads, stats };
}

/**
 * PyTorch's BatchNorm bookkeeping after a train-mode forward: running = (1 - m) running + m batch,
 * with the unbiased batch variance; num_batches_tracked + 1. Updates `state` in place.
 */
export function updateRunningStats(state: StateDict, stats: StepResult['stats'], momentum = 0.1): void {
  for (const [key, s] of stats) {
    const mean = state.get(`${key}.running_mean`)!.data as Float32Array;
    const variance = state.get(`${key}.running_var`)!.data as Float32Array;
    const unbias = s.count / Math.max(1, s.count - 1);
    for (let c = 0; c < mean.length; c++) {
      mean[c] = (1 - momentum) * mean[c]! + momentum * s.mean[c]!;
      variance[c] = (1 - momentum) * variance[c]! + momentum * s.variance[c]! * unbias;
    }
    const tracked = state.get(`${key}.num_batches_tracked`);
    if (tracked?.dtype === 'int64') tracked.data[0]! += 1n;
    else state.set(`${key}.num_batches_tracked`, { dtype: 'int64', shape: [], data: BigInt64Array.of(1n) });
  }
}
