/**
 * Mask R-CNN training's NaN/inf stop (run.ts, shared with classification and segmentation) on
 * the detection task: non-finite RoIs (diverged weights give NaN proposals; here a ground-truth box,
 * which joins the proposals, is poisoned after the first epoch) stop the run with one error naming
 * the epoch and step instead of ONNX Runtime's RoIAlign error, and the first epoch's checkpoint
 * stays as it was written, finite.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import '../src/node/platform.js';
import { SwiftFormerError } from '../src/core/errors.js';
import { readStateDict } from '../src/weights/read.js';
import { openCocoData } from '../src/node/coco-data.js';
import { trainDetection } from '../src/train/detection-trainer.js';
import { TINY_DETECTOR, tinyDetectionScenes } from './detection-scenes.js';

let root: string;
before(async () => {
  root = await tinyDetectionScenes('diverge-detection-');
});
after(() => rm(root, { recursive: true, force: true }));

describe('Mask R-CNN training stops on a non-finite loss', () => {
  test('NaN RoIs in epoch 2 stop the run; the epoch-1 checkpoint is intact', async () => {
    const train = await openCocoData(root, 'train', { training: true, numClasses: 5 });
    let poison = false;
    const sample = train.sample.bind(train);
    train.sample = async (i: number) => {
      const s = await sample(i);
      if (poison) s.target.boxes[0] = Number.NaN;
      return s;
    };
    const out = join(root, 'run');
    await assert.rejects(
      trainDetection({
        train, weights: TINY_DETECTOR, epochs: 3, batchSize: 2, minSizes: [64], maxSize: 128, threads: 2, out,
        onProgress: (e) => { if (e.phase === 'epoch') poison = true; },
      }),
      (err: unknown) => {
        assert.ok(err instanceof SwiftFormerError && err.code === 'DIVERGED', String(err));
        assert.match(err.message, /training diverged: the sampled RoIs are not finite at epoch 2, step 1 of 2/);
        assert.match(err.message, /last good checkpoint \(epoch 1\) is intact/);
        return true;
      },
    );
    const state = await readStateDict(await readFile(join(out, 'checkpoint.safetensors')));
    let tensors = 0;
    for (const t of state.values()) {
      if (t.dtype !== 'float32') continue;
      tensors++;
      assert.ok(t.data.every(Number.isFinite));
    }
    assert.ok(tensors > 100, `${tensors} float tensors in the checkpoint`);
    const metrics = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(metrics.length, 1, 'one good epoch logged');
  });
});
