/**
 * Mask R-CNN training against torchvision 0.14 (../shared/fixtures/maskrcnn-tiny-train): the
 * model in train mode on two images with gt boxes, labels and masks. With the anchor and proposal
 * samples torchvision drew injected (and its proposals), the five losses, every parameter's
 * gradient and the BatchNorm buffers after the pass follow the reference (fixtures README
 * tolerances); the matcher allows every injected sample; the transform gives the reference batch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import '../src/node/platform.js';
import { inferMaskRcnnConfig, type MaskRcnnConfig } from '../src/models/maskrcnn.js';
import { readStateDict } from '../src/weights/read.js';
import type { StateDict } from '../src/core/tensor.js';
import { assembleBatch, type AssembledBatch, type ResizedImage } from '../src/train/detection-targets.js';
import { DetectionForward, DetectionTrainStep, LOSS_NAMES, MaskChunkStep, type DetectionStepResult, type HeldValues } from '../src/train/detection-step.js';
import { TrainTransform } from '../src/train/detection-transform.js';
import { assertRunningStats, fixtureBytes, fixtureTensor, manifest, relativeError } from './fixtures.js';

const DIR = 'maskrcnn-tiny-train';
const bytes = (file: string) => fixtureBytes(`${DIR}/${file}`);
const int64s = (file: string) => Int32Array.from(new BigInt64Array(bytes(file).slice().buffer), Number);
const float32s = (file: string) => new Float32Array(bytes(file).slice().buffer);

let state: StateDict;
let cfg: MaskRcnnConfig;
let resized: ResizedImage[];
let batch: AssembledBatch;
let result: DetectionStepResult;
let step: DetectionTrainStep | undefined;
let forward: DetectionForward | undefined;
let masks: MaskChunkStep | undefined;
/** The step's forward half on the fixture's images: our proposals, and the values the rest of the step continues from. */
let ours: { proposals: Float32Array[]; held: HeldValues };
let transform: TrainTransform | undefined;

before(async () => {
  // The train fixture's weights are maskrcnn-tiny's with the BatchNorm buffers after the pass: start from maskrcnn-tiny's.
  state = await readStateDict(fixtureBytes('maskrcnn-tiny/weights.safetensors'));
  cfg = inferMaskRcnnConfig(state, { transform: { minSize: 128, maxSize: 256 } });
  transform = new TrainTransform(cfg.settings.transform, { threads: 2 });
  resized = [];
  for (const i of [0, 1]) {
    const image = fixtureTensor(DIR, `images${i}.bin`);
    const [, h, w] = image.shape as [number, number, number];
    resized.push(await transform.apply({ pixels: image.data, height: h, width: w, boxes: float32s(`gt_boxes${i}.bin`), labels: int64s(`gt_labels${i}.bin`), masks: bytes(`gt_masks${i}.bin`) }, 128));
  }
  const samples = {
    rpnPos: [0, 1].map((i) => bytes(`rpn_pos${i}.bin`)), rpnNeg: [0, 1].map((i) => bytes(`rpn_neg${i}.bin`)),
    roiPos: [0, 1].map((i) => bytes(`roi_pos${i}.bin`)), roiNeg: [0, 1].map((i) => bytes(`roi_neg${i}.bin`)),
  };
  batch = assembleBatch(resized, [0, 1].map((i) => float32s(`roi_proposals${i}.bin`)), cfg, { samples });
  forward = await DetectionForward.create(cfg, batch.shape, { session: { threads: 2 } });
  ours = await forward.run(state, batch.feeds.images!, resized.map((r) => [r.height, r.width]));
  step = await DetectionTrainStep.create(cfg, batch.shape, { session: { threads: 2 } });
  masks = await MaskChunkStep.create(cfg, batch.shape, { session: { threads: 2 } });
  result = await step.run(state, batch.feeds, ours.held, masks);
});
after(async () => {
  await step?.release();
  await forward?.release();
  await masks?.release();
  await transform?.release();
});

describe('Mask R-CNN training step against torchvision (maskrcnn-tiny-train)', () => {
  test("the transform and padding give torchvision's batch (maskrcnn-tiny's eval images)", async () => {
    const images = await Promise.all([0, 1].map(async (i) => {
      const image = fixtureTensor('maskrcnn-tiny', `images${i}.bin`);
      const [, h, w] = image.shape as [number, number, number];
      return transform!.apply({ pixels: image.data, height: h, width: w, boxes: float32s(`gt_boxes${i}.bin`), labels: int64s(`gt_labels${i}.bin`), masks: bytes(`gt_masks${i}.bin`) }, 128);
    }));
    assert.deepEqual(images.map((r) => [r.height, r.width]), manifest('maskrcnn-tiny').image_sizes_resized);
    const reference = fixtureTensor('maskrcnn-tiny', 'batch.bin');
    const ours = assembleBatch(images, [0, 1].map((i) => float32s(`roi_proposals${i}.bin`)), cfg).feeds.images!;
    assert.deepEqual(ours.shape, reference.shape);
    // torch's resize fuses multiply-adds (transform.ts): a few units in the last place.
    assert.ok(relativeError(ours.data as Float32Array, reference.data) <= 1e-6);
  });

  test('the anchors are torchvision\'s count, and the samples it drew are ones our matcher allows', () => {
    assert.equal(batch.shape.anchors, bytes('rpn_pos0.bin').length);
    // assembleBatch refuses an injected sample its matcher would not allow; the counts are torchvision's.
    const count = (files: string[]) => files.reduce((t, f) => t + bytes(f).reduce((u, v) => u + v, 0), 0);
    assert.equal(batch.counts.anchors, count(['rpn_pos0.bin', 'rpn_neg0.bin', 'rpn_pos1.bin', 'rpn_neg1.bin']));
    assert.equal(batch.counts.rois, count(['roi_pos0.bin', 'roi_neg0.bin', 'roi_pos1.bin', 'roi_neg1.bin']));
    assert.equal(batch.counts.positives, count(['roi_pos0.bin', 'roi_pos1.bin']));
  });

  test('the five losses', () => {
    const m = manifest(DIR);
    for (const name of LOSS_NAMES) {
      const ref = m.losses[name] as number;
      assert.ok(Math.abs(result.losses[name] - ref) <= 1e-4 * Math.abs(ref) + 1e-6, `${name}: ${result.losses[name]} vs torchvision ${ref}`);
    }
    assert.ok(Math.abs(result.loss - m.total_loss) <= 1e-4 * m.total_loss);
  });

  test('RoIs go to their own pyramid level: the fixture uses several, and padding each level\'s block changes no loss or gradient', async () => {
    // torchvision's level of each sampled RoI (MultiScaleRoIAlign's LevelMapper) spreads the fixture's RoIs over more than one level,
    // so the per-level blocks are exercised by the parity tests above.
    assert.ok(batch.shape.roiLevels.filter((c) => c > 0).length >= 2, `RoIs per level ${batch.shape.roiLevels}`);
    assert.equal(batch.shape.roiLevels.reduce((a, b) => a + b, 0), batch.counts.rois);
    const samples = {
      rpnPos: [0, 1].map((i) => bytes(`rpn_pos${i}.bin`)), rpnNeg: [0, 1].map((i) => bytes(`rpn_neg${i}.bin`)),
      roiPos: [0, 1].map((i) => bytes(`roi_pos${i}.bin`)), roiNeg: [0, 1].map((i) => bytes(`roi_neg${i}.bin`)),
    };
    const padded = assembleBatch(resized, [0, 1].map((i) => float32s(`roi_proposals${i}.bin`)), cfg, { samples, pad: { levelMultiple: 64, multiple: 16, rois: 1100 } });
    assert.ok(padded.shape.roiLevels.every((c) => c % 64 === 0) && padded.shape.rois >= 1100 && padded.shape.maskRois % 16 === 0);
    const other = await DetectionTrainStep.create(cfg, padded.shape, { session: { threads: 2 } });
    const otherMasks = await MaskChunkStep.create(cfg, padded.shape, { session: { threads: 2 } });
    try {
      const r = await other.run(state, padded.feeds, ours.held, otherMasks);
      for (const name of LOSS_NAMES) assert.ok(Math.abs(r.losses[name] - result.losses[name]) <= 1e-5 * Math.abs(result.losses[name]) + 1e-7, `${name}: ${r.losses[name]} vs ${result.losses[name]}`);
      for (const [key, g] of result.grads) {
        const h = r.grads.get(key)!.data;
        const scale = g.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const worst = g.data.reduce((m, v, i) => Math.max(m, Math.abs(v - h[i]!)), 0);
        assert.ok(worst <= 1e-5 * scale + 1e-8, `${key}: padded batch differs by ${worst} (max |grad| ${scale})`);
      }
    } finally {
      await other.release();
      await otherMasks.release();
    }
  });

  test('every parameter gradient within 1e-4 max|ref| + 2e-6 (the mask head\'s convs 2e-3: see below)', async () => {
    const reference = await readStateDict(fixtureBytes(`${DIR}/grads.safetensors`));
    assert.equal(result.grads.size, reference.size, 'one gradient per parameter');
    const failures: string[] = [];
    for (const [key, ref] of reference) {
      const got = result.grads.get(key);
      assert.ok(got, `gradient of ${key}`);
      assert.deepEqual(got.shape, ref.shape, key);
      // The mask head's four 3x3 convs get 2e-3: their gradients are this sensitive on this input.
      // Ours differ from the fixture's by up to 1.2e-3 max|ref| (the first; 3e-4 the last), and so
      // does torchvision 0.14 itself rerun here on the same weights, images and injected samples
      // (1.18e-3; it and we differ by 9e-4). torch's autograd of those layers on our pooled features
      // gives our gradients to 4e-6, so the rules are right. Through the features the same spread
      // reaches the backbone: stage 1's attention Proj needs an absolute floor of 2.07e-6 (the README
      // suggests about 1e-6), hence 2e-6 for all.
      const tol = /^roi_heads\.mask_head\.\d\.0\./.test(key) ? 2e-3 : 1e-4;
      let diff = 0;
      let scale = 0;
      ref.data.forEach((r, i) => {
        diff = Math.max(diff, Math.abs(got.data[i]! - Number(r)));
        scale = Math.max(scale, Math.abs(Number(r)));
      });
      if (diff > tol * scale + 2e-6) failures.push(`${key}: max diff ${diff.toExponential(2)} vs max|ref| ${scale.toExponential(2)}`);
    }
    assert.deepEqual(failures, []);
  });

  test("the train-mode RPN's proposals are torchvision's (2000 / 2000 top-n, batch statistics)", () => {
    const mine = ours.proposals;
    for (const i of [0, 1]) {
      const ref = float32s(`roi_proposals${i}.bin`);
      assert.equal(mine[i]!.length, ref.length, `image ${i}: ${mine[i]!.length / 4} proposals, torchvision ${ref.length / 4}`);
      // As a set (the README's rule: near-equal scores may swap places): each of torchvision's
      // proposals has one of ours within 2e-3 px on every coordinate (the decoded deltas differ
      // in the last bits; clipped slivers 0.03 px wide occur, so IoU is no measure here).
      const n = mine[i]!.length / 4;
      for (let r = 0; r < ref.length / 4; r++) {
        let best = Infinity;
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let c = 0; c < 4; c++) d = Math.max(d, Math.abs(mine[i]![4 * j + c]! - ref[4 * r + c]!));
          best = Math.min(best, d);
        }
        assert.ok(best <= 2e-3, `image ${i}: torchvision's proposal ${r} has no match (closest ${best} px)`);
      }
    }
  });

  test('BatchNorm running statistics after the pass', () => assertRunningStats(state, result.stats, `${DIR}/bn_after.safetensors`));
});
