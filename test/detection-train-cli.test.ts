/**
 * `swiftformer train --task detection` on generated scenes (COCO layout), fine-tuning the
 * maskrcnn-tiny fixture's detector: the five losses in the progress and the metrics, a resumed
 * run that ends byte-identical to an uninterrupted one, and a checkpoint that `eval` scores as the
 * run's own evaluation did.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cli } from './cli-runner.js';
import { TINY_DETECTOR, tinyDetectionScenes } from './detection-scenes.js';

const WEIGHTS = TINY_DETECTOR;
const LOSSES = ['loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg'];
let root: string;

before(async () => {
  root = await tinyDetectionScenes('train-detection-');
});
after(() => rm(root, { recursive: true, force: true }));

const common = ['--task', 'detection', '--data', '', '--finetune', WEIGHTS, '--min-size', '128', '--max-size', '256', '--batch-size', '2', '--threads', '2'];
const args = (out: string, epochs: number) => common.map((a) => (a === '' ? root : a)).concat(['--out', out, '--epochs', String(epochs)]);

describe('swiftformer train --task detection', () => {
  test('five losses, exact resume, and a checkpoint eval scores as the run did', async () => {
    const straight = join(root, 'straight');
    const a = await cli('train', ...args(straight, 2));
    assert.equal(a.code, 0, a.stderr);
    for (const name of LOSSES) assert.match(a.stderr, new RegExp(name), 'progress shows the five losses');
    const metrics = (await readFile(join(straight, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(metrics.length, 2);
    for (const m of metrics) {
      for (const name of LOSSES) assert.ok(Number.isFinite(m[`train_${name}`]) && m[`train_${name}`] > 0, `${name}: ${m[`train_${name}`]}`);
      assert.ok(m.test_bbox_AP >= 0 && m.test_segm_AP >= 0);
    }
    // The 1x schedule scaled to 2 epochs: the lr drops 10x after the first.
    assert.ok(Math.abs(metrics[1].lr / 2e-5 - 1) < 1e-9, `lr ${metrics[1].lr}`);

    const resumed = join(root, 'resumed');
    const b1 = await cli('train', ...args(resumed, 1));
    assert.equal(b1.code, 0, b1.stderr);
    const b2 = await cli('train', '--resume', resumed, '--epochs', '2', '--threads', '2');
    assert.equal(b2.code, 0, b2.stderr);
    assert.deepEqual(await readFile(join(resumed, 'checkpoint.safetensors')), await readFile(join(straight, 'checkpoint.safetensors')));

    const e = await cli('eval', root, '--weights', join(straight, 'checkpoint.safetensors'), '--min-size', '128', '--max-size', '256', '--json');
    assert.equal(e.code, 0, e.stderr);
    const scored = JSON.parse(e.stdout);
    assert.equal(scored.bbox.AP, metrics[1].test_bbox_AP);
    assert.equal(scored.segm.AP, metrics[1].test_segm_AP);
  });
});
