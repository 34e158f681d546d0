/**
 * Semantic FPN against ../shared/fixtures/semfpn-{tiny,xs} (mmsegmentation's EncoderDecoder with
 * the official fork_feat backbone, FPN and FPNHead, run in PyTorch): neck maps, decode-head logits,
 * full-resolution logits and the argmax mask in eval; one training pass (loss both ways, every
 * gradient, BatchNorm buffers). Tolerances from the fixtures README.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import '../src/node/platform.js';
import { bindParams, toOnnx, type Graph } from '../src/graph/graph.js';
import { countMacs, optimizeForInference } from '../src/graph/passes.js';
import {
  composesHead, emitSemanticFpn, FEATURE_STRIDES, fusedNeckWeights, inferSemanticFpnConfig, initialSemanticFpnWeights, isSemanticFpnState, remapSemanticFpnKeys, semanticFpnConfig,
} from '../src/models/semfpn.js';
import { variantConfig } from '../src/models/swiftformer.js';
import { SegmentationTrainStep } from '../src/train/segmentation-step.js';
import { readStateDict } from '../src/weights/read.js';
import type { FloatTensor } from '../src/core/tensor.js';
import { assertGradients, assertRunningStats, fixtureBytes, fixtureTensor, manifest, relativeError } from './fixtures.js';

const EVAL_TOLERANCE = 1e-4;

async function run(graph: Graph, input: FloatTensor): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(toOnnx(graph), { intraOpNumThreads: 2 });
  try {
    return await session.run({ pixel_values: new ort.Tensor('float32', input.data, input.shape) });
  } finally {
    await session.release();
  }
}

const data = (out: ort.InferenceSession.OnnxValueMapType, name: string) => out[name]!.data as Float32Array;

describe('Semantic FPN eval matches mmsegmentation (PyTorch)', async () => {
  const tiny = await readStateDict(fixtureBytes('semfpn-tiny/weights.safetensors'));
  const xs = await readStateDict(fixtureBytes('semfpn-xs/weights.safetensors'));

  test('the architecture is read off the weights', () => {
    const cfg = inferSemanticFpnConfig(tiny);
    assert.deepEqual([cfg.backbone.embedDims, cfg.backbone.depths], [[16, 24, 32, 48], [1, 1, 2, 1]]);
    assert.deepEqual([cfg.neckChannels, cfg.headChannels, cfg.numClasses], [32, 16, 5]);
    const big = inferSemanticFpnConfig(xs);
    assert.deepEqual([big.backbone.embedDims, big.neckChannels, big.headChannels, big.numClasses], [[48, 56, 112, 220], 256, 128, 150]);
    assert.equal(manifest('semfpn-xs').params, [...emitSemanticFpn(big).params].filter(([k]) => !/running|num_batches/.test(k)).reduce((n, [, s]) => n + s.reduce((a, d) => a * d, 1), 0));
  });

  for (const [fold, fusedNeck, fusedHead] of [[false, false, false], [true, false, false], [true, true, false], [true, true, true]] as const) {
    test(`semfpn-tiny: ${fusedHead ? '' : 'neck maps, '}decode-head logits and resized logits${fold ? ' (BatchNorm folded)' : ''}${fusedNeck ? ' (fused neck)' : ''}${fusedHead ? ' (head entries fused)' : ''}`, async () => {
      const cfg = inferSemanticFpnConfig(tiny);
      const graph = bindParams(emitSemanticFpn(cfg, { inputSize: 64, intermediates: true, fusedNeck, fusedHead }), fusedNeck ? fusedNeckWeights(tiny, cfg) : tiny);
      const out = await run(fold ? optimizeForInference(graph) : graph, fixtureTensor('semfpn-tiny', 'input.bin'));
      // The tiny config's levels 0-2 compose (neck 32, head 16, widths 16-32), so the test covers every ring strip.
      if (fusedHead) assert.deepEqual([0, 1, 2, 3].map((i) => composesHead(cfg, i)), [true, true, true, false]);
      for (let i = 0; i < (fusedHead ? 0 : 4); i++) {
        assert.ok(relativeError(data(out, `features${i}`), fixtureTensor('semfpn-tiny', `features${i}.bin`).data) <= EVAL_TOLERANCE, `features${i}`);
      }
      assert.ok(relativeError(data(out, 'logits_quarter'), fixtureTensor('semfpn-tiny', 'logits_quarter.bin').data) <= EVAL_TOLERANCE);
      assert.deepEqual(out.logits!.dims, [2, 5, 64, 64]);
      assert.ok(relativeError(data(out, 'logits'), fixtureTensor('semfpn-tiny', 'logits.bin').data) <= EVAL_TOLERANCE);
      if (fold) assert.equal(graph.nodes.filter((n) => n.op === 'BatchNormalization').length > 0 && optimizeForInference(graph).nodes.filter((n) => n.op === 'BatchNormalization').length, 0);
    });
  }

  test("fused head entries save what composesHead's count says, and the kernels folded at load are not counted", () => {
    const cfg = semanticFpnConfig(variantConfig('l1'));
    const [c, o] = [cfg.neckChannels, cfg.headChannels];
    const macs = (fusedHead: boolean) => countMacs(emitSemanticFpn(cfg, { inputSize: 512, fusedNeck: true, fusedHead }));
    // Levels 0-2 compose (widths 48, 96, 192 against C 256, O 128), at grids 128, 64, 32.
    const predicted = [0, 1, 2].reduce((sum, i) => {
      const inC = cfg.backbone.embedDims[i]!;
      return sum + (512 / FEATURE_STRIDES[i]!) ** 2 * (9 * c * inC + 4 * c * c - 25 * o * inC);
    }, 0);
    const saved = macs(false) - macs(true);
    assert.ok(Math.abs(saved / predicted - 1) < 0.02, `saved ${saved}, predicted ${predicted}`);
  });

  test('semfpn-xs (150 classes at 256x256): decode-head logits, full-resolution logits, argmax mask', async () => {
    const cfg = inferSemanticFpnConfig(xs);
    const input = fixtureTensor('semfpn-xs', 'input.bin');
    for (const fusedHead of [false, true]) {
      const out = await run(optimizeForInference(bindParams(emitSemanticFpn(cfg, { inputSize: 256, intermediates: true, fusedNeck: true, fusedHead }), fusedNeckWeights(xs, cfg))), input);
      assert.ok(relativeError(data(out, 'logits_quarter'), fixtureTensor('semfpn-xs', 'logits_quarter.bin').data) <= EVAL_TOLERANCE, `fused head ${fusedHead}`);
      assert.ok(relativeError(data(out, 'logits').subarray(0, 8 * 256 * 256), fixtureTensor('semfpn-xs', 'logits_first8.bin').data) <= EVAL_TOLERANCE);
    }
    const masked = await run(optimizeForInference(bindParams(emitSemanticFpn(cfg, { inputSize: 256, output: 'mask' }), xs)), input);
    assert.equal(masked.mask!.type, 'uint8');
    assert.deepEqual(masked.mask!.dims, [1, 256, 256]);
    const reference = fixtureBytes('semfpn-xs/mask.bin');
    const got = masked.mask!.data as Uint8Array;
    const differing = reference.reduce((n, v, i) => n + (v !== got[i] ? 1 : 0), 0);
    assert.equal(differing, 0, `${differing} mask pixels differ from mmseg's argmax`);
  });
});

describe('Semantic FPN weights', async () => {
  const tiny = await readStateDict(fixtureBytes('semfpn-tiny/weights.safetensors'));

  test('mmseg state dicts are told apart from classifiers and backbones by their keys', async () => {
    assert.ok(isSemanticFpnState(tiny.keys()));
    assert.ok(!isSemanticFpnState((await readStateDict(fixtureBytes('tiny/weights.safetensors'))).keys()));
    assert.ok(!isSemanticFpnState((await readStateDict(fixtureBytes('tiny/fork_feat_weights.safetensors'))).keys()));
  });

  test('the remap keeps mmseg keys and reports what it does not know', () => {
    const cfg = inferSemanticFpnConfig(tiny);
    const remap = remapSemanticFpnKeys([...tiny.keys(), 'auxiliary_head.conv_seg.weight', 'neck.extra.weight'], cfg.backbone);
    assert.equal(remap.format, 'official');
    assert.deepEqual(remap.unmatched, ['auxiliary_head.conv_seg.weight', 'neck.extra.weight']);
    for (const k of tiny.keys()) assert.equal(remap.mapped.get(k), k);
  });

  test('fresh weights cover every parameter and buffer of the graph, with mmseg\'s initialization', () => {
    const cfg = semanticFpnConfig(variantConfig('xs'), { numClasses: 19 });
    const state = initialSemanticFpnWeights(cfg, 0);
    for (const [key, shape] of emitSemanticFpn(cfg).params) assert.deepEqual(state.get(key)?.shape, shape, key);
    const seg = state.get('decode_head.conv_seg.weight')!.data as Float32Array;
    const std = Math.sqrt(seg.reduce((s, v) => s + v * v, 0) / seg.length);
    assert.ok(Math.abs(std - 0.01) < 0.001, `conv_seg std ${std}`);
    // FPN: Xavier uniform, bound sqrt(6 / (fan_in + fan_out)); std = bound / sqrt(3).
    const conv = state.get('neck.fpn_convs.0.conv.weight')!.data as Float32Array;
    const convStd = Math.sqrt(conv.reduce((s, v) => s + v * v, 0) / conv.length);
    const bound = Math.sqrt(6 / (2 * 256 * 9));
    assert.ok(Math.abs(convStd - bound / Math.sqrt(3)) < 0.0005 && conv.every((v) => Math.abs(v) <= bound), `fpn conv std ${convStd} (xavier uniform)`);
    const lateral = state.get('neck.lateral_convs.0.conv.weight')!.data as Float32Array;
    assert.ok(lateral.every((v) => Math.abs(v) <= Math.sqrt(6 / (48 + 256))) && Math.max(...lateral) > 0.9 * Math.sqrt(6 / (48 + 256)), 'lateral conv: xavier uniform over fan_in 48 + fan_out 256');
    assert.ok((state.get('neck.lateral_convs.0.conv.bias')!.data as Float32Array).every((v) => v === 0));
    const head = state.get('decode_head.scale_heads.0.0.conv.weight')!.data as Float32Array;
    const headStd = Math.sqrt(head.reduce((s, v) => s + v * v, 0) / head.length);
    assert.ok(Math.abs(headStd - Math.sqrt(2 / (128 * 9))) < 0.001, `head conv std ${headStd} (kaiming fan_out)`);
    assert.ok((state.get('decode_head.scale_heads.3.4.bn.weight')!.data as Float32Array).every((v) => v === 1));
  });
});

describe('Semantic FPN: one training pass matches mmsegmentation (PyTorch)', async () => {
  const state = await readStateDict(fixtureBytes('semfpn-tiny/weights.safetensors'));
  const cfg = { ...inferSemanticFpnConfig(state), dropout: 0 };
  const pixels = fixtureTensor('semfpn-tiny', 'train_input.bin');
  const labels: FloatTensor = { dtype: 'float32', shape: [2, 64, 64], data: Float32Array.from(new BigInt64Array(fixtureBytes('semfpn-tiny/train_labels.bin').slice().buffer), Number) };
  const steps: SegmentationTrainStep[] = [];
  after(() => Promise.all(steps.map((s) => s.release())));
  const step = await SegmentationTrainStep.create(cfg, { batch: 2, inputSize: 64 }, { threads: 2 });
  steps.push(step);
  const result = await step.run(state, pixels, labels);

  test('loss: mean over all pixels (mmseg default)', () => {
    const ref = manifest('semfpn-tiny').train_loss;
    assert.ok(Math.abs(result.loss - ref) <= 1e-5 * ref, `${result.loss} vs ${ref}`);
  });

  test('loss: mean over the pixels not ignored (avg_non_ignore)', async () => {
    const other = await SegmentationTrainStep.create(cfg, { batch: 2, inputSize: 64, average: 'non-ignored' }, { threads: 2 });
    steps.push(other);
    const ref = manifest('semfpn-tiny').train_loss_avg_non_ignore;
    const loss = (await other.run(state, pixels, labels)).loss;
    assert.ok(Math.abs(loss - ref) <= 1e-5 * ref, `${loss} vs ${ref}`);
  });

  test('train-mode decode-head logits within 1e-4 relative', () => {
    assert.ok(relativeError(result.logits.data, fixtureTensor('semfpn-tiny', 'train_logits_quarter.bin').data) <= 1e-4);
  });

  test('every parameter gradient within 1e-4 max|ref| + 1e-6', () => assertGradients(result.grads, 'semfpn-tiny/grads.safetensors'));

  test('BatchNorm buffers after the pass (momentum 0.1, unbiased variance)', () => assertRunningStats(state, result.stats, 'semfpn-tiny/train_bn_after.safetensors'));

  test('Dropout2d: a mask of ones is no dropout; a drawn mask changes the loss', async () => {
    const dropped = await SegmentationTrainStep.create({ ...cfg, dropout: 0.1 }, { batch: 2, inputSize: 64 }, { threads: 2 });
    steps.push(dropped);
    const ones: FloatTensor = { dtype: 'float32', shape: [2, 16, 1, 1], data: new Float32Array(32).fill(1) };
    assert.ok(Math.abs((await dropped.run(state, pixels, labels, ones)).loss - result.loss) <= 1e-6 * result.loss);
    const half = { ...ones, data: ones.data.map((_, i) => (i % 2 ? 0 : 2)) };
    assert.ok(Math.abs((await dropped.run(state, pixels, labels, half)).loss - result.loss) > 1e-3);
    await assert.rejects(dropped.run(state, pixels, labels), /Dropout2d/);
  });
});
