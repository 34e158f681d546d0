/**
 * What `train` shows and how it stops, for every task: number options, the progress reporter on
 * stderr (a line redrawn on a terminal, periodic lines in a log), the epoch summaries, and Ctrl-C
 * ending a run between steps with the way to resume it.
 */
import { SwiftFormerError } from '../core/errors.js';
import { readSidecar, type EpochMetrics, type Sidecar } from '../train/checkpoint.js';
import { variantConfig } from '../models/swiftformer.js';
import type { TrainProgress } from '../train/run.js';

export function numberOption(value: string | undefined, name: string, check: (n: number) => boolean, want: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} must be ${want}, got '${value}'`);
  return n;
}

export function pct(x: number | undefined): string {
  return x === undefined ? '-' : `${(x * 100).toFixed(2)}%`;
}

/** Keys as a short list: up to 6 by name, more grouped by module (`neck (16 tensors), backbone.norm0 (5 tensors)`). */
export function describeKeys(keys: readonly string[]): string {
  if (keys.length <= 6) return keys.join(', ');
  const groups = new Map<string, number>();
  for (const k of keys) {
    const parts = k.split('.');
    const group = parts.slice(0, parts[0] === 'backbone' ? 2 : 1).join('.');
    groups.set(group, (groups.get(group) ?? 0) + 1);
  }
  return [...groups].map(([g, n]) => `${g} (${n} tensor${n === 1 ? '' : 's'})`).join(', ');
}

/** Progress on stderr: one line redrawn in place on a terminal, periodic plain lines otherwise. */
export function progressReporter(stream: NodeJS.WriteStream): (e: TrainProgress) => void {
  const tty = !!stream.isTTY;
  let lastDraw = 0;
  let lastLine = 0;
  const draw = (text: string, final: boolean) => {
    if (tty) stream.write(`\r\x1b[2K${final ? text : text.slice(0, (stream.columns || 120) - 1)}${final ? '\n' : ''}`);
    else stream.write(`${text}\n`);
  };
  return (e) => {
    const now = Date.now();
    if (e.phase === 'start') {
      const { config } = e;
      const from = e.startEpoch > 0 ? `, resuming after epoch ${e.startEpoch}` : '';
      const what = e.title ?? `SwiftFormer [${config.embedDims}] x [${config.depths}], ${config.numClasses} classes`;
      stream.write(`${what}, ${(e.params / 1e6).toFixed(2)} M trainable parameters; ${e.stepsPerEpoch} steps per epoch${from}\n`);
      if (e.rescheduled) {
        const { from: was, to, kind, nextLr } = e.rescheduled;
        stream.write(`the run's length changes from ${was} to ${to} epochs: its ${kind} schedule is planned again over ${to} epochs (lr ${nextLr.toExponential(2)} at the next step) and recorded in checkpoint.json\n`);
      } else if (e.startEpoch >= e.epochs) {
        stream.write(`the run has completed its ${e.epochs} epochs: nothing to do (--epochs N extends it)\n`);
      }
      if (e.fit) {
        const reinit = [...e.fit.missing, ...e.fit.mismatched.map((m) => m.key)];
        if (reinit.length > 0) stream.write(`fine-tuning: re-initialized ${describeKeys(reinit)}\n`);
        if (e.fit.unexpected.length > 0) stream.write(`fine-tuning: dropped ${describeKeys(e.fit.unexpected)}\n`);
      }
    } else if (e.phase === 'train') {
      const parts = Object.entries(e.parts ?? {}).map(([k, v]) => `  ${k} ${v.toFixed(4)}`).join('');
      const acc = e.acc === undefined ? '' : `  acc ${pct(e.acc)}`;
      const text = `epoch ${e.epoch}/${e.epochs}  ${bar(e.step / e.steps)} ${e.step}/${e.steps}  loss ${e.loss.toFixed(4)}${parts}${acc}  lr ${e.lr.toExponential(2)}  ${e.imgPerSec.toFixed(e.imgPerSec < 10 ? 2 : 0)} img/s`;
      if (tty ? now - lastDraw >= 100 || e.step === e.steps : now - lastLine >= 30_000 || e.step === e.steps) {
        draw(text, false);
        lastDraw = lastLine = now;
      }
    } else if (e.phase === 'eval') {
      if (tty && (now - lastDraw >= 100 || e.done === e.total)) {
        draw(`epoch ${e.epoch}/${e.epochs}  evaluating${e.ema ? ' EMA' : ''} ${e.done}/${e.total}`, false);
        lastDraw = now;
      }
    } else {
      draw(summary(e.metrics), true);
    }
  };
}

function bar(fraction: number, width = 20): string {
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** One line per epoch: accuracy for classifiers, mmseg's mIoU / aAcc / mAcc for segmenters (and the iteration reached). */
function summary(m: EpochMetrics): string {
  const rate = `${m.img_per_s.toFixed(m.img_per_s < 10 ? 2 : 0)} img/s  ${m.seconds.toFixed(0)} s`;
  if (m.test_mIoU !== undefined || m.test_acc === undefined && m.train_acc === undefined) {
    const scores = m.test_mIoU === undefined ? '' : `  mIoU ${pct(m.test_mIoU)}  aAcc ${pct(m.test_aAcc)}  mAcc ${pct(m.test_mAcc)}`;
    return `epoch ${m.epoch} (iteration ${m.epoch * m.steps})  loss ${m.train_loss.toFixed(4)}${scores}  lr ${m.lr.toExponential(2)}  ${rate}`;
  }
  const ema = m.test_acc_ema === undefined ? '' : ` (EMA ${pct(m.test_acc_ema)})`;
  return `epoch ${m.epoch}  loss ${m.train_loss.toFixed(4)}  train ${pct(m.train_acc)}  test ${pct(m.test_acc)}${ema}  lr ${m.lr.toExponential(2)}  ${rate}`;
}

/**
 * Runs a training with Ctrl-C as its abort signal; `report` sees every event. An interrupted run
 * says which checkpoint holds (the last completed epoch) and how to resume, and exits 130.
 */
export async function runInterruptibly<R>(
  out: string, completedBefore: number, report: (e: TrainProgress) => void,
  run: (signal: AbortSignal, onProgress: (e: TrainProgress) => void) => Promise<R>,
): Promise<R> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let completed = completedBefore;
  const onProgress = (e: TrainProgress) => {
    if (e.phase === 'epoch') completed = e.metrics.epoch;
    report(e);
  };
  try {
    return await run(controller.signal, onProgress);
  } catch (err) {
    if (!controller.signal.aborted) throw err;
    process.stderr.write(completed > 0
      ? `\ninterrupted: ${out} holds the checkpoint of epoch ${completed}; continue with: swiftformer train --resume ${out}\n`
      : '\ninterrupted before the first epoch completed: nothing was saved\n');
    process.exit(130);
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/**
 * What a dense task's `train` starts from: the stored run when --resume names one (its data
 * source, its directory), else --data and --out; the errors a user meets when they conflict.
 */
export async function resumeOrStart(
  values: { resume?: string; data?: string; out?: string; model?: string; finetune?: string }, dataset: string, usage: string,
): Promise<{ saved: Sidecar | undefined; source: string; out: string }> {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', msg);
  const saved = values.resume ? await readSidecar(values.resume) : undefined;
  if (values.resume && !saved) throw bad(`nothing to resume: ${values.resume} has no checkpoint.json`);
  const source = values.data ?? saved?.data?.source;
  if (!source) throw bad(`--data <${dataset}> is required\n\n${usage}`);
  if (values.resume && values.out && values.out !== values.resume) throw bad('--resume continues in its own directory; drop --out or give the same directory');
  if (saved && (values.model || values.finetune)) throw bad(`the model of a resumed run is the one in ${values.resume}: drop --${values.model ? 'model' : 'finetune'}`);
  if (values.model) variantConfig(values.model); // an unknown id fails before any data is read
  return { saved, source, out: values.resume ?? values.out ?? 'swiftformer-train' };
}
