/**
 * Static post-training INT8 quantization in QDQ form: activations uint8 per tensor (asymmetric,
 * ranges calibrated on real data), weights int8 per output channel (symmetric), biases int32 at
 * scale input_scale * weight_scale. Every Conv and Gemm gets QuantizeLinear/DequantizeLinear pairs
 * on its activation input and its output, which ONNX Runtime fuses into its integer kernels
 * (QLinearConv, QGemm); the ops between them (GELU, normalizations, residual adds) stay float.
 */
import { SwiftFormerError } from '../core/errors.js';
import { attr, floatInit, GraphBuilder, toOnnx, type Graph, type Node } from './graph.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import type { FloatTensor } from '../core/tensor.js';

export interface Range { min: number; max: number }

export interface QuantizeOptions {
  /**
   * Weight range. 63 (default) keeps u8 x s8 products of adjacent pairs inside int16, which x86
   * processors without VNNI accumulate through (vpmaddubsw saturates); 127, the full int8 range,
   * is for processors with VNNI or ARM dot-product instructions.
   */
  weightMax?: 127 | 63;
  /** Clip activation ranges to this percentile of |values| (1 = plain min/max). */
  percentile?: number;
  session?: SessionOptions;
  backend?: string;
}

/** Values whose ranges are needed: the activation input and the output of every Conv and Gemm. */
function quantizedValues(graph: Graph): string[] {
  const names = new Set<string>();
  for (const node of graph.nodes) {
    if (node.op !== 'Conv' && node.op !== 'Gemm') continue;
    if (!graph.initializers.has(node.inputs[0]!)) names.add(node.inputs[0]!);
    names.add(node.outputs[0]!);
  }
  return [...names];
}

/** Runs the float graph on the calibration batches and records each value's range. */
export async function calibrate(graph: Graph, batches: Iterable<FloatTensor> | AsyncIterable<FloatTensor>, options: QuantizeOptions = {}): Promise<Map<string, Range>> {
  const values = quantizedValues(graph);
  const probe: Graph = { ...graph, outputs: graph.outputs.concat(values.filter((v) => !graph.outputs.some((o) => o.name === v)).map((name) => ({ name, shape: graph.shapes.get(name)! }))) };
  const session = await getBackend(options.backend).createSession(toOnnx(probe), options.session);
  const samples = new Map<string, Float32Array[]>();
  const ranges = new Map<string, Range>();
  let count = 0;
  try {
    for await (const batch of batches) {
      const out = await session.run({ [graph.inputs[0]!.name]: batch });
      for (const v of values) {
        const data = out[v]!.data;
        const r = ranges.get(v) ?? { min: 0, max: 0 };
        for (let i = 0; i < data.length; i++) {
          if (data[i]! < r.min) r.min = data[i]!;
          else if (data[i]! > r.max) r.max = data[i]!;
        }
        ranges.set(v, r);
        if ((options.percentile ?? 1) < 1) keepSample(samples, v, data);
      }
      count++;
    }
  } finally {
    await session.release();
  }
  if (count === 0) throw new SwiftFormerError('BAD_ARGUMENT', 'calibration needs at least one batch of images');
  if ((options.percentile ?? 1) < 1) for (const [v, s] of samples) ranges.set(v, percentileRange(s, options.percentile!));
  return ranges;
}

/** A strided subsample of each value, bounded so that calibrating stays within memory. */
function keepSample(samples: Map<string, Float32Array[]>, name: string, data: Float32Array): void {
  const stride = Math.max(1, Math.floor(data.length / 20000));
  const list = samples.get(name) ?? [];
  list.push(Float32Array.from({ length: Math.floor(data.length / stride) }, (_, i) => data[i * stride]!));
  samples.set(name, list);
}

function percentileRange(chunks: Float32Array[], q: number): Range {
  const all = Float32Array.from(chunks.flatMap((c) => Array.from(c))).sort();
  const at = (p: number) => all[Math.min(all.length - 1, Math.max(0, Math.round(p * (all.length - 1))))]!;
  return { min: Math.min(0, at(1 - q)), max: Math.max(0, at(q)) };
}

/** uint8 affine parameters covering [min, max] (which is widened to contain 0, as it must). */
function activationParams(r: Range): { scale: number; zeroPoint: number } {
  const min = Math.min(0, r.min);
  const max = Math.max(0, r.max);
  const scale = max > min ? (max - min) / 255 : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-min / scale))) };
}

/** Inserts QDQ pairs around every Conv and Gemm of a bound, folded eval graph. */
export function quantizeGraph(source: Graph, ranges: Map<string, Range>, options: QuantizeOptions = {}): Graph {
  const graph: Graph = { ...source, nodes: [], initializers: new Map(source.initializers), shapes: new Map(source.shapes) };
  const b = new GraphBuilder(graph, 'q/');
  const dequantized = new Map<string, { value: string; scale: number }>();
  const qdq = (value: string): { value: string; scale: number } => {
    const known = dequantized.get(value);
    if (known) return known;
    const range = ranges.get(value);
    if (!range) throw new Error(`no calibration range for ${value}`);
    const { scale, zeroPoint } = activationParams(range);
    const s = b.constant([scale]);
    const zp = quantConstant(b, 'uint8', [zeroPoint], []);
    const q = b.node('QuantizeLinear', [value, s, zp], b.shape(value));
    const entry = { value: b.node('DequantizeLinear', [q, s, zp], b.shape(value)), scale };
    dequantized.set(value, entry);
    return entry;
  };
  // Outputs are quantized right after their producer, so later consumers see the DQ value.
  const renamed = new Map<string, string>();
  for (const node of source.nodes) {
    const inputs = node.inputs.map((i) => renamed.get(i) ?? i);
    if (node.op !== 'Conv' && node.op !== 'Gemm') {
      graph.nodes.push({ ...node, inputs });
      continue;
    }
    const x = graph.initializers.has(inputs[0]!) ? undefined : qdq(node.inputs[0]!);
    const rewritten: Node = { ...node, inputs: x ? [x.value, ...inputs.slice(1)] : inputs };
    if (x) quantizeWeights(b, graph, rewritten, x.scale, options.weightMax ?? 63);
    graph.nodes.push(rewritten);
    const isGraphOutput = source.outputs.some((o) => o.name === node.outputs[0]);
    if (!isGraphOutput) renamed.set(node.outputs[0]!, qdq(node.outputs[0]!).value);
  }
  return graph;
}

type QuantType = 'int8' | 'uint8' | 'int32';

function quantConstant(b: GraphBuilder, dtype: QuantType, values: number[], shape: number[]): string {
  const data = dtype === 'int8' ? Int8Array.from(values) : dtype === 'uint8' ? Uint8Array.from(values) : Int32Array.from(values);
  return b.quantized(dtype, shape, data);
}

/** Weight (O, ...) -> int8 per output channel; bias -> int32 at input_scale * weight_scale. */
function quantizeWeights(b: GraphBuilder, graph: Graph, node: Node, inputScale: number, weightMax: number): void {
  const w = floatInit(graph, node.inputs[1]!);
  const transB = node.op === 'Gemm' && node.attrs.transB?.kind === 'int' && node.attrs.transB.value === 1;
  if (node.op === 'Gemm' && !transB) throw new SwiftFormerError('UNSUPPORTED', 'INT8 Gemm needs its weight as (out, in) with transB = 1');
  const outC = w.shape[0]!;
  const per = w.data.length / outC;
  const scales = new Float32Array(outC);
  const q = new Array<number>(w.data.length);
  for (let o = 0; o < outC; o++) {
    let max = 0;
    for (let i = 0; i < per; i++) max = Math.max(max, Math.abs(w.data[o * per + i]!));
    scales[o] = max > 0 ? max / weightMax : 1;
    for (let i = 0; i < per; i++) q[o * per + i] = Math.round(w.data[o * per + i]! / scales[o]!);
  }
  const axis = { axis: attr.int(0) };
  const scale = b.constant(scales, [outC]);
  const weight = quantConstant(b, 'int8', q, w.shape);
  node.inputs[1] = b.node('DequantizeLinear', [weight, scale, quantConstant(b, 'int8', new Array(outC).fill(0), [outC])], w.shape, axis);
  const biasName = node.inputs[2];
  if (!biasName) return;
  const bias = floatInit(graph, biasName);
  const biasScales = Array.from(scales, (s) => s * inputScale);
  const bq = Array.from(bias.data, (v, o) => Math.round(v / biasScales[o]!));
  node.inputs[2] = b.node(
    'DequantizeLinear',
    [quantConstant(b, 'int32', bq, [outC]), b.constant(biasScales, [outC]), quantConstant(b, 'int32', new Array(outC).fill(0), [outC])],
    [outC], axis,
  );
}

/** Calibrates on `batches` and returns the QDQ graph. */
export async function quantizeStatic(graph: Graph, batches: Iterable<FloatTensor> | AsyncIterable<FloatTensor>, options: QuantizeOptions = {}): Promise<{ graph: Graph; ranges: Map<string, Range> }> {
  const ranges = await calibrate(graph, batches, options);
  return { graph: quantizeGraph(graph, ranges, options), ranges };
}
