/**
 * ONNX operators beyond the model layers, for graphs whose sizes depend on the data (detection:
 * dynamic image sizes, variable numbers of boxes). Thin wrappers over GraphBuilder: each appends
 * one node and records the output's shape, with a symbolic dimension (a string) wherever the size
 * is only known when the graph runs. The graph IR does not track element types; ONNX Runtime does,
 * so every wrapper says in its comment what it takes and gives.
 */
import { attr, type Attr, type Dim, type GraphBuilder, type Shape } from './graph.js';

/** ONNX TensorProto element types the detection graphs cast between. */
export const ONNX_TYPE = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11 } as const;
export type OnnxType = keyof typeof ONNX_TYPE;

/** A dimension known only at run time: symbolic, named for what it counts. */
export function symbolic(name: string): Dim {
  return name;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** A float scalar constant (shape []). */
export function scalar(b: GraphBuilder, value: number): string {
  return b.constant([value]);
}

/** An int64 scalar constant (shape []). */
export function intScalar(b: GraphBuilder, value: number): string {
  return b.ints([value], []);
}

/** Shape of x as an int64 vector; with `start`/`end`, that slice of it. */
export function shapeOf(b: GraphBuilder, x: string, start?: number, end?: number): string {
  const rank = b.shape(x).length;
  const attrs: Record<string, Attr> = {};
  if (start !== undefined) attrs.start = attr.int(start);
  if (end !== undefined) attrs.end = attr.int(end);
  const s = normAxis(start ?? 0, rank);
  const e = end === undefined ? rank : normAxis(end, rank);
  return b.node('Shape', [x], [e - s], attrs);
}

/** Dimension `axis` of x as an int64 scalar. */
export function dimOf(b: GraphBuilder, x: string, axis: number): string {
  const rank = b.shape(x).length;
  const a = normAxis(axis, rank);
  return squeeze(b, shapeOf(b, x, a, a + 1), [0]);
}

export function cast(b: GraphBuilder, x: string, to: OnnxType): string {
  return b.node('Cast', [x], b.shape(x), { to: attr.int(ONNX_TYPE[to]) });
}

export function unsqueeze(b: GraphBuilder, x: string, axes: number[]): string {
  const out = [...b.shape(x)];
  const rank = out.length + axes.length;
  for (const a of axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q)) out.splice(a, 0, 1);
  return b.node('Unsqueeze', [x, b.ints(axes)], out);
}

export function squeeze(b: GraphBuilder, x: string, axes: number[]): string {
  const shape = b.shape(x);
  const drop = new Set(axes.map((a) => normAxis(a, shape.length)));
  return b.node('Squeeze', [x, b.ints(axes)], shape.filter((_, i) => !drop.has(i)));
}

/** Concat along `axis`; the output's axis is the sum when every part's is known. */
export function concat(b: GraphBuilder, xs: string[], axis: number, name = 'concat'): string {
  if (xs.length === 1) return xs[0]!;
  const shapes = xs.map((x) => b.shape(x));
  const a = normAxis(axis, shapes[0]!.length);
  const parts = shapes.map((s) => s[a]);
  const total: Dim = parts.every((d) => typeof d === 'number') ? (parts as number[]).reduce((p, q) => p + q, 0) : symbolic(name);
  const out = shapes[0]!.map((d, i) => (i === a ? total : d));
  return b.node('Concat', xs, out, { axis: attr.int(axis) });
}

/** Gather along `axis` with int64 indices: shape x[:axis] + indices + x[axis+1:]. */
export function gather(b: GraphBuilder, x: string, indices: string, axis = 0): string {
  const shape = b.shape(x);
  const a = normAxis(axis, shape.length);
  return b.node('Gather', [x, indices], [...shape.slice(0, a), ...b.shape(indices), ...shape.slice(a + 1)], { axis: attr.int(a) });
}

/** GatherElements: the output has the indices' shape. */
export function gatherElements(b: GraphBuilder, x: string, indices: string, axis: number): string {
  return b.node('GatherElements', [x, indices], b.shape(indices), { axis: attr.int(axis) });
}

/** GatherND with `batchDims` leading batch axes: indices (..., k) pick slices of x. */
export function gatherND(b: GraphBuilder, x: string, indices: string, batchDims = 0): string {
  const xs = b.shape(x);
  const is = b.shape(indices);
  const k = is.at(-1) as number;
  return b.node('GatherND', [x, indices], [...is.slice(0, -1), ...xs.slice(batchDims + k)], { batch_dims: attr.int(batchDims) });
}

/** ScatterND: a copy of `data` with `updates` written at `indices` (..., k). */
export function scatterND(b: GraphBuilder, data: string, indices: string, updates: string): string {
  return b.node('ScatterND', [data, indices, updates], b.shape(data));
}

/** ScatterElements along `axis`. */
export function scatterElements(b: GraphBuilder, data: string, indices: string, updates: string, axis: number): string {
  return b.node('ScatterElements', [data, indices, updates], b.shape(data), { axis: attr.int(axis) });
}

/**
 * Slice with constant starts/ends (int64 values; use a large end for "to the end") on `axes`,
 * or value names for run-time bounds. `outDims` gives the sliced axes' sizes when known.
 */
export function slice(
  b: GraphBuilder, x: string, starts: number[] | string, ends: number[] | string, axes: number[], steps?: number[], outDims?: Dim[],
): string {
  const shape = [...b.shape(x)];
  axes.forEach((axis, i) => {
    const a = normAxis(axis, shape.length);
    const known = typeof starts !== 'string' && typeof ends !== 'string' && typeof shape[a] === 'number';
    let d: Dim = outDims?.[i] ?? symbolic('slice');
    if (outDims === undefined && known) {
      const n = shape[a] as number;
      const step = steps?.[i] ?? 1;
      const clampIndex = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
      d = Math.max(0, Math.ceil((clampIndex((ends as number[])[i]!) - clampIndex((starts as number[])[i]!)) / step));
    }
    shape[a] = d;
  });
  const inputs = [x, typeof starts === 'string' ? starts : b.ints(starts), typeof ends === 'string' ? ends : b.ints(ends), b.ints(axes)];
  if (steps) inputs.push(b.ints(steps));
  return b.node('Slice', inputs, shape);
}

/** x[..., i] along `axis` (the axis dropped). */
export function pick(b: GraphBuilder, x: string, index: number, axis: number): string {
  return squeeze(b, slice(b, x, [index], [index + 1], [axis]), [axis]);
}

export function transpose(b: GraphBuilder, x: string, perm: number[]): string {
  const shape = b.shape(x);
  return b.node('Transpose', [x], perm.map((p) => shape[p]!), { perm: attr.ints(perm) });
}

/** Reshape to `shape` (0 copies the input's dimension, -1 is inferred); `outShape` records what it is. */
export function reshapeTo(b: GraphBuilder, x: string, shape: number[] | string, outShape: Shape): string {
  return b.node('Reshape', [x, typeof shape === 'string' ? shape : b.ints(shape)], outShape);
}

/** Expand to a run-time shape (an int64 vector). */
export function expand(b: GraphBuilder, x: string, shape: string, outShape: Shape): string {
  return b.node('Expand', [x, shape], outShape);
}

export function where(b: GraphBuilder, condition: string, x: string, y: string): string {
  const shapes = [b.shape(condition), b.shape(x), b.shape(y)];
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const ds = shapes.map((s) => s[s.length - rank + i] ?? 1);
    out.push(ds.find((d) => d !== 1) ?? 1);
  }
  return b.node('Where', [condition, x, y], out);
}

export type Comparison = 'Less' | 'LessOrEqual' | 'Greater' | 'GreaterOrEqual' | 'Equal';

/** Elementwise comparison (numpy broadcasting) -> bool. */
export function compare(b: GraphBuilder, op: Comparison, x: string, y: string): string {
  return b.node(op, [x, y], broadcastLoose(b.shape(x), b.shape(y)));
}

export function and(b: GraphBuilder, x: string, y: string): string {
  return b.node('And', [x, y], broadcastLoose(b.shape(x), b.shape(y)));
}

export function not(b: GraphBuilder, x: string): string {
  return b.node('Not', [x], b.shape(x));
}

/** Min / Max of two values with broadcasting (ONNX Min/Max are variadic). */
export function minimum(b: GraphBuilder, x: string, y: string): string {
  return b.node('Min', [x, y], broadcastLoose(b.shape(x), b.shape(y)));
}

export function maximum(b: GraphBuilder, x: string, y: string): string {
  return b.node('Max', [x, y], broadcastLoose(b.shape(x), b.shape(y)));
}

/** Broadcasting that accepts symbolic dimensions (a symbol wins over 1; two symbols: the first). */
export function broadcastLoose(a: Shape, c: Shape): Shape {
  const rank = Math.max(a.length, c.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const dc = c[c.length - rank + i] ?? 1;
    out.push(da === 1 ? dc : da);
  }
  return out;
}

/** Elementwise arithmetic with broadcasting, symbolic dimensions allowed. */
export function arith(b: GraphBuilder, op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow', x: string, y: string): string {
  return b.node(op, [x, y], broadcastLoose(b.shape(x), b.shape(y)));
}

export function unary(b: GraphBuilder, op: 'Exp' | 'Log' | 'Sqrt' | 'Floor' | 'Ceil' | 'Round' | 'Sigmoid' | 'Relu' | 'Neg' | 'Abs', x: string): string {
  return b.node(op, [x], b.shape(x));
}

export function reduce(b: GraphBuilder, op: 'ReduceMax' | 'ReduceMin' | 'ReduceSum', x: string, axes: number[], keepdims: boolean): string {
  const shape = b.shape(x);
  const norm = axes.map((a) => normAxis(a, shape.length));
  const out = shape.flatMap((d, i) => (norm.includes(i) ? (keepdims ? [1] : []) : [d]));
  // Opset 17: ReduceSum takes its axes as an input, ReduceMax / ReduceMin as an attribute.
  if (op === 'ReduceSum') return b.node(op, [x, b.ints(axes)], out, { keepdims: attr.int(keepdims ? 1 : 0) });
  return b.node(op, [x], out, { axes: attr.ints(axes), keepdims: attr.int(keepdims ? 1 : 0) });
}

/** int64 range [start, limit) with step `delta` (scalars; numbers become constants). */
export function range(b: GraphBuilder, start: string | number, limit: string | number, delta: string | number = 1, name = 'range'): string {
  const s = (v: string | number) => (typeof v === 'number' ? intScalar(b, v) : v);
  return b.node('Range', [s(start), s(limit), s(delta)], [symbolic(name)]);
}

/** The top `k` (an int64 vector [k]) along `axis`, largest first: [values, int64 indices]. */
export function topK(b: GraphBuilder, x: string, k: string, axis: number, name = 'k'): [string, string] {
  const shape = [...b.shape(x)];
  shape[normAxis(axis, shape.length)] = symbolic(name);
  const [values, indices] = b.nodeOutputs('TopK', [x, k], [shape, shape], { axis: attr.int(axis), largest: attr.int(1), sorted: attr.int(1) });
  return [values!, indices!];
}

/** Indices of the non-zero (true) elements: int64 (rank, count), in row-major order. */
export function nonZero(b: GraphBuilder, x: string, name = 'count'): string {
  return b.node('NonZero', [x], [b.shape(x).length, symbolic(name)]);
}

/** Indices of the true elements of a 1-D bool vector: int64 (count). */
export function indicesWhere(b: GraphBuilder, mask: string, name = 'count'): string {
  return squeeze(b, nonZero(b, mask, name), [0]);
}

/** Pad with zeros: `pads` an int64 vector (begin..., end...), or numbers. */
export function padZeros(b: GraphBuilder, x: string, pads: string | number[], outShape: Shape): string {
  return b.node('Pad', [x, typeof pads === 'string' ? pads : b.ints(pads)], outShape, { mode: attr.string('constant') });
}

export function matmul(b: GraphBuilder, x: string, y: string): string {
  const xs = b.shape(x);
  const ys = b.shape(y);
  const batch = broadcastLoose(xs.slice(0, -2), ys.slice(0, -2));
  return b.node('MatMul', [x, y], [...batch, xs.at(-2)!, ys.at(-1)!]);
}

/** A run-time shape filled with one value: a float32 or int64 scalar expanded. */
export function filled(b: GraphBuilder, shape: string, value: number, dtype: 'float32' | 'int64', outShape: Shape): string {
  return expand(b, dtype === 'float32' ? scalar(b, value) : intScalar(b, value), shape, outShape);
}

/** A value as another name (graph outputs get their own names). */
export function identity(b: GraphBuilder, x: string, name: string, shape: Shape = b.shape(x)): string {
  return b.node('Identity', [x], shape, {}, name);
}
