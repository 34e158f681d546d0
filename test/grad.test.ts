import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import '../src/node/platform.js';
import { backward, GRADIENTS } from '../src/graph/grad.js';
import { fastformerAttention, multiHeadSelfAttention } from '../src/models/attention.js';
import { attr, GraphBuilder, toOnnx } from '../src/graph/graph.js';
import { resizeMaps, spatialConv, toLayout, toNCHW, type Maps } from '../src/graph/layout.js';
import { channelDropout } from '../src/models/semfpn.js';
import { emitContext } from '../src/models/modules.js';
import { Random } from '../src/core/random.js';
import { TrainStep } from '../src/train/step.js';
import type { FloatTensor } from '../src/core/tensor.js';
import { inferConfig } from '../src/models/fit.js';
import { readStateDict } from '../src/weights/read.js';
import { assertGradients, assertRunningStats, fixtureBytes, manifest, relativeError } from './fixtures.js';

// ---------------------------------------------------------------- parity with the official code

const steps: TrainStep[] = [];
after(async () => {
  await Promise.all(steps.map((s) => s.release()));
});

function oneHot(labels: BigInt64Array, classes: number): FloatTensor {
  const data = new Float32Array(labels.length * classes);
  labels.forEach((l, i) => { data[i * classes + Number(l)] = 1; });
  return { dtype: 'float32', shape: [labels.length, classes], data };
}

function floats(rel: string, shape: number[]): FloatTensor {
  return { dtype: 'float32', shape, data: new Float32Array(fixtureBytes(rel).slice().buffer) };
}

for (const dir of ['tiny', 'xs'] as const) {
  describe(`${dir}: one training step matches the official PyTorch step`, async () => {
    const state = await readStateDict(fixtureBytes(`${dir}/train_weights.safetensors`));
    const config = inferConfig(state);
    const step = await TrainStep.create(config, { batch: 4, inputSize: 64 }, { threads: 2 });
    steps.push(step);
    const labels = new BigInt64Array(fixtureBytes(`${dir}/train_labels.bin`).slice().buffer);
    const result = await step.run(state, floats(`${dir}/train_input.bin`, [4, 3, 64, 64]), oneHot(labels, 10));

    test('loss (mean cross-entropy)', () => {
      assert.ok(Math.abs(result.loss - manifest(dir).train_loss) <= 1e-5 * manifest(dir).train_loss);
    });

    test('train-mode logits within 1e-4 relative', () => {
      assert.ok(relativeError(result.logits.data, floats(`${dir}/train_logits.bin`, [4, 10]).data) <= 1e-4);
    });

    test('every parameter gradient within 1e-4 max|ref| + 1e-6', () => assertGradients(result.grads, `${dir}/grads.safetensors`));

    test('BatchNorm running statistics after the step (momentum 0.1, unbiased variance)', () => assertRunningStats(state, result.stats, `${dir}/train_bn_after.safetensors`));
  });
}

// ---------------------------------------------------------------- every rule against finite differences

interface Case {
  name: string;
  inputs: Record<string, number[]>;
  build(b: GraphBuilder, x: Record<string, string>): string;
  /** Inputs kept away from zero (division, sqrt) or strictly positive. */
  positive?: string[];
  /** Standard deviation of the other inputs (default 1); smaller keeps softmaxes off saturation, where h = 1e-2 is too coarse. */
  std?: number;
}

const CASES: Case[] = [
  { name: 'Add broadcast', inputs: { a: [2, 3, 4], b: [3, 1] }, build: (b, x) => b.binary('Add', x.a!, x.b!) },
  { name: 'Sub broadcast', inputs: { a: [2, 3], b: [1, 3] }, build: (b, x) => b.binary('Sub', x.a!, x.b!) },
  { name: 'Mul broadcast', inputs: { a: [2, 3, 2, 2], b: [3, 1, 1] }, build: (b, x) => b.binary('Mul', x.a!, x.b!) },
  { name: 'Mul square', inputs: { a: [5] }, build: (b, x) => b.binary('Mul', x.a!, x.a!) },
  { name: 'Div', inputs: { a: [2, 4], b: [2, 1] }, positive: ['b'], build: (b, x) => b.binary('Div', x.a!, x.b!) },
  { name: 'Max', inputs: { a: [3, 4], b: [4] }, build: (b, x) => b.binary('Max', x.a!, x.b!) },
  { name: 'Neg', inputs: { a: [4] }, build: (b, x) => b.unary('Neg', x.a!) },
  { name: 'Reciprocal', inputs: { a: [4] }, positive: ['a'], build: (b, x) => b.unary('Reciprocal', x.a!) },
  { name: 'Sqrt', inputs: { a: [4] }, positive: ['a'], build: (b, x) => b.unary('Sqrt', x.a!) },
  { name: 'Exp', inputs: { a: [4] }, build: (b, x) => b.unary('Exp', x.a!) },
  { name: 'Relu', inputs: { a: [12] }, build: (b, x) => b.unary('Relu', x.a!) },
  { name: 'Erf (GELU)', inputs: { a: [12] }, build: (b, x) => b.gelu(x.a!) },
  { name: 'Gelu (train composite)', inputs: { a: [3, 12] }, build: (b, x) => b.gelu(x.a!, { composite: true }) },
  { name: 'ReduceMean keepdims', inputs: { a: [2, 3, 4, 4] }, build: (b, x) => b.reduce('ReduceMean', x.a!, [0, 2, 3], true) },
  { name: 'ReduceMean drop', inputs: { a: [2, 3, 4, 4] }, build: (b, x) => b.reduce('ReduceMean', x.a!, [2, 3], false) },
  { name: 'ReduceSum', inputs: { a: [2, 3, 4] }, build: (b, x) => b.reduce('ReduceSum', x.a!, [1], true) },
  { name: 'ReduceL2 / normalize', inputs: { a: [2, 5, 3, 3] }, build: (b, x) => b.l2Normalize(x.a!, [1]) },
  { name: 'normalize over tokens', inputs: { a: [2, 1, 3, 3] }, build: (b, x) => b.l2Normalize(x.a!, [2, 3]) },
  { name: 'Reshape', inputs: { a: [2, 6] }, build: (b, x) => b.reshape(x.a!, [3, 4]) },
  { name: 'Identity', inputs: { a: [3] }, build: (b, x) => b.unary('Identity', x.a!) },
  {
    name: 'LogSoftmax', inputs: { a: [3, 5] },
    build: (b, x) => b.node('LogSoftmax', [x.a!], b.shape(x.a!), { axis: attr.int(1) }),
  },
  { name: 'Gemm', inputs: { x: [3, 4], w: [5, 4], bias: [5] }, build: (b, x) => b.linear(x.x!, x.w!, x.bias!) },
  { name: 'Conv 1x1', inputs: { x: [2, 3, 4, 4], w: [5, 3, 1, 1], bias: [5] }, build: (b, x) => b.conv(x.x!, x.w!, x.bias!) },
  { name: 'Conv 3x3', inputs: { x: [2, 3, 5, 5], w: [4, 3, 3, 3], bias: [4] }, build: (b, x) => b.conv(x.x!, x.w!, x.bias!, { pad: 1 }) },
  { name: 'Conv 3x3 stride 2', inputs: { x: [2, 3, 8, 8], w: [4, 3, 3, 3], bias: [4] }, build: (b, x) => b.conv(x.x!, x.w!, x.bias!, { pad: 1, stride: 2 }) },
  { name: 'Conv 3x3 stride 2 odd size', inputs: { x: [2, 2, 7, 7], w: [3, 2, 3, 3], bias: [3] }, build: (b, x) => b.conv(x.x!, x.w!, x.bias!, { pad: 1, stride: 2 }) },
  { name: 'Conv 3x3 unpadded', inputs: { x: [2, 3, 6, 6], w: [4, 3, 3, 3] }, build: (b, x) => b.conv(x.x!, x.w!, undefined) },
  { name: 'Conv 3x3 unpadded stride 2', inputs: { x: [2, 3, 8, 8], w: [4, 3, 3, 3] }, build: (b, x) => b.conv(x.x!, x.w!, undefined, { stride: 2 }) },
  { name: 'Conv depthwise', inputs: { x: [2, 4, 5, 5], w: [4, 1, 3, 3], bias: [4] }, build: (b, x) => b.conv(x.x!, x.w!, x.bias!, { pad: 1, groups: 4 }) },
  { name: 'Conv depthwise stride 2', inputs: { x: [2, 3, 6, 6], w: [3, 1, 3, 3] }, build: (b, x) => b.conv(x.x!, x.w!, undefined, { pad: 1, stride: 2, groups: 3 }) },
  {
    name: 'BatchNorm (train, batch statistics)', inputs: { x: [3, 2, 3, 3], g: [2], beta: [2] },
    build: (b, x) => b.batchNormTrain(x.x!, 'bn', x.g!, x.beta!, { channelAxis: 1 }),
  },
  {
    name: 'BatchNorm (train, channels-first matrix)', inputs: { x: [3, 10], g: [3], beta: [3] },
    build: (b, x) => b.batchNormTrain(x.x!, 'bn', x.g!, x.beta!, { channelAxis: 0 }),
  },
  { name: 'MatMul batched', inputs: { a: [2, 3, 4], b: [2, 4, 5] }, build: (b, x) => b.node('MatMul', [x.a!, x.b!], [2, 3, 5]) },
  { name: 'MatMul broadcast', inputs: { a: [2, 3, 4], b: [4, 2] }, build: (b, x) => b.node('MatMul', [x.a!, x.b!], [2, 3, 2]) },
  { name: 'Gemm transA', inputs: { a: [4, 3], b: [5, 4] }, build: (b, x) => b.node('Gemm', [x.a!, x.b!], [3, 5], { transA: attr.int(1), transB: attr.int(1) }) },
  { name: 'Transpose', inputs: { a: [2, 3, 4] }, build: (b, x) => b.node('Transpose', [x.a!], [4, 2, 3], { perm: attr.ints([2, 0, 1]) }) },
  { name: 'Expand', inputs: { a: [3, 1] }, build: (b, x) => b.node('Expand', [x.a!, b.ints([2, 3, 4])], [2, 3, 4]) },
  { name: 'Pad', inputs: { a: [2, 3, 3] }, build: (b, x) => b.node('Pad', [x.a!, b.ints([0, 1, 2, 0, 1, 0])], [2, 5, 5], { mode: attr.string('constant') }) },
  { name: 'Slice', inputs: { a: [4, 5] }, build: (b, x) => b.node('Slice', [x.a!, b.ints([1, 2]), b.ints([3, 5]), b.ints([0, 1])], [2, 3]) },
  { name: 'Softmax (last axis)', inputs: { a: [3, 5] }, build: (b, x) => b.softmax(x.a!, -1) },
  { name: 'Softmax (middle axis)', inputs: { a: [2, 4, 3] }, build: (b, x) => b.softmax(x.a!, 1) },
  {
    name: 'LayerNorm (eval primitives, NCHW)', inputs: { x: [2, 5, 3, 1], g: [5], beta: [5] },
    build: (b, x) => b.layerNorm(x.x!, x.g!, x.beta!, { axis: 1 }),
  },
  {
    name: 'LayerNorm (train composite, NCHW)', inputs: { x: [2, 5, 3, 1], g: [5], beta: [5] },
    build: (b, x) => b.layerNorm(x.x!, x.g!, x.beta!, { axis: 1, composite: true }),
  },
  {
    name: 'LayerNorm (train composite, channels-first matrix)', inputs: { x: [6, 4], g: [6], beta: [6] },
    build: (b, x) => b.layerNorm(x.x!, x.g!, x.beta!, { axis: 0, composite: true }),
  },
  // Semantic FPN: torch's interpolate (nearest top-down, bilinear upsampling), per-pixel loss, Dropout2d.
  { name: 'Resize nearest 2x', inputs: { a: [2, 3, 2, 3] }, build: (b, x) => b.resize(x.a!, 'nearest', 4, 6) },
  { name: 'Resize bilinear 2x', inputs: { a: [2, 2, 3, 3] }, build: (b, x) => b.resize(x.a!, 'bilinear', 6, 6) },
  { name: 'Resize bilinear 4x, non-square', inputs: { a: [1, 2, 2, 3] }, build: (b, x) => b.resize(x.a!, 'bilinear', 8, 12) },
  { name: 'Resize bilinear downscale', inputs: { a: [1, 2, 8, 4] }, build: (b, x) => b.resize(x.a!, 'bilinear', 4, 2) },
  {
    name: 'Resize bilinear on channels-first maps', inputs: { a: [3, 2 * 2 * 3] },
    build: (b, x) => resizeMaps(b, { value: x.a!, layout: 'cnhw', grid: [2, 2, 3] }, 'bilinear', 4, 6).value,
  },
  {
    // Labels 0..3 with some pixels at the ignore index 255.
    name: 'per-pixel softmax cross-entropy with ignore index', inputs: { s: [2, 4, 3, 3] },
    build: (b, x) => {
      const labels = Array.from({ length: 18 }, (_, i) => (i % 5 === 4 ? 255 : (i * 7) % 4));
      return b.softmaxCrossEntropySum(x.s!, b.reshape(b.ints(labels), [2, 3, 3]), 255);
    },
  },
  {
    name: 'channel dropout (Dropout2d with a given mask)', inputs: { a: [2, 3, 2, 2] },
    build: (b, x) => {
      const mask = b.constant([0, 1.25, 1.25, 1.25, 0, 1.25], [2, 3, 1, 1]);
      return channelDropout(emitContext(true, b), { value: x.a!, layout: 'nchw', grid: [2, 2, 2] }, mask).value;
    },
  },
  // Mask R-CNN training: RoIAlign (scatter-add of its bilinear weights), the mask predictor's
  // transposed conv, FPN's 'pool' level (a stride-2 slice), and the losses' elementwise ops.
  ...([['output_half_pixel', 1], ['half_pixel', 0.5]] as const).map(([mode, scale]): Case => ({
    name: `RoiAlign ${mode}, spatial scale ${scale}`, inputs: { x: [2, 3, 6, 7] },
    build: (b, x) => {
      // Inside, partly outside (samples beyond -1 contribute nothing), thinner than a pixel, past the last row and column.
      const rois = b.constant([0.5, 1, 4.5, 5, -3, -2, 2, 3, 2.2, 2.1, 2.6, 2.3, 3, 2, 9, 8, 1, 0, 13, 11], [5, 4]);
      const batch = b.ints([0, 1, 1, 0, 1]);
      return b.node('RoiAlign', [x.x!, b.binary('Mul', rois, b.constant([2 * scale])), batch], [5, 3, 2, 3], {
        coordinate_transformation_mode: attr.string(mode), mode: attr.string('avg'), output_height: attr.int(2), output_width: attr.int(3),
        sampling_ratio: attr.int(2), spatial_scale: attr.float(0.5 / scale),
      });
    },
  })),
  {
    name: 'ConvTranspose 2x2 stride 2', inputs: { x: [2, 3, 3, 2], w: [3, 4, 2, 2], bias: [4] },
    build: (b, x) => b.node('ConvTranspose', [x.x!, x.w!, x.bias!], [2, 4, 6, 4], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) }),
  },
  {
    name: 'Slice with step 2 (every other pixel)', inputs: { a: [2, 2, 5, 6] },
    build: (b, x) => b.node('Slice', [x.a!, b.ints([0, 1]), b.ints([2 ** 31 - 1, 2 ** 31 - 1]), b.ints([2, 3]), b.ints([2, 2])], [2, 2, 3, 3]),
  },
  { name: 'Concat', inputs: { a: [2, 3], b: [2, 2] }, build: (b, x) => b.node('Concat', [x.a!, x.b!], [2, 5], { axis: attr.int(1) }) },
  { name: 'Log', inputs: { a: [5] }, positive: ['a'], build: (b, x) => b.node('Log', [x.a!], [5]) },
  { name: 'Abs', inputs: { a: [6] }, build: (b, x) => b.node('Abs', [x.a!], [6]) },
  { name: 'Sigmoid', inputs: { a: [6] }, build: (b, x) => b.node('Sigmoid', [x.a!], [6]) },
  {
    name: 'Where (broadcast operand)', inputs: { a: [2, 3], b: [3] },
    build: (b, x) => {
      const c = b.node('Cast', [b.ints([1, 0, 0, 1, 1, 0], [2, 3])], [2, 3], { to: attr.int(9) });
      return b.node('Where', [c, x.a!, x.b!], [2, 3]);
    },
  },
  ...(['nchw', 'cnhw'] as const).flatMap((layout): Case[] => {
    // The attention modules end to end, 2 images of 2x3 tokens, 8 channels in 2 heads.
    const setup = (b: GraphBuilder, x: string): Maps =>
      ({ value: b.reshape(x, layout === 'nchw' ? [2, 8, 2, 3] : [8, 12]), layout, grid: [2, 2, 3] });
    const params = (names: string[], shapes: number[][]) => Object.fromEntries(names.map((n, i) => [n, shapes[i]!]));
    const linear = (key: string) => ({ [`${key}.weight`]: [8, 8], [`${key}.bias`]: [8] });
    return [
      {
        name: `Fastformer attention (${layout})`, std: 0.5,
        inputs: { x: [96], ...linear('a.query'), ...linear('a.key'), ...linear('a.transform'), ...params(['a.w_q', 'a.w_k'], [[2, 4], [2, 4]]) },
        build: (b, x) => fastformerAttention(b, setup(b, x.x!), 'a', 8, { heads: 2 }).value,
      },
      {
        name: `multi-head self-attention (${layout})`, std: 0.5,
        inputs: { x: [96], 'a.qkv.weight': [24, 8], 'a.qkv.bias': [24], ...linear('a.proj') },
        build: (b, x) => multiHeadSelfAttention(b, setup(b, x.x!), 'a', 8, { heads: 2 }).value,
      },
    ];
  }),
  ...[1, 2, 3, 8, 9].map((size): Case => ({
    // The training layout's depthwise conv: centre tap (1x1), tap matrices (up to 8x8), grouped Conv.
    name: `depthwise conv, channels-first matrix, ${size}x${size} map`, inputs: { x: [3, 2 * size * size], w: [3, 1, 3, 3], bias: [3] },
    build: (b, x) => spatialConv(b, { value: x.x!, layout: 'cnhw', grid: [2, size, size] }, x.w!, x.bias!, { stride: 1, pad: 1, groups: 3 }).value,
  })),
];

/** Evaluates loss = sum(out * R) and its gradient for the given input values. */
async function evaluate(c: Case, values: Record<string, Float32Array>) {
  const b = new GraphBuilder();
  const names: Record<string, string> = {};
  for (const [name, shape] of Object.entries(c.inputs)) names[name] = b.param(name, shape);
  const out = c.build(b, names);
  const rng = new Random(7);
  const weights = b.constant(Float32Array.from({ length: b.shape(out).reduce((n: number, d) => n * Number(d), 1) }, () => rng.normal()), b.shape(out) as number[]);
  const loss = b.node('Identity', [b.reduce('ReduceSum', b.binary('Mul', out, weights), b.shape(out).map((_, i) => i), false)], [], {}, 'loss');
  b.output(loss);
  backward(b.graph, 'loss', Object.keys(c.inputs));
  const session = await ort.InferenceSession.create(toOnnx(b.graph, {}, { paramsAsInputs: true }), { graphOptimizationLevel: 'disabled' });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, shape] of Object.entries(c.inputs)) feeds[name] = new ort.Tensor('float32', values[name]!, shape);
  const result = await session.run(feeds);
  await session.release();
  return { loss: (result.loss!.data as Float32Array)[0]!, grads: Object.fromEntries(Object.keys(c.inputs).map((n) => [n, result[`grad:${n}`]!.data as Float32Array])) };
}

describe('gradient rules against central finite differences', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const rng = new Random(c.name.length * 31 + 1);
      const values: Record<string, Float32Array> = {};
      for (const [name, shape] of Object.entries(c.inputs)) {
        const n = shape.reduce((a, d) => a * d, 1);
        values[name] = Float32Array.from({ length: n }, () => (c.positive?.includes(name) ? rng.uniform(0.5, 2) : rng.normal() * (c.std ?? 1)));
      }
      const { grads } = await evaluate(c, values);
      // Directional derivative along a random direction v: (f(x + hv) - f(x - hv)) / 2h vs <grad, v>.
      const h = 1e-2;
      const direction: Record<string, Float32Array> = {};
      let analytic = 0;
      for (const [name, v] of Object.entries(values)) {
        direction[name] = Float32Array.from(v, () => rng.normal());
        direction[name]!.forEach((d, i) => { analytic += d * grads[name]![i]!; });
      }
      const shifted = (sign: number) => Object.fromEntries(Object.entries(values).map(([n, v]) => [n, v.map((x, i) => x + sign * h * direction[n]![i]!)]));
      const numeric = ((await evaluate(c, shifted(1))).loss - (await evaluate(c, shifted(-1))).loss) / (2 * h);
      assert.ok(Math.abs(numeric - analytic) <= 2e-2 * Math.max(1, Math.abs(analytic)), `finite difference ${numeric} vs analytic ${analytic}`);
    });
  }

  test('every op in the table has a finite-difference case', () => {
    const covered = new Set<string>();
    for (const c of CASES) {
      const b = new GraphBuilder();
      const names = Object.fromEntries(Object.entries(c.inputs).map(([n, s]) => [n, b.param(n, s)]));
      c.build(b, names);
      for (const node of b.graph.nodes) covered.add(node.op);
    }
    assert.deepEqual(Object.keys(GRADIENTS).filter((op) => !covered.has(op)), []);
  });

  test('an op without a rule is an error naming it', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [3]);
    const y = b.node('Tanh', [x], [3]);
    b.node('Identity', [b.reduce('ReduceSum', y, [0], false)], [], {}, 'loss');
    assert.throws(() => backward(b.graph, 'loss', ['x']), /no gradient rule for op 'Tanh'/);
  });
});

describe("the training layout computes what the inference layout computes", () => {
  for (const size of [1, 2, 3, 8, 9]) {
    test(`depthwise 3x3 on a ${size}x${size} map: channels-first matrix form = NCHW Conv`, async () => {
      const rng = new Random(size);
      const [n, c] = [2, 3];
      const x = Float32Array.from({ length: n * c * size * size }, () => rng.normal());
      const w = Float32Array.from({ length: c * 9 }, () => rng.normal());
      const run = async (layout: 'nchw' | 'cnhw') => {
        const b = new GraphBuilder();
        const input = toLayout(b, b.input('x', [n, c, size, size]), layout);
        const weight = b.param('w', [c, 1, 3, 3]);
        const y = toNCHW(b, spatialConv(b, input, weight, undefined, { stride: 1, pad: 1, groups: c }));
        b.node('Identity', [y], [n, c, size, size], {}, 'y');
        b.output('y');
        const session = await ort.InferenceSession.create(toOnnx(b.graph, {}, { paramsAsInputs: true }));
        const out = await session.run({ x: new ort.Tensor('float32', x, [n, c, size, size]), w: new ort.Tensor('float32', w, [c, 1, 3, 3]) });
        await session.release();
        return out.y!.data as Float32Array;
      };
      assert.ok(relativeError(await run('cnhw'), await run('nchw')) < 1e-6);
    });
  }
});
