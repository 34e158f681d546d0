/**
 * Learning-rate schedule: timm's CosineLRScheduler (one cycle, no noise, k_decay 1) with linear
 * warm-up, evaluated per optimizer step (timm's `t_in_epochs=False` with `step_update`).
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

/** A cosine schedule bound to its options; `lrAt(step)` is pure, so resuming only needs the step. */
export class CosineSchedule {
  constructor(readonly options: CosineScheduleOptions) {
    const { lr, totalSteps } = options;
    const bad = (what: string) => new SwiftFormerError('BAD_ARGUMENT', `learning-rate schedule: ${what}`);
    if (!(Number.isFinite(lr) && lr >= 0)) throw bad(`lr must be a finite number >= 0, got ${lr}`);
    if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) throw bad(`total steps must be a positive integer, got ${totalSteps}`);
    const warmup = options.warmupSteps ?? 0;
    if (!(Number.isInteger(warmup) && warmup >= 0)) throw bad(`warm-up steps must be an integer >= 0, got ${warmup}`);
    for (const [name, v] of [['warmupLr', options.warmupLr], ['minLr', options.minLr]] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw bad(`${name} must be a finite number >= 0, got ${v}`);
    }
  }

  lrAt(step: number): number {
    return cosineLr(step, this.options);
  }
}
