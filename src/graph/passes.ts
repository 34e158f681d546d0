/**
 * Graph rewrites on bound graphs (initializers present) and counting.
 *
 * Every fold is an exact algebraic identity (up to float rounding): BatchNorm after a conv or
 * before a padding-free conv / pooled Gemm, a per-channel scale after a conv or Gemm, the sum
 * of two Gemms of one input. New tensors are fresh copies: the caller's state dict is never touched.
 */
import { floatInit, MS_DOMAIN, type Graph, type GraphValue, type Node, type ValueType } from './graph.js';
import { float32, numel, type FloatTensor } from '../core/tensor.js';

/** Runs all eval-mode folds until nothing changes, then drops dead nodes. */
export function optimizeForInference(graph: Graph): Graph {
  // Folds rewrite nodes in place: work on copies, so the caller's graph stays valid.
  const nodes = graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] }));
  const g: Graph = { ...graph, nodes, initializers: new Map(graph.initializers), shapes: new Map(graph.shapes) };
  foldConstantReshapes(g);
  const folds = [foldConvBatchNorm, foldBatchNormIntoConsumers, foldScaleAfterLinear, mergeGemmSums, removeIdentities];
  for (let changed = true; changed;) {
    changed = false;
    for (const fold of folds) while (fold(g)) changed = true;
  }
  removeDeadNodes(g);
  return g;
}

// ---------------------------------------------------------------- helpers

function consumers(g: Graph, value: string): Node[] {
  return g.nodes.filter((n) => n.inputs.includes(value));
}

function isOutput(g: Graph, value: string): boolean {
  return g.outputs.some((o) => o.name === value);
}

/** The only consumer of `value`, if it has exactly one and is not a graph output. */
function soleConsumer(g: Graph, value: string): Node | undefined {
  const users = consumers(g, value);
  return users.length === 1 && !isOutput(g, value) ? users[0] : undefined;
}

function isConst(g: Graph, name: string | undefined): name is string {
  return name !== undefined && g.initializers.has(name);
}

function allConst(g: Graph, node: Node): boolean {
  return node.inputs.every((i) => i === '' || isConst(g, i));
}

/** A BatchNormalization whose scale, bias, mean and variance are all constants. */
function isConstBatchNorm(g: Graph, node: Node | undefined): node is Node {
  return node?.op === 'BatchNormalization' && node.inputs.slice(1).every((i) => isConst(g, i));
}

function remove(g: Graph, node: Node): void {
  g.nodes.splice(g.nodes.indexOf(node), 1);
}

let fresh = 0;
function addInit(g: Graph, base: string, t: FloatTensor): string {
  const name = `${base}:folded${fresh++}`;
  g.initializers.set(name, t);
  g.shapes.set(name, t.shape);
  return name;
}

/** Makes `producer` write `node`'s output directly and drops `node` (which must be 1-in-1-out). */
function bypass(g: Graph, producer: Node, node: Node): void {
  producer.outputs[0] = node.outputs[0]!;
  remove(g, node);
}

/** BatchNormalization as y = s * x + t per channel. */
function bnAffine(g: Graph, bn: Node): { s: Float32Array; t: Float32Array } {
  const [scale, bias, mean, variance] = bn.inputs.slice(1).map((i) => floatInit(g, i).data);
  const eps = bn.attrs.epsilon?.kind === 'float' ? bn.attrs.epsilon.value : 1e-5;
  const s = new Float32Array(scale!.length);
  const t = new Float32Array(scale!.length);
  for (let c = 0; c < s.length; c++) {
    s[c] = scale![c]! / Math.sqrt(variance![c]! + eps);
    t[c] = bias![c]! - mean![c]! * s[c]!;
  }
  return { s, t };
}

/** A copy of the bias input, or zeros of length `n` when the op has none. */
function biasOf(g: Graph, node: Node, index: number, n: number): Float32Array {
  const name = node.inputs[index];
  return name ? Float32Array.from(floatInit(g, name).data) : new Float32Array(n);
}

function setWeights(g: Graph, node: Node, weightIndex: number, weight: FloatTensor, bias: Float32Array): void {
  const key = node.inputs[weightIndex]!;
  node.inputs[weightIndex] = addInit(g, key, weight);
  node.inputs[weightIndex + 1] = addInit(g, `${key}.bias`, float32([bias.length], bias));
}

// ---------------------------------------------------------------- folds

/** Reshape of a constant becomes a constant (the 1x1-conv views of Linear weights). */
function foldConstantReshapes(g: Graph): void {
  for (const node of [...g.nodes]) {
    if (node.op !== 'Reshape' || !allConst(g, node) || g.initializers.get(node.inputs[0]!)?.dtype !== 'float32') continue;
    const src = floatInit(g, node.inputs[0]!);
    const shape = g.shapes.get(node.outputs[0]!) as number[];
    g.initializers.set(node.outputs[0]!, { dtype: 'float32', shape, data: src.data });
    remove(g, node);
  }
}

/** Conv -> BatchNorm: scale the conv's output channels. */
function foldConvBatchNorm(g: Graph): boolean {
  for (const conv of g.nodes) {
    if (conv.op !== 'Conv' || !isConst(g, conv.inputs[1])) continue;
    const bn = soleConsumer(g, conv.outputs[0]!);
    if (!isConstBatchNorm(g, bn) || bn.inputs[0] !== conv.outputs[0]) continue;
    const { s, t } = bnAffine(g, bn);
    const w = floatInit(g, conv.inputs[1]!);
    const perOut = numel(w.shape) / w.shape[0]!;
    const weight = float32(w.shape, w.data.map((v, i) => v * s[Math.floor(i / perOut)]!));
    const bias = biasOf(g, conv, 2, s.length).map((v, o) => v * s[o]! + t[o]!);
    setWeights(g, conv, 1, weight, bias);
    bypass(g, conv, bn);
    return true;
  }
  return false;
}

/**
 * BatchNorm -> padding-free group-1 Conv(s), or BatchNorm -> global ReduceMean -> Gemm(s):
 * fold the affine map into every consumer's weights, then drop the BatchNorm.
 */
function foldBatchNormIntoConsumers(g: Graph): boolean {
  for (const bn of g.nodes) {
    if (!isConstBatchNorm(g, bn) || isOutput(g, bn.outputs[0]!)) continue;
    const users = consumers(g, bn.outputs[0]!);
    if (users.length > 0 && users.every((u) => isPadFreeConv(g, u, bn.outputs[0]!))) {
      const { s, t } = bnAffine(g, bn);
      for (const conv of users) foldAffineIntoConv(g, conv, s, t);
    } else if (users.length === 1 && isPooledGemms(g, users[0]!)) {
      const { s, t } = bnAffine(g, bn);
      for (const gemm of consumers(g, users[0]!.outputs[0]!)) foldAffineIntoGemm(g, gemm, s, t);
    } else {
      continue;
    }
    for (const u of users) u.inputs = u.inputs.map((i) => (i === bn.outputs[0] ? bn.inputs[0]! : i));
    remove(g, bn);
    return true;
  }
  return false;
}

function isPadFreeConv(g: Graph, node: Node, input: string): boolean {
  const pads = node.attrs.pads?.kind === 'ints' ? node.attrs.pads.value : [];
  const group = node.attrs.group?.kind === 'int' ? node.attrs.group.value : 1;
  return node.op === 'Conv' && node.inputs[0] === input && isConst(g, node.inputs[1]) && group === 1 && pads.every((p) => p === 0);
}

/** ReduceMean over all spatial axes whose every consumer is a transB Gemm of constants. */
function isPooledGemms(g: Graph, mean: Node): boolean {
  const axes = mean.attrs.axes?.kind === 'ints' ? mean.attrs.axes.value : [];
  if (mean.op !== 'ReduceMean' || axes.join() !== '2,3' || isOutput(g, mean.outputs[0]!)) return false;
  const users = consumers(g, mean.outputs[0]!);
  return users.length > 0 && users.every((u) => u.op === 'Gemm' && u.inputs[0] === mean.outputs[0] && isTransBGemm(g, u));
}

function isTransBGemm(g: Graph, node: Node): boolean {
  const transB = node.attrs.transB?.kind === 'int' && node.attrs.transB.value === 1;
  const plain = ['alpha', 'beta', 'transA'].every((a) => node.attrs[a] === undefined);
  return transB && plain && isConst(g, node.inputs[1]) && (node.inputs[2] === undefined || isConst(g, node.inputs[2]));
}

/** W'[o,c,..] = W[o,c,..] s[c]; b'[o] = b[o] + sum over c,.. of W[o,c,..] t[c]. */
function foldAffineIntoConv(g: Graph, conv: Node, s: Float32Array, t: Float32Array): void {
  const w = floatInit(g, conv.inputs[1]!);
  const [outC, inC] = w.shape as [number, number];
  const k = numel(w.shape) / (outC * inC);
  const weight = float32(w.shape, new Float32Array(w.data.length));
  const bias = biasOf(g, conv, 2, outC);
  for (let i = 0; i < w.data.length; i++) {
    const c = Math.floor(i / k) % inC;
    weight.data[i] = w.data[i]! * s[c]!;
    bias[Math.floor(i / (k * inC))]! += w.data[i]! * t[c]!;
  }
  setWeights(g, conv, 1, weight, bias);
}

/** The same fold for a Gemm with weight (M, K), transB = 1. */
function foldAffineIntoGemm(g: Graph, gemm: Node, s: Float32Array, t: Float32Array): void {
  const w = floatInit(g, gemm.inputs[1]!);
  const [m, k] = w.shape as [number, number];
  const weight = float32(w.shape, new Float32Array(w.data.length));
  const bias = biasOf(g, gemm, 2, m);
  for (let i = 0; i < w.data.length; i++) {
    weight.data[i] = w.data[i]! * s[i % k]!;
    bias[Math.floor(i / k)]! += w.data[i]! * t[i % k]!;
  }
  setWeights(g, gemm, 1, weight, bias);
}

/**
 * Conv -> Mul(per-output-channel or scalar constant), or Gemm -> Mul(scalar): scale the weights.
 * Covers layer scales, the attention's 1/sqrt(D), and the 0.5 of the averaged heads.
 */
function foldScaleAfterLinear(g: Graph): boolean {
  for (const lin of g.nodes) {
    const isConv = lin.op === 'Conv' && isConst(g, lin.inputs[1]);
    if (!isConv && !(lin.op === 'Gemm' && isTransBGemm(g, lin))) continue;
    const mul = soleConsumer(g, lin.outputs[0]!);
    if (mul?.op !== 'Mul') continue;
    const other = mul.inputs.find((i) => i !== lin.outputs[0]);
    if (!isConst(g, other) || mul.inputs.filter((i) => i === lin.outputs[0]).length !== 1) continue;
    const w = floatInit(g, lin.inputs[1]!);
    const scale = channelScale(floatInit(g, other), w.shape[0]!, isConv);
    if (!scale) continue;
    const perOut = numel(w.shape) / w.shape[0]!;
    const weight = float32(w.shape, w.data.map((v, i) => v * scale[Math.floor(i / perOut)]!));
    const bias = biasOf(g, lin, 2, w.shape[0]!).map((v, o) => v * scale[o]!);
    setWeights(g, lin, 1, weight, bias);
    bypass(g, lin, mul);
    return true;
  }
  return false;
}

/** A constant that scales output channels: a scalar, or (C,1,1) / (1,C,1,1) for convs. */
function channelScale(c: FloatTensor, channels: number, isConv: boolean): Float32Array | undefined {
  if (c.data.length === 1) return new Float32Array(channels).fill(c.data[0]!);
  const dims = c.shape.filter((d) => d !== 1);
  const perChannel = isConv && dims.length === 1 && dims[0] === channels && c.shape.length <= 4 && c.shape.at(-1) === 1;
  return perChannel ? c.data : undefined;
}

/** Add(Gemm(x, W1, b1), Gemm(x, W2, b2)) = Gemm(x, W1 + W2, b1 + b2): the two heads become one. */
function mergeGemmSums(g: Graph): boolean {
  for (const add of g.nodes) {
    if (add.op !== 'Add') continue;
    const [a, b] = add.inputs.map((i) => g.nodes.find((n) => n.outputs[0] === i));
    if (a?.op !== 'Gemm' || b?.op !== 'Gemm' || a === b || a.inputs[0] !== b.inputs[0]) continue;
    if (!isTransBGemm(g, a) || !isTransBGemm(g, b) || soleConsumer(g, a.outputs[0]!) !== add || soleConsumer(g, b.outputs[0]!) !== add) continue;
    const wa = floatInit(g, a.inputs[1]!);
    const wb = floatInit(g, b.inputs[1]!);
    if (wa.shape.join() !== wb.shape.join()) continue;
    const m = wa.shape[0]!;
    const weight = float32(wa.shape, wa.data.map((v, i) => v + wb.data[i]!));
    const biasB = biasOf(g, b, 2, m);
    setWeights(g, a, 1, weight, biasOf(g, a, 2, m).map((v, i) => v + biasB[i]!));
    remove(g, b);
    bypass(g, a, add);
    return true;
  }
  return false;
}

/** Identity nodes vanish; one that names a graph output renames its producer's output instead. */
function removeIdentities(g: Graph): boolean {
  for (const id of g.nodes) {
    if (id.op !== 'Identity') continue;
    const input = id.inputs[0]!;
    const producer = g.nodes.find((n) => n.outputs.includes(input));
    if (!producer || isOutput(g, input) || consumers(g, input).length !== 1) continue;
    producer.outputs[producer.outputs.indexOf(input)] = id.outputs[0]!;
    remove(g, id);
    return true;
  }
  return false;
}

function removeDeadNodes(g: Graph): void {
  const live = new Set(g.outputs.map((o) => o.name));
  const kept: Node[] = [];
  for (const node of [...g.nodes].reverse()) {
    if (!node.outputs.some((o) => live.has(o))) continue;
    kept.push(node);
    for (const i of node.inputs) live.add(i);
  }
  g.nodes = kept.reverse();
}

// ---------------------------------------------------------------- for INT8 graphs

/**
 * x * 0.5 * (1 + erf(x / sqrt 2)) -> one com.microsoft Gelu (the kernel ONNX Runtime's own GELU
 * fusion picks). Float graphs get that fusion from ONNX Runtime; quantized ones do not, because
 * it duplicates the DequantizeLinear that feeds the pattern's two readers of x.
 */
export function fuseGelu(graph: Graph): Graph {
  const g: Graph = { ...graph, nodes: [...graph.nodes] };
  for (const div of graph.nodes) {
    const pattern = geluPattern(g, div);
    if (!pattern) continue;
    const [last, ...rest] = pattern.nodes.reverse();
    g.nodes[g.nodes.indexOf(last!)] = { op: 'Gelu', domain: MS_DOMAIN, inputs: [pattern.x], outputs: [last!.outputs[0]!], attrs: {} };
    for (const n of rest) remove(g, n);
  }
  return g;
}

/** The five nodes of an erf GELU starting at `div` (in graph order), and its input. */
function geluPattern(g: Graph, div: Node): { nodes: Node[]; x: string } | undefined {
  const x = div.inputs[0]!;
  if (div.op !== 'Div' || !isScalar(g, div.inputs[1], Math.SQRT2)) return undefined;
  const erf = soleConsumer(g, div.outputs[0]!);
  const add = erf?.op === 'Erf' ? soleConsumer(g, erf.outputs[0]!) : undefined;
  if (add?.op !== 'Add' || !add.inputs.some((i) => isScalar(g, i, 1))) return undefined;
  const mul = soleConsumer(g, add.outputs[0]!);
  if (mul?.op !== 'Mul' || !mul.inputs.includes(x)) return undefined;
  const half = soleConsumer(g, mul.outputs[0]!);
  if (half?.op !== 'Mul' || !half.inputs.some((i) => isScalar(g, i, 0.5))) return undefined;
  return { nodes: [div, erf!, add, mul, half], x };
}

function isScalar(g: Graph, name: string | undefined, value: number): boolean {
  if (!isConst(g, name)) return false;
  const t = g.initializers.get(name)!;
  return t.dtype === 'float32' && t.data.length === 1 && Math.abs(t.data[0]! - value) <= 1e-6 * Math.abs(value);
}

// ---------------------------------------------------------------- counting

/**
 * Multiply-accumulates of one image (batch 1): convolutions, Gemm and MatMul, the convention of
 * the papers' GMACs (fvcore-style; normalizations and elementwise ops are not counted). Nodes
 * computed from weights and constants alone (Semantic FPN's composite kernels) run once, when
 * ONNX Runtime folds them at load, and are not counted.
 */
export function countMacs(graph: Graph): number {
  const dims = (name: string): number[] => (graph.shapes.get(name) ?? []).map((d) => (typeof d === 'number' ? d : 1));
  const constant = new Set([...graph.params.keys(), ...graph.initializers.keys()]);
  let macs = 0;
  for (const node of graph.nodes) {
    if (node.inputs.every((x) => x === '' || constant.has(x))) {
      node.outputs.forEach((o) => constant.add(o));
      continue;
    }
    const out = dims(node.outputs[0]!);
    if (node.op === 'Conv') {
      const w = dims(node.inputs[1]!);
      macs += numel(out) * numel(w.slice(1));
    } else if (node.op === 'Gemm') {
      const w = dims(node.inputs[1]!);
      macs += numel(out) * (w[1] ?? 0);
    } else if (node.op === 'MatMul') {
      macs += numel(out) * (dims(node.inputs[0]!).at(-1) ?? 0);
    }
  }
  return macs;
}

// ---------------------------------------------------------------- cutting a graph in two

const BOOL_OPS = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Not', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
const CAST_TYPES: Record<number, ValueType> = { 1: 'float32', 2: 'uint8', 4: 'uint16', 7: 'int64', 9: 'bool' };

/** The element type of every value: inputs, parameters and constants as declared, node outputs by op (else their first data input's). */
function valueTypes(g: Graph): Map<string, ValueType | 'other'> {
  const types = new Map<string, ValueType | 'other'>();
  for (const v of g.inputs) types.set(v.name, v.dtype ?? 'float32');
  for (const key of g.params.keys()) types.set(key, 'float32');
  for (const [name, t] of g.initializers) types.set(name, t.dtype === 'float32' || t.dtype === 'int64' || t.dtype === 'uint8' ? t.dtype : 'other');
  for (const node of g.nodes) {
    node.outputs.forEach((out, i) => {
      let t: ValueType | 'other';
      if (node.op === 'Cast') t = CAST_TYPES[node.attrs.to?.kind === 'int' ? node.attrs.to.value : 0] ?? 'other';
      else if (BOOL_OPS.has(node.op)) t = 'bool';
      else if (INT64_OPS.has(node.op) || (node.op === 'TopK' && i === 1)) t = 'int64';
      else t = types.get(node.inputs[node.op === 'Where' ? 1 : 0]!) ?? 'float32';
      types.set(out, t);
    });
  }
  return types;
}

/**
 * `graph` cut after its first `at` nodes into two graphs run one after the other: `front` (those
 * nodes; the graph inputs they read; outputs `frontOutputs` and then every value of theirs the rest
 * reads) and `back` (the rest; the graph inputs it reads plus those values, `held`; the graph's
 * outputs but `frontOutputs`). What the front computes is computed once: the back is fed it.
 */
export function cutGraph(graph: Graph, at: number, frontOutputs: string[]): { front: Graph; back: Graph; held: string[] } {
  const frontNodes = graph.nodes.slice(0, at);
  const backNodes = graph.nodes.slice(at);
  const made = new Set(frontNodes.flatMap((n) => n.outputs));
  const exposed = new Set(frontOutputs);
  const read = new Set([...backNodes.flatMap((n) => n.inputs), ...graph.outputs.filter((o) => !exposed.has(o.name)).map((o) => o.name)]);
  const held = [...made].filter((v) => read.has(v) && !exposed.has(v));
  const types = valueTypes(graph);
  const value = (name: string): GraphValue => {
    const dtype = types.get(name);
    if (dtype === 'other') throw new Error(`cutGraph: ${name} has an element type a graph input cannot take`);
    const shape = graph.shapes.get(name);
    if (!shape) throw new Error(`cutGraph: ${name} has no known shape`);
    return dtype && dtype !== 'float32' ? { name, shape, dtype } : { name, shape };
  };
  const readBy = (nodes: Node[]) => new Set(nodes.flatMap((n) => n.inputs));
  const frontReads = readBy(frontNodes);
  const part = (nodes: Node[], inputs: GraphValue[], outputs: GraphValue[]): Graph => ({ ...graph, nodes, inputs, outputs });
  return {
    front: part(frontNodes, graph.inputs.filter((v) => frontReads.has(v.name)), [...frontOutputs, ...held].map(value)),
    back: part(backNodes, [...graph.inputs.filter((v) => read.has(v.name)), ...held.map(value)], graph.outputs.filter((o) => !exposed.has(o.name))),
    held,
  };
}
