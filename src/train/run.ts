/**
 * The task-independent half of training, in four stages:
 *
 *   planRun    the TrainConfig (a new run's, or the stored one plus what may change), the output
 *              directory, the checkpoint to restore, the schedule in steps (planned again, and
 *              recorded, when a resumed run changes its length)
 *   runEpochs  for each epoch: runEpoch (the task's steps; per step the NaN/inf stop, clipping,
 *              the optimizer at the scheduled lr, the EMA, progress), then the task's evaluation,
 *              the good-epoch check (finite weights and evaluation losses, or no checkpoint), and
 *              saveEpoch (atomic checkpoint, metrics.jsonl, chart.svg)
 *
 * Extension point. A task is a `TaskRun`: its trainable state and parameter keys, the steps of
 * an epoch (each a loss, its named parts, the gradients, a sample count, and a `commit` for what
 * a step changes besides the parameters, such as BatchNorm statistics) and an evaluation that
 * returns a loss and named metrics. Classification (trainer.ts) is one. Semantic FPN
 * segmentation (per-pixel cross-entropy, AdamW 2e-4, `schedule: { kind: 'poly' }`, 512 crops)
 * and Mask R-CNN detection (SGD or AdamW, `schedule: { kind: 'steps', milestones: [8, 11] }`
 * with warm-up, its five losses as `parts`) are each a TaskRun with their own step graph, loader
 * and evaluation, and a `task` and settings section of their own in the TrainConfig. A run
 * counted in iterations (mmseg's 40k) states its length as `epochs` rounds of evaluation and
 * checkpointing, each of `iterations / epochs` steps. Optimizer, schedule, clipping and EMA come
 * from the TrainConfig; progress, the stop, exact resume, checkpoints, metrics and the chart from
 * here.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor, StateDict } from '../core/tensor.js';
import { makeDirectory, writeFileAtomic } from '../node/files.js';
import type { FitReport } from '../models/fit.js';
import type { SwiftFormerConfig } from '../models/swiftformer.js';
import { trainingChart } from './chart.js';
import {
  officialPthUnsupported, readCheckpoint, writeCheckpoint, type DataSource, type EpochMetrics, type LoadedCheckpoint, type Sidecar, type TrainedModelConfig,
} from './checkpoint.js';
import { freshConfig, resumedConfig, type RequestedConfig, type TrainConfig, type TrainTask } from './config.js';
import { ModelEma, adaptiveClipGrad, clipGradNorm, createOptimizer, globalGradNorm, type Optimizer } from './optim.js';
import { lrAt, planSchedule, type LrSchedule } from './schedule.js';

// ---------------------------------------------------------------- what a task supplies

/** One optimizer step's worth of a task's work, done before the loop updates the parameters. */
export interface StepOutput {
  /** Position of the step in its epoch (0-based). */
  index: number;
  /** The loss the gradients are of. */
  loss: number;
  /** Named parts of the loss (Mask R-CNN's five): shown in progress, averaged into `train_<name>`. */
  parts?: Record<string, number>;
  grads: ReadonlyMap<string, FloatTensor>;
  /** Samples (images) in the step, for the averages and img/s. */
  samples: number;
  /** Correctly classified samples, for the training accuracy (tasks that have one). */
  correct?: number;
  /** Milliseconds the task spent, by phase (`data`, `step`), summed into the epoch's phase_ms. */
  timing?: Record<string, number>;
  /** Called once the step passed the NaN/inf check, before clipping and the optimizer. */
  commit?(): void;
  /** What the task found not finite before it could compute a loss (Mask R-CNN: the RPN's proposals); stops the run as a non-finite loss does. */
  nonFinite?: string;
}

export interface EvalOutput {
  /** Mean evaluation loss: a non-finite one makes the epoch not good. Tasks whose evaluation has no loss (mmseg's mIoU) leave it out. */
  loss?: number;
  /** Named metrics, recorded as `test_<name>` (`test_<name>_ema` for the EMA weights). */
  metrics: Record<string, number>;
}

export interface TaskRun {
  /** The trainable state (parameters and buffers), updated in place. */
  readonly state: StateDict;
  /** Keys of the parameters the optimizer updates. */
  readonly params: readonly string[];
  readonly stepsPerEpoch: number;
  /** The steps of `epoch`, computed lazily: the loop takes one, updates the parameters, takes the next. */
  steps(epoch: number): AsyncIterable<StepOutput>;
  /** Evaluation of weights (the model's, or the EMA's); absent when there is no test set. */
  evaluate?(state: StateDict, which: 'model' | 'ema', onProgress: (done: number, total: number) => void): Promise<EvalOutput>;
  /** Stored with each checkpoint: the architecture and labels, so inference can rebuild the model. */
  readonly model: TrainedModelConfig;
  readonly labels: readonly string[];
  /** Title of chart.svg. */
  readonly title: string;
  /** Metadata of checkpoint.safetensors (default: the architecture, labels and preprocessing, checkpoint.ts modelMetadata). */
  readonly weightsMetadata?: Record<string, string>;
  /**
   * The task's own model files for the epoch just trained (`history` ends with it), written before
   * the checkpoint's commit point: an interrupted save is redone, identically, on resume.
   * `training` is the optimizer and schedule, for files that carry them (references/detection's).
   */
  writeModelFiles?(out: string, history: readonly EpochMetrics[], training: { optimizer: Optimizer; schedule: LrSchedule; stepsPerEpoch: number }): Promise<void>;
}

export type TrainProgress =
  | {
    phase: 'start'; epochs: number; startEpoch: number; stepsPerEpoch: number; config: SwiftFormerConfig; params: number; fit?: FitReport;
    /** What is trained, when the config (a backbone) does not say it all (a Semantic FPN). */
    title?: string;
    /** A resumed run whose length changed: the schedule was planned again for `to` epochs. */
    rescheduled?: { from: number; to: number; kind: LrSchedule['kind']; nextLr: number };
  }
  | { phase: 'train'; epoch: number; epochs: number; step: number; steps: number; loss: number; acc?: number; parts?: Record<string, number>; lr: number; imgPerSec: number }
  | { phase: 'eval'; epoch: number; epochs: number; done: number; total: number; ema: boolean }
  | { phase: 'epoch'; metrics: EpochMetrics; checkpoint?: string; checkpointMs?: number };

// ---------------------------------------------------------------- planning and restoring

export interface RunPlan {
  config: TrainConfig;
  schedule: LrSchedule;
  stepsPerEpoch: number;
  out?: string;
  restored?: LoadedCheckpoint;
  /** Epochs completed before this call. */
  startEpoch: number;
  history: EpochMetrics[];
  replans: NonNullable<Sidecar['replans']>;
  rescheduled?: { from: number; to: number };
  savePth: boolean;
  data?: DataSource;
  /** A run continued from another trainer's checkpoint (no sidecar of ours): its optimizer state. */
  imported?: ImportedRun;
}

/**
 * Where a run saved by another trainer (torchvision references/detection's train.py) stands: the
 * completed epochs, the optimizer's moments under `<slot>.<key>` and its step count.
 */
export interface ImportedRun {
  epochs: number;
  moments: StateDict;
  optimizerStep: number;
  /** Names the checkpoint in messages. */
  source: string;
}

export interface PlanOptions {
  task: TrainTask;
  /** What the caller set; `stored` is the checkpoint's configuration when resuming. */
  request(stored: TrainConfig | undefined): RequestedConfig;
  /** A new run's base: preprocessing defaults and the training set's size. */
  base(): Pick<TrainConfig, 'preprocessing' | 'dataset'>;
  stepsPerEpoch(config: TrainConfig): number;
  out?: string;
  resume?: boolean;
  savePth?: boolean;
  data?: DataSource;
  /** Continue a run saved by another trainer (a new output directory, no sidecar of ours). */
  imported?: ImportedRun;
}

/** Creates the output directory, one line on failure (a file in the way, a file as a parent, no permission). */
async function prepareOutput(out: string): Promise<void> {
  await makeDirectory(out, 'output directory');
}

/** The configuration, schedule and checkpoint a run starts from. */
export async function planRun(options: PlanOptions): Promise<RunPlan> {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  const { out } = options;
  if (options.resume && !out) throw bad('resume needs the output directory of the run to continue');
  // Read first, create later: settings a new run cannot start with fail before a directory appears.
  const restored = out ? await readCheckpoint(out) : undefined;
  if (restored && !options.resume) throw bad(`${out} already holds a training checkpoint (epoch ${restored.sidecar.epoch}); resume it or choose another output directory`);
  if (!restored && options.resume) throw bad(`nothing to resume: ${out} has no checkpoint.json`);
  const { imported } = options;
  if (imported && options.resume) throw bad(`resume either ${out} or ${imported.source}, not both`);
  const stored = restored?.sidecar;
  const requested = options.request(stored?.train);
  let config: TrainConfig;
  let rescheduled: RunPlan['rescheduled'];
  if (stored) {
    const resumed = resumedConfig(stored.train, requested, stored.epoch, out!);
    config = resumed.config;
    rescheduled = resumed.epochsChanged;
  } else {
    config = freshConfig(options.task, requested, options.base());
  }
  if (imported && config.epochs <= imported.epochs) throw bad(`${imported.source} completed ${imported.epochs} epochs: the run needs more epochs than that to continue`);
  if (config.task !== options.task) throw bad(`${out} holds a ${config.task} run, not ${options.task}`);
  if (options.savePth) {
    const why = officialPthUnsupported(config);
    if (why) throw bad(why);
  }
  const stepsPerEpoch = options.stepsPerEpoch(config);
  if (out && !restored) await prepareOutput(out);
  if (stored && stored.stepsPerEpoch !== stepsPerEpoch) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${out}: the checkpoint has ${stored.stepsPerEpoch} steps per epoch, this data and batch size give ${stepsPerEpoch}`);
  }
  const schedule = stored && !rescheduled ? stored.schedule : planSchedule(config.schedule, config.lr, config.epochs, stepsPerEpoch);
  const replans = [...(stored?.replans ?? [])];
  if (stored && rescheduled) replans.push({ atEpoch: stored.epoch, fromEpochs: rescheduled.from, toEpochs: rescheduled.to });
  const data = options.data ?? stored?.data;
  return {
    config, schedule, stepsPerEpoch, startEpoch: stored?.epoch ?? imported?.epochs ?? 0, history: stored ? [...stored.history] : [], replans,
    savePth: !!options.savePth, ...(out ? { out } : {}), ...(restored ? { restored } : {}), ...(rescheduled ? { rescheduled } : {}),
    ...(data ? { data } : {}), ...(imported ? { imported } : {}),
  };
}

// ---------------------------------------------------------------- the loop

export interface RunHooks {
  onProgress?: (event: TrainProgress) => void;
  signal?: AbortSignal;
}

/** Everything the epochs of one call share. */
interface Run {
  task: TaskRun;
  plan: RunPlan;
  hooks: RunHooks;
  optimizer: Optimizer;
  ema: ModelEma | undefined;
  history: EpochMetrics[];
  /** Optimizer steps taken (the schedule's position). */
  step: number;
}

export interface RunResult {
  state: StateDict;
  ema?: StateDict;
  history: EpochMetrics[];
}

/** Trains `task` for the planned epochs, from where the plan starts. */
export async function runEpochs(task: TaskRun, plan: RunPlan, hooks: RunHooks = {}): Promise<RunResult> {
  const { config, restored } = plan;
  const optimizer = createOptimizer(config.optimizer, task.state, task.params);
  if (restored) optimizer.loadMoments(restored.moments, restored.sidecar.optimizer.step);
  else if (plan.imported) optimizer.loadMoments(plan.imported.moments, plan.imported.optimizerStep);
  if (restored && config.ema && !restored.ema) throw new SwiftFormerError('BAD_CHECKPOINT', `${plan.out}: the checkpoint has no EMA weights`);
  // The EMA has taken one update per optimizer step, which a resumed run continues from.
  const ema = config.ema ? new ModelEma(restored?.ema ?? task.state, config.ema.decay, true, restored?.sidecar.optimizer.step ?? 0) : undefined;
  const run: Run = { task, plan, hooks, optimizer, ema, history: plan.history, step: plan.startEpoch * plan.stepsPerEpoch };
  if (plan.out && (!restored || plan.rescheduled)) await writeRunInfo(run);
  for (let epoch = plan.startEpoch; epoch < config.epochs; epoch++) {
    const epochStart = performance.now();
    const { metrics, phase } = await runEpoch(run, epoch);
    await evaluateEpoch(run, epoch, metrics, phase);
    metrics.seconds = (performance.now() - epochStart) / 1000;
    metrics.phase_ms = Object.fromEntries(Object.entries(phase).map(([k, v]) => [k, Math.round(v)]));
    run.history.push(metrics);
    const saved = plan.out ? await saveEpoch(run, metrics) : undefined;
    hooks.onProgress?.({ phase: 'epoch', metrics, ...(saved ?? {}) });
  }
  return { state: task.state, ...(ema ? { ema: ema.state } : {}), history: run.history };
}

function finite(x: number | undefined): boolean {
  return Number.isFinite(x);
}

/** Running sums over an epoch's steps. */
interface EpochSums {
  loss: number;
  correct: number | undefined;
  samples: number;
  parts: Record<string, number>;
  phase: Record<string, number>;
}

/** The epoch's training steps: loss and gradients from the task, the update here. */
async function runEpoch(run: Run, epoch: number): Promise<{ metrics: EpochMetrics; phase: Record<string, number> }> {
  const { task, plan, hooks } = run;
  const epochStart = performance.now();
  const sums: EpochSums = { loss: 0, correct: undefined, samples: 0, parts: {}, phase: {} };
  let lastLr = lrAt(plan.schedule, run.step);
  let trainTime = 0;
  const steps = task.steps(epoch)[Symbol.asyncIterator]();
  try {
    for (;;) {
      hooks.signal?.throwIfAborted(); // before the next step's work, not after it
      const next = await steps.next();
      if (next.done) break;
      const received = performance.now();
      lastLr = applyStep(run, epoch, next.value, sums);
      const done = performance.now();
      sums.phase.update = (sums.phase.update ?? 0) + done - received;
      trainTime = done - epochStart;
      const { loss, correct, samples, parts } = sums;
      hooks.onProgress?.({
        phase: 'train', epoch: epoch + 1, epochs: plan.config.epochs, step: next.value.index + 1, steps: task.stepsPerEpoch, loss: loss / samples,
        ...(correct !== undefined ? { acc: correct / samples } : {}), ...(next.value.parts ? { parts: means(parts, samples) } : {}),
        lr: lastLr, imgPerSec: (samples / trainTime) * 1000,
      });
    }
  } finally {
    await steps.return?.();
  }
  const { loss, correct, samples, parts, phase } = sums;
  const metrics: EpochMetrics = {
    epoch: epoch + 1, train_loss: loss / samples, ...(correct !== undefined ? { train_acc: correct / samples } : {}),
    ...Object.fromEntries(Object.entries(means(parts, samples)).map(([k, v]) => [`train_${k}`, v])),
    lr: lastLr, img_per_s: (samples / trainTime) * 1000, seconds: 0, steps: task.stepsPerEpoch,
  };
  return { metrics, phase };
}

/** One step's update: the NaN/inf stop, the task's commit, clipping, the optimizer, the EMA. Returns the step's lr. */
function applyStep(run: Run, epoch: number, out: StepOutput, sums: EpochSums): number {
  const { task, plan, optimizer, ema } = run;
  const { clip } = plan.config;
  for (const [k, ms] of Object.entries(out.timing ?? {})) sums.phase[k] = (sums.phase[k] ?? 0) + ms;
  const lr = lrAt(plan.schedule, run.step);
  const gradNorm = finite(out.loss) && !out.nonFinite ? globalGradNorm(out.grads, task.params) : NaN;
  if (out.nonFinite || !finite(out.loss) || !finite(gradNorm)) {
    const what = out.nonFinite ?? (!finite(out.loss) ? `the loss is ${out.loss}` : `the gradient norm is ${gradNorm}`);
    throw diverged(run, `${what} at epoch ${epoch + 1}, step ${out.index + 1} of ${task.stepsPerEpoch} (lr ${lr.toPrecision(3)}); stopped`);
  }
  out.commit?.();
  if (clip.mode === 'norm') clipGradNorm(out.grads, clip.value, task.params);
  else if (clip.mode === 'agc') adaptiveClipGrad(task.state, out.grads, clip.value, 1e-3, task.params);
  optimizer.step(out.grads, lr);
  ema?.update(task.state);
  run.step++;
  sums.loss += out.loss * out.samples;
  if (out.correct !== undefined) sums.correct = (sums.correct ?? 0) + out.correct;
  for (const [k, v] of Object.entries(out.parts ?? {})) sums.parts[k] = (sums.parts[k] ?? 0) + v * out.samples;
  sums.samples += out.samples;
  return lr;
}

function means(sums: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / n]));
}

/** The first float tensor of `state` holding a NaN or infinity, and the largest finite magnitude. */
export function nonFinite(state: StateDict): { key?: string; largest: number } {
  let largest = 0;
  for (const [key, t] of state) {
    if (t.dtype !== 'float32') continue;
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      const a = Math.abs(data[i]!);
      if (!(a <= Number.MAX_VALUE)) return { key, largest };
      if (a > largest) largest = a;
    }
  }
  return { largest };
}

/**
 * Evaluation, and the check that makes an epoch good: its weights (and EMA weights) are finite and
 * so are its evaluation losses. A bad epoch stops training before its checkpoint is written.
 */
async function evaluateEpoch(run: Run, epoch: number, metrics: EpochMetrics, phase: Record<string, number>): Promise<void> {
  const { task, hooks, ema, plan } = run;
  const notGood = (why: string) => diverged(run, `${why} after epoch ${epoch + 1}; stopped before writing its checkpoint`);
  for (const [which, state] of [['weights', task.state], ['EMA weights', ema?.state]] as const) {
    const found = state && nonFinite(state);
    if (found?.key) throw notGood(`the ${which} hold non-finite values (${found.key})`);
  }
  phase.eval = 0;
  if (task.evaluate) {
    hooks.signal?.throwIfAborted();
    const t = performance.now();
    const report = (isEma: boolean) => (done: number, total: number) =>
      hooks.onProgress?.({ phase: 'eval', epoch: epoch + 1, epochs: plan.config.epochs, done, total, ema: isEma });
    const result = await task.evaluate(task.state, 'model', report(false));
    if (result.loss !== undefined) metrics.test_loss = result.loss;
    for (const [k, v] of Object.entries(result.metrics)) metrics[`test_${k}`] = v;
    const emaResult = ema ? await task.evaluate(ema.state, 'ema', report(true)) : undefined;
    for (const [k, v] of Object.entries(emaResult?.metrics ?? {})) metrics[`test_${k}_ema`] = v;
    phase.eval = performance.now() - t;
    for (const [which, r, state] of [['', result, task.state], ['EMA ', emaResult, ema?.state]] as const) {
      if (r && r.loss !== undefined && !finite(r.loss)) throw notGood(`the ${which}test loss is ${r.loss} (largest weight ${nonFinite(state!).largest.toExponential(2)})`);
    }
  }
}

/** A DIVERGED error that says what happened and which checkpoint, if any, is good. */
function diverged(run: Run, what: string): SwiftFormerError {
  const { out } = run.plan;
  const last = run.history.at(-1);
  let state = 'no checkpoint had been written yet';
  if (out && last) {
    state = (last.test_loss as number | null | undefined) === null
      ? `the checkpoint in ${out} (epoch ${last.epoch}, written by an earlier version) is not good either: its test loss was not finite`
      : `the last good checkpoint (epoch ${last.epoch}) is intact in ${out}`;
  }
  return new SwiftFormerError('DIVERGED', `training diverged: ${what}, ${state}. Try a lower learning rate or gradient clipping`);
}

/** config.json and labels.json: what the run is (written when it starts and when its length changes). */
async function writeRunInfo(run: Run): Promise<void> {
  const { plan, task } = run;
  const info = { config: task.model, labels: task.labels, preprocessing: plan.config.preprocessing, train: plan.config, ...(plan.data ? { data: plan.data } : {}) };
  await writeFileAtomic(join(plan.out!, 'config.json'), `${JSON.stringify(info, null, 2)}\n`);
  await writeFileAtomic(join(plan.out!, 'labels.json'), `${JSON.stringify(task.labels, null, 2)}\n`);
}

/** The epoch's checkpoint (atomic, see checkpoint.ts), metrics.jsonl and chart.svg. */
async function saveEpoch(run: Run, metrics: EpochMetrics): Promise<{ checkpoint: string; checkpointMs: number }> {
  const { plan, task, optimizer, ema, history } = run;
  const out = plan.out!;
  const t = performance.now();
  const { config } = plan;
  await task.writeModelFiles?.(out, history, { optimizer, schedule: plan.schedule, stepsPerEpoch: plan.stepsPerEpoch });
  await writeCheckpoint(out, {
    sidecar: {
      epoch: metrics.epoch, step: run.step, train: config, schedule: plan.schedule, stepsPerEpoch: plan.stepsPerEpoch,
      ...(plan.replans.length > 0 ? { replans: plan.replans } : {}),
      rng: { seed: config.seed, nextEpoch: metrics.epoch, scheme: 'Random(deriveSeed(seed, stream, epoch, index)) per shuffle, sample and batch' },
      ...(config.ema ? { ema: { decay: config.ema.decay } } : {}),
      model: task.model, labels: [...task.labels], ...(plan.data ? { data: plan.data } : {}), history,
    },
    state: task.state, optimizer, ...(ema ? { ema: ema.state } : {}), pth: plan.savePth,
    ...(task.weightsMetadata ? { metadata: task.weightsMetadata } : {}),
  });
  await writeFileAtomic(join(out, 'metrics.jsonl'), history.map((m) => JSON.stringify(m)).join('\n') + '\n');
  await writeFileAtomic(join(out, 'chart.svg'), trainingChart(history, { epochs: config.epochs, title: task.title }));
  return { checkpoint: join(out, 'checkpoint.json'), checkpointMs: performance.now() - t };
}
