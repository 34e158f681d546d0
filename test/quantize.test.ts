import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import '../src/node.js';
import { toOnnx, type Graph } from '../src/graph.js';
import { loadModel } from '../src/model.js';
import { calibrate, quantizeGraph } from '../src/quantize.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';

async function run(graph: Graph, pixels: { data: Float32Array; shape: number[] }) {
  const session = await ort.InferenceSession.create(toOnnx(graph), { intraOpNumThreads: 2 });
  const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels.data, pixels.shape) });
  await session.release();
  return out;
}

function argmaxRows(data: Float32Array, classes: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < data.length / classes; r++) {
    let best = 0;
    for (let i = 1; i < classes; i++) if (data[r * classes + i]! > data[r * classes + best]!) best = i;
    rows.push(best);
  }
  return rows;
}

describe('INT8 static quantization (QDQ)', async () => {
  const model = await loadModel({ weights: fixturePath('tiny/weights.safetensors') });
  const graph = model.graph(224);
  const input = fixtureTensor('tiny', 'input.bin');
  const ranges = await calibrate(graph, [input]);

  test('calibration ranges are the min/max of each Conv input and output', async () => {
    const conv = graph.nodes.find((n) => n.op === 'Conv' && n.inputs[0] !== 'pixel_values')!;
    const probe: Graph = { ...graph, outputs: [{ name: conv.outputs[0]!, shape: graph.shapes.get(conv.outputs[0]!)! }] };
    const values = (await run(probe, input))[conv.outputs[0]!]!.data as Float32Array;
    let min = 0;
    let max = 0;
    for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
    assert.deepEqual(ranges.get(conv.outputs[0]!), { min, max });
    assert.ok(ranges.has('pixel_values'));
  });

  test('every Conv and Gemm reads dequantized int8 weights and a dequantized uint8 input', () => {
    const q = quantizeGraph(graph, ranges, { weightMax: 63 });
    const producers = new Map(q.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    for (const node of q.nodes.filter((n) => n.op === 'Conv' || n.op === 'Gemm')) {
      const [x, w] = node.inputs.map((i) => producers.get(i!));
      assert.equal(x?.op, 'DequantizeLinear', `${node.outputs[0]} input`);
      assert.equal(w?.op, 'DequantizeLinear', `${node.outputs[0]} weight`);
      const weights = q.initializers.get(w.inputs[0]!)!;
      assert.equal(weights.dtype, 'int8');
      assert.ok((weights.data as Int8Array).every((v) => v >= -63 && v <= 63));
    }
  });

  // The default 7-bit weights: full-range int8 saturates in the vpmaddubsw kernels of x86
  // processors without VNNI (this machine: 29% error on the tiny fixture), 7 bits cannot.
  for (const weightMax of [63] as const) {
    test(`the INT8 model agrees with the float model (weights in +-${weightMax})`, async () => {
      const q = quantizeGraph(graph, ranges, { weightMax });
      const logits = (await run(q, input)).logits!.data as Float32Array;
      const reference = (await model.logits(input)).data;
      // 8-bit activations through 5 blocks: a few percent of the logit range, same top class.
      assert.ok(relativeError(logits, reference) < 0.1, `relative error ${relativeError(logits, reference)}`);
      assert.deepEqual(argmaxRows(logits, 1000), argmaxRows(reference, 1000));
    });
  }
});
