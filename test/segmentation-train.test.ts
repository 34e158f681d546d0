/**
 * Semantic FPN training (src/train/segmentation-trainer.ts) and `eval` on segmentation datasets:
 *
 *  - three iterations of our loop against the same three in PyTorch (test/data/segtrain, made by
 *    scripts/make-segtrain-refs.py from ../shared/fixtures/semfpn-tiny: mmseg's loss, AdamW with
 *    weight decay on every parameter, poly, BatchNorm statistics): losses, weights, buffers;
 *  - mmseg's evaluation of PyTorch's trained weights against PyTorch's own numbers;
 *  - exact resume with the whole augmentation pipeline and Dropout2d on, and rounds that only
 *    split evaluation (the iteration stream is the same however it is cut);
 *  - the run directory (mmseg-layout checkpoints, the best one, metrics, chart) and what loads it;
 *  - the CLI: dataset detection, errors, eval's tables.
 * Models are the tiny fixture architecture at 64x64 on two scenes: each run takes a second or two.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/node/platform.js';
import { SwiftFormerError } from '../src/core/errors.js';
import type { StateDict } from '../src/core/tensor.js';
import { loadModel } from '../src/models/load.js';
import { SegmentationModel } from '../src/models/segmentation.js';
import { openSegmentationData } from '../src/node/segmentation-data.js';
import { readCheckpoint } from '../src/train/checkpoint.js';
import { evaluateSegmentation, trainSegmentation, type SegmentationTrainOptions } from '../src/train/segmentation-trainer.js';
import { readPth } from '../src/weights/pth.js';
import { readStateDict } from '../src/weights/read.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath } from './fixtures.js';

const DATA = fileURLToPath(new URL('data/segtrain/', import.meta.url));
const REF = JSON.parse(await readFile(join(DATA, 'index.json'), 'utf8')) as {
  losses: number[]; lr: number; iterations: number; degenerate_grads: string[];
  eval: { aAcc: number; mIoU: number; mAcc: number; intersect: number[]; pred: number[]; label: number[] };
};
const WEIGHTS = fixturePath('semfpn-tiny/weights.safetensors');
const data = await openSegmentationData(DATA);

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'swiftformer-segtrain-'));
  dirs.push(d);
  return d;
}

/** The tiny run: the fixture's weights, 64x64 scenes, batch 2 (the whole training set), 2 threads. */
function options(extra: Partial<SegmentationTrainOptions> = {}): SegmentationTrainOptions {
  return { train: data.train!, val: data.val!, weights: WEIGHTS, cropSize: 64, imgScale: [256, 64], batchSize: 2, threads: 2, ...extra };
}

/** The pipeline switched off: the 64x64 scenes are the crop, rescaled by 1, never flipped or distorted. */
const PLAIN: Partial<SegmentationTrainOptions> = { ratioRange: null, catMaxRatio: 1, flipProb: 0, photometric: false, dropout: 0 };

describe('three iterations against PyTorch (mmseg\'s recipe on semfpn-tiny)', async () => {
  const losses: number[] = [];
  const run = await trainSegmentation(options({
    ...PLAIN, iterations: 3, evalInterval: 3,
    onProgress: (e) => { if (e.phase === 'train') losses.push(e.loss * e.step - losses.reduce((a, b) => a + b, 0)); },
  }));
  const ref = await readStateDict(await readFile(join(DATA, 'trained.safetensors')));

  test('the loss of each iteration', () => {
    assert.equal(losses.length, 3);
    losses.forEach((l, i) => assert.ok(Math.abs(l - REF.losses[i]!) <= 2e-5 * REF.losses[i]!, `iteration ${i + 1}: ${l} vs ${REF.losses[i]}`));
    assert.equal(run.trainConfig.optimizer.decayAll, true);
    assert.deepEqual([run.trainConfig.lr, run.trainConfig.optimizer.weightDecay, run.trainConfig.schedule.kind], [2e-4, 1e-4, 'poly']);
  });

  test('every weight and BatchNorm buffer after them (num_batches_tracked carried on from the checkpoint)', () => {
    // AdamW moves a parameter by about lr per step whatever its gradient's size: where the
    // gradient is ~0 (conv biases feeding a train-mode BatchNorm) its sign is rounding noise on
    // either side, so those move within 2 * sum(lr) of each other, and so do the running means
    // of the BatchNorms they feed (momentum 0.1).
    const lrs = [0, 1, 2].map((t) => REF.lr * (1 - t / 3) ** 0.9);
    const lrSum = lrs[0]! + lrs[1]! + lrs[2]!;
    // The batch means of iterations 2 and 3 see each such bias apart by up to 2 lr0 and 2 (lr0 + lr1);
    // the running mean takes them with weights 0.1 * 0.9 and 0.1; up to 4 of them add into one map
    // (a stage's output: its block's projection biases, through the residual stream).
    const meanTolerance = 4 * 0.1 * (0.9 * 2 * lrs[0]! + 2 * (lrs[0]! + lrs[1]!)) + 1e-6;
    assert.equal(ref.size, run.state.size);
    for (const [key, expected] of ref) {
      const got = run.state.get(key);
      assert.ok(got && got.data.length === expected.data.length, key);
      if (expected.dtype === 'int64') {
        assert.deepEqual([...got.data], [...expected.data], key);
        continue;
      }
      const scale = expected.data.reduce((m, v) => Math.max(m, Math.abs(Number(v))), 0);
      const tolerance = REF.degenerate_grads.includes(key) ? 2 * lrSum : key.endsWith('running_mean') ? meanTolerance : 1e-4 * scale + 1e-6;
      let worst = 0;
      for (let i = 0; i < expected.data.length; i++) worst = Math.max(worst, Math.abs(Number(got.data[i]) - Number(expected.data[i])));
      assert.ok(worst <= tolerance, `${key}: max difference ${worst} > ${tolerance}`);
    }
  });

  test("mmseg's evaluation of PyTorch's trained weights gives PyTorch's numbers (library and eval --json)", async () => {
    const model = await SegmentationModel.load({ weights: join(DATA, 'trained.pth'), scale: [256, 64], session: { threads: 2 } });
    const m = await evaluateSegmentation(model, data.val!);
    await model.release();
    // Identical up to pixels whose two best classes tie within float rounding.
    const near = (a: ArrayLike<number>, b: readonly number[], what: string) => Array.from(a).forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 2, `${what}[${i}]: ${v} vs ${b[i]}`));
    near(m.intersect, REF.eval.intersect, 'intersect');
    near(m.predLabel, REF.eval.pred, 'pred');
    assert.deepEqual(Array.from(m.label), REF.eval.label);
    for (const k of ['aAcc', 'mIoU', 'mAcc'] as const) assert.ok(Math.abs(m[k] - REF.eval[k]) < 2e-3, `${k} ${m[k]} vs ${REF.eval[k]}`);
    const r = await cli('eval', DATA, '--weights', join(DATA, 'trained.pth'), '--size', '256,64', '--json');
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout);
    assert.deepEqual([json.images, json.classes, json.mIoU, json.aAcc], [2, ['c0', 'c1', 'c2', 'c3', 'c4'], m.mIoU, m.aAcc]);
    assert.match(r.stderr, /evaluated 2 images of .* \(val\) at scale 256x64/);
    // The tables, as mmseg logs them.
    const table = await cli('eval', DATA, '--weights', join(DATA, 'trained.pth'), '--size', '256,64');
    assert.match(table.stdout, /per class results:[\s\S]*\|\s+c4\s+\|[\s\S]*Summary:[\s\S]*\|\s+aAcc\s+\|\s+mIoU\s+\|\s+mAcc\s+\|/);
    assert.match(table.stdout, new RegExp(`\\|\\s+${(Math.round(m.mIoU * 10000) / 100).toString().replace('.', '\\.')}\\s+\\|`));
  });
});

/** Every tensor of a run's checkpoint state (weights and AdamW moments). */
async function stateOf(dir: string): Promise<StateDict> {
  const saved = (await readCheckpoint(dir))!;
  return new Map([...saved.state, ...saved.moments]);
}

function assertSameState(a: StateDict, b: StateDict): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a) assert.deepEqual(b.get(k)!.data, t.data, k);
}

describe('the iteration stream: resume, rounds, run directory', () => {
  // The whole pipeline and Dropout2d on: every draw must come back the same.
  const augmented = (extra: Partial<SegmentationTrainOptions> = {}) => options({ iterations: 4, evalInterval: 2, dropout: 0.1, ...extra });

  test('resume: 2 rounds straight == 1 round, stop, resume (bit for bit: weights, BatchNorm statistics, moments, metrics)', async () => {
    const straight = await tempDir();
    const whole = await trainSegmentation(augmented({ out: straight }));
    const split = await tempDir();
    const stop = new AbortController();
    await assert.rejects(
      trainSegmentation(augmented({ out: split, signal: stop.signal, onProgress: (e) => { if (e.phase === 'epoch') stop.abort(); } })),
      (err: Error) => err.name === 'AbortError',
    );
    assert.equal((await readCheckpoint(split))!.sidecar.epoch, 1);
    await assert.rejects(trainSegmentation(augmented({ out: split, resume: true, lr: 1e-3 })), /cannot resume .* lr 0.001 vs 0.0002/);
    const resumed = await trainSegmentation({ ...augmented({ out: split, resume: true }), weights: undefined });
    assert.deepEqual(resumed.history.map((m) => m.test_mIoU), whole.history.map((m) => m.test_mIoU));
    assertSameState(await stateOf(straight), await stateOf(split));
    for (const file of ['checkpoint.safetensors', 'latest.pth', 'best.safetensors']) {
      const [a, b] = await Promise.all([readFile(join(straight, file)), readFile(join(split, file))]);
      assert.ok(a.equals(b), `${file} identical`);
    }
  });

  test('rounds only split evaluation: 4 iterations in rounds of 2 or of 4 train the same weights; the poly schedule spans the run', async () => {
    const [a, b] = [await tempDir(), await tempDir()];
    const two = await trainSegmentation(augmented({ out: a }));
    const four = await trainSegmentation(augmented({ out: b, evalInterval: 4 }));
    assert.deepEqual([two.history.length, four.history.length, two.history[1]!.steps], [2, 1, 2]);
    assertSameState(await stateOf(a), await stateOf(b));
    // Poly over 4 iterations: the last (t = 3) runs at 2e-4 * (1/4)^0.9.
    assert.ok(Math.abs(four.history[0]!.lr - 2e-4 * 0.25 ** 0.9) < 1e-12);
    await assert.rejects(trainSegmentation(augmented({ iterations: 5 })), /5 iterations do not split into rounds of 2/);
    await assert.rejects(trainSegmentation(augmented({ epochs: 2 })), /as epochs .* or as iterations, not both/);
  });

  test('the run directory: mmseg checkpoints (latest, best by mIoU), safetensors with the card, metrics and chart; loadModel and segment take them', async () => {
    const out = await tempDir();
    const run = await trainSegmentation(augmented({ out }));
    const files = await readdir(out);
    for (const f of ['checkpoint.json', 'checkpoint.safetensors', 'latest.pth', 'best_mIoU.pth', 'best.safetensors', 'metrics.jsonl', 'chart.svg', 'labels.json', 'config.json']) {
      assert.ok(files.includes(f), f);
    }
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((m) => m.epoch), [1, 2]);
    for (const m of lines) for (const k of ['test_mIoU', 'test_aAcc', 'test_mAcc']) assert.ok(m[k] >= 0 && m[k] <= 1, k);
    assert.match(await readFile(join(out, 'chart.svg'), 'utf8'), /test mIoU/);
    const latest = await readPth(await readFile(join(out, 'latest.pth')));
    const meta = latest.root as Map<string, unknown>;
    const m = meta.get('meta') as Map<string, unknown>;
    assert.deepEqual([m.get('CLASSES'), m.get('epoch'), m.get('iter')], [['c0', 'c1', 'c2', 'c3', 'c4'], 2, 4]);
    assert.deepEqual(m.get('PALETTE'), [[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]]);
    const bestEpoch = lines.reduce((b, l) => (l.test_mIoU > b.test_mIoU ? l : b)).epoch;
    assert.equal(((await readPth(await readFile(join(out, 'best_mIoU.pth')))).root as Map<string, Map<string, unknown>>).get('meta')!.get('epoch'), bestEpoch);
    for (const file of ['checkpoint.safetensors', 'latest.pth']) {
      const model = await loadModel({ weights: join(out, file), session: { threads: 2 } });
      assert.equal(model.task, 'segmentation');
      if (model.task !== 'segmentation') continue;
      assert.deepEqual([model.labels, model.palette.length, model.scale, model.config.backbone.attention], [['c0', 'c1', 'c2', 'c3', 'c4'], 5, [256, 64], 'l2']);
      for (const [k, t] of run.state) if (!k.endsWith('num_batches_tracked')) assert.deepEqual(model.state.get(k)?.data, t.data, `${file}: ${k}`);
      const seg = await model.segment((await data.val!.sample(0)).image);
      assert.deepEqual([seg.width, seg.height], [64, 64]);
      await model.release();
    }
  });

  test('a run that diverges stops with a clear error before writing its checkpoint', async () => {
    const out = await tempDir();
    await assert.rejects(trainSegmentation(augmented({ out, lr: 1e30 })), (err: unknown) => {
      assert.ok(err instanceof SwiftFormerError && err.code === 'DIVERGED', String(err));
      assert.match(err.message, /training diverged: .* at epoch 1, step 2 of 2|training diverged: the (weights|loss)/);
      return true;
    });
    assert.equal(await readCheckpoint(out), undefined);
  });
});

describe('swiftformer train / eval on a segmentation dataset (CLI)', () => {
  test('train detects the dataset, trains and evaluates; eval reproduces the last round\'s mIoU', async () => {
    const out = await tempDir();
    const r = await cli('train', '--data', DATA, '--finetune', WEIGHTS, '--crop-size', '64', '--img-scale', '256,64', '--batch-size', '2',
      '--iterations', '2', '--eval-interval', '1', '--threads', '2', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Semantic FPN \(FPN 32, head 16\) on SwiftFormer \[16,24,32,48\] x \[1,1,2,1\], 5 classes, .* M trainable parameters; 1 steps per epoch/);
    assert.match(r.stderr, /epoch 2 \(iteration 2\)  loss \d\.\d+  mIoU \d+\.\d\d%  aAcc/);
    assert.match(r.stderr, /done: .* \(epoch 2, best mIoU \d+\.\d\d% at epoch [12]\)/);
    const last = JSON.parse((await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').at(-1)!);
    const e = await cli('eval', DATA, '--weights', join(out, 'checkpoint.safetensors'), '--json');
    assert.equal(e.code, 0, e.stderr);
    assert.equal(JSON.parse(e.stdout).mIoU, last.test_mIoU);
    const resumed = await cli('train', '--resume', out, '--epochs', '3', '--threads', '2');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming after epoch 2/);
    assert.match(resumed.stderr, /poly schedule is planned again over 3 epochs/);
  });

  test('bad input is one line: an unknown --task, a crop not a multiple of 32, classifier weights for eval', async () => {
    // (The data's own errors are the library's, tested in segmentation-data.test.ts.)
    assertCleanFailure(await cli('train', '--data', DATA, '--task', 'frobnicate'), /--task must be classification, segmentation or detection/);
    // A segmentation dataset is no detection dataset: the COCO files looked for are named.
    assertCleanFailure(await cli('train', '--data', DATA, '--task', 'detection'), /has no COCO train split: looked for .*instances_train2017\.json/);
    assertCleanFailure(await cli('train', '--task', 'segmentation', '--data', fixturePath('tiny'), '--crop-size', '60'), /--crop-size must be multiples of 32/);
    assertCleanFailure(await cli('eval', DATA, '--weights', fixturePath('tiny/weights.safetensors')), /holds no segmentation head/);
  });
});
