/**
 * Static post-training INT8 quantization: activations uint8 per tensor (asymmetric, ranges
 * calibrated on real data), weights int8 per output channel or per tensor (symmetric), biases
 * int32 at scale input_scale * weight_scale.
 *
 * Which operators run on integers is a policy (`ops`; by default every conv, linear layer,
 * residual add and GELU): every chosen node reads dequantized inputs and its output is quantized
 * right after it (QDQ form, which ONNX Runtime fuses into QLinearConv, QLinearAdd, QLinearSigmoid,
 * QLinearMul, QGemm), or the node is written as that integer operator directly (QOperator form).
 * A value goes through QuantizeLinear only where a float op hands it to an integer one, and
 * through DequantizeLinear only where an integer op hands it to a float one: consecutive integer
 * ops (a residual stream, a depthwise conv feeding a 1x1 conv, a GELU between two convs) pass
 * uint8 between them. A Relu right after an integer op is absorbed into the output's quantization
 * (its zero point is 0). GELUs first become one com.microsoft Gelu node each: left in float, its
 * DequantizeLinear then has one reader (ONNX Runtime duplicates it for each reader of the erf
 * pattern, and then cannot fuse the pattern). A linear layer whose input is float anyway (the
 * classifier after the pooling) keeps int8 weights and computes in float.
 * Measured choices: bench/int8-variants.ts; where the time goes: bench/int8-profile.ts.
 */
import { SwiftFormerError } from '../core/errors.js';
import { attr, floatInit, GraphBuilder, MS_DOMAIN, toOnnx, type Graph, type Node } from './graph.js';
import { fuseGelu } from './passes.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import type { FloatTensor } from '../core/tensor.js';

export interface Range { min: number; max: number }

/**
 * Operators that can run on integers: convolutions by kind, linear layers, residual adds, and
 * GELU as x * sigmoid(1.702 x) (QLinearSigmoid, a 256-entry table, then QLinearMul).
 */
export type IntegerOp = 'conv1x1' | 'conv' | 'depthwise' | 'gemm' | 'add' | 'gelu';

export const INTEGER_OPS: readonly IntegerOp[] = ['conv1x1', 'conv', 'depthwise', 'gemm', 'add', 'gelu'];

/** GELU(x) ~ x * sigmoid(GELU_SIGMOID x): within 0.021 of the erf form everywhere. */
export const GELU_SIGMOID = 1.702;

export interface QuantizeOptions {
  /**
   * Weight range. 63 (default) keeps u8 x s8 products of adjacent pairs inside int16, which x86
   * processors without VNNI accumulate through (vpmaddubsw saturates); 127, the full int8 range,
   * is for processors with VNNI or ARM dot-product instructions.
   */
  weightMax?: 127 | 63;
  /** One weight scale per output channel (default) or one per tensor. */
  perChannel?: boolean;
  /** Operators that run on integers (default DEFAULT_INTEGER_OPS). */
  ops?: readonly IntegerOp[];
  /**
   * GELU as one com.microsoft Gelu node (default true). false leaves the erf pattern, for
   * measuring what that costs: ONNX Runtime then duplicates its DequantizeLinear and runs five ops.
   */
  fuseGelu?: boolean;
  /** 'qdq' (default): QuantizeLinear/DequantizeLinear pairs; 'qoperator': QLinearConv, QLinearAdd, ... nodes. */
  format?: 'qdq' | 'qoperator';
  /** Clip activation ranges to this percentile of |values| (1 = plain min/max). */
  percentile?: number;
  session?: SessionOptions;
  backend?: string;
}

/**
 * Every kind: measured fastest on AVX2 (bench/int8-variants.ts), each kind left in float costs
 * time; GELU on integers most of all. Accuracy stays within the other choices' (same results file).
 */
export const DEFAULT_INTEGER_OPS: readonly IntegerOp[] = INTEGER_OPS;

// ---------------------------------------------------------------- the policy

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a?.kind === 'int' ? a.value : fallback;
}

/** The integer-op kind of a node, if it has one. */
function integerKind(graph: Graph, node: Node): IntegerOp | undefined {
  const isConst = (name: string | undefined) => name !== undefined && graph.initializers.has(name);
  if (node.op === 'Conv' && isConst(node.inputs[1]) && !isConst(node.inputs[0])) {
    const w = graph.shapes.get(node.inputs[1]!) as number[];
    const group = intAttr(node, 'group', 1);
    if (group > 1) return group === w[0] && w[1] === 1 ? 'depthwise' : undefined;
    return w.slice(2).every((k) => k === 1) ? 'conv1x1' : 'conv';
  }
  if (node.op === 'Gemm' && intAttr(node, 'transB', 0) === 1 && isConst(node.inputs[1]) && !node.attrs.alpha && !node.attrs.beta) return 'gemm';
  if (node.op === 'Add' && node.inputs.every((i) => !isConst(i))) {
    const [a, b] = node.inputs.map((i) => graph.shapes.get(i)!.join());
    return a === b ? 'add' : undefined;
  }
  if (node.op === 'Gelu' && node.domain === MS_DOMAIN) return 'gelu';
  return undefined;
}

interface Plan {
  /** Nodes that run on integers. */
  integer: Set<Node>;
  /** Values that are quantized: the inputs of integer nodes, and their outputs (after an absorbed Relu). */
  values: Set<string>;
  /** Quantized values written by integer nodes (every reader then sees the dequantized value). */
  produced: Set<string>;
  /**
   * Linear layers whose input is not quantized anyway (the classifier after the float pooling):
   * int8 weights, float arithmetic. Quantizing their input would put a float op between a
   * DequantizeLinear and a QuantizeLinear for a layer that costs next to nothing.
   */
  weightOnly: Set<Node>;
}

/** Which nodes run on integers and which values are quantized, for `graph` under `ops`. */
export function planQuantization(graph: Graph, ops: readonly IntegerOp[] = DEFAULT_INTEGER_OPS): Plan {
  const wanted = new Set(ops);
  const readers = new Map<string, Node[]>();
  for (const n of graph.nodes) for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  const isOutput = (v: string) => graph.outputs.some((o) => o.name === v);
  const plan: Plan = { integer: new Set(), values: new Set(), produced: new Set(), weightOnly: new Set() };
  for (const node of graph.nodes) {
    const kind = integerKind(graph, node);
    if (!kind || !wanted.has(kind)) continue;
    let out = node.outputs[0]!;
    const next = readers.get(out);
    if (next?.length === 1 && next[0]!.op === 'Relu' && !isOutput(out)) out = next[0]!.outputs[0]!;
    // Only QGemm can write a float graph output; a Conv or Add that writes one stays float.
    if (isOutput(out) && kind !== 'gemm') continue;
    if (kind === 'gemm' && !plan.produced.has(node.inputs[0]!)) {
      plan.weightOnly.add(node);
      continue;
    }
    plan.integer.add(node);
    for (const i of node.inputs.slice(0, node.op === 'Add' ? 2 : 1)) plan.values.add(i);
    if (isOutput(out)) continue;
    plan.values.add(out);
    plan.produced.add(out);
  }
  return plan;
}

// ---------------------------------------------------------------- calibration

/** Runs the float graph on the calibration batches and records the range of every value to quantize. */
export async function calibrate(
  graph: Graph, batches: Iterable<FloatTensor> | AsyncIterable<FloatTensor>, options: QuantizeOptions = {},
): Promise<Map<string, Range>> {
  const values = [...planQuantization(graph, options.ops).values];
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

// ---------------------------------------------------------------- rewriting

/** The quantization of one activation value: its parameters as graph constants. */
interface QParams { scale: number; s: string; zp: string }

/** Quantizes a bound, folded eval graph: see the module comment. */
export function quantizeGraph(source: Graph, ranges: Map<string, Range>, options: QuantizeOptions = {}): Graph {
  const fused = options.fuseGelu === false ? source : fuseGelu(source);
  const q = new Rewriter(fused, ranges, options);
  for (const node of fused.nodes) q.emit(node);
  return q.graph;
}

/** Writes the quantized graph node by node, making each value's uint8 and dequantized forms once. */
class Rewriter {
  readonly graph: Graph;
  private readonly b: GraphBuilder;
  private readonly plan: Plan;
  private readonly qoperator: boolean;
  private readonly params = new Map<string, QParams>();
  private readonly uint8 = new Map<string, string>();
  private readonly dequantized = new Map<string, string>();

  constructor(private readonly source: Graph, private readonly ranges: Map<string, Range>, private readonly options: QuantizeOptions) {
    this.plan = planQuantization(source, options.ops);
    this.graph = { ...source, nodes: [], initializers: new Map(source.initializers), shapes: new Map(source.shapes) };
    this.b = new GraphBuilder(this.graph, 'q/');
    this.qoperator = options.format === 'qoperator';
  }

  emit(node: Node): void {
    if (this.plan.integer.has(node)) return this.emitInteger(node);
    if (this.plan.weightOnly.has(node)) {
      const [x, w, ...rest] = node.inputs;
      this.graph.nodes.push({ ...node, inputs: [this.floatInput(x!), this.dequantizedWeight(quantizeWeights(this.graph, node, 1, this.options)), ...rest] });
      return;
    }
    const out = node.outputs[0]!;
    const absorbed = node.op === 'Relu' && this.plan.produced.has(out);
    // QOperator: the integer producer already wrote the Relu's output (uint8 with a zero point of 0).
    if (absorbed && this.qoperator) return;
    this.graph.nodes.push({ ...node, inputs: node.inputs.map((i) => (absorbed ? i : this.floatInput(i))) });
    if (absorbed) this.quantize(out, out);
  }

  private paramsOf(value: string): QParams {
    const known = this.params.get(value);
    if (known) return known;
    const range = this.ranges.get(value);
    if (!range) throw new Error(`no calibration range for ${value}`);
    const { scale, zeroPoint } = activationParams(range);
    const p = { scale, s: this.b.constant([scale]), zp: quantConstant(this.b, 'uint8', [zeroPoint], []) };
    this.params.set(value, p);
    return p;
  }

  /** QuantizeLinear of the float `from` with `value`'s parameters: its uint8 form. */
  private quantize(value: string, from: string): string {
    const p = this.paramsOf(value);
    const q = this.b.node('QuantizeLinear', [from, p.s, p.zp], this.b.shape(value));
    this.uint8.set(value, q);
    return q;
  }

  /** The uint8 form of `value` (quantized here from float when no integer op wrote it). */
  private uint8Of(value: string): string {
    return this.uint8.get(value) ?? this.quantize(value, value);
  }

  private dequantizedOf(value: string): string {
    const known = this.dequantized.get(value);
    if (known) return known;
    const p = this.paramsOf(value);
    const dq = this.b.node('DequantizeLinear', [this.uint8Of(value), p.s, p.zp], this.b.shape(value));
    this.dequantized.set(value, dq);
    return dq;
  }

  /** What a float node reads: values written by integer nodes in their dequantized form. */
  private floatInput(value: string): string {
    return this.plan.produced.has(value) ? this.dequantizedOf(value) : value;
  }

  /** What an integer node reads: uint8 (QOperator) or the dequantized uint8 (QDQ). */
  private integerInput(value: string): string {
    return this.qoperator ? this.uint8Of(value) : this.dequantizedOf(value);
  }

  /** The value an integer node's output is quantized as (a Relu after it included), if any. */
  private quantizedOutput(node: Node): string | undefined {
    const out = node.outputs[0]!;
    if (this.plan.produced.has(out)) return out;
    const relu = this.source.nodes.find((n) => n.op === 'Relu' && n.inputs[0] === out);
    return relu && this.plan.produced.has(relu.outputs[0]!) ? relu.outputs[0] : undefined;
  }

  private emitInteger(node: Node): void {
    const out = this.quantizedOutput(node);
    if (this.qoperator) this.emitQOperator(node, out);
    else this.emitQdq(node);
    if (!this.qoperator && out !== undefined && out === node.outputs[0]) this.quantize(out, out);
  }

  /** QDQ form: the float node, reading dequantized activations and dequantized integer weights. */
  private emitQdq(node: Node): void {
    const b = this.b;
    if (node.op === 'Add') {
      this.graph.nodes.push({ ...node, inputs: node.inputs.map((i) => this.integerInput(i)) });
      return;
    }
    const x = node.inputs[0]!;
    const p = this.paramsOf(x);
    if (node.op === 'Gelu') {
      // The uint8 x read at 1.702 times its scale is 1.702 x: DQ -> Sigmoid -> Q fuses into QLinearSigmoid.
      const shape = b.shape(x);
      const scaled = b.node('DequantizeLinear', [this.uint8Of(x), b.constant([p.scale * GELU_SIGMOID]), p.zp], shape);
      const sig = sigmoidParams(b);
      const gate = b.node('DequantizeLinear', [b.node('QuantizeLinear', [b.node('Sigmoid', [scaled], shape), sig.s, sig.zp], shape), sig.s, sig.zp], shape);
      this.graph.nodes.push({ op: 'Mul', inputs: [this.integerInput(x), gate], outputs: node.outputs, attrs: {} });
      return;
    }
    const weights = quantizeWeights(this.graph, node, p.scale, this.options);
    const inputs = [this.integerInput(x), this.dequantizedWeight(weights)];
    const { bias, biasScales } = weights;
    if (bias) {
      const outC = bias.length;
      const biasZeros = quantConstant(b, 'int32', new Array(outC).fill(0), [outC]);
      inputs.push(b.node('DequantizeLinear', [b.quantized('int32', [outC], bias), b.constant(biasScales, [outC]), biasZeros], [outC], { axis: attr.int(0) }));
    }
    this.graph.nodes.push({ ...node, inputs });
  }

  /** DequantizeLinear of the int8 weights, per output channel (axis 0) or per tensor. */
  private dequantizedWeight({ weight, scales }: ReturnType<typeof quantizeWeights>): string {
    const b = this.b;
    const perAxis = scales.length > 1 ? { axis: attr.int(0) } : undefined;
    const scaleShape = scales.length > 1 ? [scales.length] : [];
    const zeros = quantConstant(b, 'int8', new Array(scales.length).fill(0), scaleShape);
    return b.node('DequantizeLinear', [b.quantized('int8', weight.shape, weight.data), b.constant(scales, scaleShape), zeros], weight.shape, perAxis);
  }

  /** QOperator form: QLinearConv (ONNX), QLinearAdd, QLinearSigmoid, QLinearMul and QGemm (com.microsoft). */
  private emitQOperator(node: Node, out: string | undefined): void {
    const b = this.b;
    const y = out ? this.paramsOf(out) : undefined;
    const shape = b.shape(node.outputs[0]!);
    const write = (op: string, inputs: string[], attrs: Node['attrs'] = {}, domain?: string) => this.uint8.set(out!, b.node(op, inputs, shape, attrs, undefined, domain));
    if (node.op === 'Add') {
      const [a, c] = node.inputs.map((i) => [this.uint8Of(i), this.paramsOf(i)] as const);
      write('QLinearAdd', [a![0], a![1].s, a![1].zp, c![0], c![1].s, c![1].zp, y!.s, y!.zp], {}, MS_DOMAIN);
      return;
    }
    const xp = this.paramsOf(node.inputs[0]!);
    const x = this.uint8Of(node.inputs[0]!);
    if (node.op === 'Gelu') {
      const sig = sigmoidParams(b);
      const gate = b.node('QLinearSigmoid', [x, b.constant([xp.scale * GELU_SIGMOID]), xp.zp, sig.s, sig.zp], shape, {}, undefined, MS_DOMAIN);
      write('QLinearMul', [x, xp.s, xp.zp, gate, sig.s, sig.zp, y!.s, y!.zp], {}, MS_DOMAIN);
      return;
    }
    const { weight, scales, bias } = quantizeWeights(this.graph, node, xp.scale, this.options);
    const scaleShape = scales.length > 1 ? [scales.length] : [];
    const w = [b.quantized('int8', weight.shape, weight.data), b.constant(scales, scaleShape), quantConstant(b, 'int8', new Array(scales.length).fill(0), scaleShape)];
    const biasInput = bias ? [b.quantized('int32', [bias.length], bias)] : [];
    if (node.op === 'Conv') return void write('QLinearConv', [x, xp.s, xp.zp, ...w, y!.s, y!.zp, ...biasInput], node.attrs);
    // QGemm: float output when it writes a graph output (no y scale), else uint8.
    const inputs = [x, xp.s, xp.zp, ...w, biasInput[0] ?? '', ...(y ? [y.s, y.zp] : [])];
    if (y) write('QGemm', inputs, node.attrs, MS_DOMAIN);
    else b.node('QGemm', inputs, shape, node.attrs, node.outputs[0], MS_DOMAIN);
  }
}

type QuantType = 'int8' | 'uint8' | 'int32';

/** A sigmoid's output in [0, 1]: uint8 with scale 1/255 and zero point 0. */
function sigmoidParams(b: GraphBuilder): { s: string; zp: string } {
  return { s: b.constant([1 / 255]), zp: quantConstant(b, 'uint8', [0], []) };
}

function quantConstant(b: GraphBuilder, dtype: QuantType, values: number[], shape: number[]): string {
  const data = dtype === 'int8' ? Int8Array.from(values) : dtype === 'uint8' ? Uint8Array.from(values) : Int32Array.from(values);
  return b.quantized(dtype, shape, data);
}

/**
 * Weight (O, ...) -> int8, one scale per output channel or one for all; bias -> int32 at
 * input_scale * weight_scale (of its channel).
 */
function quantizeWeights(graph: Graph, node: Node, inputScale: number, options: QuantizeOptions) {
  const w = floatInit(graph, node.inputs[1]!);
  if (node.op === 'Gemm' && intAttr(node, 'transB', 0) !== 1) throw new SwiftFormerError('UNSUPPORTED', 'INT8 Gemm needs its weight as (out, in) with transB = 1');
  const weightMax = options.weightMax ?? 63;
  const outC = w.shape[0]!;
  const per = w.data.length / outC;
  const channelMax = new Float32Array(outC);
  for (let o = 0; o < outC; o++) for (let i = 0; i < per; i++) channelMax[o] = Math.max(channelMax[o]!, Math.abs(w.data[o * per + i]!));
  const perChannel = options.perChannel ?? true;
  const overall = Math.max(...channelMax);
  const scales = perChannel ? channelMax.map((m) => (m > 0 ? m / weightMax : 1)) : Float32Array.of(overall > 0 ? overall / weightMax : 1);
  const scaleOf = (o: number) => scales[perChannel ? o : 0]!;
  const data = Int8Array.from(w.data, (v, i) => Math.round(v / scaleOf(Math.floor(i / per))));
  const biasName = node.inputs[2];
  const biasScales = Float32Array.from({ length: outC }, (_, o) => scaleOf(o) * inputScale);
  const bias = biasName ? Int32Array.from(floatInit(graph, biasName).data, (v, o) => Math.round(v / biasScales[o]!)) : undefined;
  return { weight: { shape: w.shape, data }, scales, bias, biasScales };
}

/** Calibrates on `batches` and returns the quantized graph. */
export async function quantizeStatic(graph: Graph, batches: Iterable<FloatTensor> | AsyncIterable<FloatTensor>, options: QuantizeOptions = {}): Promise<{ graph: Graph; ranges: Map<string, Range> }> {
  const ranges = await calibrate(graph, batches, options);
  return { graph: quantizeGraph(graph, ranges, options), ranges };
}
