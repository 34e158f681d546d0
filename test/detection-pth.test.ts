/**
 * A detector trained here moves to torchvision and back: `train --task detection --save-pth`
 * writes checkpoint.pth in references/detection's layout; bench/maskrcnn-pth.py loads it into
 * torchvision 0.14's MaskRCNN (load_state_dict(strict=True)) and detects on a scene image; our
 * detect on the same checkpoint gives the same detections; and the .pth torchvision saves after
 * loading it loads here with those detections again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { openCocoData } from '../src/node/coco-data.js';
import { DetectionModel, readPth, type Detection } from '../src/index.js';
import { cli } from './cli-runner.js';
import { TINY_DETECTOR, tinyDetectionScenes } from './detection-scenes.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../bench/maskrcnn-pth.py', import.meta.url));
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
    const out = join(root, 'run');
    const r = await cli('train', '--task', 'detection', '--data', root, '--finetune', WEIGHTS, '--min-size', String(SIZES.minSize), '--max-size', String(SIZES.maxSize),
      '--batch-size', '2', '--threads', '2', '--epochs', '1', '--out', out, '--save-pth');
    assert.equal(r.code, 0, r.stderr);
    const pth = join(out, 'checkpoint.pth');
    const written = await readPth(await readFile(pth));
    assert.deepEqual([...written.entries].sort(), ['args', 'epoch', 'model']);
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
