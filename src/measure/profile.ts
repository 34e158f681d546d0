/**
 * Reading ONNX Runtime's profiler output (the JSON trace that `profilePrefix` makes it write): time
 * per operator class, and, for INT8 graphs, which of the nodes meant to run on integers ONNX Runtime
 * fused into integer kernels (QLinearConv, QLinearAdd, QGemm, ...) and which it left in float.
 */
import { onnxNodeName, type Graph, type Node } from '../graph/graph.js';

type ShapeList = Record<string, number[]>[];

/** One event of ONNX Runtime's trace (chrome://tracing format); only kernel events are used. */
export interface ProfileEvent {
  cat?: string;
  name: string;
  dur: number;
  /** Start, microseconds. */
  ts?: number;
  args?: { op_name?: string; input_type_shape?: ShapeList; output_type_shape?: ShapeList };
}

/** Where a kernel's time goes in the tables: integer kernels, (de)quantization, layout changes, float ops. */
export type OpGroup = 'integer' | 'quantize' | 'layout' | 'float';

export interface OpClass {
  /** Kernel and, for convolutions, the kind: 'QLinearConv 1x1', 'Conv depthwise 3x3', 'Gelu', ... */
  name: string;
  group: OpGroup;
  /** Milliseconds per run: each node's median over the profiled runs, summed over the class. */
  ms: number;
  nodes: number;
  /** Multiply-accumulates per run (convolutions and Gemms, from the graph). */
  macs: number;
}

interface KernelNode { op: string; times: number[]; event: ProfileEvent }

const SUFFIXES = /(_token_\d+)?(_nchwc)?(_token_\d+)?_kernel_time$/;

/** Kernel time per node (microseconds, one entry per run), keyed by the node's base name. */
export function kernelNodes(events: readonly ProfileEvent[]): Map<string, KernelNode> {
  const nodes = new Map<string, KernelNode>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const key = e.name.replace(/_kernel_time$/, '');
    const entry = nodes.get(key) ?? { op: e.args?.op_name ?? '?', times: [], event: e };
    entry.times.push(e.dur);
    nodes.set(key, entry);
  }
  return nodes;
}

function groupOf(op: string): OpGroup {
  if (op === 'QuantizeLinear' || op === 'DequantizeLinear' || op === 'DynamicQuantizeLinear') return 'quantize';
  if (op === 'Transpose' || op === 'ReorderInput' || op === 'ReorderOutput') return 'layout';
  if (op.startsWith('QLinear') || op === 'QGemm' || op.endsWith('Integer') || op.endsWith('IntegerToFloat')) return 'integer';
  return 'float';
}

/** 'depthwise 3x3', '1x1', '3x3' for a Conv node of `graph`. */
function convKind(graph: Graph, node: Node): string {
  const [o, perGroup, kh = 1, kw = 1] = graph.shapes.get(node.inputs[1]!) as number[];
  const group = node.attrs.group?.kind === 'int' ? node.attrs.group.value : 1;
  return group > 1 && perGroup === 1 && group === o ? `depthwise ${kh}x${kw}` : `${kh}x${kw}`;
}

interface NodeInfo { node: Node; index: number; macs: number }

/**
 * The graph's nodes by every name a profile may give them: the name `toOnnx` gave the node, and
 * the names of its outputs (ONNX Runtime names rewritten nodes, such as NCHWc convolutions, after
 * their output; a Relu fused into a conv lends the conv its output's name).
 */
function nodesByName(graph: Graph): Map<string, NodeInfo> {
  const byName = new Map<string, NodeInfo>();
  graph.nodes.forEach((node, index) => {
    const info = { node, index, macs: macsOf(graph, node) };
    byName.set(onnxNodeName(node, index), info);
    for (const o of node.outputs) byName.set(o, info);
    if (node.op === 'Relu') {
      const producer = byName.get(node.inputs[0]!);
      if (producer?.node.op === 'Conv') byName.set(node.outputs[0]!, producer);
    }
  });
  return byName;
}

function macsOf(graph: Graph, node: Node): number {
  const dims = (v: string) => (graph.shapes.get(v) ?? []).map((d) => (typeof d === 'number' ? d : 1));
  const count = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
  if (node.op === 'Conv') return count(dims(node.outputs[0]!)) * count(dims(node.inputs[1]!).slice(1));
  if (node.op === 'Gemm') return count(dims(node.outputs[0]!)) * (dims(node.inputs[1]!)[1] ?? 0);
  return 0;
}

/** The graph node a kernel event belongs to, if the name says. */
function graphNode(byName: Map<string, NodeInfo>, key: string): NodeInfo | undefined {
  return byName.get(key) ?? byName.get(key.replace(SUFFIXES, '').replace(/(_token_\d+)$/, ''));
}

/** The node's own name with ONNX Runtime's suffixes removed. */
function baseName(key: string): string {
  return `${key}_kernel_time`.replace(SUFFIXES, '');
}

/**
 * Time per operator class. `graph` is the graph the session was made from (the ONNX it ran, as
 * our IR): it names the kind of each convolution, whose weights ONNX Runtime has repacked.
 * `batch` scales the per-image MAC counts of the graph.
 */
export function operatorTable(events: readonly ProfileEvent[], graph: Graph, batch = 1): OpClass[] {
  const byName = nodesByName(graph);
  const classes = new Map<string, OpClass>();
  for (const [key, k] of kernelNodes(events)) {
    const info = graphNode(byName, baseName(key));
    const isConv = k.op === 'Conv' || k.op === 'FusedConv' || k.op === 'QLinearConv' || k.op === 'NhwcFusedConv';
    const name = isConv && info?.node.op === 'Conv' ? `${k.op === 'QLinearConv' ? 'QLinearConv' : 'Conv'} ${convKind(graph, info.node)}` : k.op;
    const c = classes.get(name) ?? { name, group: groupOf(k.op), ms: 0, nodes: 0, macs: 0 };
    c.ms += median(k.times) / 1000;
    c.nodes++;
    if (isConv || k.op === 'Gemm' || k.op === 'QGemm') c.macs += (info?.macs ?? 0) * batch;
    classes.set(name, c);
  }
  return [...classes.values()].sort((a, b) => b.ms - a.ms);
}

/** Milliseconds per group (integer, quantize, layout, float). */
export function groupTotals(table: readonly OpClass[]): Record<OpGroup, number> {
  const totals: Record<OpGroup, number> = { integer: 0, quantize: 0, layout: 0, float: 0 };
  for (const c of table) totals[c.group] += c.ms;
  return totals;
}

export interface FusionReport {
  /** Nodes of the QDQ graph that read dequantized activations: each should become an integer kernel. */
  expected: number;
  /** kernel -> how many of those nodes ran as it. */
  fused: Record<string, number>;
  /** Those that ran as something else: 'Conv_12 ran as Conv'. */
  notFused: string[];
}

/**
 * Which QDQ node units ONNX Runtime fused. `graph` is the QDQ graph the session was made from; a
 * node whose every input is a DequantizeLinear output and whose output goes to a QuantizeLinear
 * (through a Relu or not) or is a graph output is a node unit, meant to run as an integer kernel.
 */
export function fusionReport(events: readonly ProfileEvent[], graph: Graph): FusionReport {
  const dequantized = new Set(graph.nodes.filter((n) => n.op === 'DequantizeLinear').map((n) => n.outputs[0]!));
  const quantized = new Set(graph.nodes.filter((n) => n.op === 'QuantizeLinear').map((n) => n.inputs[0]!));
  // A Relu in front of the QuantizeLinear folds into it (zero point 0).
  for (const n of graph.nodes) if (n.op === 'Relu' && quantized.has(n.outputs[0]!)) quantized.add(n.inputs[0]!);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const kernels = new Map<string, string>();
  for (const [key, k] of kernelNodes(events)) kernels.set(baseName(key), k.op);
  const report: FusionReport = { expected: 0, fused: {}, notFused: [] };
  graph.nodes.forEach((node, index) => {
    if (node.op === 'DequantizeLinear' || node.op === 'QuantizeLinear') return;
    const unit = node.inputs.every((i) => i === '' || dequantized.has(i)) && (quantized.has(node.outputs[0]!) || outputs.has(node.outputs[0]!));
    if (!unit) return;
    report.expected++;
    const name = onnxNodeName(node, index);
    const kernel = kernels.get(name);
    if (kernel && groupOf(kernel) === 'integer') report.fused[kernel] = (report.fused[kernel] ?? 0) + 1;
    else report.notFused.push(`${name} (${node.op}) ran as ${kernel ?? 'part of another kernel'}`);
  });
  return report;
}

/** A markdown table of `table` (the classes above 0.5% of the time). */
export function markdownTable(table: readonly OpClass[]): string {
  const total = table.reduce((a, c) => a + c.ms, 0);
  const lines = ['| operators | group | nodes | ms | share | GMAC/s |', '| --- | --- | --- | --- | --- | --- |'];
  for (const c of table) {
    if (c.ms / total < 0.005) continue;
    lines.push(`| ${c.name} | ${c.group} | ${c.nodes} | ${c.ms.toFixed(2)} | ${((100 * c.ms) / total).toFixed(1)}% | ${c.macs ? (c.macs / c.ms / 1e6).toFixed(1) : ''} |`);
  }
  return lines.join('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}
