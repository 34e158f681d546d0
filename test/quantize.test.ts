import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import '../src/node/platform.js';
import { MS_DOMAIN, toOnnx, type Graph, type Node } from '../src/graph/graph.js';
import { fuseGelu } from '../src/graph/passes.js';
import { loadSwiftFormer } from '../src/models/model.js';
import { calibrate, GELU_SIGMOID, INTEGER_OPS, planQuantization, quantizeGraph, quantizeStatic, type QuantizeOptions } from '../src/graph/quantize.js';
import { fusionReport, type ProfileEvent } from '../src/measure/profile.js';
import { preprocess } from '../src/node/decode.js';
import { concatBatch, type FloatTensor } from '../src/core/tensor.js';
import { OnnxClassifier } from '../src/models/exported.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';

async function run(graph: Graph, pixels: FloatTensor, options: ort.InferenceSession.SessionOptions = {}) {
  const session = await ort.InferenceSession.create(toOnnx(graph), { intraOpNumThreads: 2, ...options });
  const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels.data, pixels.shape) });
  await session.release();
  return out;
}

const logitsOf = async (graph: Graph, pixels: FloatTensor, options: ort.InferenceSession.SessionOptions = {}) =>
  (await run(graph, pixels, options)).logits!.data as Float32Array;

function argmaxRows(data: Float32Array, classes: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < data.length / classes; r++) {
    let best = 0;
    for (let i = 1; i < classes; i++) if (data[r * classes + i]! > data[r * classes + best]!) best = i;
    rows.push(best);
  }
  return rows;
}

const producers = (g: Graph) => new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
/** erf by the midpoint rule on exp(-t^2) (independent of any library's erf). */
const erf = (x: number) => {
  const n = 2000;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(-((((i + 0.5) * x) / n) ** 2));
  return (2 / Math.sqrt(Math.PI)) * s * (x / n);
};

describe('INT8 static quantization', async () => {
  const model = await loadSwiftFormer({ weights: fixturePath('tiny/weights.safetensors') });
  const graph = model.graph(224);
  const input = fixtureTensor('tiny', 'input.bin');
  const ranges = await calibrate(graph, [input]);
  const reference = (await model.logits(input)).data;
  after(() => model.release());

  test('calibration ranges are the min/max of the values the plan quantizes', async () => {
    const plan = planQuantization(graph);
    const conv = graph.nodes.find((n) => n.op === 'Conv' && plan.values.has(n.outputs[0]!))!;
    const probe: Graph = { ...graph, outputs: [{ name: conv.outputs[0]!, shape: graph.shapes.get(conv.outputs[0]!)! }] };
    const values = (await run(probe, input))[conv.outputs[0]!]!.data as Float32Array;
    let min = 0;
    let max = 0;
    for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
    assert.deepEqual(ranges.get(conv.outputs[0]!), { min, max });
    assert.deepEqual([...ranges.keys()].sort(), [...plan.values].sort());
    assert.ok(ranges.has('pixel_values'));
  });

  test('every Conv and residual Add reads dequantized uint8; weights are int8 within +-63, biases int32 at input x weight scale', () => {
    const q = quantizeGraph(graph, ranges);
    const from = producers(q);
    const convs = q.nodes.filter((n) => n.op === 'Conv');
    assert.equal(convs.length, graph.nodes.filter((n) => n.op === 'Conv').length);
    for (const node of convs) {
      const [x, w, b] = node.inputs.map((i) => from.get(i!));
      assert.equal(x?.op, 'DequantizeLinear', `${node.outputs[0]} input`);
      assert.equal(q.initializers.get(from.get(x.inputs[0]!)?.inputs[2] ?? x.inputs[2]!)?.dtype, 'uint8');
      assert.equal(w?.op, 'DequantizeLinear', `${node.outputs[0]} weight`);
      const weights = q.initializers.get(w.inputs[0]!)!;
      assert.equal(weights.dtype, 'int8');
      assert.ok((weights.data as Int8Array).every((v) => v >= -63 && v <= 63));
      // Each output channel uses its range: some weight of every channel reaches +-63.
      const [outC] = weights.shape as [number];
      const per = weights.data.length / outC;
      for (let o = 0; o < outC; o++) assert.equal(Math.max(...Array.from(weights.data.subarray(o * per, (o + 1) * per), Math.abs)), 63);
      // The dequantized weights are the float weights to within half a step.
      const float = graph.initializers.get(graph.nodes.find((n) => n.outputs[0] === node.outputs[0])!.inputs[1]!)!.data as Float32Array;
      const scales = q.initializers.get(w.inputs[1]!)!.data as Float32Array;
      for (let i = 0; i < float.length; i++) assert.ok(Math.abs((weights.data[i]! as number) * scales[Math.floor(i / per)]! - float[i]!) <= scales[Math.floor(i / per)]! / 2 + 1e-9);
      assert.equal(b?.op, 'DequantizeLinear');
      const xScale = (q.initializers.get(x.inputs[1]!)!.data as Float32Array)[0]!;
      const biasScales = q.initializers.get(b.inputs[1]!)!.data as Float32Array;
      biasScales.forEach((s, o) => assert.ok(Math.abs(s - xScale * scales[o]!) <= 1e-6 * s));
    }
    for (const add of q.nodes.filter((n) => n.op === 'Add' && n.inputs.every((i) => from.get(i)?.op !== undefined && !q.initializers.has(i)))) {
      assert.deepEqual(add.inputs.map((i) => from.get(i)!.op), ['DequantizeLinear', 'DequantizeLinear'], add.outputs[0]);
    }
  });

  test('a value goes through QuantizeLinear only where a float op hands it to an integer op, and a Relu after a conv is absorbed', () => {
    const q = quantizeGraph(graph, ranges);
    const from = producers(q);
    const integerOps = new Set(['Conv', 'Gemm', 'Add']);
    for (const node of q.nodes.filter((n) => n.op === 'QuantizeLinear')) {
      const producer = from.get(node.inputs[0]!);
      // Written by an integer op (fused into its kernel), or by a float op / the graph input.
      const byInteger = producer && (integerOps.has(producer.op) || producer.op === 'Relu') && producer.inputs.some((i) => from.get(i)?.op === 'DequantizeLinear');
      if (byInteger) continue;
      assert.ok(!producer || !integerOps.has(producer.op), `${node.inputs[0]} is quantized after ${producer?.op}`);
    }
    // Stem: Conv -> Relu -> QuantizeLinear, nothing between the conv and its Relu.
    const relu = q.nodes.find((n) => n.op === 'Relu')!;
    assert.equal(from.get(relu.inputs[0]!)?.op, 'Conv');
    assert.equal(q.nodes.find((n) => n.inputs[0] === relu.outputs[0])?.op, 'QuantizeLinear');
    // Consecutive integer ops (depthwise conv -> 1x1 conv) pass uint8: one Q -> DQ between them, no float op.
    const dw = q.nodes.find((n) => n.op === 'Conv' && n.attrs.group?.kind === 'int' && n.attrs.group.value > 1)!;
    const qOut = q.nodes.find((n) => n.op === 'QuantizeLinear' && n.inputs[0] === dw.outputs[0])!;
    const readers = q.nodes.filter((n) => n.inputs.includes(qOut.outputs[0]!));
    assert.deepEqual(readers.map((n) => n.op), ['DequantizeLinear']);
  });

  test('GELU becomes one com.microsoft Gelu node, with the same outputs', async () => {
    const fused = fuseGelu(graph);
    const gelus = fused.nodes.filter((n) => n.op === 'Gelu' && n.domain === MS_DOMAIN);
    assert.equal(gelus.length, graph.nodes.filter((n) => n.op === 'Erf').length);
    assert.ok(gelus.length > 0 && !fused.nodes.some((n) => n.op === 'Erf'));
    assert.ok(relativeError(await logitsOf(fused, input), reference) < 1e-5);
  });

  test('x * sigmoid(1.702 x) is within 0.021 of the erf GELU', () => {
    let worst = 0;
    for (let x = -8; x <= 8; x += 0.01) worst = Math.max(worst, Math.abs(x / (1 + Math.exp(-GELU_SIGMOID * x)) - (x / 2) * (1 + erf(x / Math.SQRT2))));
    assert.ok(worst < 0.021 && worst > 0.015, `max difference ${worst}`);
  });

  const forms: [string, QuantizeOptions][] = [
    ['QDQ', {}],
    ['QOperator', { format: 'qoperator' }],
    ['GELU in float', { ops: INTEGER_OPS.filter((o) => o !== 'gelu') }],
    ['per-tensor weights', { perChannel: false }],
  ];
  for (const [name, options] of forms) {
    test(`${name}: the INT8 model agrees with the float model (weights in +-63)`, async () => {
      const logits = await logitsOf(quantizeGraph(graph, ranges, options), input);
      // 8-bit activations through 5 blocks: a few percent of the logit range, same top class.
      assert.ok(relativeError(logits, reference) < 0.1, `relative error ${relativeError(logits, reference)}`);
      assert.deepEqual(argmaxRows(logits, 1000), argmaxRows(reference, 1000));
    });
  }

  test('QOperator and QDQ forms compute the same, and ONNX Runtime\'s integer kernels what the QDQ graph means', async () => {
    const qdq = quantizeGraph(graph, ranges);
    const kernels = await logitsOf(qdq, input);
    assert.ok(relativeError(await logitsOf(quantizeGraph(graph, ranges, { format: 'qoperator' }), input), kernels) < 1e-5);
    // Unoptimized, the QDQ graph runs DequantizeLinear and float ops: exact dequantized arithmetic.
    // The integer kernels round each requantized output once more.
    const exact = await logitsOf(qdq, input, { graphOptimizationLevel: 'disabled' });
    assert.ok(relativeError(kernels, exact) < 0.03, `kernels vs exact ${relativeError(kernels, exact)}`);
  });

  test('per-tensor weights have one scale per weight tensor', () => {
    const q = quantizeGraph(graph, ranges, { perChannel: false });
    const from = producers(q);
    for (const conv of q.nodes.filter((n) => n.op === 'Conv')) assert.deepEqual(q.initializers.get(from.get(conv.inputs[1]!)!.inputs[1]!)!.shape, []);
  });

  test('ONNX Runtime fuses every QDQ node unit into an integer kernel (its profile says)', async () => {
    const q = quantizeGraph(graph, ranges);
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-profile-'));
    try {
      await run(q, input, { enableProfiling: true, profileFilePrefix: join(dir, 'p') });
      const events = JSON.parse(await readFile(join(dir, (await readdir(dir))[0]!), 'utf8')) as ProfileEvent[];
      const report = fusionReport(events, q);
      const convs = q.nodes.filter((n) => n.op === 'Conv').length;
      assert.deepEqual(report.notFused, []);
      assert.equal(report.fused.QLinearConv, convs);
      assert.equal(report.fused.QLinearSigmoid, q.nodes.filter((n) => n.op === 'Sigmoid').length);
      assert.equal(report.expected, Object.values(report.fused).reduce((a, b) => a + b, 0));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('INT8 on the official-layout XS fixture', () => {
  test('top-1 equals fp32 top-1 (and the official logits\' top-1) on the example inputs; logits within 10%', { timeout: 120_000 }, async (t) => {
    const model = await loadSwiftFormer({ weights: fixturePath('xs/checkpoint_model_only.pth') });
    const examples = new URL('../assets/examples/', import.meta.url);
    const photos = await Promise.all((await readdir(examples)).filter((f) => f.endsWith('.png')).sort().map((f) => preprocess(new URL(f, examples).pathname, { size: 224 })));
    const fp32 = model.graph(224);
    const { graph } = await quantizeStatic(fp32, [concatBatch(photos)]);
    const inputs = fixtureTensor('xs', 'input.bin');
    const official = fixtureTensor('xs', 'logits.bin').data;
    const float = (await model.logits(inputs)).data;
    const int8 = await logitsOf(graph, inputs);
    assert.deepEqual(argmaxRows(float, 1000), argmaxRows(official, 1000));
    assert.deepEqual(argmaxRows(int8, 1000), argmaxRows(float, 1000));
    const rel = relativeError(int8, float);
    t.diagnostic(`XS INT8 vs fp32 logits: relative error ${rel.toFixed(4)} on xs/input.bin (calibrated on the 10 example photos)`);
    assert.ok(rel < 0.1, `relative error ${rel}`);
    await model.release();
  });
});

describe('swiftformer export --int8, and classify with the INT8 file', () => {
  test('calibrates on an ImageFolder, writes a smaller file that classifies like the float model, says what INT8 gains here', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-int8-'));
    const images: string[] = [];
    for (const cls of ['a', 'b']) {
      await mkdir(join(dir, 'data', 'train', cls), { recursive: true });
      for (let i = 0; i < 4; i++) {
        const file = join(dir, 'data', 'train', cls, `${i}.png`);
        const rgb = Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, k) => (k * (i + 3) + (cls === 'a' ? 0 : 97)) % 256));
        await sharp(rgb, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(file);
        images.push(file);
      }
    }
    const float = join(dir, 'float.onnx');
    const int8 = join(dir, 'int8.onnx');
    const weights = fixturePath('tiny/weights.safetensors');
    assert.equal((await cli('export', '--weights', weights, '--onnx', float, '--size', '64')).code, 0);
    const r = await cli('export', '--weights', weights, '--onnx', int8, '--size', '64', '--int8', '--calibrate', join(dir, 'data'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /calibrating on 8 images/);
    // The last line: whether INT8 beats fp32 on this processor, and what that is based on.
    assert.match(r.stderr.trim().split('\n').at(-1)!, /^INT8 (is expected to be faster than fp32|is not expected to be faster than fp32|has not been measured against fp32) .*INT8 path [\w.-]+\)/);
    assert.doesNotMatch(r.stderr, /warning/);
    // int8 weights take a quarter of the bytes of float32 ones.
    assert.ok((await stat(int8)).size < 0.5 * (await stat(float)).size);
    const classified = await cli('classify', ...images, '--weights', int8, '--json', '--top', '1');
    assert.equal(classified.code, 0, classified.stderr);
    const model = await loadSwiftFormer({ weights });
    const quantized = await OnnxClassifier.load(int8);
    assert.deepEqual(quantized.inputSize, [64, 64]);
    assert.equal(quantized.metadata['swiftformer.int8.weight_max'], '63');
    for (const file of images) {
      const pixels = await preprocess(file, { size: 64 });
      assert.ok(relativeError((await quantized.logits(pixels)).data, (await model.logits(pixels)).data) < 0.1);
    }
    await quantized.release();
    await model.release();
    assertCleanFailure(await cli('export', '--weights', weights, '--onnx', int8, '--int8'), /--int8 needs --calibrate/);
    assertCleanFailure(await cli('export', '--weights', weights, '--onnx', int8, '--int8', '--calibrate', join(dir, 'nope')), /does not exist/);
    assertCleanFailure(await cli('export', '--weights', weights, '--onnx', int8, '--full-range-weights'), /--full-range-weights goes with --int8/);
    await rm(dir, { recursive: true, force: true });
  });
});
