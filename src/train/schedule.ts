/**
 * Learning-rate schedules, evaluated per optimizer step. A schedule is stated in epochs
 * (`ScheduleConfig`, part of the TrainConfig) and planned into steps (`LrSchedule`, recorded in
 * the checkpoint) once the steps per epoch are known; the training loop needs only
 * `lrAt(schedule, step)`, which is pure, so resuming needs only the step.
 *
 *   cosine  timm's CosineLRScheduler (one cycle, no noise, k_decay 1), the official recipe's
 *   poly    mmcv's PolyLrUpdaterHook (Semantic FPN: power 0.9, by iteration)
 *   steps   mmcv's StepLrUpdaterHook (Mask R-CNN 1x: lr x 0.1 at epochs 8 and 11 of 12)
 *
 * Warm-up is linear over `warmupSteps`, in the form of each family's reference: timm's for the
 * cosine (from warmupLr straight to the peak), mmcv's 'linear' for poly and steps (the regular
 * lr scaled by a factor rising from warmupLr / lr to 1; for steps before the first milestone the
 * two coincide).
 */
import { SwiftFormerError } from '../core/errors.js';

export interface CosineScheduleOptions {
  /** Peak learning rate (timm's base value). */
  lr: number;
  /** Length of the cosine in steps (timm `t_initial`): epochs * steps per epoch. */
  totalSteps: number;
  /** Linear warm-up steps (timm `warmup_t`). Default 0. */
  warmupSteps?: number;
  /** Learning rate at step 0 of the warm-up (timm `warmup_lr_init`). Default 0. */
  warmupLr?: number;
  /** Floor of the cosine (timm `lr_min`). Default 0. */
  minLr?: number;
  /**
   * timm `warmup_prefix`: false (timm's default) runs the cosine over [0, totalSteps) with the
   * warm-up overriding its start; true starts the cosine after the warm-up.
   */
  warmupPrefix?: boolean;
}

/**
 * The learning rate of optimizer step `t` (0-based), as timm sets it: before step t the trainer
 * called `step_update(t)`, so step 0 runs at `warmupLr` when there is a warm-up.
 *   t < warmup:  warmupLr + t * (lr - warmupLr) / warmup
 *   otherwise:   minLr + (lr - minLr) / 2 * (1 + cos(pi * t' / T)),  t' = t (or t - warmup with warmupPrefix)
 *   t' >= T:     minLr
 */
export function cosineLr(t: number, options: CosineScheduleOptions): number {
  const { lr, totalSteps } = options;
  const warmup = options.warmupSteps ?? 0;
  const warmupLr = options.warmupLr ?? 0;
  const minLr = options.minLr ?? 0;
  if (t < warmup) return warmupLr + (t * (lr - warmupLr)) / warmup;
  const tc = options.warmupPrefix ? t - warmup : t;
  if (tc >= totalSteps) return minLr;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos((Math.PI * tc) / totalSteps));
}

// ---------------------------------------------------------------- planned schedules (in steps)

interface PlannedBase {
  /** Peak (base) learning rate. */
  lr: number;
  /** Steps of the whole run: epochs * steps per epoch. */
  totalSteps: number;
  warmupSteps: number;
  /** Learning rate at step 0 of the warm-up. */
  warmupLr: number;
  /** Floor: the cosine's and poly's end value, a lower clamp for steps (mmcv `min_lr`). */
  minLr: number;
}

export interface CosineLrSchedule extends PlannedBase {
  kind: 'cosine';
  warmupPrefix?: boolean;
}

/** mmcv poly: minLr + (lr - minLr) * (1 - t / totalSteps) ^ power. */
export interface PolyLrSchedule extends PlannedBase {
  kind: 'poly';
  power: number;
}

/** mmcv step: lr * gamma ^ (number of milestones <= t), clamped below at minLr. */
export interface StepLrSchedule extends PlannedBase {
  kind: 'steps';
  /** Steps at which the lr is multiplied by gamma, ascending. */
  milestones: number[];
  gamma: number;
}

export type LrSchedule = CosineLrSchedule | PolyLrSchedule | StepLrSchedule;

/** The learning rate of optimizer step `t` (0-based). */
export function lrAt(schedule: LrSchedule, t: number): number {
  if (schedule.kind === 'cosine') return cosineLr(t, schedule);
  const regular = schedule.kind === 'poly' ? polyLr(schedule, t) : stepLr(schedule, t);
  if (t >= schedule.warmupSteps || schedule.lr === 0) return regular;
  // mmcv's linear warm-up: regular * (1 - (1 - t / W) * (1 - ratio)), ratio = warmupLr / lr.
  const ratio = schedule.warmupLr / schedule.lr;
  return regular * (1 - (1 - t / schedule.warmupSteps) * (1 - ratio));
}

function polyLr(s: PolyLrSchedule, t: number): number {
  const progress = Math.min(t, s.totalSteps) / s.totalSteps;
  return (s.lr - s.minLr) * (1 - progress) ** s.power + s.minLr;
}

function stepLr(s: StepLrSchedule, t: number): number {
  const passed = s.milestones.filter((m) => m <= t).length;
  return Math.max(s.lr * s.gamma ** passed, s.minLr);
}

function scheduleError(what: string): SwiftFormerError {
  return new SwiftFormerError('BAD_ARGUMENT', `learning-rate schedule: ${what}`);
}

function checkRate(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw scheduleError(`${name} must be a finite number >= 0, got ${v}`);
}

/** Throws a BAD_ARGUMENT naming the first setting a schedule cannot run with. */
export function checkSchedule(s: LrSchedule | (CosineScheduleOptions & { kind?: undefined })): void {
  if (!(Number.isFinite(s.lr) && s.lr >= 0)) throw scheduleError(`lr must be a finite number >= 0, got ${s.lr}`);
  if (!(Number.isInteger(s.totalSteps) && s.totalSteps >= 1)) throw scheduleError(`total steps must be a positive integer, got ${s.totalSteps}`);
  const warmup = s.warmupSteps ?? 0;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw scheduleError(`warm-up steps must be an integer >= 0, got ${warmup}`);
  checkRate('warmupLr', s.warmupLr);
  checkRate('minLr', s.minLr);
  if (s.kind === 'poly' && !(Number.isFinite(s.power) && s.power > 0)) throw scheduleError(`poly power must be a number > 0, got ${s.power}`);
  if (s.kind === 'steps') {
    if (!(Number.isFinite(s.gamma) && s.gamma > 0)) throw scheduleError(`step gamma must be a number > 0, got ${s.gamma}`);
    if (!s.milestones.every((m, i) => Number.isInteger(m) && m >= 0 && (i === 0 || m > s.milestones[i - 1]!))) {
      throw scheduleError(`milestones must be ascending step numbers, got [${s.milestones}]`);
    }
  }
}

/** A cosine schedule bound to its options (the library's earlier form of `lrAt`). */
export class CosineSchedule {
  constructor(readonly options: CosineScheduleOptions) {
    checkSchedule(options);
  }

  lrAt(step: number): number {
    return cosineLr(step, this.options);
  }
}

// ---------------------------------------------------------------- schedules as configured (in epochs)

interface ConfiguredBase {
  /** Linear warm-up, in epochs (fractions allowed: rounded to whole steps). */
  warmupEpochs: number;
  warmupLr: number;
  minLr: number;
}

/** A schedule as a TrainConfig states it: lengths in epochs, the peak lr and the run length given apart. */
export type ScheduleConfig =
  | ({ kind: 'cosine' } & ConfiguredBase)
  | ({ kind: 'poly'; power: number } & ConfiguredBase)
  | ({ kind: 'steps'; milestones: number[]; gamma: number } & ConfiguredBase);

/**
 * The schedule in steps for a run of `epochs` epochs of `stepsPerEpoch` steps at peak `lr`
 * (recomputed when a resumed run is extended). Milestones given in epochs become epoch * steps.
 */
export function planSchedule(config: ScheduleConfig, lr: number, epochs: number, stepsPerEpoch: number): LrSchedule {
  const base = {
    lr, totalSteps: epochs * stepsPerEpoch, warmupSteps: Math.round(config.warmupEpochs * stepsPerEpoch),
    warmupLr: config.warmupLr, minLr: config.minLr,
  };
  const planned: LrSchedule = config.kind === 'cosine' ? { kind: 'cosine', ...base }
    : config.kind === 'poly' ? { kind: 'poly', ...base, power: config.power }
    : { kind: 'steps', ...base, milestones: config.milestones.map((e) => Math.round(e * stepsPerEpoch)), gamma: config.gamma };
  checkSchedule(planned);
  return planned;
}
