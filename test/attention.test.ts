/**
 * The additive-attention family (issue 7): Fastformer and multi-head self-attention modules, ViT /
 * FViT, and SwiftFormer with a swapped attention. References: PyTorch implementations written from
 * the papers (scripts/make-attention-refs.py -> test/data/attention), closed-form parameter and MAC
 * counts computed here from the architecture description, and the FViT paper's table.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import '../src/node/platform.js';
import { fastformerAttention, multiHeadSelfAttention } from '../src/models/attention.js';
import { attr, bindParams, GraphBuilder, toOnnx, type Graph } from '../src/graph/graph.js';
import { toLayout, toNCHW, type Maps } from '../src/graph/layout.js';
import { loadModel, modelInfo, SwiftFormerError } from '../src/index.js';
import { optimizeForInference } from '../src/graph/passes.js';
import { getBackend, type Session } from '../src/runtime/runtime.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { stepOnnx, TrainStep, updateRunningStats } from '../src/train/step.js';
import { emitSwiftFormer, initialWeights, type SwiftFormerConfig } from '../src/models/swiftformer.js';
import type { FloatTensor, StateDict } from '../src/core/tensor.js';
import { emitVit, initialVitWeights, vitConfig, vitInfo, type VitConfig } from '../src/models/vit.js';
import { buildVitStepGraph } from '../src/train/step.js';
import { assertClose, relativeError, TINY_CONFIG } from './fixtures.js';

const DATA = new URL('./data/attention/', import.meta.url);

async function reference(name: string): Promise<Map<string, FloatTensor>> {
  const bytes = await readFile(new URL(`${name}.safetensors`, DATA));
  const { tensors } = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return tensors as Map<string, FloatTensor>;
}

const sessions: Session[] = [];
after(async () => {
  await Promise.all(sessions.map((s) => s.release()));
});

async function session(bytes: Uint8Array): Promise<Session> {
  const s = await getBackend().createSession(bytes, { threads: 2 });
  sessions.push(s);
  return s;
}

function pixels(shape: number[], seed = 1): FloatTensor {
  const n = shape.reduce((a, d) => a * d, 1);
  return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 1.5) };
}

// ---------------------------------------------------------------- parity with PyTorch

describe('attention modules match PyTorch (written from the papers), in both layouts', () => {
  const cases = [
    { name: 'mhsa', emit: (b: GraphBuilder, x: Maps) => multiHeadSelfAttention(b, x, 'attn', 8, { heads: 2 }) },
    { name: 'fastformer', emit: (b: GraphBuilder, x: Maps) => fastformerAttention(b, x, 'attn', 8, { heads: 2 }) },
    { name: 'fastformer_value', emit: (b: GraphBuilder, x: Maps) => fastformerAttention(b, x, 'attn', 8, { heads: 2, shareQueryValue: false }) },
  ];
  for (const c of cases) {
    for (const layout of ['nchw', 'cnhw'] as const) {
      test(`${c.name}, ${layout}: (2,8,3,4) maps, 2 heads, within 1e-5`, async () => {
        const ref = await reference(`module_${c.name}`);
        const input = ref.get('input')!;
        const [n, ch, h, w] = input.shape as [number, number, number, number];
        const b = new GraphBuilder();
        const y = toNCHW(b, c.emit(b, toLayout(b, b.input('x', input.shape), layout)));
        b.node('Identity', [y], input.shape, {}, 'y');
        b.output('y');
        const out = await (await session(toOnnx(bindParams(b.graph, ref)))).run({ x: input });
        assert.ok(relativeError(out.y!.data, ref.get('output')!.data) <= 1e-5);
      });
    }
  }
});

function tinyVit(attention: 'mhsa' | 'fastformer'): VitConfig {
  return { patchSize: 8, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2, numClasses: 10, attention, imageSize: 32 };
}

for (const attention of ['mhsa', 'fastformer'] as const) {
  describe(`tiny ${attention === 'mhsa' ? 'ViT' : 'FViT'} (patch 8, D 16, depth 2, 2 heads) matches PyTorch`, async () => {
    const ref = await reference(`vit_${attention}`);
    const cfg = tinyVit(attention);
    const input = ref.get('input')!;

    test('parameter count equals torch\'s', async () => {
      const index = JSON.parse(await readFile(new URL('index.json', DATA), 'utf8'));
      assert.equal(vitInfo(cfg).params, index.vit[attention].params);
    });

    test('eval logits, unfolded and optimized graphs, within 1e-5', async () => {
      // Two emissions: optimizeForInference rewrites the nodes it is given.
      for (const g of [bindParams(emitVit(cfg), ref), optimizeForInference(bindParams(emitVit(cfg), ref))]) {
        const out = await (await session(toOnnx(g))).run({ pixel_values: input });
        assert.deepEqual(out.logits!.shape, [2, 10]);
        assert.ok(relativeError(out.logits!.data, ref.get('logits')!.data) <= 1e-5);
      }
    });

    test('training step (channels-first matrix layout): loss, logits and every gradient', async () => {
      const step = buildVitStepGraph(cfg, { batch: 2 });
      const labels = ref.get('labels')!.data;
      const targets = new Float32Array(20);
      labels.forEach((l, i) => { targets[i * 10 + l] = 1; });
      const feeds: Record<string, FloatTensor> = { pixel_values: input, targets: { dtype: 'float32', shape: [2, 10], data: targets } };
      for (const p of step.params) feeds[p] = ref.get(p)!;
      const out = await (await session(stepOnnx(step))).run(feeds);
      assert.ok(Math.abs(out.loss!.data[0]! - ref.get('loss')!.data[0]!) <= 1e-5 * ref.get('loss')!.data[0]!);
      assert.ok(relativeError(out.logits!.data, ref.get('logits')!.data) <= 1e-5);
      assert.equal(step.params.length, [...ref.keys()].filter((k) => k.startsWith('grad:')).length);
      for (const p of step.params) assertClose(out[`grad:${p}`]!.data, ref.get(`grad:${p}`)!.data, 1e-4, p, 1e-7);
    });
  });
}

// ---------------------------------------------------------------- sizes

/** Parameters of a ViT from its description (Dosovitskiy et al., Table 1; timm's layer set). */
function vitParams(a: { patch: number; dim: number; depth: number; mlp: number; classes: number; tokens: number; attention: 'mhsa' | 'fastformer' }): number {
  const linear = (i: number, o: number) => i * o + o;
  const d = a.dim;
  const embed = linear(3 * a.patch * a.patch, d) + d /* cls_token */ + (a.tokens + 1) * d /* pos_embed */;
  const mixer = a.attention === 'mhsa'
    ? linear(d, 3 * d) + linear(d, d) // qkv, proj
    : 3 * linear(d, d) + 2 * d; // query, key, transform; w_q and w_k (heads x head dim each)
  const block = 2 * 2 * d /* norm1, norm2 */ + mixer + linear(d, a.mlp) + linear(a.mlp, d);
  return embed + a.depth * block + 2 * d /* norm */ + linear(d, a.classes);
}

/**
 * MACs of one image: Conv/Linear layers per token (12 D^2 per block for MHSA: qkv 3, proj 1,
 * MLP 8; 11 D^2 for Fastformer: query, key, transform 3, MLP 8), the patch embedding, the head;
 * attention products: 2 T^2 D per MHSA block (q k^T and the weighted sum of v), 4 T D per
 * Fastformer block (two additive scores and two token sums).
 */
function vitMacs(a: { patch: number; dim: number; depth: number; patches: number; classes: number; attention: 'mhsa' | 'fastformer' }): { linear: number; attention: number } {
  const t = a.patches + 1;
  const d = a.dim;
  const perToken = (a.attention === 'mhsa' ? 12 : 11) * d * d;
  const linear = a.depth * t * perToken + a.patches * d * 3 * a.patch * a.patch + d * a.classes;
  const attention = a.depth * (a.attention === 'mhsa' ? 2 * t * t * d : 4 * t * d);
  return { linear, attention };
}

describe('ViT-B and FViT-B sizes', () => {
  const models = [
    { id: 'vit-b16', patch: 16, attention: 'mhsa', paper: { params: 86, gflops: 49.3 } },
    { id: 'vit-b32', patch: 32, attention: 'mhsa', paper: { params: 88, gflops: 12.6 } },
    { id: 'fvit-b16', patch: 16, attention: 'fastformer', paper: { params: 79, gflops: 45.2 } },
    { id: 'fvit-b32', patch: 32, attention: 'fastformer', paper: { params: 81, gflops: 11.6 } },
  ] as const;

  test('ViT-B/16 at 224 with a 1000-class head: 86,567,656 parameters', () => {
    assert.equal(vitParams({ patch: 16, dim: 768, depth: 12, mlp: 3072, classes: 1000, tokens: 196, attention: 'mhsa' }), 86_567_656);
    assert.equal(modelInfo('vit-b16').params, 86_567_656);
  });

  for (const m of models) {
    test(`${m.id}: parameters and MACs at 224 and 384 equal the closed forms`, () => {
      for (const size of [224, 384]) {
        const patches = (size / m.patch) ** 2;
        const info = vitInfo(vitConfig(m.id), size);
        assert.equal(info.params, vitParams({ patch: m.patch, dim: 768, depth: 12, mlp: 3072, classes: 1000, tokens: patches, attention: m.attention }));
        const macs = vitMacs({ patch: m.patch, dim: 768, depth: 12, patches, classes: 1000, attention: m.attention });
        assert.equal(info.macs - info.attentionMacs, macs.linear);
        assert.equal(info.attentionMacs, macs.attention);
        assert.equal(info.tokens, patches + 1);
      }
    });

    // The FViT paper (Wen et al., CAI 2024) reports ViT-B/16 86 M / 49.3 GFLOPs, ViT-B/32 88 M /
    // 12.6, Fastformer-B/16 79 M / 45.2, Fastformer-B/32 81 M / 11.6. Its "FLOPs" are MACs of the
    // Conv/Linear layers at 384x384 (ViT's fine-tuning resolution), the attention products not
    // counted; both columns are truncated to the digits shown. (At 224 ViT-B/16 is 17.6 GMACs.)
    test(`${m.id}: the FViT paper's ${m.paper.params} M and ${m.paper.gflops} "GFLOPs"`, () => {
      const info = vitInfo(vitConfig(m.id), 384);
      assert.equal(Math.floor(info.params / 1e6), m.paper.params);
      assert.equal(Math.floor(modelInfo(m.id).params / 1e6), m.paper.params, 'at 224 too');
      assert.equal(Math.floor((info.macs - info.attentionMacs) / 1e8) / 10, m.paper.gflops);
    });
  }

  test('ViT-B/16 at 224: 17.56 GMACs with the attention products (the 17.6 G usually quoted)', () => {
    assert.equal(Math.round(modelInfo('vit-b16').macs / 1e7) / 100, 17.56);
  });

  test('MHSA grows quadratically with tokens, Fastformer linearly', () => {
    const at = (id: string, size: number) => vitInfo(vitConfig(id), size).attentionMacs;
    // 4x the patches: MHSA's products grow ~16x, Fastformer's ~4x.
    assert.ok(at('vit-b16', 448) / at('vit-b16', 224) > 15);
    assert.ok(at('fvit-b16', 448) / at('fvit-b16', 224) < 4.1);
  });

  test('ids, shapes and bad input', () => {
    assert.deepEqual(vitConfig('ViT-B/16'), vitConfig('vit-b16'));
    assert.equal(vitConfig('fvit_b32').attention, 'fastformer');
    const graph = emitVit(vitConfig('fvit-b32'), { inputSize: [224, 320] });
    assert.deepEqual(graph.outputs[0]!.shape, ['batch', 1000]);
    assert.deepEqual(graph.params.get('pos_embed'), [1, 7 * 10 + 1, 768]);
    assert.deepEqual(graph.params.get('blocks.11.attn.w_q'), [12, 64]);
    assert.throws(() => vitInfo(vitConfig('vit-b16'), 200), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_SHAPE' && /patch size 16/.test(e.message));
    assert.throws(() => modelInfo('vit-b8'), /unknown model 'vit-b8': choose one of .*fvit-b16/);
    assert.throws(() => emitVit({ ...tinyVit('mhsa'), numHeads: 3 }), /numHeads must divide/);
  });
});

describe('swiftformer info knows the ViT ids', () => {
  const cli = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
    execFile(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)), ...args], (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });

  test('--json at 384 and the text report', async () => {
    const json = await cli('info', '--model', 'fvit-b16', '--size', '384', '--json');
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.params, 79_790_824);
    assert.equal(out.tokens, 577);
    assert.equal(Math.floor((out.macs - out.attentionMacs) / 1e8) / 10, 45.2);
    const text = await cli('info', '--model', 'vit-b16');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /params\s+86\.57 M \(86,567,656\)/);
    assert.match(text.stdout, /MACs\s+17\.564 G/);
    assert.match(text.stdout, /0\.715 G in attention products/);
  });
});

// ---------------------------------------------------------------- SwiftFormer with another attention

const SMALL: SwiftFormerConfig = { ...TINY_CONFIG, numClasses: 10, distillation: false };

describe('SwiftFormer with a swappable attention', () => {
  test('default and official keys unchanged; fastformer and mhsa parameter counts in closed form', () => {
    const xs = modelInfo('xs');
    const dims = [48, 56, 112, 220];
    // additive: to_query, to_key, Proj, final (4 D^2 + 4 D) + w_g (D);
    // fastformer: query, key, transform (3 D^2 + 3 D) + w_q, w_k (2 D); mhsa: qkv, proj (4 D^2 + 4 D).
    const sum = (f: (d: number) => number) => dims.reduce((a, d) => a + f(d), 0);
    const fast = modelInfo({ ...xs.config, attentionType: 'fastformer', attentionHeads: 4 });
    const mhsa = modelInfo({ ...xs.config, attentionType: 'mhsa', attentionHeads: 4 });
    assert.equal(fast.params, xs.params - sum((d) => d * d));
    assert.equal(mhsa.params, xs.params - sum((d) => d));
    assert.deepEqual(fast.stages, xs.stages);
    assert.ok(emitSwiftFormer({ ...xs.config, attentionType: 'additive' }).params.has('network.0.2.attn.w_g'));
    assert.deepEqual(emitSwiftFormer(fast.config).params.get('network.6.3.attn.w_q'), [4, 55]);
    assert.deepEqual(emitSwiftFormer(mhsa.config).params.get('network.6.3.attn.qkv.weight'), [660, 220]);
  });

  test('MHSA MACs grow quadratically with the resolution, fastformer and additive linearly', () => {
    const macs = (attentionType: 'additive' | 'fastformer' | 'mhsa', size: number) => modelInfo({ ...SMALL, attentionType }, size).macs;
    const growth = (t: 'additive' | 'fastformer' | 'mhsa') => macs(t, 448) / macs(t, 224);
    assert.ok(growth('additive') < 4.01 && growth('fastformer') < 4.01);
    assert.ok(growth('mhsa') > 8);
  });

  test('invalid attention settings are refused', () => {
    assert.throws(() => modelInfo({ ...SMALL, attentionType: 'linear' as 'mhsa' }), /attentionType must be one of additive, fastformer, mhsa/);
    assert.throws(() => modelInfo({ ...SMALL, attentionType: 'mhsa', attentionHeads: 5 }), /attentionHeads must be a positive integer dividing/);
  });

  for (const attentionType of ['fastformer', 'mhsa'] as const) {
    test(`${attentionType}: export round trip (toOnnx -> file -> ONNX Runtime) equals the model's own session`, async () => {
      const config = { ...TINY_CONFIG, attentionType, attentionHeads: 2 };
      const model = await loadModel({ model: config, task: 'classification', seed: 3, session: { threads: 2 } });
      try {
        const input = pixels([2, 3, 64, 96]);
        const ours = await model.logits(input);
        const dir = await mkdtemp(join(tmpdir(), 'swiftformer-attention-'));
        const file = join(dir, 'model.onnx');
        await writeFile(file, model.toOnnx([64, 96]));
        const exported = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
        const out = await exported.run({ pixel_values: new ort.Tensor('float32', input.data, input.shape) });
        await exported.release();
        await rm(dir, { recursive: true, force: true });
        assert.deepEqual(out.logits!.dims, [2, 1000]);
        assert.deepEqual(out.logits!.data, ours.data);
        // Folding (BatchNorm, scales) is exact up to rounding: the unfolded graph agrees.
        const plain = bindParams(emitSwiftFormer(config, { inputSize: [64, 96] }), model.state);
        const reference = await (await session(toOnnx(plain))).run({ pixel_values: input });
        assert.ok(relativeError(ours.data, reference.logits!.data) <= 1e-5);
        assert.ok(!model.graph([64, 96]).nodes.some((n) => n.domain), 'plain ONNX ops only');
        // Its weights load back (strictly) into the same config.
        const again = await loadModel({ model: config, task: 'classification', weights: model.state, session: { threads: 2 } });
        assert.deepEqual((await again.logits(input)).data, ours.data);
        await again.release();
      } finally {
        await model.release();
      }
    });

    test(`${attentionType}: the train layout (channels-first matrix) computes what NCHW computes`, async () => {
      // Train-mode BatchNorm uses batch statistics; compare train graphs in both layouts instead.
      const config = { ...SMALL, attentionType, attentionHeads: 2 };
      const state = initialWeights(config, 'classifier', 5);
      // Visible attention: layer scales 1 instead of 1e-5.
      for (const [k, t] of state) if (/layer_scale_1$/.test(k)) (t.data as Float32Array).fill(1);
      const run = async (layout: 'nchw' | 'cnhw') => {
        const graph = emitSwiftFormer(config, { mode: 'train', batch: 2, inputSize: 64, layout });
        return (await (await session(toOnnx(bindParams(graph, state)))).run({ pixel_values: pixels([2, 3, 64, 64]) })).logits!.data;
      };
      assert.ok(relativeError(await run('cnhw'), await run('nchw')) <= 1e-5);
    });

    test(`${attentionType}: TrainStep trains it (SGD on one batch lowers the loss)`, async () => {
      const config = { ...SMALL, attentionType, attentionHeads: 2 };
      const state: StateDict = initialWeights(config, 'classifier', 7);
      const step = await TrainStep.create(config, { batch: 4, inputSize: 64 }, { threads: 2 });
      try {
        assert.ok(step.step.params.includes(attentionType === 'mhsa' ? 'network.0.0.attn.qkv.weight' : 'network.0.0.attn.w_q'));
        const input = pixels([4, 3, 64, 64], 2);
        const targets: FloatTensor = { dtype: 'float32', shape: [4, 10], data: new Float32Array(40) };
        [1, 4, 7, 9].forEach((label, i) => { targets.data[i * 10 + label] = 1; });
        const losses: number[] = [];
        for (let i = 0; i < 4; i++) {
          const result = await step.run(state, input, targets);
          losses.push(result.loss);
          for (const [key, g] of result.grads) {
            assert.ok(g.data.every(Number.isFinite), `finite gradient of ${key}`);
            const w = state.get(key)!.data as Float32Array;
            for (let j = 0; j < w.length; j++) w[j]! -= 0.1 * g.data[j]!;
          }
          updateRunningStats(state, result.stats);
        }
        assert.ok(losses.at(-1)! < losses[0]! - 0.05, `loss ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
      } finally {
        await step.release();
      }
    });
  }
});

describe('ViT training from a fresh initialization', () => {
  test('FViT tiny: one SGD step on a batch lowers its loss', async () => {
    const cfg = tinyVit('fastformer');
    const state = initialVitWeights(cfg, 1);
    const step = buildVitStepGraph(cfg, { batch: 2 });
    const s = await session(stepOnnx(step));
    const targets: FloatTensor = { dtype: 'float32', shape: [2, 10], data: new Float32Array(20) };
    targets.data[2] = 1;
    targets.data[15] = 1;
    const run = async () => {
      const feeds: Record<string, FloatTensor> = { pixel_values: pixels([2, 3, 32, 32], 4), targets };
      for (const p of step.params) feeds[p] = state.get(p) as FloatTensor;
      return s.run(feeds);
    };
    const first = await run();
    for (const p of step.params) {
      const w = state.get(p)!.data as Float32Array;
      first[`grad:${p}`]!.data.forEach((g, j) => { w[j]! -= 0.5 * g; });
    }
    assert.ok((await run()).loss!.data[0]! < first.loss!.data[0]!);
  });

  test('the eval graph has no composite ops left after lowering', () => {
    const graph: Graph = emitVit(tinyVit('mhsa'));
    assert.ok(!graph.nodes.some((n) => n.domain), 'eval LayerNorm and GELU are ONNX primitives');
    assert.ok(emitVit(tinyVit('mhsa'), { mode: 'train', batch: 2 }).nodes.some((n) => n.op === 'LayerNorm'));
  });
});
