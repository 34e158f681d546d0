/**
 * Training around the compiled step: optimizer, schedule, clipping, EMA, targets, data, the
 * training loop (learning, resume, divergence, checkpoints) and the CLI. Models are the tiny
 * fixture architecture at 32x32, datasets a few dozen synthetic images: every real training here
 * takes a second or two.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import '../src/node/platform.js';
import { augmentFor, DEFAULT_AUGMENT, deriveSeed, flipHorizontal, mixBatch, randomResizedCropBox, sampleBeta, sampleTransform, type SampleTransform } from '../src/train/augment.js';
import { cropImage, padImage } from '../src/preprocess/transforms.js';
import { moduleOrder, readCheckpoint, SIDECAR } from '../src/train/checkpoint.js';
import { DEFAULTS, freshConfig, resumedConfig } from '../src/train/config.js';
import { runEpochs, planRun, type StepOutput, type TaskRun } from '../src/train/run.js';
import { inputBatches, limitDataset, type ImageDataset } from '../src/data/dataset.js';
import { Loader } from '../src/train/loader.js';
import { fashionMnistDir, loadIdxDataset, loadImageFolder, openTrainingData, parseIdx } from '../src/node/datasets.js';
import { SwiftFormerError } from '../src/core/errors.js';
import { loadSwiftFormer } from '../src/models/model.js';
import {
  AdamW, ModelEma, Sgd, adaptiveClipGrad, clipGradNorm, noWeightDecay, timmNoDecay, weightDecayGroups,
} from '../src/train/optim.js';
import { hardDistillTargets, smoothTargets, softDistillTargets } from '../src/train/targets.js';
import { readPth } from '../src/weights/pth.js';
import { Random } from '../src/core/random.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { cosineLr, CosineSchedule, lrAt, planSchedule } from '../src/train/schedule.js';
import { simdAvailable } from '../src/train/simd.js';
import { initialWeights } from '../src/models/swiftformer.js';
import { concatBatch, float32, type FloatTensor, type StateDict, type Tensor } from '../src/core/tensor.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import { modelTeacher, onnxTeacher, train, type TrainOptions } from '../src/train/trainer.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixtureBytes, fixturePath, idxBytes, TINY_CONFIG } from './fixtures.js';

const f32 = (shape: number[], values: number[]): FloatTensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

// ---------------------------------------------------------------- AdamW

describe('AdamW (torch.optim.AdamW arithmetic)', () => {
  const modes = simdAvailable() ? [true, false] : [false];
  for (const simd of modes) {
    const label = simd ? 'SIMD kernel' : 'JavaScript loop';

    test(`${label}: the first step moves each parameter by lr * sign(g) (bias correction), zero gradients stay`, () => {
      const state: StateDict = new Map([['w', f32([2, 2], [1, -2, 0.5, 3])]]);
      const opt = new AdamW(state, ['w'], { lr: 0.1, weightDecay: 0, simd });
      opt.step(new Map([['w', f32([2, 2], [0.1, -0.2, 3e-3, 0])]]));
      // m^ = g, v^ = g^2, so the step is lr * g / (|g| + eps): lr * sign(g) up to eps / |g|.
      close(state.get('w')!.data as Float32Array, [0.9, -1.9, 0.5 - 0.1 * (3e-3 / (3e-3 + 1e-8)), 3], 1e-6, 'w');
      close(opt.expAvg.get('w')!, [0.01, -0.02, 3e-4, 0], 1e-6, 'exp_avg');
      close(opt.expAvgSq.get('w')!, [1e-5, 4e-5, 9e-9, 0], 1e-6, 'exp_avg_sq');
    });

    test(`${label}: three steps with decoupled weight decay match the PyTorch formula`, () => {
      const p0 = [1, -2, 0.5, 3, 0.25, -0.75];
      const grads = [[0.1, -0.2, 0.3, 0, 0.05, 1], [-0.3, 0.1, 0.2, 0.4, -0.05, 1], [0.2, 0.2, -0.1, -0.4, 0.1, -2]];
      const [lr, wd, b1, b2, eps] = [0.01, 0.1, 0.9, 0.999, 1e-8];
      // The formula written out: p *= 1 - lr wd; m, v running moments; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps).
      const p = [...p0];
      const m = p0.map(() => 0);
      const v = p0.map(() => 0);
      grads.forEach((g, s) => {
        const t = s + 1;
        for (let i = 0; i < p.length; i++) {
          p[i]! *= 1 - lr * wd;
          m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
          v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
          p[i]! -= (lr / (1 - b1 ** t)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps));
        }
      });
      const state: StateDict = new Map([['conv.weight', f32([2, 3], p0)]]);
      const opt = new AdamW(state, ['conv.weight'], { lr, weightDecay: wd, simd });
      for (const g of grads) opt.step(new Map([['conv.weight', f32([2, 3], g)]]));
      close(state.get('conv.weight')!.data as Float32Array, p, 1e-6, 'p');
      assert.equal(opt.stepCount, 3);
    });

    test(`${label}: a constant gradient moves by lr every step; no decay on biases`, () => {
      const state: StateDict = new Map([['head.bias', f32([3], [0, 0, 0])]]);
      const opt = new AdamW(state, ['head.bias'], { lr: 0.01, weightDecay: 0.5, simd });
      for (let s = 0; s < 5; s++) opt.step(new Map([['head.bias', f32([3], [2, -1, 0.5])]]));
      close(state.get('head.bias')!.data as Float32Array, [-0.05, 0.05, -0.05], 1e-5, 'bias');
    });
  }

  test('the SIMD path keeps the parameters in its memory, same values; the state dict holds views', () => {
    if (!simdAvailable()) return;
    const original = Float32Array.from([1, 2, 3, 4, 5]);
    const state: StateDict = new Map([['w', f32([5], [...original])]]);
    const opt = new AdamW(state, ['w'], { lr: 0 });
    assert.ok(opt.arena);
    assert.equal(state.get('w')!.data.buffer, opt.arena.memory.buffer);
    assert.deepEqual([...state.get('w')!.data], [...original]);
  });

  test('missing gradients and bad learning rates are errors', () => {
    const state: StateDict = new Map([['w', f32([2], [1, 2])]]);
    const opt = new AdamW(state, ['w']);
    assert.throws(() => opt.step(new Map()), /no gradient of 2 values for w/);
    assert.throws(() => opt.step(new Map([['w', f32([2], [1, 1])]]), NaN), /learning rate/);
  });
});

describe('weight-decay groups', () => {
  test('timm rule plus layer scales: 1-d tensors, biases, BN weights and layer scales do not decay; w_g (D,1) does', () => {
    const config = { ...TINY_CONFIG, numClasses: 10, distillation: false };
    const state = initialWeights(config, 'classifier', 0);
    const keys = [...state.keys()].filter((k) => !/running_|num_batches/.test(k));
    const { decay, noDecay } = weightDecayGroups(state, keys);
    for (const k of ['patch_embed.0.weight', 'network.0.0.local_representation.pwconv1.weight', 'network.4.0.dwconv.weight', 'network.6.0.attn.w_g', 'network.6.0.attn.to_query.weight', 'head.weight']) {
      assert.ok(decay.includes(k), `${k} decays`);
    }
    for (const k of ['patch_embed.0.bias', 'patch_embed.1.weight', 'network.0.0.local_representation.layer_scale', 'network.4.0.layer_scale', 'network.6.0.layer_scale_1', 'network.6.0.layer_scale_2', 'norm.weight', 'head.bias']) {
      assert.ok(noDecay.includes(k), `${k} does not decay`);
    }
    assert.equal(decay.length + noDecay.length, keys.length);
    assert.deepEqual(state.get('network.4.0.layer_scale')!.shape, [32, 1, 1], 'layer scales are 3-d, exempted by name');
    assert.equal(noWeightDecay('x.w_g', [48, 1]), false);
  });

  test('extra exemptions (timm no_weight_decay)', () => {
    const state: StateDict = new Map([['a.weight', f32([2, 2], [1, 2, 3, 4])], ['b.weight', f32([2, 2], [1, 2, 3, 4])]]);
    assert.deepEqual(weightDecayGroups(state, ['a.weight', 'b.weight'], ['b.weight']), { decay: ['a.weight'], noDecay: ['b.weight'] });
  });
});

// ---------------------------------------------------------------- schedule

describe('cosine schedule with linear warm-up (timm CosineLRScheduler, per step)', () => {
  const options = { lr: 1e-3, totalSteps: 100, warmupSteps: 10, warmupLr: 1e-6, minLr: 1e-5 };

  test('warm-up is linear from warmupLr', () => {
    assert.equal(cosineLr(0, options), 1e-6);
    close([cosineLr(5, options)], [1e-6 + (5 * (1e-3 - 1e-6)) / 10], 1e-12);
  });

  test('cosine values at known steps (closed form), floor at and after the end', () => {
    const cos = (t: number) => 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.cos((Math.PI * t) / 100));
    close([cosineLr(10, options)], [cos(10)], 1e-12);
    close([cosineLr(50, options)], [(1e-3 + 1e-5) / 2], 1e-12);
    close([cosineLr(99, options)], [cos(99)], 1e-12);
    assert.equal(cosineLr(100, options), 1e-5);
    assert.equal(cosineLr(250, options), 1e-5);
  });

  test('no warm-up starts at the peak; warmupPrefix shifts the cosine past the warm-up', () => {
    assert.equal(cosineLr(0, { lr: 0.5, totalSteps: 10 }), 0.5);
    close([cosineLr(5, { lr: 0.5, totalSteps: 10 })], [0.25], 1e-12);
    const prefixed = { ...options, warmupPrefix: true };
    assert.equal(cosineLr(10, prefixed), 1e-3);
    close([cosineLr(60, prefixed)], [(1e-3 + 1e-5) / 2], 1e-12);
  });

  test('bad settings are errors', () => {
    assert.throws(() => new CosineSchedule({ lr: -1, totalSteps: 10 }), /lr must be/);
    assert.throws(() => new CosineSchedule({ lr: 1, totalSteps: 0 }), /total steps/);
  });
});

// ---------------------------------------------------------------- clipping and EMA

describe('gradient clipping', () => {
  test('AGC (timm adaptive_clip_grad): unit-wise against clip_factor * max(|w_unit|, eps)', () => {
    const state: StateDict = new Map([
      ['w', f32([3, 2], [3, 4, 0, 0, 0, 0])],
      ['b', f32([2], [0.3, 0.4])],
    ]);
    const grads = new Map([
      ['w', f32([3, 2], [0.3, 0.4, 1e-6, 0, 0.01, 0])],
      ['b', f32([2], [0.003, 0.004])],
    ]);
    adaptiveClipGrad(state, grads, 0.01, 1e-3);
    // Row 0: |w| = 5, max 0.05, |g| = 0.5 -> scaled to norm 0.05. Row 1: |w| = 0 -> eps 1e-3, max 1e-5,
    // |g| = 1e-6 stays. Row 2: |g| = 0.01 -> 1e-5. Bias (1-d, whole tensor): |w| = 0.5, max 0.005, |g| = 0.005: not above, stays.
    close(grads.get('w')!.data, [0.03, 0.04, 1e-6, 0, 1e-5, 0], 1e-6, 'w grad');
    close(grads.get('b')!.data, [0.003, 0.004], 1e-7, 'b grad');
  });

  test('global norm clipping (torch clip_grad_norm_): scale max / (norm + 1e-6), returns the norm', () => {
    const grads = new Map([['a', f32([2], [3, 0])], ['b', f32([1], [4])]]);
    assert.equal(clipGradNorm(grads, 1), 5);
    close([...grads.get('a')!.data, ...grads.get('b')!.data], [3 / (5 + 1e-6), 0, 4 / (5 + 1e-6)], 1e-7);
    const small = new Map([['a', f32([2], [0.3, 0.4])]]);
    clipGradNorm(small, 1);
    close(small.get('a')!.data, [Math.fround(0.3), Math.fround(0.4)], 0, 'under the limit: unchanged');
  });
});

describe('EMA of the weights', () => {
  test('ema = d ema + (1 - d) w for every float tensor (BN statistics too); integer buffers copied', () => {
    const model: StateDict = new Map<string, Tensor>([
      ['w', f32([2], [1, 2])],
      ['bn.running_mean', f32([2], [0, 0])],
      ['bn.num_batches_tracked', { dtype: 'int64', shape: [], data: BigInt64Array.of(0n) }],
    ]);
    const ema = new ModelEma(model, 0.9, false);
    (model.get('w')!.data as Float32Array).set([3, -2]);
    (model.get('bn.running_mean')!.data as Float32Array).set([5, 6]);
    (model.get('bn.num_batches_tracked')!.data as BigInt64Array)[0] = 7n;
    ema.update(model);
    close(ema.state.get('w')!.data as Float32Array, [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2], 1e-7, 'ema w');
    close(ema.state.get('bn.running_mean')!.data as Float32Array, [0.1 * 5, 0.1 * 6], 1e-7, 'ema running mean');
    assert.equal(ema.state.get('bn.num_batches_tracked')!.data[0], 7n);
    assert.notEqual(ema.state.get('w')!.data, model.get('w')!.data, 'own arrays');
  });

  test('warm-up: decay (1 + t) / (10 + t) until it reaches the configured decay', () => {
    const ema = new ModelEma(new Map([['w', f32([1], [0])]]), 0.9);
    const model: StateDict = new Map([['w', f32([1], [10])]]);
    assert.equal(ema.currentDecay(), 0.1);
    ema.update(model); // 0.1 * 0 + 0.9 * 10
    close(ema.state.get('w')!.data as Float32Array, [9], 1e-6, 'first update');
    assert.equal(ema.currentDecay(), 2 / 11);
    for (let t = 1; t < 100; t++) ema.update(model);
    assert.equal(ema.currentDecay(), 0.9);
  });
});

// ---------------------------------------------------------------- targets and augmentation

const rowSums = (t: FloatTensor) => Array.from({ length: t.shape[0]! }, (_, i) => t.data.subarray(i * t.shape[1]!, (i + 1) * t.shape[1]!).reduce((a, b) => a + b, 0));

describe('targets', () => {
  test('label smoothing: (1 - eps) onehot + eps / K, rows sum to 1', () => {
    const t = smoothTargets([2, 0], 4, 0.1);
    close(t.data, [0.025, 0.025, 0.925, 0.025, 0.925, 0.025, 0.025, 0.025], 1e-7);
    close(rowSums(t), [1, 1], 1e-6);
    assert.throws(() => smoothTargets([4], 4), /not a class index/);
  });

  test('mixup and cutmix: targets are lam y + (1 - lam) flip(y), smoothed; rows sum to 1', () => {
    for (const [mixupAlpha, cutmixAlpha, mode] of [[0.8, 0, 'mixup'], [0, 1, 'cutmix']] as const) {
      const n = 4;
      const pixels: FloatTensor = { dtype: 'float32', shape: [n, 3, 8, 8], data: new Float32Array(n * 192) };
      for (let i = 0; i < n; i++) pixels.data.fill(i, i * 192, (i + 1) * 192);
      const labels = [0, 1, 2, 3];
      const { targets, lam, mode: used } = mixBatch(pixels, labels, 5, 0.1, new Random(3), { mixupAlpha, cutmixAlpha });
      assert.equal(used, mode);
      close(rowSums(targets), [1, 1, 1, 1], 1e-6, `${mode} row sums`);
      // Image 0 is mixed with image 3: its own class gets lam of the on-mass, class 3 the rest.
      close([targets.data[0]!, targets.data[3]!], [0.02 + lam * 0.9, 0.02 + (1 - lam) * 0.9], 1e-6, `${mode} image 0`);
      // Pixels: image 0 holds lam of its own value (0) and 1 - lam of image 3's (3), on average.
      const mean0 = pixels.data.subarray(0, 192).reduce((a, b) => a + b, 0) / 192;
      close([mean0], [3 * (1 - lam)], 1e-5, `${mode} pixels`);
    }
  });

  test('distillation targets: hard = teacher argmax one-hot, soft = softmax(logits / T)', () => {
    const logits = f32([2, 3], [1, 3, 2, 0, 0, Math.log(2)]);
    assert.deepEqual([...hardDistillTargets(logits).data], [0, 1, 0, 0, 0, 1]);
    const soft = softDistillTargets(logits, 1);
    close(soft.data.subarray(3), [0.25, 0.25, 0.5], 1e-6);
    close(rowSums(softDistillTargets(logits, 4)), [1, 1], 1e-6);
  });

  test('Beta samples have the right mean', () => {
    const rng = new Random(1);
    let sum = 0;
    for (let i = 0; i < 4000; i++) sum += sampleBeta(rng, 0.8, 0.8);
    close([sum / 4000], [0.5], 0.03);
  });
});

describe('augmentation', () => {
  const image = { width: 4, height: 2, data: Uint8Array.from({ length: 24 }, (_, i) => i) };

  test('pad, crop, flip', () => {
    const padded = padImage(image, 2, 2);
    assert.equal(padded.width, 8);
    assert.equal(padded.height, 6);
    assert.deepEqual([...cropImage(padded, 2, 2, 4, 2).data], [...image.data]);
    assert.equal(padded.data[0], 0);
    const flipped = flipHorizontal({ ...image, data: image.data.slice() });
    assert.deepEqual([...flipped.data.subarray(0, 12)], [9, 10, 11, 6, 7, 8, 3, 4, 5, 0, 1, 2]);
  });

  test('random resized crop: boxes inside the image, area and ratio in range; center fallback', () => {
    const rng = new Random(5);
    for (let i = 0; i < 200; i++) {
      const b = randomResizedCropBox(rng, 32, 24);
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= 32 && b.y + b.height <= 24, JSON.stringify(b));
    }
    // An impossible ratio range: every draw fails, the fallback is a centered crop at the nearest ratio.
    const box = randomResizedCropBox(new Random(1), 40, 10, [0.99, 1], [1, 1]);
    assert.deepEqual(box, { x: 15, y: 0, width: 10, height: 10 });
  });

  test('augment: true means timm\'s ImageNet augmentation for photos, shifts of 1/16 of the size for small images', () => {
    assert.deepEqual(augmentFor([224, 224]), DEFAULT_AUGMENT);
    assert.deepEqual(augmentFor([32, 32]), { randomResizedCrop: false, randomCrop: { padding: 2 }, hflip: 0.5, colorJitter: false, randomErasing: { probability: 0.25 } });
    assert.equal((augmentFor([64, 48]).randomCrop as { padding: number }).padding, 3);
    assert.deepEqual(augmentFor([96, 32]), DEFAULT_AUGMENT);
  });

  test('the Fashion-MNIST transform: 28x28 gray zero-padded to 32x32, three equal normalized channels', () => {
    const gray = { width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(255) };
    const t = sampleTransform({ inputSize: [32, 32], mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353], pad: 2 });
    const out = new Float32Array(3 * 32 * 32);
    t.apply(gray, new Random(0), out, 0);
    close([out[0]!, out[2 * 32 + 2]!, out[1024 + 2 * 32 + 2]!], [-0.286 / 0.353, (1 - 0.286) / 0.353, (1 - 0.286) / 0.353], 1e-5);
  });

  test('the augmenting transform keeps shapes and differs by seed', () => {
    const src = { width: 28, height: 28, data: Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 7) % 256) };
    const t = sampleTransform({ inputSize: [32, 32], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], pad: 2, augment: { randomResizedCrop: {}, hflip: 0.5, colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 }, randomErasing: { probability: 1 } } });
    const a = new Float32Array(3 * 1024);
    const b = new Float32Array(3 * 1024);
    t.apply(src, new Random(deriveSeed(0, 1)), a, 0);
    t.apply(src, new Random(deriveSeed(0, 2)), b, 0);
    assert.ok(a.every(Number.isFinite));
    assert.notDeepEqual([...a], [...b]);
    assert.equal(src.data[1], 7, 'the source image is not modified');
  });

  test('random crop with padding: a zero-filled shift of the image, every shift up to the padding drawn', () => {
    const size = 8;
    const plane = size * size;
    /** The (dx, dy) with |dx|, |dy| <= 2 by which `out` is `ref` shifted in zeros, if there is one. */
    const shiftOf = (out: Float32Array, ref: Float32Array): string | undefined => {
      for (let dy = -2; dy <= 2; dy++) {
        for (let dx = -2; dx <= 2; dx++) {
          let same = true;
          for (let c = 0; c < 3 && same; c++) {
            for (let y = 0; y < size && same; y++) {
              for (let x = 0; x < size && same; x++) {
                const sx = x - dx;
                const sy = y - dy;
                const want = sx < 0 || sy < 0 || sx >= size || sy >= size ? 0 : ref[c * plane + sy * size + sx]!;
                same = Math.abs(out[c * plane + y * size + x]! - want) < 1e-6;
              }
            }
          }
          if (same) return `${dx},${dy}`;
        }
      }
      return undefined;
    };
    const norm = { inputSize: [size, size] as [number, number], mean: [0, 0, 0], std: [1, 1, 1] };
    const t = sampleTransform({ ...norm, augment: { randomCrop: { padding: 2 }, hflip: 0 } });
    const plain = sampleTransform(norm);
    const rng = new Random(3);
    const out = new Float32Array(3 * plane);
    const ref = new Float32Array(3 * plane);
    const src = { width: size, height: size, data: Uint8Array.from({ length: plane * 3 }, (_, i) => 1 + (i % 250)) };
    plain.apply(src, rng, ref, 0);
    const shifts = new Set<string>();
    for (let draw = 0; draw < 300; draw++) {
      t.apply(src, rng, out, 0);
      const shift = shiftOf(out, ref);
      assert.ok(shift, `draw ${draw} is not a shift of at most 2 pixels`);
      shifts.add(shift);
    }
    assert.equal(shifts.size, 25);
    // Images of another size are resized as without augmentation, then shifted.
    const big = { width: 16, height: 12, data: Uint8Array.from({ length: 16 * 12 * 3 }, (_, i) => (i * 37) % 256) };
    plain.apply(big, rng, ref, 0);
    for (let draw = 0; draw < 20; draw++) {
      t.apply(big, rng, out, 0);
      assert.ok(shiftOf(out, ref), 'a shift of the resized image');
    }
    assert.throws(() => sampleTransform({ ...norm, augment: { randomCrop: { padding: 2 }, randomResizedCrop: {} } }), /alternatives/);
  });
});

// ---------------------------------------------------------------- IDX

describe('IDX files (MNIST format)', () => {
  const images = idxBytes(0x08, [2, 2, 3], [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 255]);

  test('parses header and data, gzipped or not', () => {
    for (const bytes of [images, new Uint8Array(gzipSync(images))]) {
      const parsed = parseIdx(bytes, 'images');
      assert.deepEqual(parsed.dims, [2, 2, 3]);
      assert.deepEqual([...parsed.data], [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 255]);
    }
  });

  test('truncated, padded, corrupt and unsupported files are errors naming the file', () => {
    const bad = (bytes: Uint8Array, pattern: RegExp) => assert.throws(() => parseIdx(bytes, 'train-images-idx3-ubyte'), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError);
      assert.match(err.message, /train-images-idx3-ubyte/);
      assert.match(err.message, pattern);
      return true;
    });
    bad(images.subarray(0, images.length - 1), /12 bytes of data, the file has 11 \(truncated\?\)/);
    bad(new Uint8Array([...images, 0]), /the file has 13/);
    bad(images.subarray(0, 9), /cannot hold the 3 dimension sizes/);
    bad(new Uint8Array([1, 2, 3, 4]), /bad magic/);
    bad(idxBytes(0x0d, [1], [0, 0, 0, 0]), /float32 is not supported/);
    bad(new Uint8Array(gzipSync(images)).subarray(0, 20), /gzip/);
  });

  test('a directory of IDX files is a dataset: gray replicated to RGB, labels checked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-idx-'));
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(images));
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x08, [2], [1, 0]));
    const data = await loadIdxDataset(dir, 'train');
    assert.equal(data.length, 2);
    assert.deepEqual(data.classes, ['0', '1']);
    assert.equal(data.label(0), 1);
    const img = data.image(1);
    assert.deepEqual([img.width, img.height], [3, 2]);
    assert.deepEqual([...img.data.subarray(0, 6)], [10, 10, 10, 11, 11, 11]);
    await assert.rejects(loadIdxDataset(dir, 'test'), /has no test split: expected t10k-images-idx3-ubyte/);
  });
});

// ---------------------------------------------------------------- image folders

describe('image folders (torchvision ImageFolder)', () => {
  // torchvision's ImageFolder: its IMG_EXTENSIONS (no .gif), hidden files kept, and each folder's
  // files (sorted) before those of its subfolders, as its sorted os.walk yields them.
  test('classes are the sorted subfolders; images found recursively, sorted, by extension; a decode function can be passed', async () => {
    const dir = await tempDir();
    for (const f of ['b/x.png', 'b/sub/y.JPG', 'a/z.webp', 'a/notes.txt', 'c/.hidden.png', 'c/w.gif']) {
      await mkdir(join(dir, f, '..'), { recursive: true });
      await writeFile(join(dir, f), f);
    }
    const decoded: string[] = [];
    const data = await loadImageFolder(dir, { decode: async (path) => { decoded.push(path); return { width: 1, height: 1, data: new Uint8Array(3) }; } });
    assert.deepEqual(data.classes, ['a', 'b', 'c']);
    assert.deepEqual(data.files.map((f) => f.slice(dir.length + 1)), ['a/z.webp', 'b/x.png', 'b/sub/y.JPG', 'c/.hidden.png']);
    assert.deepEqual([0, 1, 2, 3].map((i) => data.label(i)), [0, 1, 1, 2]);
    await data.image(1);
    assert.deepEqual(decoded, [join(dir, 'b/x.png')]);
    await assert.rejects(loadImageFolder(join(dir, 'nope')), /does not exist/);
    await assert.rejects(loadImageFolder(join(dir, 'a')), /no class subfolders/);
  });

  test('train/ and val/ with real images through the default decoder, into a batch', async () => {
    const dir = await tempDir();
    const images = fileURLToPath(new URL('data/decode/', import.meta.url));
    for (const [split, cls, file] of [['train', 'cat', 'rgb.png'], ['train', 'dog', 'gray.jpg'], ['val', 'cat', 'rgb_q90.jpg'], ['val', 'dog', 'la.png']]) {
      await mkdir(join(dir, split!, cls!), { recursive: true });
      await writeFile(join(dir, split!, cls!, file!), await readFile(join(images, file!)));
    }
    const data = await openTrainingData(dir);
    assert.equal(data.kind, 'folders');
    assert.deepEqual([data.train.length, data.test!.length], [2, 2]);
    const transform = sampleTransform({ inputSize: [32, 32], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], cropPct: 0.875 });
    const loader = new Loader(data.test!, { batchSize: 2, transform });
    const batch = await loader.prepare(loader.order(0), 0, 0);
    assert.deepEqual(batch.pixels.shape, [2, 3, 32, 32]);
    assert.deepEqual([...batch.labels], [0, 1]);
    assert.ok(batch.pixels.data.every(Number.isFinite));
  });
});

// ---------------------------------------------------------------- loader

/** Two classes: dark and bright 28x28 gray-ish images with noise, as an in-memory dataset. */
function brightDark(n: number, seed: number, size = 28): ImageDataset {
  const rng = new Random(seed);
  const images = Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(size * size * 3);
    for (let p = 0; p < data.length; p++) data[p] = Math.max(0, Math.min(255, (i % 2 ? 160 : 90) + Math.round(rng.normal() * 40)));
    return { width: size, height: size, data };
  });
  return { name: `bright/dark (${n})`, length: n, classes: ['dark', 'bright'], label: (i) => i % 2, image: (i) => images[i]! };
}

describe('Loader', () => {
  const transform = sampleTransform({ inputSize: [32, 32], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], pad: 2 });

  test('shuffles per epoch with a seed, drops the last incomplete batch, targets smoothed', async () => {
    const loader = new Loader(brightDark(10, 1), { batchSize: 4, transform, shuffle: true, dropLast: true, seed: 3, labelSmoothing: 0.2 });
    assert.equal(loader.batchesPerEpoch, 2);
    const batches = [];
    for await (const b of loader.epoch(0)) batches.push(b);
    assert.equal(batches.length, 2);
    assert.deepEqual(batches[0]!.pixels.shape, [4, 3, 32, 32]);
    close(rowSums(batches[0]!.targets), [1, 1, 1, 1], 1e-6, 'target rows');
    assert.deepEqual([...loader.order(0)], [...new Loader(brightDark(10, 1), { batchSize: 4, transform, shuffle: true, seed: 3 }).order(0)], 'same seed, same order');
    assert.notDeepEqual([...loader.order(0)], [...loader.order(1)], 'a new order each epoch');
    assert.deepEqual([...loader.order(0)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('a batch is the same whether prefetched or computed alone (resume needs it)', async () => {
    const opts = { batchSize: 4, transform, shuffle: true, dropLast: true, seed: 9, mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 } };
    const a: FloatTensor[] = [];
    for await (const b of new Loader(brightDark(12, 2), { ...opts, prefetch: 2 }).epoch(1)) a.push(b.pixels);
    const alone = new Loader(brightDark(12, 2), opts);
    const b2 = await alone.prepare(alone.order(1), 1, 2);
    assert.deepEqual([...b2.pixels.data], [...a[2]!.data]);
  });

  test('inputBatches: the dataset in order, batchSize images per batch, the last one short; concatBatch checks shapes', async () => {
    const data = brightDark(5, 1);
    const one = (image: RGBImage): FloatTensor => {
      const t = float32([1, 3, 32, 32]);
      transform.apply(image, new Random(0), t.data, 0);
      return t;
    };
    const batches: FloatTensor[] = [];
    for await (const b of inputBatches(data, one, 2)) batches.push(b);
    assert.deepEqual(batches.map((b) => b.shape), [[2, 3, 32, 32], [2, 3, 32, 32], [1, 3, 32, 32]]);
    const plane = 3 * 32 * 32;
    for (let i = 0; i < 5; i++) {
      const row = batches[i >> 1]!.data.subarray((i % 2) * plane, (i % 2 + 1) * plane);
      assert.deepEqual([...row], [...one(await data.image(i)).data], `image ${i}`);
    }
    assert.throws(() => concatBatch([float32([1, 3, 2, 2]), float32([1, 3, 2, 4])]), /cannot batch a \[1, 3, 2, 4\] tensor with \[1, 3, 2, 2\]/);
    assert.throws(() => concatBatch([]), /no tensors/);
  });

  test('limitDataset keeps evenly spaced samples (every class of a sorted folder)', () => {
    const sorted: ImageDataset = { ...brightDark(8, 1), label: (i) => (i < 4 ? 0 : 1) };
    const small = limitDataset(sorted, 2);
    assert.deepEqual([small.label(0), small.label(1)], [0, 1]);
    assert.equal(small.base, sorted);
  });
});

// ---------------------------------------------------------------- the training loop

const TINY = { ...TINY_CONFIG, numClasses: 2, distillation: false };

function baseOptions(extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: TINY, train: brightDark(64, 1), test: brightDark(32, 2), epochs: 2, batchSize: 16, lr: 2e-3, inputSize: 32, pad: 2,
    normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, threads: 1, ...extra,
  };
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sf-train-'));
}

describe('train', () => {
  test('learns a separable task: test accuracy >= 95% in 3 epochs; metrics, chart, labels, config written', async () => {
    const out = await tempDir();
    const events: string[] = [];
    const result = await train(baseOptions({ epochs: 3, train: brightDark(128, 1), out, onProgress: (e) => events.push(e.phase) }));
    const last = result.history.at(-1)!;
    assert.ok(last.test_acc! >= 0.95, `test accuracy ${last.test_acc}`);
    assert.ok(result.history[2]!.train_loss < result.history[0]!.train_loss, 'training loss decreases');
    assert.deepEqual(result.history.map((m) => m.epoch), [1, 2, 3]);
    assert.ok(last.img_per_s > 0 && last.seconds > 0 && last.lr > 0);
    assert.equal(events[0], 'start');
    assert.equal(events.filter((e) => e === 'epoch').length, 3);
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    for (const key of ['epoch', 'train_loss', 'train_acc', 'test_acc', 'lr', 'img_per_s', 'seconds']) assert.ok(key in lines[0], key);
    const svg = await readFile(join(out, 'chart.svg'), 'utf8');
    assert.match(svg, /^<svg[^>]+xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((svg.match(/<polyline/g) ?? []).length, 4, 'train/test loss and accuracy');
    assert.deepEqual(JSON.parse(await readFile(join(out, 'labels.json'), 'utf8')), ['dark', 'bright']);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    assert.deepEqual(config.preprocessing, { inputSize: [32, 32], normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, pad: 2, cropPct: 0.875 });
    // The inference weights load as a model and classify like the trainer's evaluation.
    const model = await loadSwiftFormer({ weights: join(out, 'checkpoint.safetensors') });
    assert.deepEqual(model.config.embedDims, TINY.embedDims);
    assert.equal(model.config.numClasses, 2);
    const meta = readSafetensors(new Uint8Array(await readFile(join(out, 'checkpoint.safetensors')))).metadata;
    assert.deepEqual(JSON.parse(meta['swiftformer.labels']!), ['dark', 'bright']);
    await model.release();
  });

  test('resume: 2 epochs straight == 1 epoch, stop, resume 1 (bit for bit: weights, moments, EMA)', async () => {
    const options = baseOptions({ ema: { decay: 0.99 }, augment: true, mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 } });
    const straight = await tempDir();
    await train({ ...options, out: straight });
    const split = await tempDir();
    const stop = new AbortController();
    await assert.rejects(
      train({ ...options, out: split, signal: stop.signal, onProgress: (e) => { if (e.phase === 'epoch') stop.abort(); } }),
      (err: Error) => err.name === 'AbortError',
    );
    assert.equal((await readCheckpoint(split))!.sidecar.epoch, 1);
    await assert.rejects(train({ ...options, out: split }), /already holds a training checkpoint \(epoch 1\)/);
    await assert.rejects(train({ ...options, lr: 1e-3, out: split, resume: true }), /cannot resume .* lr 0.001 vs 0.002/);
    const resumed = await train({ ...options, out: split, resume: true });
    assert.deepEqual(resumed.history.map((m) => m.epoch), [1, 2]);
    for (const file of ['checkpoint.safetensors', 'checkpoint-ema.safetensors', 'train-state-0002.safetensors']) {
      const [a, b] = await Promise.all([readFile(join(straight, file)), readFile(join(split, file))]);
      assert.ok(a.equals(b), `${file} identical`);
    }
    assert.deepEqual((await readdir(split)).filter((f) => f.startsWith('train-state')), ['train-state-0002.safetensors'], 'older state files removed');
  });

  test('a NaN loss stops training with a clear error and leaves the last good checkpoint intact', async () => {
    const out = await tempDir();
    const base = sampleTransform({ inputSize: [32, 32], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], pad: 2 });
    let poison = false;
    const poisoned: SampleTransform = {
      options: base.options,
      apply(image, rng, data, offset) {
        base.apply(image, rng, data, offset);
        if (poison) data[offset] = NaN;
      },
    };
    let before: Buffer | undefined;
    await assert.rejects(
      train(baseOptions({
        epochs: 3, out, transforms: { train: poisoned },
        onProgress: (e) => { if (e.phase === 'epoch') poison = true; },
      })),
      (err: unknown) => {
        assert.ok(err instanceof SwiftFormerError && err.code === 'DIVERGED');
        assert.match(err.message, /training diverged: the loss is NaN at epoch 2, step 1 of 4/);
        assert.match(err.message, /last good checkpoint \(epoch 1\) is intact/);
        return true;
      },
    );
    before = await readFile(join(out, 'checkpoint.safetensors'));
    const saved = await readCheckpoint(out);
    assert.equal(saved!.sidecar.epoch, 1);
    for (const t of saved!.state.values()) if (t.dtype === 'float32') assert.ok(t.data.every(Number.isFinite));
    assert.ok(before.length > 0);
  });

  test('checkpoint.pth: the official training-checkpoint layout, readable by readPth and loadSwiftFormer', async () => {
    const out = await tempDir();
    const result = await train(baseOptions({ epochs: 1, out, savePth: true, ema: true }));
    const pth = await readPth(new Uint8Array(await readFile(join(out, 'checkpoint.pth'))));
    assert.deepEqual([...pth.entries].sort(), ['epoch', 'lr_scheduler', 'model', 'model_ema', 'optimizer', 'scaler']);
    const root = pth.root as Map<string, unknown>;
    assert.equal(root.get('epoch'), 0, 'the official main.py resumes at epoch + 1');
    const model = pth.stateDict('model');
    assert.deepEqual([...model.keys()], moduleOrder(result.state.keys()), 'keys in torch state_dict order');
    for (const [k, t] of result.state) assert.deepEqual([...model.get(k)!.data], [...t.data], k);
    const optimizer = root.get('optimizer') as Map<string, unknown>;
    const groups = optimizer.get('param_groups') as Map<string, unknown>[];
    assert.equal(groups.length, 2);
    assert.deepEqual(groups.map((g) => g.get('weight_decay')), [0, 0.025]);
    const state = optimizer.get('state') as Map<number, Map<string, FloatTensor>>;
    const trainable = [...result.state.keys()].filter((k) => !/running_|num_batches/.test(k));
    assert.equal(state.size, trainable.length);
    assert.deepEqual(state.get(0)!.get('step')!.data[0], 4);
    const ema = await loadSwiftFormer({ weights: join(out, 'checkpoint.pth'), entry: 'model_ema' });
    assert.equal(ema.config.numClasses, 2);
    await ema.release();
  });

  test('fine-tuning: the head is re-initialized for a new class count; distillation from a teacher model', async () => {
    const teacher = await loadSwiftFormer({ model: TINY, seed: 5 });
    const result = await train(baseOptions({
      model: undefined, weights: fixturePath('tiny/checkpoint_model_only.pth'), epochs: 1, test: undefined,
      distill: { teacher: modelTeacher(teacher), type: 'hard' },
    }));
    await teacher.release();
    assert.deepEqual(result.config.embedDims, TINY.embedDims);
    assert.equal(result.config.numClasses, 2);
    assert.equal(result.config.distillation, true);
    assert.deepEqual(result.fit!.mismatched.map((m) => m.key).sort(), ['dist_head.bias', 'dist_head.weight', 'head.bias', 'head.weight']);
    assert.deepEqual(result.state.get('head.weight')!.shape, [2, 48]);
  });

  test('an ONNX teacher gives the same logits as the model it was exported from', async () => {
    const model = await loadSwiftFormer({ model: TINY, seed: 3 });
    const teacher = await onnxTeacher(model.toOnnx(32), { session: { threads: 1 } });
    const pixels: FloatTensor = { dtype: 'float32', shape: [2, 3, 32, 32], data: Float32Array.from({ length: 6144 }, (_, i) => Math.sin(i)) };
    const [a, b] = [await teacher.logits(pixels), await model.logits(pixels)];
    close(a.data, b.data, 1e-5, 'teacher logits');
    await teacher.release!();
    await model.release();
    await assert.rejects(onnxTeacher(model.toOnnx(32), { output: 'probs' }), /teacher has no output 'probs' \(it has logits\)/);
  });

  test('bad settings are clear errors', async () => {
    await assert.rejects(train(baseOptions({ batchSize: 100 })), /batch size 100 is larger than the 64 training images/);
    await assert.rejects(train(baseOptions({ batchSize: 1 })), /at least 2|>= 2/);
    await assert.rejects(train(baseOptions({ model: 'xxl' })), /unknown model 'xxl'/);
    await assert.rejects(train(baseOptions({ resume: true })), /resume needs the output directory/);
    await assert.rejects(train(baseOptions({ out: await tempDir(), resume: true })), /nothing to resume/);
  });
});

// ---------------------------------------------------------------- CLI

/** 24 training and 8 test images of Fashion-MNIST's shape: dark vs bright, in IDX files. */
async function idxDir(): Promise<string> {
  const dir = await tempDir();
  for (const [prefix, n, seed] of [['train', 24, 1], ['t10k', 8, 2]] as const) {
    const data = brightDark(n, seed);
    const pixels: number[] = [];
    for (let i = 0; i < n; i++) {
      const img = data.image(i) as { data: Uint8Array };
      for (let p = 0; p < 28 * 28; p++) pixels.push(img.data[p * 3]!);
    }
    await writeFile(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes(0x08, [n, 28, 28], pixels));
    await writeFile(join(dir, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(idxBytes(0x08, [n], Array.from({ length: n }, (_, i) => data.label(i)))));
  }
  return dir;
}

describe('swiftformer train (CLI)', () => {
  test('fine-tunes on an IDX directory and writes the run directory', async () => {
    const data = await idxDir();
    const out = join(await tempDir(), 'run');
    const r = await cli('train', '--data', data, '--finetune', fixturePath('tiny/checkpoint_model_only.pth'), '--epochs', '1', '--batch-size', '8', '--out', out, '--threads', '1', '--save-pth');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /re-initialized .*head\.weight/);
    assert.match(r.stderr, /epoch 1 +loss [\d.]+ +train [\d.]+% +test [\d.]+%/);
    const files = (await readdir(out)).sort();
    for (const f of ['chart.svg', 'checkpoint.json', 'checkpoint.pth', 'checkpoint.safetensors', 'config.json', 'labels.json', 'metrics.jsonl']) assert.ok(files.includes(f), f);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    assert.equal(config.preprocessing.pad, 2, '28x28 is padded to 32x32');
    assert.deepEqual(config.labels, ['0', '1']);
    // --resume --epochs N on a finished run extends it: the schedule is planned again, said and recorded.
    const again = await cli('train', '--resume', out, '--epochs', '2', '--threads', '1');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /the run's length changes from 1 to 2 epochs: its cosine schedule is planned again over 2 epochs \(lr [\d.e+-]+ at the next step\)/);
    assert.match(again.stderr, /epoch 2 +loss/);
    const sidecar = JSON.parse(await readFile(join(out, 'checkpoint.json'), 'utf8'));
    assert.equal(sidecar.epoch, 2);
    assert.equal(sidecar.train.epochs, 2);
    assert.equal(sidecar.schedule.totalSteps, 2 * sidecar.stepsPerEpoch);
    assert.deepEqual(sidecar.replans, [{ atEpoch: 1, fromEpochs: 1, toEpochs: 2 }]);
    assert.equal(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).train.epochs, 2);
    assert.equal((await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').length, 2);
    const other = await cli('train', '--resume', out, '--lr', '0.5', '--threads', '1');
    assertCleanFailure(other, /cannot resume .* lr 0\.5 vs 0\.001 \(given vs checkpoint\)/);
  });

  test('--rand-augment lays a policy over the --augment preset; the checkpoint records it and resume holds it', async () => {
    const data = await idxDir();
    const out = join(await tempDir(), 'run');
    const r = await cli('train', '--data', data, '--finetune', fixturePath('tiny/checkpoint_model_only.pth'), '--epochs', '1', '--batch-size', '8', '--out', out, '--threads', '1', '--rand-augment', 'rand-m9-n3-mstd0.5-inc1');
    assert.equal(r.code, 0, r.stderr);
    const augment = JSON.parse(await readFile(join(out, 'checkpoint.json'), 'utf8')).train.classification.augment;
    assert.deepEqual(augment, { ...augmentFor([32, 32]), colorJitter: false, randAugment: 'rand-m9-n3-mstd0.5-inc1', interpolation: 'bicubic' });
    const other = await cli('train', '--resume', out, '--rand-augment', 'rand-m5', '--threads', '1');
    assertCleanFailure(other, /cannot resume .*classification\.augment .*rand-m5.* vs .*rand-m9-n3-mstd0\.5-inc1/);
  });

  test('bad input: missing data, corrupt IDX, unknown model, impossible batch size: one line, non-zero exit', async () => {
    const data = await idxDir();
    const corrupt = await tempDir();
    const bytes = await readFile(join(data, 'train-images-idx3-ubyte'));
    await writeFile(join(corrupt, 'train-images-idx3-ubyte'), bytes.subarray(0, bytes.length - 100));
    await writeFile(join(corrupt, 'train-labels-idx1-ubyte'), await readFile(join(data, 'train-labels-idx1-ubyte.gz')));
    const cases: [string[], RegExp][] = [
      [['--data', join(data, 'nope')], /data directory .*nope does not exist/],
      [['--data', corrupt], /train-images-idx3-ubyte is not a valid IDX file: .* \(truncated\?\)/],
      [['--data', data, '--model', 'xxl'], /unknown model 'xxl'/],
      [['--data', data, '--batch-size', '64'], /batch size 64 is larger than the 24 training images/],
      [['--data', data, '--lr', 'fast'], /--lr must be a number > 0/],
      [['--data', data, '--rand-augment', 'rand-m9-inc0'], /RandAugment policy 'rand-m9-inc0': 'inc0': timm reads any inc<digits> as inc1/],
      [['--data', data, '--rand-augment', 'auto-v0'], /RandAugment policy 'auto-v0': a RandAugment policy starts with 'rand'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli('train', ...args, '--out', join(await tempDir(), 'x'));
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  });
});



// ---------------------------------------------------------------- schedules, SGD, the TrainConfig

describe('poly and step schedules (mmcv), planned from epochs', () => {
  test('poly: minLr + (lr - minLr)(1 - t/T)^power, minLr from T on (mmcv PolyLrUpdaterHook, by iteration)', () => {
    const s = planSchedule({ kind: 'poly', power: 0.9, warmupEpochs: 0, warmupLr: 0, minLr: 1e-6 }, 2e-4, 4, 25);
    assert.deepEqual(s, { kind: 'poly', lr: 2e-4, totalSteps: 100, warmupSteps: 0, warmupLr: 0, minLr: 1e-6, power: 0.9 });
    assert.equal(lrAt(s, 0), 2e-4);
    close([lrAt(s, 50)], [(2e-4 - 1e-6) * 0.5 ** 0.9 + 1e-6], 1e-12);
    assert.equal(lrAt(s, 100), 1e-6);
    assert.equal(lrAt(s, 130), 1e-6);
  });

  test('steps: lr x gamma at each milestone (epochs 8 and 11 of 12), mmcv linear warm-up from warmupLr / lr', () => {
    // Mask R-CNN 1x: lr 0.02, step at epochs 8 and 11, warm-up ratio 0.001; here 10 steps per epoch, warm-up 5 steps.
    const s = planSchedule({ kind: 'steps', milestones: [8, 11], gamma: 0.1, warmupEpochs: 0.5, warmupLr: 0.02 * 0.001, minLr: 0 }, 0.02, 12, 10);
    assert.deepEqual([s.kind, s.totalSteps, s.warmupSteps, (s as { milestones: number[] }).milestones], ['steps', 120, 5, [80, 110]]);
    close([lrAt(s, 0), lrAt(s, 2), lrAt(s, 5)], [0.02 * 0.001, 0.02 * (1 - (1 - 2 / 5) * (1 - 0.001)), 0.02], 1e-12);
    close([lrAt(s, 79), lrAt(s, 80), lrAt(s, 109), lrAt(s, 110), lrAt(s, 119)], [0.02, 0.002, 0.002, 0.0002, 0.0002], 1e-12);
    // mmcv's warm-up scales the regular lr; under poly that is the decayed value, not the peak.
    const p = planSchedule({ kind: 'poly', power: 1, warmupEpochs: 1, warmupLr: 0.1, minLr: 0 }, 1, 2, 10);
    close([lrAt(p, 4)], [(1 - 4 / 20) * (1 - (1 - 4 / 10) * (1 - 0.1))], 1e-12);
  });

  test('the cosine plan is the cosine of before; impossible schedules are errors', () => {
    const s = planSchedule({ kind: 'cosine', warmupEpochs: 1.5, warmupLr: 1e-6, minLr: 1e-5 }, 1e-3, 10, 10);
    assert.deepEqual(s, { kind: 'cosine', lr: 1e-3, totalSteps: 100, warmupSteps: 15, warmupLr: 1e-6, minLr: 1e-5 });
    for (const t of [0, 7, 15, 60, 99, 100]) assert.equal(lrAt(s, t), cosineLr(t, { lr: 1e-3, totalSteps: 100, warmupSteps: 15, warmupLr: 1e-6, minLr: 1e-5 }));
    assert.throws(() => planSchedule({ kind: 'steps', milestones: [8, 3], gamma: 0.1, warmupEpochs: 0, warmupLr: 0, minLr: 0 }, 0.02, 12, 10), /milestones must be ascending/);
    assert.throws(() => planSchedule({ kind: 'poly', power: 0, warmupEpochs: 0, warmupLr: 0, minLr: 0 }, 0.02, 12, 10), /poly power/);
  });
});

describe('SGD (torch.optim.SGD arithmetic)', () => {
  const p0 = [1, -2, 0.5, 3];
  const grads = [[0.1, -0.2, 0.3, 0], [-0.3, 0.1, 0.2, 0.4], [0.2, 0.2, -0.1, -0.4]];

  /** torch.optim.SGD written out: d = g + wd p; buf = d (first) or m buf + d; d = nesterov ? d + m buf : buf; p -= lr d. */
  function reference(lr: number, m: number, wd: number, nesterov: boolean): number[] {
    const p = [...p0];
    const buf = p0.map(() => 0);
    grads.forEach((g, step) => {
      for (let i = 0; i < p.length; i++) {
        let d = g[i]! + wd * p[i]!;
        buf[i] = step === 0 ? d : m * buf[i]! + d;
        d = nesterov ? d + m * buf[i]! : buf[i]!;
        p[i]! -= lr * d;
      }
    });
    return p;
  }

  for (const nesterov of [false, true]) {
    test(`momentum 0.9, coupled weight decay${nesterov ? ', Nesterov' : ''}: three steps match the formula; biases do not decay`, () => {
      const state: StateDict = new Map([['conv.weight', f32([2, 2], p0)], ['conv.bias', f32([4], p0)]]);
      const opt = new Sgd(state, ['conv.weight', 'conv.bias'], { momentum: 0.9, weightDecay: 0.1, nesterov });
      for (const g of grads) opt.step(new Map([['conv.weight', f32([2, 2], g)], ['conv.bias', f32([4], g)]]), 0.05);
      close(state.get('conv.weight')!.data as Float32Array, reference(0.05, 0.9, 0.1, nesterov), 1e-6, 'weight');
      close(state.get('conv.bias')!.data as Float32Array, reference(0.05, 0.9, 0, nesterov), 1e-6, 'bias');
    });
  }

  test('moments() and loadMoments() continue a run exactly', () => {
    const make = () => new Map([['w', f32([2, 2], p0)]]) as StateDict;
    const straight = make();
    const a = new Sgd(straight, ['w'], { momentum: 0.9 });
    for (const g of grads) a.step(new Map([['w', f32([2, 2], g)]]), 0.1);
    const first = make();
    const b = new Sgd(first, ['w'], { momentum: 0.9 });
    for (const g of grads.slice(0, 2)) b.step(new Map([['w', f32([2, 2], g)]]), 0.1);
    const c = new Sgd(first, ['w'], { momentum: 0.9 });
    c.loadMoments(b.moments(), b.stepCount);
    c.step(new Map([['w', f32([2, 2], grads[2]!)]]), 0.1);
    assert.deepEqual([...first.get('w')!.data], [...straight.get('w')!.data]);
    assert.deepEqual([...b.moments().keys()], ['momentum_buffer.w']);
  });
});

describe('TrainConfig: defaults in one place, resuming = stored + what may change', () => {
  const base = {
    preprocessing: { inputSize: [32, 32] as [number, number], normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, pad: 2, cropPct: 1 },
    dataset: { trainImages: 64, numClasses: 2 },
  };

  test('a new run\'s defaults are the recipe\'s: AdamW 1e-3, wd 0.025, cosine to 0 from warm-up lr 1e-6, smoothing 0.1, 9 epochs of 128', () => {
    const dataset = { trainImages: 1000, numClasses: 10 };
    const c = freshConfig('classification', {}, { ...base, dataset });
    assert.deepEqual(c, {
      task: 'classification', epochs: 9, batchSize: 128, seed: 0, lr: 1e-3,
      optimizer: { kind: 'adamw', weightDecay: 0.025, betas: [0.9, 0.999], eps: 1e-8 },
      schedule: { kind: 'cosine', warmupEpochs: 0, warmupLr: 1e-6, minLr: 0 },
      clip: { mode: 'none' }, ema: null, preprocessing: base.preprocessing, dataset,
      classification: { labelSmoothing: 0.1, mixup: null, augment: null, distill: null },
    } as unknown as ReturnType<typeof freshConfig>);
  });

  test('sections switch on from their defaults; SGD and poly bring their own', () => {
    const c = freshConfig('segmentation', {
      batchSize: 16, optimizer: { kind: 'sgd' }, schedule: { kind: 'poly' }, ema: {}, lr: 0.01,
    }, base);
    assert.deepEqual(c.optimizer, { kind: 'sgd', weightDecay: DEFAULTS.sgdWeightDecay, momentum: 0.9, nesterov: false, decayAll: true }, 'segmentation: mmseg decays every parameter');
    assert.deepEqual(c.schedule, { kind: 'poly', power: 0.9, warmupEpochs: 0, warmupLr: 1e-6, minLr: 0 });
    assert.deepEqual(c.ema, { decay: 0.9996 });
    assert.equal(c.classification, undefined);
  });

  test('resuming: every differing setting is listed; epochs may change; not below the completed ones', () => {
    const stored = freshConfig('classification', { batchSize: 16, epochs: 2 }, base);
    assert.throws(() => resumedConfig(stored, { lr: 0.5, schedule: { minLr: 1e-5 }, ema: {}, epochs: 3 }, 1, 'runs/x'), (err: Error) => {
      assert.match(err.message, /^cannot resume runs\/x with other settings: lr 0\.5 vs 0\.001 \(given vs checkpoint\); schedule\.minLr 0\.00001 vs 0 \(given vs checkpoint\); ema on vs off \(given vs checkpoint\)$/);
      return true;
    });
    assert.deepEqual(resumedConfig(stored, { lr: 0.001, batchSize: 16 }, 1, 'runs/x'), { config: stored });
    const longer = resumedConfig(stored, { epochs: 5 }, 2, 'runs/x');
    assert.deepEqual(longer.epochsChanged, { from: 2, to: 5 });
    assert.equal(longer.config.epochs, 5);
    assert.equal(stored.epochs, 2, 'the stored config is not changed');
    assert.throws(() => resumedConfig(stored, { epochs: 1 }, 2, 'runs/x'), /runs\/x has completed 2 epochs: the run cannot end after 1/);
  });
});

// ---------------------------------------------------------------- run.ts with a task that is not classification

/**
 * A toy regression task through the generic machinery: loss = |w - t|^2 (part 'fit') + b^2 (part
 * 'reg') over three steps an epoch with targets that depend on (epoch, step), and an evaluation.
 */
function toyTask(stepsPerEpoch = 3, scale = 1): TaskRun {
  const state: StateDict = new Map([['w', f32([2, 2], [0, 0, 0, 0])], ['b.bias', f32([1], [1])]]);
  const target = (epoch: number, i: number) => [1, 2, 3, 4].map((v) => v + 0.1 * epoch - 0.2 * i);
  return {
    state, params: ['w', 'b.bias'], stepsPerEpoch, model: TINY, labels: ['a', 'b'], title: 'toy',
    async *steps(epoch: number): AsyncGenerator<StepOutput> {
      for (let i = 0; i < stepsPerEpoch; i++) {
        const w = state.get('w')!.data as Float32Array;
        const b = state.get('b.bias')!.data as Float32Array;
        const t = target(epoch, i);
        const fit = t.reduce((sum, v, j) => sum + (w[j]! - v) ** 2, 0);
        const gw = f32([2, 2], t.map((v, j) => 2 * (w[j]! - v) * scale));
        yield { index: i, loss: fit + b[0]! ** 2, parts: { fit, reg: b[0]! ** 2 }, grads: new Map([['w', gw], ['b.bias', f32([1], [2 * b[0]!])]]), samples: 2 };
      }
    },
    async evaluate(weights: StateDict) {
      const w = weights.get('w')!.data as Float32Array;
      const dist = Math.sqrt(target(0, 0).reduce((sum, v, j) => sum + (w[j]! - v) ** 2, 0));
      return { loss: dist ** 2, metrics: { dist } };
    },
  };
}

const TOY_BASE = {
  preprocessing: { inputSize: [32, 32] as [number, number], normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, pad: 0, cropPct: 1 },
  dataset: { trainImages: 6, numClasses: 2 },
};

function toyPlan(out: string, resume = false, lr = 0.1) {
  return planRun({
    task: 'detection', out, resume, base: () => TOY_BASE, stepsPerEpoch: () => 3,
    request: () => ({ epochs: 3, batchSize: 2, lr, optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 0 }, schedule: { kind: 'steps', milestones: [1, 2], gamma: 0.5 } }),
  });
}

describe('run.ts drives any task (the extension point for segmentation and detection)', () => {
  test('SGD on a step schedule, loss parts into metrics, test metrics, exact resume of another task', async () => {
    const straight = await tempDir();
    const a = toyTask();
    const result = await runEpochs(a, await toyPlan(straight));
    // The same trajectory written out: torch SGD (momentum 0.9, no decay) at lr 0.1, 0.05, 0.025 per epoch.
    const w = [0, 0, 0, 0];
    const buf = [0, 0, 0, 0];
    for (let epoch = 0, step = 0; epoch < 3; epoch++) {
      for (let i = 0; i < 3; i++, step++) {
        const t = [1, 2, 3, 4].map((v) => v + 0.1 * epoch - 0.2 * i);
        for (let j = 0; j < 4; j++) {
          const g = 2 * (Math.fround(w[j]!) - t[j]!);
          buf[j] = step === 0 ? g : 0.9 * buf[j]! + g;
          w[j] = Math.fround(w[j]! - 0.1 * 0.5 ** epoch * buf[j]!);
        }
      }
    }
    close(result.state.get('w')!.data as Float32Array, w, 1e-5, 'w');
    const lines = (await readFile(join(straight, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((m) => m.lr), [0.1, 0.05, 0.025]);
    for (const m of lines) for (const k of ['train_loss', 'train_fit', 'train_reg', 'test_loss', 'test_dist']) assert.ok(Number.isFinite(m[k]), `${k} in epoch ${m.epoch}`);
    assert.ok(!('train_acc' in lines[0]), 'no accuracy for a task without one');
    close([lines[0].train_loss], [lines[0].train_fit + lines[0].train_reg], 1e-9, 'the parts add up');
    const sidecar = JSON.parse(await readFile(join(straight, SIDECAR), 'utf8'));
    assert.equal(sidecar.train.task, 'detection');
    assert.equal(sidecar.optimizer.keys, 'momentum_buffer.<key>');

    const split = await tempDir();
    const stop = new AbortController();
    await assert.rejects(runEpochs(toyTask(), await toyPlan(split), { signal: stop.signal, onProgress: (e) => { if (e.phase === 'epoch' && e.metrics.epoch === 2) stop.abort(); } }), { name: 'AbortError' });
    const plan = await toyPlan(split, true);
    assert.equal(plan.startEpoch, 2);
    const b = toyTask();
    for (const [k, t] of plan.restored!.state) b.state.set(k, t);
    await runEpochs(b, plan);
    for (const file of ['train-state-0003.safetensors', 'checkpoint.safetensors']) {
      assert.ok((await readFile(join(straight, file))).equals(await readFile(join(split, file))), `${file} identical`);
    }
  });

  test('weights that overflow with a finite loss: the epoch is not good, nothing is written, the message says so', async () => {
    const out = await tempDir();
    const task = toyTask(1, 1e30); // gradients ~1e30 (finite), times lr 1e10: beyond float32
    await assert.rejects(runEpochs(task, await planRun({
      task: 'detection', out, base: () => TOY_BASE, stepsPerEpoch: () => 1,
      request: () => ({ epochs: 2, batchSize: 2, lr: 1e10, optimizer: { kind: 'sgd', momentum: 0, weightDecay: 0 } }),
    })), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError && err.code === 'DIVERGED');
      assert.match(err.message, /^training diverged: the weights hold non-finite values \(w\) after epoch 1; stopped before writing its checkpoint, no checkpoint had been written yet\./);
      return true;
    });
    assert.deepEqual((await readdir(out)).filter((f) => !f.startsWith('.')).sort(), ['config.json', 'labels.json']);
  });
});

// ---------------------------------------------------------------- classification runs: good epochs, extension, old checkpoints

describe('train: what a checkpoint promises', () => {
  test('an epoch whose weights give a NaN test loss is not good: stopped before its checkpoint, the message names no good epoch', async () => {
    // --lr 1e3 --warmup-epochs 2: epoch 1 ends with weights around 1e30 whose logits are NaN (issue 12).
    const out = await tempDir();
    await assert.rejects(train(baseOptions({ epochs: 3, lr: 1e3, warmupEpochs: 2, out })), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError && err.code === 'DIVERGED', String(err));
      assert.match(err.message, /^training diverged: the test loss is NaN \(largest weight [\d.]+e\+\d+\) after epoch 1; stopped before writing its checkpoint, no checkpoint had been written yet\./);
      return true;
    });
    assert.equal(await readCheckpoint(out), undefined, 'no checkpoint of the bad epoch');
    await assert.rejects(readFile(join(out, 'metrics.jsonl')), { code: 'ENOENT' });
  });

  test('resume with more epochs extends a finished run: the schedule is planned again and recorded, the progress says so', async () => {
    const out = await tempDir();
    const options = baseOptions({ epochs: 1, out, warmupLr: 1e-6 });
    await train(options);
    const events: Extract<Parameters<NonNullable<TrainOptions['onProgress']>>[0], { phase: 'start' }>[] = [];
    const again = await train({ ...options, epochs: 2, resume: true, onProgress: (e) => { if (e.phase === 'start') events.push(e); } });
    assert.deepEqual(again.history.map((m) => m.epoch), [1, 2]);
    // 64 images in batches of 16: 4 steps an epoch; the cosine now spans 8 steps.
    const cosine = { lr: 2e-3, totalSteps: 8, warmupSteps: 0, warmupLr: 1e-6, minLr: 0 };
    assert.deepEqual(events[0]!.rescheduled, { from: 1, to: 2, kind: 'cosine', nextLr: cosineLr(4, cosine) });
    assert.equal(again.history[0]!.lr, cosineLr(3, { ...cosine, totalSteps: 4 }), 'epoch 1 ran on the first plan');
    assert.equal(again.history[1]!.lr, cosineLr(7, cosine), 'epoch 2 on the new one');
    const saved = (await readCheckpoint(out))!.sidecar;
    assert.deepEqual(saved.schedule, { kind: 'cosine', ...cosine });
    assert.deepEqual(saved.replans, [{ atEpoch: 1, fromEpochs: 1, toEpochs: 2 }]);
    assert.equal(saved.train.epochs, 2);
    const done = await train({ ...options, resume: true, epochs: undefined });
    assert.deepEqual(done.history.map((m) => m.epoch), [1, 2], 'a finished run with its own length: nothing to do');
    await assert.rejects(train({ ...options, resume: true, epochs: 1 }), /has completed 2 epochs: the run cannot end after 1/);
  });

  test('a swiftformer-train/1 checkpoint (settings in `hyper`) resumes bit for bit', async () => {
    const options = baseOptions({ ema: { decay: 0.99 }, clip: { mode: 'agc', value: 0.01 } });
    const straight = await tempDir();
    await train({ ...options, out: straight });
    const split = await tempDir();
    const stop = new AbortController();
    await assert.rejects(train({ ...options, out: split, signal: stop.signal, onProgress: (e) => { if (e.phase === 'epoch') stop.abort(); } }), { name: 'AbortError' });
    // The sidecar as the trainer wrote it before the TrainConfig (git history: src/train/trainer.ts, `hyper`).
    const v2 = JSON.parse(await readFile(join(split, SIDECAR), 'utf8'));
    const t = v2.train;
    const v1 = {
      format: 'swiftformer-train/1', epoch: v2.epoch, step: v2.step, stateFile: v2.stateFile,
      optimizer: { name: 'adamw', step: v2.optimizer.step, lr: t.lr, betas: t.optimizer.betas, eps: t.optimizer.eps, weightDecay: t.optimizer.weightDecay, noDecay: v2.optimizer.noDecay, file: v2.optimizer.file, keys: v2.optimizer.keys },
      schedule: { ...v2.schedule, stepsPerEpoch: v2.stepsPerEpoch, nextStep: v2.step },
      rng: v2.rng, ema: v2.ema, config: v2.model, labels: v2.labels, preprocessing: t.preprocessing,
      hyper: {
        epochs: t.epochs, batchSize: t.batchSize, lr: t.lr, weightDecay: t.optimizer.weightDecay, warmupEpochs: t.schedule.warmupEpochs,
        warmupLr: t.schedule.warmupLr, minLr: t.schedule.minLr, labelSmoothing: t.classification.labelSmoothing, clip: t.clip, ema: t.ema.decay,
        mixup: null, augment: null, seed: t.seed, preprocessing: t.preprocessing, distill: null, trainImages: 64, numClasses: 2,
      },
      history: v2.history,
    };
    await writeFile(join(split, SIDECAR), JSON.stringify(v1));
    await train({ ...options, out: split, resume: true });
    for (const file of ['checkpoint.safetensors', 'checkpoint-ema.safetensors', 'train-state-0002.safetensors']) {
      assert.ok((await readFile(join(straight, file))).equals(await readFile(join(split, file))), `${file} identical`);
    }
    assert.equal(JSON.parse(await readFile(join(split, SIDECAR), 'utf8')).format, 'swiftformer-train/2');
  });

  test('checkpoint.pth loads into a PyTorch AdamW with the official param groups: moments by position, group lr as timm\'s per-epoch cosine', async (t) => {
    const python = '/usr/bin/python3';
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) return t.skip('no python3 with torch');
    const out = await tempDir();
    await train(baseOptions({ epochs: 2, out, savePth: true }));
    // timm 0.5.4 add_weight_decay, as the official main.py's create_optimizer(args, model) applies it.
    const script = `
import json, sys, torch
ck = torch.load(sys.argv[1], map_location='cpu')
named = [(k, torch.nn.Parameter(v.clone())) for k, v in ck['model'].items() if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]
skip = lambda k, p: len(p.shape) == 1 or k.endswith('.bias')
groups = [{'params': [p for k, p in named if skip(k, p)], 'weight_decay': 0.0}, {'params': [p for k, p in named if not skip(k, p)], 'weight_decay': 0.025}]
opt = torch.optim.AdamW(groups, lr=1.0)
opt.load_state_dict(ck['optimizer'])
for k, p in named:
    p.grad = torch.zeros_like(p)
opt.step()
by_name = dict(named)
print(json.dumps({
    'groups': [[g['lr'], g['weight_decay'], len(g['params'])] for g in opt.param_groups],
    'layer_scale_decays': [k for k, p in named if 'layer_scale' in k and not skip(k, p)],
    'head_exp_avg': opt.state[by_name['head.weight']]['exp_avg'].double().sum().item(),
    'step': float(opt.state[by_name['head.weight']]['step']),
}))
`;
    const run = spawnSync(python, ['-c', script, join(out, 'checkpoint.pth')], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const r = JSON.parse(run.stdout);
    const saved = (await readCheckpoint(out))!;
    const trainable = [...saved.state.keys()].filter((k) => !/running_|num_batches/.test(k));
    const official = trainable.filter((k) => !timmNoDecay(k, saved.state.get(k)!.shape));
    // After epoch index 1 of 2, timm's cosine per epoch: lr / 2 * (1 + cos(pi / 2)) = lr / 2.
    assert.deepEqual(r.groups, [[1e-3, 0, trainable.length - official.length], [1e-3, 0.025, official.length]]);
    assert.ok(r.layer_scale_decays.length >= 3, 'layer scales are in the official decay group');
    for (const k of r.layer_scale_decays) assert.equal(noWeightDecay(k, saved.state.get(k)!.shape), true, `${k}: exempt in our own training`);
    const ours = (saved.moments.get('exp_avg.head.weight')!.data as Float32Array).reduce((a, b) => a + b, 0);
    close([r.head_exp_avg], [ours * 0.9], 1e-5, 'head.weight exp_avg, one zero-gradient step later');
    assert.equal(r.step, 8 + 1);
  });
});

// ---------------------------------------------------------------- bad data and bad paths

describe('bad data and bad paths: one clear error', () => {
  test('a stray label in an IDX file is an error naming its record, not an extra class', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-idx-'));
    const labels = Array.from({ length: 40 }, (_, i) => i % 10);
    labels[27] = 200;
    await writeFile(join(dir, 'train-images-idx3-ubyte'), idxBytes(0x08, [40, 2, 2], new Array(160).fill(7)));
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x08, [40], labels));
    await assert.rejects(loadIdxDataset(dir, 'train'), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError && err.code === 'BAD_DATA');
      assert.match(err.message, /train-labels-idx1-ubyte: label 200 of record 27 is outside the class set \(the other labels cover the classes 0-9 and no record has label 10-199\)/);
      return true;
    });
    await assert.rejects(loadIdxDataset(dir, 'train', { classes: ['a', 'b', 'c'] }), /label 3 of record 3 is not one of the 3 classes \(0-2\)/);
    labels[27] = 7;
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x08, [40], labels));
    assert.equal((await loadIdxDataset(dir, 'train')).classes.length, 10);
  });

  test('a missing Fashion-MNIST is the same IO error for every command', async () => {
    await assert.rejects(fashionMnistDir(join(tmpdir(), 'no-such-fashion-mnist')), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError && err.code === 'IO');
      assert.match(err.message, /Fashion-MNIST is not installed in .*no-such-fashion-mnist: install Debian's dataset-fashion-mnist/);
      return true;
    });
  });

  test('CLI: --out a file or under a file, a teacher that is no model or of another input size, a stray label: one line, non-zero exit', async () => {
    const data = await idxDir();
    const dir = await tempDir();
    const file = join(dir, 'f');
    await writeFile(file, 'not a directory');
    const junk = join(dir, 'junk.onnx');
    await writeFile(junk, 'not a model');
    const model = await loadSwiftFormer({ model: TINY, seed: 1 });
    const at224 = join(dir, 'teacher224.onnx');
    await writeFile(at224, model.toOnnx(224));
    await model.release();
    const stray = await tempDir();
    const labels = Array.from({ length: 24 }, (_, i) => i % 2);
    labels[5] = 200;
    await writeFile(join(stray, 'train-images-idx3-ubyte'), await readFile(join(data, 'train-images-idx3-ubyte')));
    await writeFile(join(stray, 'train-labels-idx1-ubyte'), idxBytes(0x08, [24], labels));
    const cases: [string[], RegExp][] = [
      [['--data', data, '--out', file], /output directory .*f exists and is not a directory/],
      [['--data', data, '--out', join(file, 'run')], /output directory .*f\/run cannot be created: .*f is a file, not a directory/],
      [['--data', data, '--teacher', junk, '--out', join(dir, 'a')], /teacher .*junk\.onnx is not an ONNX model ONNX Runtime can load/],
      [['--data', data, '--teacher', at224, '--out', join(dir, 'b')], /the teacher does not take the student's input \(8 x 3 x 32 x 32\): .*Expected: 224/],
      [['--data', stray, '--out', join(dir, 'c')], /label 200 of record 5 is outside the class set/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli('train', ...args, '--epochs', '1', '--batch-size', '8', '--threads', '1');
      assertCleanFailure(r, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  });
});
