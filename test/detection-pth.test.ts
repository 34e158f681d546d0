/**
 * A detector trained here moves to torchvision and back: `train --task detection --save-pth`
 * writes checkpoint.pth in references/detection's layout; bench/maskrcnn-pth.py loads it into
 * torchvision 0.14's MaskRCNN (load_state_dict(strict=True)) and detects on a scene image; our
 * detect on the same checkpoint gives the same detections; and the .pth torchvision saves after
 * loading it loads here with those detections again.
 *
 * The run moves too (test/references_resume.py does train.py's --resume): torch's AdamW / SGD and
 * MultiStepLR load the checkpoint's optimizer and lr_scheduler and then hold our moments for each
 * parameter by name, take the step ours takes with the same gradients, and schedule the lr ours
 * does; a run torch trained (SGD, warm-up, a milestone passed) continues here with torch's
 * moments, at its epoch and lr, and goes back to torch the same way.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { openCocoData } from '../src/node/coco-data.js';
import { DetectionModel, readPth, type Detection } from '../src/index.js';
import { Random } from '../src/core/random.js';
import type { FloatTensor, StateDict } from '../src/core/tensor.js';
import { readCheckpoint } from '../src/train/checkpoint.js';
import { trainDetection } from '../src/train/detection-trainer.js';
import { createOptimizer } from '../src/train/optim.js';
import { readReferencesCheckpoint } from '../src/train/references-checkpoint.js';
import { lrAt } from '../src/train/schedule.js';
import { writePth } from '../src/weights/pth.js';
import { readSafetensors, writeSafetensors } from '../src/weights/safetensors.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { TINY_DETECTOR, tinyDetectionScenes } from './detection-scenes.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../bench/maskrcnn-pth.py', import.meta.url));
const RESUME = fileURLToPath(new URL('./references_resume.py', import.meta.url));
const WEIGHTS = TINY_DETECTOR;
const SIZES = { minSize: 128, maxSize: 256 };
const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
const noTorch = probe.status !== 0 ? `${PYTHON} cannot import torch and torchvision (python3-torch, python3-torchvision)` : undefined;

interface TorchDetections { epoch: number; keys: string[]; boxes: number[][]; scores: number[]; labels: number[]; masks: string[] }
let root: string;

before(async () => {
  if (!noTorch) root = await tinyDetectionScenes('detection-pth-');
});
after(() => (root ? rm(root, { recursive: true, force: true }) : undefined));

let trained: Promise<string> | undefined;

/** One epoch of `train --task detection --save-pth` (AdamW) on the scenes, run once for both suites: its directory. */
function trainedRun(): Promise<string> {
  trained ??= (async () => {
    const out = join(root, 'run');
    const r = await cli('train', '--task', 'detection', '--data', root, '--finetune', WEIGHTS, '--min-size', String(SIZES.minSize), '--max-size', String(SIZES.maxSize),
      '--batch-size', '2', '--threads', '2', '--epochs', '1', '--out', out, '--save-pth');
    assert.equal(r.code, 0, r.stderr);
    return out;
  })();
  return trained;
}

function torchDetect(pth: string, image: string, h: number, w: number, save?: string): TorchDetections {
  const r = spawnSync(PYTHON, [SCRIPT, '--pth', pth, '--image', image, '--size', `${h},${w}`, '--min-size', String(SIZES.minSize), '--max-size', String(SIZES.maxSize), ...(save ? ['--save', save] : [])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as TorchDetections;
}

function maskIoU(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > 0;
    const y = b[i]! > 0;
    if (x && y) inter++;
    if (x || y) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** The same detections as sets: each of torchvision's matched to ours of its label with the nearest box. */
function assertSameDetections(ours: Detection[], torch: TorchDetections, what: string): void {
  assert.equal(ours.length, torch.scores.length, `${what}: detection count`);
  assert.ok(ours.length > 0, `${what}: something is detected`);
  const free = new Set(ours.map((_, i) => i));
  torch.scores.forEach((score, j) => {
    const [x1, y1, x2, y2] = torch.boxes[j]!;
    const gap = (d: Detection) => Math.max(Math.abs(d.box.xmin - x1!), Math.abs(d.box.ymin - y1!), Math.abs(d.box.xmax - x2!), Math.abs(d.box.ymax - y2!));
    let best = -1;
    for (const i of free) if (ours[i]!.index === torch.labels[j] && (best < 0 || gap(ours[i]!) < gap(ours[best]!))) best = i;
    assert.ok(best >= 0, `${what}: torchvision's detection ${j} (label ${torch.labels[j]}) has no counterpart`);
    const d = ours[best]!;
    free.delete(best);
    assert.ok(gap(d) <= 1e-3, `${what}: detection ${j} box differs by ${gap(d)} px`);
    assert.ok(Math.abs(d.score - score) <= 1e-4, `${what}: detection ${j} score ${d.score} vs ${score}`);
    const iou = maskIoU(d.mask!.data, Buffer.from(torch.masks[j]!, 'hex'));
    assert.ok(iou >= 0.99, `${what}: detection ${j} mask IoU ${iou}`);
  });
}

describe('a detection run moves to torchvision and back (--save-pth)', () => {
  test('checkpoint.pth loads strictly in torchvision with our detections; torchvision\'s .pth loads here with its detections', { skip: noTorch }, async () => {
    const out = await trainedRun();
    const pth = join(out, 'checkpoint.pth');
    const written = await readPth(await readFile(pth));
    assert.deepEqual([...written.entries].sort(), ['args', 'epoch', 'lr_scheduler', 'model', 'optimizer']);
    assert.equal((written.root as Map<string, unknown>).get('epoch'), 0, 'epoch is the last completed, 0-based, as train.py saves it');

    // A val scene, as RGB bytes for our detect and float32 CHW in [0, 1] for torchvision.
    const { image } = await (await openCocoData(root, 'val')).sample(0);
    const { width: w, height: h } = image;
    const chw = new Float32Array(3 * h * w);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) chw[c * h * w + p] = image.data[3 * p + c]! / 255;
    const bin = join(root, 'image.bin');
    await writeFile(bin, Buffer.from(chw.buffer));

    const back = join(root, 'torchvision.pth');
    const there = torchDetect(pth, bin, h, w, back);
    assert.equal(there.epoch, 0);
    const ours = await DetectionModel.load({ weights: pth, settings: { transform: SIZES } });
    try {
      assertSameDetections(await ours.detect({ width: w, height: h, data: image.data }, { threshold: 0 }), there, 'our checkpoint.pth');
    } finally {
      await ours.release();
    }

    const returned = await DetectionModel.load({ weights: back, settings: { transform: SIZES } });
    try {
      assertSameDetections(await returned.detect({ width: w, height: h, data: image.data }, { threshold: 0 }), there, "torchvision's .pth");
    } finally {
      await returned.release();
    }
  });
});

function python(...args: string[]): Record<string, unknown> {
  const r = spawnSync(PYTHON, [RESUME, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function tensors(bytes: Uint8Array): Map<string, Float32Array> {
  return new Map([...readSafetensors(bytes).tensors].map(([k, t]) => [k, t.data as Float32Array]));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The run in `out` through train.py's --resume (test/references_resume.py check): torch's optimizer
 * holds our moments under each parameter's name, one step with the same (seeded random) gradients
 * gives the parameters our optimizer's next step gives, and the next epochs' lr are ours.
 */
async function assertTorchContinues(out: string, what: string): Promise<void> {
  const ck = (await readCheckpoint(out))!;
  const keys = [...new Set([...ck.moments.keys()].map((k) => k.slice(k.indexOf('.') + 1)))];
  const rng = new Random(7);
  const grads = new Map<string, FloatTensor>(keys.map((k) => {
    const t = ck.state.get(k)!;
    return [k, { dtype: 'float32', shape: t.shape, data: Float32Array.from({ length: t.data.length }, () => (rng.next() - 0.5) * 1e-2) }];
  }));
  const gradFile = join(out, 'grads.safetensors');
  await writeFile(gradFile, writeSafetensors(grads as StateDict));
  const torchOut = join(out, 'torch-step.safetensors');
  const report = python('check', '--pth', join(out, 'checkpoint.pth'), '--grads', gradFile, '--out', torchOut);
  const theirs = tensors(await readFile(torchOut));

  assert.equal(report.same_order, true, `${what}: our model entry lists the keys in torchvision's state_dict order`);
  assert.equal(report.milestones_counter, true, `${what}: MultiStepLR's milestones are a collections.Counter, as torch keeps them`);
  assert.deepEqual(report.group_keys, report.fresh_group_keys, `${what}: the param group has the keys of torch 1.13's`);
  assert.equal(report.start_epoch, ck.sidecar.epoch, `${what}: train.py resumes at the epoch we stopped`);
  if (ck.sidecar.train.optimizer.kind === 'adamw') assert.deepEqual(report.steps, [ck.sidecar.optimizer.step], `${what}: AdamW step`);
  for (const [k, t] of ck.moments) assert.equal(maxDiff(t.data as Float32Array, theirs.get(k)!), 0, `${what}: torch's ${k}`);
  assert.equal([...theirs.keys()].filter((k) => !k.startsWith('param.')).length, ck.moments.size, `${what}: torch holds as many moments as we do`);

  const before = new Map(keys.map((k) => [k, (ck.state.get(k)!.data as Float32Array).slice()]));
  const optimizer = createOptimizer(ck.sidecar.train.optimizer, ck.state, keys);
  optimizer.loadMoments(ck.moments, ck.sidecar.optimizer.step);
  optimizer.step(grads, lrAt(ck.sidecar.schedule, ck.sidecar.step));
  let worst = 0;
  let moved = 0;
  for (const k of keys) {
    const torchParam = theirs.get(`param.${k}`)!;
    worst = Math.max(worst, maxDiff(ck.state.get(k)!.data as Float32Array, torchParam));
    moved = Math.max(moved, maxDiff(before.get(k)!, torchParam));
  }
  assert.ok(moved > 5e-6, `${what}: the step moves the parameters (${moved})`);
  assert.ok(worst <= 1e-7 + moved * 1e-3, `${what}: our step and torch's differ by ${worst} (the step moves up to ${moved})`);
  const spe = ck.sidecar.stepsPerEpoch;
  const ours = [0, 1, 2].map((e) => lrAt(ck.sidecar.schedule, (ck.sidecar.epoch + e) * spe));
  (report.lrs as number[]).forEach((lr, e) => assert.ok(Math.abs(lr - ours[e]!) <= 1e-9 * ours[e]!, `${what}: epoch ${ck.sidecar.epoch + e + 1} lr ${lr} in torch, ${ours[e]} here`));
}

describe('a detection run moves to train.py --resume and back', () => {
  test('torch continues our AdamW run exactly; a torch SGD run continues here with its moments, epoch and lr, and goes back', { skip: noTorch }, async () => {
    const out = await trainedRun();
    await assertTorchContinues(out, 'AdamW run');

    // A run torch trained: 2 epochs of 2 SGD steps (warm-up, then the milestone at epoch 2 passed).
    const torchPth = join(root, 'torch-run.pth');
    const named = join(root, 'torch-named.safetensors');
    const made = python('make', '--pth', join(out, 'checkpoint.pth'), '--out', torchPth, '--named', named, '--opt', 'sgd', '--epochs-done', '2', '--steps', '2', '--lr-steps', '2');
    const theirs = tensors(await readFile(named));
    const imported = readReferencesCheckpoint((await readPth(await readFile(torchPth))).root, 'torch-run.pth');
    assert.equal(imported.epochs, 2);
    assert.deepEqual([imported.optimizer.kind, imported.milestones, imported.gamma, imported.initialLr], ['sgd', [2], 0.1, 0.01]);
    assert.equal(imported.moments.size, theirs.size);
    for (const [k, t] of imported.moments) assert.equal(maxDiff(t.data as Float32Array, theirs.get(k)!), 0, `torch's ${k} read under our key`);

    const train = await openCocoData(root, 'train');
    const back = join(root, 'continued');
    const result = await trainDetection({ train, resumeFrom: torchPth, out: back, epochs: 3, threads: 2, savePth: true });
    assert.deepEqual(result.history.map((m) => m.epoch), [3], 'the run continues at epoch 3 of 3');
    assert.ok(Math.abs(result.history[0]!.lr - (made.next_lr as number)) <= 1e-9 * (made.next_lr as number), `lr ${result.history[0]!.lr}, torch's next ${made.next_lr}`);
    assert.deepEqual([result.trainConfig.optimizer.kind, result.trainConfig.lr, result.trainConfig.batchSize], ['sgd', 0.01, 2]);
    await assertTorchContinues(back, 'SGD run continued here');

    // The CLI's --resume <.pth>: a checkpoint with weights only is one clear line, and so is a directory that holds a run already.
    const weightsOnly = join(root, 'weights-only.pth');
    await writeFile(weightsOnly, writePth({ model: imported.model, epoch: 0 }));
    assertCleanFailure(await cli('train', '--task', 'detection', '--data', root, '--resume', weightsOnly, '--out', join(root, 'x')), /holds no optimizer or lr_scheduler state to resume: start from its weights with --finetune/);
    assertCleanFailure(await cli('train', '--data', root, '--resume', torchPth, '--out', back), /already holds a training checkpoint/);
  });
});
