/**
 * The graph IR: ONNX nodes plus what we know about every value (its shape), parameters named by
 * their official state_dict keys, and constants. Models emit it through GraphBuilder; passes rewrite
 * it; `toOnnx` lowers it to a ModelProto. Opset 17, the one the official export uses.
 */
import { SwiftFormerError } from '../core/errors.js';
import { AttributeType, DataType, encodeModel, type Message } from './proto.js';
import { float32, formatShape, numel, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.js';

export const OPSET = 17;

/** Domain of this library's composite ops: they have gradient rules and expand into ONNX ops. */
export const COMPOSITE = 'swiftformer';

/** ONNX Runtime's contrib-op domain (Gelu, QLinearAdd, QGemm of INT8 graphs). */
export const MS_DOMAIN = 'com.microsoft';

/** A dimension is a number or a symbolic name (the batch axis is 'batch'). */
export type Dim = number | string;
export type Shape = Dim[];

export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
  domain?: string;
}

/** Element types of graph inputs and outputs (values inside a graph are typed by ONNX Runtime). */
export type ValueType = 'float32' | 'int64' | 'bool' | 'uint8' | 'uint16';

export interface GraphValue { name: string; shape: Shape; dtype?: ValueType }

export interface Graph {
  nodes: Node[];
  /** Inputs and outputs are float32 unless `dtype` says otherwise. */
  inputs: GraphValue[];
  outputs: GraphValue[];
  /** Shape of every value the builder created. */
  shapes: Map<string, Shape>;
  /** Model parameters and buffers by official key: shape now, data once bound. */
  params: Map<string, number[]>;
  /** Constant and bound tensors: become ONNX initializers. */
  initializers: Map<string, GraphTensor>;
  /** Train-mode BatchNorms: the values holding each one's batch mean and biased variance, shape (C). */
  batchStats: BatchStat[];
}

/** Integer constants of quantized graphs (weights, zero points, biases). */
export type QuantTensor =
  | { dtype: 'int8'; shape: number[]; data: Int8Array }
  | { dtype: 'uint8'; shape: number[]; data: Uint8Array }
  | { dtype: 'int32'; shape: number[]; data: Int32Array };

export type GraphTensor = Tensor | QuantTensor;

/** Element types a graph output may have besides float32. */
export type OutputType = Exclude<ValueType, 'float32'>;

export interface BatchStat { key: string; mean: string; variance: string; count: number }

export const attr = {
  int: (value: number): Attr => ({ kind: 'int', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  ints: (value: number[]): Attr => ({ kind: 'ints', value }),
  floats: (value: number[]): Attr => ({ kind: 'floats', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
};

export function emptyGraph(): Graph {
  return { nodes: [], inputs: [], outputs: [], shapes: new Map(), params: new Map(), initializers: new Map(), batchStats: [] };
}

/** Number of scalars the graph's parameters hold (buffers such as BN running stats excluded by `isBuffer`). */
export function countParams(graph: Graph, isBuffer: (key: string) => boolean): number {
  let total = 0;
  for (const [key, shape] of graph.params) if (!isBuffer(key)) total += numel(shape);
  return total;
}

/**
 * Appends ONNX nodes to a graph while tracking shapes, so that every op is checked where it is
 * created and MACs can be counted from the graph alone.
 */
export class GraphBuilder {
  readonly graph: Graph;
  private counter = 0;

  /** Extends `graph` when given (value names then start with `prefix`, so they cannot collide). */
  constructor(graph?: Graph, private readonly prefix = '') {
    this.graph = graph ?? emptyGraph();
  }

  /** Registers a graph input (float32 unless `dtype` says otherwise). */
  input(name: string, shape: Shape, dtype?: ValueType): string {
    this.graph.inputs.push(dtype && dtype !== 'float32' ? { name, shape, dtype } : { name, shape });
    this.graph.shapes.set(name, shape);
    return name;
  }

  output(name: string, dtype?: ValueType): void {
    const shape = this.shape(name);
    this.graph.outputs.push(dtype && dtype !== 'float32' ? { name, shape, dtype } : { name, shape });
  }

  /** Declares a parameter by its state_dict key; its data is bound later. */
  param(key: string, shape: number[]): string {
    const known = this.graph.params.get(key);
    if (known && formatShape(known) !== formatShape(shape)) {
      throw new Error(`parameter ${key} declared twice with shapes ${formatShape(known)} and ${formatShape(shape)}`);
    }
    this.graph.params.set(key, shape);
    this.graph.shapes.set(key, shape);
    return key;
  }

  /** A float constant (scalar when `shape` is []). */
  constant(values: number[] | Float32Array, shape: number[] = []): string {
    const name = `${this.prefix}const_${this.counter++}`;
    this.graph.initializers.set(name, float32(shape, Float32Array.from(values)));
    this.graph.shapes.set(name, shape);
    return name;
  }

  /** An integer constant of a quantized graph. */
  quantized(dtype: QuantTensor['dtype'], shape: number[], data: Int8Array | Uint8Array | Int32Array): string {
    const name = `${this.prefix}const_${this.counter++}`;
    this.graph.initializers.set(name, { dtype, shape, data } as QuantTensor);
    this.graph.shapes.set(name, shape);
    return name;
  }

  /** An int64 constant vector (axes, shapes), or a scalar with `shape` []. */
  ints(values: number[], shape: number[] = [values.length]): string {
    const name = `${this.prefix}const_${this.counter++}`;
    this.graph.initializers.set(name, { dtype: 'int64', shape, data: BigInt64Array.from(values.map(BigInt)) });
    this.graph.shapes.set(name, shape);
    return name;
  }

  shape(name: string): Shape {
    const s = this.graph.shapes.get(name);
    if (!s) throw new Error(`unknown value ${name}`);
    return s;
  }

  /** Appends a node with one output of the given shape; returns the output name. */
  node(op: string, inputs: string[], shape: Shape, attrs: Record<string, Attr> = {}, outputName?: string, domain?: string): string {
    const out = outputName ?? `${this.prefix}${op.toLowerCase()}_${this.counter++}`;
    this.graph.nodes.push(domain ? { op, inputs, outputs: [out], attrs, domain } : { op, inputs, outputs: [out], attrs });
    this.graph.shapes.set(out, shape);
    return out;
  }

  /** Appends a node with several outputs (TopK, Split); returns their names. */
  nodeOutputs(op: string, inputs: string[], shapes: Shape[], attrs: Record<string, Attr> = {}): string[] {
    const id = this.counter++;
    const outputs = shapes.map((shape, i) => {
      const name = `${this.prefix}${op.toLowerCase()}_${id}_${i}`;
      this.graph.shapes.set(name, shape);
      return name;
    });
    this.graph.nodes.push({ op, inputs, outputs, attrs });
    return outputs;
  }

  // ------------------------------------------------------------ ops with shape rules

  /** Conv2d. x: (N,C,H,W), weight: (O,C/groups,k,k) -> (N,O,H',W'). */
  conv(x: string, weight: string, bias: string | undefined, opts: { stride?: number; pad?: number; groups?: number } = {}): string {
    const [n, c, h, w] = this.shape(x);
    const [o, cg, kh, kw] = this.shape(weight) as number[];
    const { stride = 1, pad = 0, groups = 1 } = opts;
    if (typeof c === 'number' && c !== cg! * groups) {
      throw new SwiftFormerError('BAD_SHAPE', `conv ${weight}: input has ${c} channels, weight expects ${cg! * groups}`);
    }
    const outSize = (d: Dim | undefined, k: number): Dim =>
      typeof d === 'number' ? Math.floor((d + 2 * pad - k) / stride) + 1 : `${d}`;
    const attrs: Record<string, Attr> = {
      kernel_shape: attr.ints([kh!, kw!]),
      strides: attr.ints([stride, stride]),
      pads: attr.ints([pad, pad, pad, pad]),
      dilations: attr.ints([1, 1]),
      group: attr.int(groups),
    };
    const inputs = bias ? [x, weight, bias] : [x, weight];
    return this.node('Conv', inputs, [n!, o!, outSize(h, kh!), outSize(w, kw!)], attrs);
  }

  /** BatchNormalization in inference mode; x: (N,C,...) -> same. */
  batchNorm(x: string, scale: string, bias: string, mean: string, variance: string, epsilon = 1e-5): string {
    return this.node('BatchNormalization', [x, scale, bias, mean, variance], this.shape(x), { epsilon: attr.float(epsilon) });
  }

  /**
   * BatchNorm on the statistics of the batch: one composite node (expanded into ONNX primitives
   * by `expandComposites`) so that its gradient can be the closed form rather than the chain rule
   * through six primitives. Records the batch mean and biased variance for the running statistics.
   * x: feature maps with their channels on `channelAxis`, scale/bias: (C) -> same as x.
   */
  batchNormTrain(x: string, key: string, scale: string, bias: string, opts: { channelAxis: number; epsilon?: number }): string {
    const shape = this.shape(x) as number[];
    const { channelAxis, epsilon = 1e-5 } = opts;
    const c = shape[channelAxis]!;
    const axes = shape.map((_, a) => a).filter((a) => a !== channelAxis);
    const count = axes.reduce((n, a) => n * shape[a]!, 1);
    const kept = shape.map((d, a) => (a === channelAxis ? d : 1));
    const perChannel = (v: string) => this.reshape(v, kept.slice(channelAxis));
    const id = this.counter++;
    const [y, mean, variance, centered, inv] = ['y', 'mean', 'var', 'centered', 'inv'].map((n) => `${this.prefix}bn_${id}_${n}`) as [string, string, string, string, string];
    this.graph.nodes.push({
      op: 'BatchNormTrain', domain: COMPOSITE, inputs: [x, perChannel(scale), perChannel(bias)], outputs: [y, mean, variance, centered, inv],
      attrs: { epsilon: attr.float(epsilon), axes: attr.ints(axes) },
    });
    for (const [name, s] of [[y, shape], [mean, kept], [variance, kept], [centered, shape], [inv, kept]] as const) this.graph.shapes.set(name, s);
    this.graph.batchStats.push({ key, mean: this.reshape(mean, [c]), variance: this.reshape(variance, [c]), count });
    return y;
  }

  /** Elementwise binary op with numpy broadcasting. */
  binary(op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Pow', a: string, b: string): string {
    return this.node(op, [a, b], broadcastShapes(this.shape(a), this.shape(b)), {});
  }

  unary(op: 'Relu' | 'Erf' | 'Sqrt' | 'Neg' | 'Exp' | 'Identity' | 'Reciprocal', x: string): string {
    return this.node(op, [x], this.shape(x));
  }

  /**
   * GELU with erf. Default: the primitives ONNX Runtime fuses into one kernel. `composite`
   * (training graphs): one node, expanded to the same primitives, whose gradient rule recomputes
   * from x alone, so that the fused forward keeps no intermediates alive.
   */
  gelu(x: string, opts: { composite?: boolean } = {}): string {
    if (opts.composite) return this.node('Gelu', [x], this.shape(x), {}, undefined, COMPOSITE);
    return geluPrimitives(this, x);
  }

  /** Softmax over one axis (opset 13+ semantics: that axis alone is normalized). */
  softmax(x: string, axis: number): string {
    return this.node('Softmax', [x], this.shape(x), { axis: attr.int(axis) });
  }

  /**
   * torch's LayerNorm over features: normalizes every token over `axis` (the channel axis of the
   * maps), then scale and bias (C values each). Default: primitives. `composite` (training
   * graphs): one node (outputs y, the normalized x and the inverse std) whose gradient is the
   * closed form. x: feature maps or tokens -> same.
   */
  layerNorm(x: string, scale: string, bias: string, opts: { axis: number; epsilon?: number; composite?: boolean }): string {
    const shape = this.shape(x);
    const { axis, epsilon = 1e-6 } = opts;
    const c = shape[axis] as number;
    const kept = shape.map((d, a) => (a === axis ? c : 1)).slice(axis) as number[];
    const [s, t] = [this.reshape(scale, kept), this.reshape(bias, kept)];
    const statShape = shape.map((d, a) => (a === axis ? 1 : d));
    if (!opts.composite) return layerNormPrimitives(this, x, s, t, axis, epsilon, statShape);
    const id = this.counter++;
    const [y, normalized, inv] = ['y', 'xhat', 'inv'].map((n) => `${this.prefix}ln_${id}_${n}`) as [string, string, string];
    this.graph.nodes.push({
      op: 'LayerNorm', domain: COMPOSITE, inputs: [x, s, t], outputs: [y, normalized, inv],
      attrs: { epsilon: attr.float(epsilon), axis: attr.int(axis) },
    });
    for (const [name, sh] of [[y, shape], [normalized, shape], [inv, statShape]] as const) this.graph.shapes.set(name, sh);
    return y;
  }

  /** ReduceL2 / ReduceMean / ReduceSum over `axes`. */
  reduce(op: 'ReduceL2' | 'ReduceMean' | 'ReduceSum', x: string, axes: number[], keepdims: boolean): string {
    const inShape = this.shape(x);
    const norm = axes.map((a) => (a < 0 ? a + inShape.length : a));
    const shape = inShape.flatMap((d, i) => (norm.includes(i) ? (keepdims ? [1] : []) : [d]));
    // ReduceSum takes its axes as an input from opset 13, the others only from opset 18.
    if (op === 'ReduceSum') return this.node(op, [x, this.ints(axes)], shape, { keepdims: attr.int(keepdims ? 1 : 0) });
    return this.node(op, [x], shape, { axes: attr.ints(axes), keepdims: attr.int(keepdims ? 1 : 0) });
  }

  /** x / max(||x||_2 over axes, eps): torch.nn.functional.normalize. */
  l2Normalize(x: string, axes: number[], eps = 1e-12): string {
    const norm = this.reduce('ReduceL2', x, axes, true);
    const clamped = this.binary('Max', norm, this.constant([eps]));
    return this.binary('Div', x, clamped);
  }

  reshape(x: string, shape: number[], outShape?: Shape): string {
    return this.node('Reshape', [x, this.ints(shape)], outShape ?? shape);
  }

  /**
   * torch's F.interpolate of (N,C,H,W) maps to (outH, outW): 'nearest' (floor of dst * in / out)
   * or 'bilinear' with align_corners=False (see interpolate.ts for why these attributes). The
   * scales input carries out / in, which must be exact in float32 (the ratios here are powers of
   * two), so that a symbolic batch axis needs no runtime shape arithmetic.
   */
  resize(x: string, mode: 'nearest' | 'bilinear', outH: number, outW: number): string {
    const [n, c, h, w] = this.shape(x);
    const scales = [outH / (h as number), outW / (w as number)];
    if (scales.some((r) => Math.fround(r) !== r || !(r > 0))) {
      throw new SwiftFormerError('BAD_SHAPE', `resize of ${h}x${w} to ${outH}x${outW}: the scale is not exact in float32`);
    }
    const attrs: Record<string, Attr> = mode === 'nearest'
      ? { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor') }
      : { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel') };
    return this.node('Resize', [x, '', this.constant([1, 1, ...scales], [4])], [n!, c!, outH, outW], attrs);
  }

  /**
   * Per-pixel softmax cross-entropy summed over the pixels whose label is not `ignoreIndex`
   * (ONNX SoftmaxCrossEntropyLoss, reduction 'sum'). scores (N,K,H,W), labels (N,H,W) int64 ->
   * scalar. Its second output, the log-probabilities, serves the gradient rule.
   */
  softmaxCrossEntropySum(scores: string, labels: string, ignoreIndex: number): string {
    const id = this.counter++;
    const [loss, logProb] = [`${this.prefix}sce_${id}_loss`, `${this.prefix}sce_${id}_logprob`];
    this.graph.nodes.push({
      op: 'SoftmaxCrossEntropyLoss', inputs: [scores, labels], outputs: [loss, logProb],
      attrs: { reduction: attr.string('sum'), ignore_index: attr.int(ignoreIndex) },
    });
    this.graph.shapes.set(loss, []);
    this.graph.shapes.set(logProb, this.shape(scores));
    return loss;
  }

  /** Gemm with transB=1: x (N,K) @ weight(M,K)^T + bias -> (N,M), the layout of torch's Linear. */
  linear(x: string, weight: string, bias: string): string {
    const [n] = this.shape(x);
    const [m] = this.shape(weight);
    return this.node('Gemm', [x, weight, bias], [n!, m!], { transB: attr.int(1) });
  }
}

/** Numpy broadcasting of two shapes; a mismatch is a shape error naming both. */
export function broadcastShapes(a: Shape, b: Shape): Shape {
  const rank = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === 1) out.push(db);
    else if (db === 1 || da === db) out.push(da);
    else throw new SwiftFormerError('BAD_SHAPE', `cannot broadcast ${formatShape(a as number[])} with ${formatShape(b as number[])}`);
  }
  return out;
}

// ---------------------------------------------------------------- binding and lowering

/**
 * Binds parameter data to a graph. Every declared parameter must be present with its declared
 * shape; the caller has already reported missing/unexpected keys by name (see `matchState`).
 */
export function bindParams(graph: Graph, state: StateDict): Graph {
  const initializers = new Map(graph.initializers);
  for (const [key, shape] of graph.params) {
    const t = state.get(key);
    if (!t) throw new SwiftFormerError('KEY_MISMATCH', `missing weight ${key} ${formatShape(shape)}`);
    if (numel(t.shape) !== numel(shape)) {
      throw new SwiftFormerError('BAD_SHAPE', `weight ${key} has shape ${formatShape(t.shape)}, the model expects ${formatShape(shape)}`);
    }
    initializers.set(key, { ...t, shape } as Tensor);
  }
  return { ...graph, initializers };
}

function dimsMessage(shape: Shape): Message {
  return { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
}

const DATA_TYPES: Record<GraphTensor['dtype'] | ValueType, number> = {
  float32: DataType.FLOAT, int64: DataType.INT64, int8: DataType.INT8, uint8: DataType.UINT8, int32: DataType.INT32, bool: DataType.BOOL,
  uint16: DataType.UINT16,
};

function valueInfo(v: GraphValue): Message {
  return { name: v.name, type: { tensorType: { elemType: DATA_TYPES[v.dtype ?? 'float32'], shape: dimsMessage(v.shape) } } };
}

function tensorMessage(name: string, t: GraphTensor): Message {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dims: t.shape, dataType: DATA_TYPES[t.dtype], rawData: bytes };
}

function attributeMessage(name: string, a: Attr): Message {
  switch (a.kind) {
    case 'int': return { name, type: AttributeType.INT, i: a.value };
    case 'float': return { name, type: AttributeType.FLOAT, f: a.value };
    case 'ints': return { name, type: AttributeType.INTS, ints: a.value };
    case 'floats': return { name, type: AttributeType.FLOATS, floats: a.value };
    case 'string': return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.value) };
  }
}

/** Initializers the nodes actually read, in first-use order (unused parameters are dropped). */
function usedInitializers(graph: Graph): [string, GraphTensor][] {
  const used: [string, GraphTensor][] = [];
  const seen = new Set<string>();
  for (const node of graph.nodes) {
    for (const input of node.inputs) {
      const t = graph.initializers.get(input);
      if (t && !seen.has(input)) {
        seen.add(input);
        used.push([input, t]);
      }
    }
  }
  return used;
}

/** The name `toOnnx` gives the node at `index` (of a graph without composites): what profiles report. */
export function onnxNodeName(node: Node, index: number): string {
  return `${node.op}_${index}`;
}

/**
 * Lowers a graph to ONNX bytes. Parameters without data are an error, or, with
 * `paramsAsInputs` (training graphs, whose weights change every step), extra graph inputs.
 */
export function toOnnx(source: Graph, meta: Record<string, string> = {}, options: { paramsAsInputs?: boolean } = {}): Uint8Array {
  const graph = expandComposites(source);
  const used = new Set(graph.nodes.flatMap((n) => n.inputs));
  const unbound = [...graph.params.keys()].filter((k) => !graph.initializers.has(k) && used.has(k));
  if (unbound.length > 0 && !options.paramsAsInputs) {
    throw new Error(`graph has unbound parameters: ${unbound.slice(0, 5).join(', ')}`);
  }
  const inputs: GraphValue[] = graph.inputs.concat(unbound.map((name) => ({ name, shape: graph.params.get(name)! })));
  return encodeModel({
    irVersion: 8,
    producerName: 'swiftformer',
    opsetImport: [{ domain: '', version: OPSET }, ...(graph.nodes.some((n) => n.domain === MS_DOMAIN) ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'swiftformer',
      node: graph.nodes.map((n, i) => ({
        input: n.inputs,
        output: n.outputs,
        name: onnxNodeName(n, i),
        opType: n.op,
        domain: n.domain ?? '',
        attribute: Object.entries(n.attrs).map(([k, a]) => attributeMessage(k, a)),
      })),
      initializer: usedInitializers(graph).map(([name, t]) => tensorMessage(name, t)),
      input: inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  });
}

/** A float initializer, or an error naming the value. */
export function floatInit(graph: Graph, name: string): FloatTensor {
  const t = graph.initializers.get(name);
  if (!t || t.dtype !== 'float32') throw new Error(`${name} is not a float constant`);
  return t;
}

// ---------------------------------------------------------------- composites

/** Replaces every composite node by the ONNX primitives computing the same named outputs. */
export function expandComposites(graph: Graph): Graph {
  if (!graph.nodes.some((n) => n.domain === COMPOSITE)) return graph;
  const g: Graph = { ...graph, nodes: [], shapes: new Map(graph.shapes), initializers: new Map(graph.initializers) };
  const b = new GraphBuilder(g, 'expand/');
  for (const node of graph.nodes) {
    if (node.domain !== COMPOSITE) g.nodes.push(node);
    else if (node.op === 'BatchNormTrain') expandBatchNormTrain(b, node);
    else if (node.op === 'Gelu') b.node('Identity', [geluPrimitives(b, node.inputs[0]!)], b.shape(node.outputs[0]!), {}, node.outputs[0]);
    else if (node.op === 'LayerNorm') expandLayerNorm(b, node);
    else throw new Error(`no expansion for composite op ${node.op}`);
  }
  return g;
}

function expandBatchNormTrain(b: GraphBuilder, node: Node): void {
  const [x, scale, bias] = node.inputs as [string, string, string];
  const [y, mean, variance, centered, inv] = node.outputs as [string, string, string, string, string];
  const axes = node.attrs.axes?.kind === 'ints' ? node.attrs.axes.value : [];
  const eps = node.attrs.epsilon?.kind === 'float' ? node.attrs.epsilon.value : 1e-5;
  const keep = { axes: attr.ints(axes), keepdims: attr.int(1) };
  b.node('ReduceMean', [x], b.shape(mean), keep, mean);
  b.node('Sub', [x, mean], b.shape(centered), {}, centered);
  b.node('ReduceMean', [b.binary('Mul', centered, centered)], b.shape(variance), keep, variance);
  b.node('Reciprocal', [b.unary('Sqrt', b.binary('Add', variance, b.constant([eps])))], b.shape(inv), {}, inv);
  b.node('Add', [b.binary('Mul', centered, b.binary('Mul', inv, scale)), bias], b.shape(y), {}, y);
}

function expandLayerNorm(b: GraphBuilder, node: Node): void {
  const [x, scale, bias] = node.inputs as [string, string, string];
  const axis = node.attrs.axis?.kind === 'int' ? node.attrs.axis.value : 1;
  const eps = node.attrs.epsilon?.kind === 'float' ? node.attrs.epsilon.value : 1e-6;
  layerNormPrimitives(b, x, scale, bias, axis, eps, b.shape(node.outputs[2]!), node.outputs as [string, string, string]);
}

/**
 * (x - mean) / sqrt(var + eps) * scale + bias over `axis` (biased variance, as torch). With
 * `names`, the result, the normalized x and the inverse std get those names (composite outputs).
 */
function layerNormPrimitives(
  b: GraphBuilder, x: string, scale: string, bias: string, axis: number, eps: number, statShape: Shape, names?: [string, string, string],
): string {
  const keep = { axes: attr.ints([axis]), keepdims: attr.int(1) };
  const shape = b.shape(x);
  const mean = b.node('ReduceMean', [x], statShape, keep);
  const centered = b.binary('Sub', x, mean);
  const variance = b.node('ReduceMean', [b.binary('Mul', centered, centered)], statShape, keep);
  const inv = b.node('Reciprocal', [b.unary('Sqrt', b.binary('Add', variance, b.constant([eps])))], statShape, {}, names?.[2]);
  const normalized = b.node('Mul', [centered, inv], shape, {}, names?.[1]);
  return b.node('Add', [b.binary('Mul', normalized, scale), bias], shape, {}, names?.[0]);
}

/** x * 0.5 * (1 + erf(x / sqrt 2)), in the pattern ONNX Runtime's GeluFusion recognizes. */
function geluPrimitives(b: GraphBuilder, x: string): string {
  const erf = b.unary('Erf', b.binary('Div', x, b.constant([Math.SQRT2])));
  return b.binary('Mul', b.binary('Mul', x, b.binary('Add', erf, b.constant([1]))), b.constant([0.5]));
}
