/**
 * Reverse-mode differentiation of the graph IR. One table maps each op type to its gradient rule;
 * a rule appends ONNX nodes computing the gradients of the op's inputs from the gradient of its
 * output. The result is one graph that ONNX Runtime runs: loss, outputs and every gradient.
 * An op without a rule is an error naming it.
 */
import { SwiftFormerError } from '../core/errors.js';
import { attr, GraphBuilder, type Graph, type Node, type Shape } from './graph.js';
import { interpolationMatrix, resizeModeOf, transposedInterpolationMatrix } from './interpolate.js';

interface Ctx {
  b: GraphBuilder;
  shape(name: string): number[];
}

/** Gradients of a node's inputs (undefined: that input needs none) given the output's gradient. */
type Rule = (ctx: Ctx, node: Node, dy: string) => (string | undefined)[];

function intsAttr(node: Node, name: string, fallback: number[]): number[] {
  const a = node.attrs[name];
  return a?.kind === 'ints' ? a.value : fallback;
}

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a?.kind === 'int' ? a.value : fallback;
}

/** Sums a broadcast gradient back down to the shape of the operand it came from. */
function reduceTo(ctx: Ctx, g: string, target: number[]): string {
  const gs = ctx.shape(g);
  if (gs.join() === target.join()) return g;
  const lead = gs.length - target.length;
  const axes = gs.flatMap((d, i) => (i < lead || (target[i - lead] === 1 && d !== 1) ? [i] : []));
  const summed = axes.length > 0 ? ctx.b.reduce('ReduceSum', g, axes, true) : g;
  return ctx.b.reshape(summed, target);
}

function binaryInputs(ctx: Ctx, node: Node): [string, string, number[], number[]] {
  const [a, b] = node.inputs as [string, string];
  return [a, b, ctx.shape(a), ctx.shape(b)];
}

/** Shape of a MatMul gradient: the broadcast batch axes of `dy`, the matrix axes of `operand`. */
function broadcastBatch(ctx: Ctx, dy: string, operand: number[]): number[] {
  const d = ctx.shape(dy);
  return [...d.slice(0, -2), ...operand.slice(-2)];
}

/** Broadcasts a kept-dims reduction gradient back over the reduced axes. */
function expandTo(ctx: Ctx, g: string, keptShape: number[], target: number[]): string {
  const kept = ctx.b.reshape(g, keptShape);
  return ctx.b.node('Expand', [kept, ctx.b.ints(target)], target);
}

function reduceAxes(ctx: Ctx, node: Node): { axes: number[]; kept: number[]; count: number } {
  const x = ctx.shape(node.inputs[0]!);
  const raw = node.op === 'ReduceSum' ? constInts(ctx, node.inputs[1]!) : intsAttr(node, 'axes', x.map((_, i) => i));
  const axes = raw.map((a) => (a < 0 ? a + x.length : a));
  const kept = x.map((d, i) => (axes.includes(i) ? 1 : d));
  const count = axes.reduce((n, a) => n * x[a]!, 1);
  return { axes, kept, count };
}

function constInts(ctx: Ctx, name: string): number[] {
  const t = ctx.b.graph.initializers.get(name);
  if (t?.dtype !== 'int64') throw new Error(`${name} is not an int64 constant`);
  return Array.from(t.data, Number);
}

const neg = (ctx: Ctx, x: string) => ctx.b.unary('Neg', x);
const mul = (ctx: Ctx, a: string, b: string) => ctx.b.binary('Mul', a, b);

// ---------------------------------------------------------------- convolution

interface ConvGeometry { stride: number; pad: number; group: number; k: number; x: number[]; w: number[]; y: number[] }

function convGeometry(ctx: Ctx, node: Node): ConvGeometry {
  const pads = intsAttr(node, 'pads', [0, 0, 0, 0]);
  const strides = intsAttr(node, 'strides', [1, 1]);
  const w = ctx.shape(node.inputs[1]!);
  if (new Set(pads).size > 1 || strides[0] !== strides[1] || w[2] !== w[3] || intsAttr(node, 'dilations', [1, 1]).some((d) => d !== 1)) {
    throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for Conv with pads ${pads}, strides ${strides}, kernel ${w.slice(2)}: only square symmetric ones`);
  }
  return { stride: strides[0]!, pad: pads[0]!, group: intAttr(node, 'group', 1), k: w[2]!, x: ctx.shape(node.inputs[0]!), w, y: ctx.shape(node.outputs[0]!) };
}

function convAttrs(k: number | [number, number], stride: number, pad: number, group: number, dilation = 1) {
  const [kh, kw] = typeof k === 'number' ? [k, k] : k;
  return {
    kernel_shape: attr.ints([kh, kw]), strides: attr.ints([stride, stride]), pads: attr.ints([pad, pad, pad, pad]),
    dilations: attr.ints([dilation, dilation]), group: attr.int(group),
  };
}

function convInputGrad(ctx: Ctx, node: Node, dy: string, geo: ConvGeometry): string {
  const { b } = ctx;
  const [, weight] = node.inputs as [string, string];
  const { stride, pad, group, k, x, w } = geo;
  if (k === 1 && stride === 1 && pad === 0 && group === 1) {
    // dX = W^T dy: a 1x1 conv with the weight's two channel axes swapped.
    const wt = b.node('Transpose', [weight], [w[1]!, w[0]!, 1, 1], { perm: attr.ints([1, 0, 2, 3]) });
    return b.node('Conv', [dy, wt], x, convAttrs(1, 1, 0, 1));
  }
  if (stride === 1 && group === w[0] && w[1] === 1 && 2 * pad === k - 1) {
    // Depthwise, same padding: correlate with the spatially flipped kernel.
    const flipped = b.node('Slice', [weight, b.ints([-1, -1]), b.ints([-k - 1, -k - 1]), b.ints([2, 3]), b.ints([-1, -1])], w);
    return b.node('Conv', [dy, flipped], x, convAttrs(k, 1, pad, group));
  }
  if (stride === 1 && group === 1 && 2 * pad === k - 1) {
    // Dense, same padding: correlate with the flipped kernel, channel axes swapped. A forward Conv
    // (ONNX Runtime's NCHWc kernels) where ConvTranspose ran about 1.6x slower on the FPN's 3x3 convs.
    const wt = b.node('Transpose', [weight], [w[1]!, w[0]!, k, k], { perm: attr.ints([1, 0, 2, 3]) });
    const flipped = b.node('Slice', [wt, b.ints([-1, -1]), b.ints([-k - 1, -k - 1]), b.ints([2, 3]), b.ints([-1, -1])], [w[1]!, w[0]!, k, k]);
    return b.node('Conv', [dy, flipped], x, convAttrs(k, 1, pad, 1));
  }
  const outPad = x[2]! - ((geo.y[2]! - 1) * stride - 2 * pad + k);
  const outPadW = x[3]! - ((geo.y[3]! - 1) * stride - 2 * pad + k);
  return b.node('ConvTranspose', [dy, weight], x, { ...convAttrs(k, stride, pad, group), output_padding: attr.ints([outPad, outPadW]) });
}

function convWeightGrad(ctx: Ctx, node: Node, dy: string, geo: ConvGeometry): string {
  const { b } = ctx;
  const input = node.inputs[0]!;
  const { stride, pad, group, k, x, w, y } = geo;
  const [n, c, h, wd] = x as [number, number, number, number];
  const o = w[0]!;
  if (k === 1 && stride === 1 && pad === 0 && group === 1) {
    // dW = dy (O, N*HW) @ x (C, N*HW)^T: one GEMM over every position of every image.
    const rows = (v: string, ch: number) => b.reshape(b.node('Transpose', [v], [ch, n, y[2]!, y[3]!], { perm: attr.ints([1, 0, 2, 3]) }), [ch, n * y[2]! * y[3]!]);
    return b.reshape(b.node('Gemm', [rows(dy, o), rows(input, c)], [o, c], { transB: attr.int(1) }), w);
  }
  const swap = (v: string, s: number[]) => b.node('Transpose', [v], [s[1]!, s[0]!, s[2]!, s[3]!], { perm: attr.ints([1, 0, 2, 3]) });
  if (group === 1 && stride === 1) return tapGemmWeightGrad(ctx, swap(input, x), swap(dy, y), geo);
  // Correlate x with dy, the batch as the reduction axis: the forward stride becomes a dilation.
  // Trailing rows/columns the forward stride never reached are cut by a smaller end padding.
  // (The strided downsampling convs, small maps at large batches in classification training, ran
  // faster this way than as per-tap GEMMs, whose nine strided slices cost more than their products.)
  const extraH = h + 2 * pad - stride * (y[2]! - 1) - k;
  const extraW = wd + 2 * pad - stride * (y[3]! - 1) - k;
  const trim = Math.min(extraH, extraW, pad);
  const attrs = { ...convAttrs([y[2]!, y[3]!], 1, pad, 1, stride), pads: attr.ints([pad, pad, pad - trim, pad - trim]) };
  const outH = k + extraH - trim;
  const outW = k + extraW - trim;
  if (group === 1) {
    const out = b.node('Conv', [swap(input, x), swap(dy, y)], [c, o, outH, outW], attrs);
    return b.node('Transpose', [crop(ctx, out, k)], [o, c, k, k], { perm: attr.ints([1, 0, 2, 3]) });
  }
  if (group === c && group === o && w[1] === 1) {
    const xs = b.reshape(swap(input, x), [1, c * n, h, wd]);
    const out = b.node('Conv', [xs, swap(dy, y)], [1, c, outH, outW], { ...attrs, group: attr.int(c) });
    return b.reshape(crop(ctx, out, k), w);
  }
  throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for grouped Conv with ${group} groups of ${w[1]} channels`);
}

/**
 * A dense stride-1 conv's dW as one GEMM per kernel tap: dW[:, :, i, j] = dy (O, N*Hy*Wy) @ x_ij (C, N*Hy*Wy)^T,
 * x_ij the padded input seen through tap (i, j) at the forward stride. The same products as a
 * correlation of x with dy, but as GEMMs of (O x C) outputs over N*Hy*Wy, where ONNX Runtime's Conv
 * with a dy-sized kernel and a k x k output ran at a third of the forward conv's speed (im2col into
 * k*k columns per channel). One tap's slice is alive at a time, not all k*k.
 */
function tapGemmWeightGrad(ctx: Ctx, xT: string, dyT: string, geo: ConvGeometry): string {
  const { b } = ctx;
  const { stride, pad, k, w, y } = geo;
  const [o, c] = w as [number, number];
  const [n, , hy, wy] = y as [number, number, number, number];
  const [, , h, wd] = ctx.shape(xT) as [number, number, number, number];
  const m = n * hy * wy;
  const padded = pad === 0 ? xT : b.node('Pad', [xT, b.ints([0, 0, pad, pad, 0, 0, pad, pad])], [c, n, h + 2 * pad, wd + 2 * pad], { mode: attr.string('constant') });
  const dyRows = b.reshape(dyT, [o, m]);
  const taps: string[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const tap = b.node('Slice', [padded, b.ints([i, j]), b.ints([i + stride * (hy - 1) + 1, j + stride * (wy - 1) + 1]), b.ints([2, 3]), b.ints([stride, stride])], [c, n, hy, wy]);
      taps.push(b.node('Gemm', [dyRows, b.reshape(tap, [c, m])], [o, c], { transB: attr.int(1) }));
    }
  }
  // (O, k*k*C) ordered [tap][c] -> (O, C, k*k) -> (O, C, k, k).
  const byTap = b.reshape(b.node('Concat', taps, [o, k * k * c], { axis: attr.int(1) }), [o, k * k, c]);
  return b.reshape(b.node('Transpose', [byTap], [o, c, k * k], { perm: attr.ints([0, 2, 1]) }), w);
}

/** The top-left k x k window of a (A,B,H,W) map. */
function crop(ctx: Ctx, v: string, k: number): string {
  const s = ctx.shape(v);
  if (s[2] === k && s[3] === k) return v;
  return ctx.b.node('Slice', [v, ctx.b.ints([0, 0]), ctx.b.ints([k, k]), ctx.b.ints([2, 3])], [s[0]!, s[1]!, k, k]);
}

// ---------------------------------------------------------------- resize and loss

/**
 * Resize is linear in x: y = Ay x Ax^T per image and channel, with Ay, Ax the axis interpolation
 * matrices (interpolate.ts). Its gradient is the transpose, dx = Ay^T dy Ax: two MatMuls against
 * constants (an axis whose size does not change is the identity).
 */
function resizeGrad(ctx: Ctx, node: Node, dy: string): string {
  const ctm = node.attrs.coordinate_transformation_mode;
  const mode = resizeModeOf(node.attrs);
  const expected = mode === 'nearest' ? 'asymmetric' : 'half_pixel';
  if (ctm?.kind !== 'string' || ctm.value !== expected || (mode === 'nearest' && node.attrs.nearest_mode?.kind === 'string' && node.attrs.nearest_mode.value !== 'floor')) {
    throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for Resize with ${JSON.stringify(node.attrs)}: only torch's nearest and bilinear (align_corners=False)`);
  }
  const { b } = ctx;
  const x = ctx.shape(node.inputs[0]!);
  const y = ctx.shape(node.outputs[0]!);
  const [h, w] = x.slice(-2) as [number, number];
  const [oh, ow] = y.slice(-2) as [number, number];
  let g = dy;
  if (ow !== w) g = b.node('MatMul', [g, b.constant(interpolationMatrix(w, ow, mode), [ow, w])], [...y.slice(0, -1), w]);
  if (oh !== h) g = b.node('MatMul', [b.constant(transposedInterpolationMatrix(h, oh, mode), [h, oh]), g], x);
  return g;
}

/**
 * SoftmaxCrossEntropyLoss, reduction 'sum', scores (N,K,...) and int64 labels (N,...): the
 * closed form dscores = dy (softmax - onehot(label)) on pixels whose label is not ignore_index,
 * 0 on the others. The softmax is the exp of the op's log-probability output.
 */
function softmaxCrossEntropyGrad(ctx: Ctx, node: Node, dy: string): string {
  const reduction = node.attrs.reduction;
  if (reduction?.kind !== 'string' || reduction.value !== 'sum' || node.inputs[2]) {
    throw new SwiftFormerError('UNSUPPORTED', 'no gradient rule for SoftmaxCrossEntropyLoss other than reduction sum without class weights');
  }
  const { b } = ctx;
  const [scores, labels] = node.inputs as [string, string];
  const shape = ctx.shape(scores);
  const k = shape[1]!;
  const perPixel = [shape[0]!, 1, ...shape.slice(2)];
  const label = b.reshape(labels, perPixel);
  const classes = b.reshape(b.ints(Array.from({ length: k }, (_, i) => i)), [1, k, ...shape.slice(2).map(() => 1)]);
  const asFloat = (v: string, s: number[]) => b.node('Cast', [v], s, { to: attr.int(1) });
  const onehot = asFloat(b.node('Equal', [label, classes], shape), shape);
  const ignored = b.node('Equal', [label, b.ints([intAttr(node, 'ignore_index', -100)])], perPixel);
  const valid = asFloat(b.node('Not', [ignored], perPixel), perPixel);
  const probs = b.unary('Exp', node.outputs[1]!);
  return mul(ctx, mul(ctx, b.binary('Sub', probs, onehot), valid), dy);
}

// ---------------------------------------------------------------- detection: RoIAlign, transposed conv, strided slices

/**
 * ONNX RoiAlign (mode avg, sampling_ratio > 0) is linear in X: every output bin averages
 * sampling_ratio^2 bilinear samples, each a weighted sum of 4 pixels. Its gradient scatters
 * dy x weight / count back onto those pixels. The weights factor into a row and a column part,
 * so the scatter-add is two matrix products against dense per-RoI weight matrices (below): no
 * ScatterND, whose ONNX Runtime CPU kernel races on repeated indices over threads (onnxruntime
 * issue 18048), and memory O(RoIs x C x bins x W) rather than a C-vector per sample and corner. Coordinates, boundary rules (a sample
 * beyond one pixel outside the map contributes nothing; one at or past the last row or column
 * reads the edge) and weights are ONNX Runtime's (and torchvision's roi_align, aligned=False,
 * for 'output_half_pixel').
 */
function roiAlignGrad(ctx: Ctx, node: Node, dy: string): string {
  const { b } = ctx;
  const mode = node.attrs.mode;
  const ratio = intAttr(node, 'sampling_ratio', 0);
  const ctm = node.attrs.coordinate_transformation_mode;
  const halfPixel = !(ctm?.kind === 'string' && ctm.value === 'output_half_pixel');
  if ((mode?.kind === 'string' && mode.value !== 'avg') || ratio <= 0) {
    throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for RoiAlign with mode ${mode?.kind === 'string' ? mode.value : 'avg'} and sampling_ratio ${ratio}: only avg with a fixed sampling ratio (its sample count is then static)`);
  }
  const [x, rois, batch] = node.inputs as [string, string, string];
  const [n, c, h, w] = ctx.shape(x) as [number, number, number, number];
  const [r, , ph, pw] = ctx.shape(node.outputs[0]!) as [number, number, number, number];
  const scale = node.attrs.spatial_scale?.kind === 'float' ? node.attrs.spatial_scale.value : 1;
  const f = (v: number) => b.constant([v]);
  const castTo = (v: string, shape: number[], to: number) => b.node('Cast', [v], shape, { to: attr.int(to) });
  const column = (i: number) => b.node('Slice', [rois, b.ints([i]), b.ints([i + 1]), b.ints([1])], [r, 1]);
  /** Per axis: pixel indices (R, P*S, 2) of the low and high taps and their weights (R, P*S, 2). */
  const axis = (lo: number, hi: number, bins: number, size: number) => {
    const offset = halfPixel ? 0.5 : 0;
    const start = b.binary('Sub', mul(ctx, column(lo), f(scale)), f(offset));
    const end = b.binary('Sub', mul(ctx, column(hi), f(scale)), f(offset));
    let length = b.binary('Sub', end, start);
    if (!halfPixel) length = b.binary('Max', length, f(1));
    const bin = b.binary('Div', length, f(bins));
    const k = bins * ratio;
    const cell = b.constant(Float32Array.from({ length: k }, (_, i) => Math.floor(i / ratio)), [1, k]);
    const within = b.constant(Float32Array.from({ length: k }, (_, i) => (i % ratio) + 0.5), [1, k]);
    const v = b.binary('Add', b.binary('Add', start, mul(ctx, cell, bin)), b.binary('Div', mul(ctx, within, bin), f(ratio)));
    const shape = [r, k];
    const valid = b.node('And', [b.node('GreaterOrEqual', [v, f(-1)], shape), b.node('LessOrEqual', [v, f(size)], shape)], shape);
    const v0 = b.binary('Max', v, f(0));
    const low = b.node('Floor', [v0], shape);
    const edge = b.node('GreaterOrEqual', [low, f(size - 1)], shape);
    const lowC = b.node('Where', [edge, f(size - 1), low], shape);
    const highC = b.node('Where', [edge, f(size - 1), b.binary('Add', low, f(1))], shape);
    const frac = b.binary('Sub', b.node('Where', [edge, lowC, v0], shape), lowC);
    const validF = castTo(valid, shape, 1);
    const pair = (a: string, z: string) => b.node('Concat', [b.reshape(a, [r, k, 1]), b.reshape(z, [r, k, 1])], [r, k, 2], { axis: attr.int(2) });
    return {
      index: castTo(pair(lowC, highC), [r, k, 2], 7),
      weight: mul(ctx, pair(b.binary('Sub', f(1), frac), frac), b.reshape(validF, [r, k, 1])),
    };
  };
  /** The axis's weights as a dense (R, P, size) matrix: taps one-hot over the pixels, summed over samples and corners. */
  const matrix = (t: { index: string; weight: string }, bins: number, size: number) => {
    const k = bins * ratio;
    const pixels = b.reshape(b.ints(Array.from({ length: size }, (_, i) => i)), [1, 1, 1, size]);
    const hit = castTo(b.node('Equal', [b.reshape(t.index, [r, k, 2, 1]), pixels], [r, k, 2, size]), [r, k, 2, size], 1);
    const weighted = mul(ctx, hit, b.reshape(t.weight, [r, k, 2, 1]));
    return b.reduce('ReduceSum', b.reshape(weighted, [r, bins, ratio * 2, size]), [2], false);
  };
  const ay = matrix(axis(1, 3, ph, h), ph, h);
  const ax = matrix(axis(0, 2, pw, w), pw, w);
  // Sampled bilinearly, each bin is separable: out[r, c] = Ay[r] X[b_r, c] Ax[r]^T / count. The
  // scatter-add of the bilinear weights is then dX[n, c] = sum over the RoIs of image n of
  // Ay[r]^T dy[r, c] Ax[r] / count: dy Ax per RoI and bin row, then one product over (RoI, bin
  // row) per image. Channels go last first (dy is the small tensor to transpose; the per-RoI
  // product, R x C x P x W, is the large one and is consumed in the layout it is made in).
  const dyLast = b.node('Transpose', [dy], [r, ph, pw, c], { perm: attr.ints([0, 2, 3, 1]) });
  const axT = b.node('Transpose', [ax], [r, w, pw], { perm: attr.ints([0, 2, 1]) });
  const t1 = b.node('MatMul', [b.reshape(axT, [r, 1, w, pw]), dyLast], [r, ph, w, c]);
  const images = b.reshape(b.ints(Array.from({ length: n }, (_, i) => i)), [n, 1, 1]);
  const mine = castTo(b.node('Equal', [b.reshape(batch, [1, r, 1]), images], [n, r, 1]), [n, r, 1], 1);
  const ayImages = mul(ctx, b.reshape(ay, [1, r, ph, h]), b.reshape(mine, [n, r, 1, 1]));
  const ayT = b.reshape(b.node('Transpose', [ayImages], [n, h, r, ph], { perm: attr.ints([0, 3, 1, 2]) }), [n, h, r * ph]);
  const dxLast = b.node('MatMul', [ayT, b.reshape(t1, [1, r * ph, w * c])], [n, h, w * c]);
  const dx = b.node('Transpose', [b.reshape(dxLast, [n, h, w, c])], [n, c, h, w], { perm: attr.ints([0, 3, 1, 2]) });
  return mul(ctx, dx, f(1 / (ratio * ratio)));
}

/**
 * ConvTranspose with kernel = stride (the mask predictor's 2x2, stride 2: no overlap, no padding).
 * dX = Conv(dy, W, stride k); dW[ci, co, a, b] = sum over images and positions of x[ci] dy[co, k i + a, k j + b]: one GEMM.
 */
function convTransposeGrad(ctx: Ctx, node: Node, dy: string): (string | undefined)[] {
  const { b } = ctx;
  const [x, weight, bias] = node.inputs as [string, string, string | undefined];
  const ws = ctx.shape(weight) as [number, number, number, number];
  const [n, ci, h, wd] = ctx.shape(x) as [number, number, number, number];
  const [cin, co, k, k2] = ws;
  const strides = intsAttr(node, 'strides', [1, 1]);
  const pads = intsAttr(node, 'pads', [0, 0, 0, 0]);
  if (k !== k2 || strides[0] !== k || strides[1] !== k || pads.some((p) => p !== 0) || intAttr(node, 'group', 1) !== 1 || cin !== ci) {
    throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for ConvTranspose with kernel ${ws.slice(2)}, strides ${strides}, pads ${pads}: only kernel = stride, no padding, one group`);
  }
  const dx = b.node('Conv', [dy, weight], [n, ci, h, wd], convAttrs(k, k, 0, 1));
  // dy (N, Co, h k, w k) -> (N, h, w, Co, k, k) rows; x (N, Ci, h, w) -> (N h w, Ci).
  const blocks = b.reshape(dy, [n, co, h, k, wd, k]);
  const rows = b.reshape(b.node('Transpose', [blocks], [n, h, wd, co, k, k], { perm: attr.ints([0, 2, 4, 1, 3, 5]) }), [n * h * wd, co * k * k]);
  const xs = b.reshape(b.node('Transpose', [x], [n, h, wd, ci], { perm: attr.ints([0, 2, 3, 1]) }), [n * h * wd, ci]);
  const dw = b.reshape(b.node('Gemm', [xs, rows], [ci, co * k * k], { transA: attr.int(1) }), ws);
  const db = bias ? b.reduce('ReduceSum', dy, [0, 2, 3], false) : undefined;
  return [dx, dw, db];
}

/**
 * Slice with positive steps: dy is zero-interleaved back (each stepped axis split as (size, step),
 * padded with zeros after the first of each step, merged), then cropped / padded to the input.
 */
function steppedSliceGrad(ctx: Ctx, node: Node, dy: string, axes: number[], starts: number[], steps: number[]): string {
  const { b } = ctx;
  const x = ctx.shape(node.inputs[0]!);
  let g = dy;
  let shape = ctx.shape(dy);
  const before = x.map(() => 0);
  axes.forEach((raw, i) => {
    const a = raw < 0 ? raw + x.length : raw;
    const step = steps[i]!;
    if (step < 1) throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for Slice with step ${step}`);
    before[a] = Math.min(Math.max(starts[i]! < 0 ? starts[i]! + x[a]! : starts[i]!, 0), x[a]!);
    if (step === 1) return;
    const split = [...shape.slice(0, a + 1), 1, ...shape.slice(a + 1)];
    const padded = [...shape.slice(0, a + 1), step, ...shape.slice(a + 1)];
    const pads = [...split.map(() => 0), ...split.map((_, j) => (j === a + 1 ? step - 1 : 0))];
    const merged = [...shape.slice(0, a), shape[a]! * step, ...shape.slice(a + 1)];
    g = b.reshape(b.node('Pad', [b.reshape(g, split), b.ints(pads)], padded, { mode: attr.string('constant') }), merged);
    shape = merged;
  });
  // Now g starts at `before` on each axis; cut what runs past the input, pad the rest.
  const ends = x.map((d, a) => Math.min(shape[a]!, d - before[a]!));
  const cut = x.map((_, a) => ends[a]!);
  if (cut.some((d, a) => d !== shape[a])) g = b.node('Slice', [g, b.ints(x.map(() => 0)), b.ints(cut), b.ints(x.map((_, a) => a))], cut);
  const after = x.map((d, a) => d - before[a]! - cut[a]!);
  return b.node('Pad', [g, b.ints([...before, ...after])], x, { mode: attr.string('constant') });
}

/** Concat: each input's gradient is its window of dy along the axis. */
function concatGrad(ctx: Ctx, node: Node, dy: string): string[] {
  const y = ctx.shape(node.outputs[0]!);
  const axis = (intAttr(node, 'axis', 0) + y.length) % y.length;
  let offset = 0;
  return node.inputs.map((input) => {
    const s = ctx.shape(input);
    const g = ctx.b.node('Slice', [dy, ctx.b.ints([offset]), ctx.b.ints([offset + s[axis]!]), ctx.b.ints([axis])], s);
    offset += s[axis]!;
    return g;
  });
}

// ---------------------------------------------------------------- the table

export const GRADIENTS: Record<string, Rule> = {
  Identity: (_, __, dy) => [dy],
  Reshape: (ctx, node, dy) => [ctx.b.reshape(dy, ctx.shape(node.inputs[0]!)), undefined],
  Add: (ctx, node, dy) => {
    const [, , sa, sb] = binaryInputs(ctx, node);
    return [reduceTo(ctx, dy, sa), reduceTo(ctx, dy, sb)];
  },
  Sub: (ctx, node, dy) => {
    const [, , sa, sb] = binaryInputs(ctx, node);
    return [reduceTo(ctx, dy, sa), reduceTo(ctx, neg(ctx, dy), sb)];
  },
  Mul: (ctx, node, dy) => {
    const [a, b, sa, sb] = binaryInputs(ctx, node);
    return [reduceTo(ctx, mul(ctx, dy, b), sa), reduceTo(ctx, mul(ctx, dy, a), sb)];
  },
  Div: (ctx, node, dy) => {
    const [, b, sa, sb] = binaryInputs(ctx, node);
    const y = node.outputs[0]!;
    const da = ctx.b.binary('Div', dy, b);
    return [reduceTo(ctx, da, sa), reduceTo(ctx, neg(ctx, mul(ctx, da, y)), sb)];
  },
  Max: (ctx, node, dy) => {
    const [a, b, sa, sb] = binaryInputs(ctx, node);
    const ge = ctx.b.node('GreaterOrEqual', [a, b], ctx.shape(node.outputs[0]!));
    const mask = ctx.b.node('Cast', [ge], ctx.shape(node.outputs[0]!), { to: attr.int(1) });
    const da = mul(ctx, dy, mask);
    return [reduceTo(ctx, da, sa), reduceTo(ctx, ctx.b.binary('Sub', dy, da), sb)];
  },
  Neg: (ctx, _, dy) => [neg(ctx, dy)],
  Reciprocal: (ctx, node, dy) => {
    const y = node.outputs[0]!;
    return [neg(ctx, mul(ctx, dy, mul(ctx, y, y)))];
  },
  Sqrt: (ctx, node, dy) => [ctx.b.binary('Div', mul(ctx, dy, ctx.b.constant([0.5])), node.outputs[0]!)],
  Exp: (ctx, node, dy) => [mul(ctx, dy, node.outputs[0]!)],
  // dy where the output is positive, else 0: one compare and one select (ONNX Runtime's Sign,
  // then a Mul, took twice as long on the detection step's large maps).
  Relu: (ctx, node, dy) => {
    const y = node.outputs[0]!;
    const positive = ctx.b.node('Greater', [y, ctx.b.constant([0])], ctx.shape(y));
    return [ctx.b.node('Where', [positive, dy, ctx.b.constant([0])], ctx.shape(dy))];
  },
  Erf: (ctx, node, dy) => {
    const x = node.inputs[0]!;
    const gauss = ctx.b.unary('Exp', neg(ctx, mul(ctx, x, x)));
    return [mul(ctx, dy, mul(ctx, gauss, ctx.b.constant([2 / Math.sqrt(Math.PI)])))];
  },
  // GELU'(x) = Phi(x) + x phi(x) = 0.5 (1 + erf(x/sqrt2)) + x exp(-x^2/2) / sqrt(2 pi).
  Gelu: (ctx, node, dy) => {
    const { b } = ctx;
    const x = node.inputs[0]!;
    const s = mul(ctx, x, b.constant([Math.SQRT1_2]));
    const cdf = mul(ctx, b.binary('Add', b.unary('Erf', s), b.constant([1])), b.constant([0.5]));
    const density = b.unary('Exp', neg(ctx, mul(ctx, s, s)));
    const slope = b.binary('Add', cdf, mul(ctx, mul(ctx, x, density), b.constant([1 / Math.sqrt(2 * Math.PI)])));
    return [mul(ctx, dy, slope)];
  },
  ReduceMean: (ctx, node, dy) => {
    const { kept, count } = reduceAxes(ctx, node);
    const scaled = mul(ctx, dy, ctx.b.constant([1 / count]));
    return [expandTo(ctx, scaled, kept, ctx.shape(node.inputs[0]!))];
  },
  ReduceSum: (ctx, node, dy) => {
    const { kept } = reduceAxes(ctx, node);
    return [expandTo(ctx, dy, kept, ctx.shape(node.inputs[0]!)), undefined];
  },
  // y = sqrt(sum x^2): dx = dy x / y (broadcast over the reduced axes).
  ReduceL2: (ctx, node, dy) => {
    const { kept } = reduceAxes(ctx, node);
    const y = ctx.b.reshape(node.outputs[0]!, kept);
    return [mul(ctx, node.inputs[0]!, ctx.b.binary('Div', ctx.b.reshape(dy, kept), y))];
  },
  LogSoftmax: (ctx, node, dy) => {
    const axis = intAttr(node, 'axis', -1);
    const probs = ctx.b.unary('Exp', node.outputs[0]!);
    const total = ctx.b.reduce('ReduceSum', dy, [axis], true);
    return [ctx.b.binary('Sub', dy, mul(ctx, probs, total))];
  },
  // y = softmax(x) over one axis: dx = y (dy - sum over the axis of dy y).
  Softmax: (ctx, node, dy) => {
    const y = node.outputs[0]!;
    const axis = intAttr(node, 'axis', -1);
    return [mul(ctx, y, ctx.b.binary('Sub', dy, ctx.b.reduce('ReduceSum', mul(ctx, dy, y), [axis], true)))];
  },
  // Closed form over the normalized axis (C values per token), g = dy scale:
  // dx = inv (g - mean(g) - xhat mean(g xhat)); dscale = sum dy xhat, dbias = sum dy over the tokens.
  LayerNorm: (ctx, node, dy) => {
    const [, scale, bias] = node.inputs as [string, string, string];
    const [, normalized, inv] = node.outputs as [string, string, string];
    const axis = intAttr(node, 'axis', 1);
    const c = ctx.shape(normalized)[axis]!;
    const { b } = ctx;
    const g = mul(ctx, dy, scale);
    const meanG = mul(ctx, b.reduce('ReduceSum', g, [axis], true), b.constant([1 / c]));
    const meanGx = mul(ctx, b.reduce('ReduceSum', mul(ctx, g, normalized), [axis], true), b.constant([1 / c]));
    const dx = mul(ctx, inv, b.binary('Sub', b.binary('Sub', g, meanG), mul(ctx, normalized, meanGx)));
    return [dx, reduceTo(ctx, mul(ctx, dy, normalized), ctx.shape(scale)), reduceTo(ctx, dy, ctx.shape(bias))];
  },
  // Y = op(A) op(B) + C with op a transpose when transA / transB (alpha = beta = 1).
  Gemm: (ctx, node, dy) => {
    if (node.attrs.alpha || node.attrs.beta) throw new SwiftFormerError('UNSUPPORTED', 'no gradient rule for Gemm with alpha or beta');
    const [a, b, c] = node.inputs as [string, string, string | undefined];
    const ta = intAttr(node, 'transA', 0);
    const tb = intAttr(node, 'transB', 0);
    const gemm = (x: string, y: string, transA: number, transB: number, shape: number[]) =>
      ctx.b.node('Gemm', [x, y], shape, { transA: attr.int(transA), transB: attr.int(transB) });
    const da = ta ? gemm(b, dy, tb, 1, ctx.shape(a)) : gemm(dy, b, 0, 1 - tb, ctx.shape(a));
    const db = tb ? gemm(dy, a, 1, ta, ctx.shape(b)) : gemm(a, dy, 1 - ta, 0, ctx.shape(b));
    return [da, db, c ? reduceTo(ctx, dy, ctx.shape(c)) : undefined];
  },
  // Batched matrix product over the last two axes (leading axes broadcast).
  MatMul: (ctx, node, dy) => {
    const [a, b] = node.inputs as [string, string];
    const swapLast = (v: string) => {
      const s = ctx.shape(v);
      const perm = s.map((_, i) => i);
      perm.splice(-2, 2, s.length - 1, s.length - 2);
      return ctx.b.node('Transpose', [v], perm.map((i) => s[i]!), { perm: attr.ints(perm) });
    };
    const da = ctx.b.node('MatMul', [dy, swapLast(b)], broadcastBatch(ctx, dy, ctx.shape(a)));
    const db = ctx.b.node('MatMul', [swapLast(a), dy], broadcastBatch(ctx, dy, ctx.shape(b)));
    return [reduceTo(ctx, da, ctx.shape(a)), reduceTo(ctx, db, ctx.shape(b))];
  },
  Transpose: (ctx, node, dy) => {
    const perm = intsAttr(node, 'perm', []);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [ctx.b.node('Transpose', [dy], ctx.shape(node.inputs[0]!), { perm: attr.ints(inverse) })];
  },
  Expand: (ctx, node, dy) => [reduceTo(ctx, dy, ctx.shape(node.inputs[0]!)), undefined],
  // Constant padding: the gradient is the un-padded window.
  Pad: (ctx, node, dy) => {
    const x = ctx.shape(node.inputs[0]!);
    const pads = constInts(ctx, node.inputs[1]!);
    const axes = x.map((_, i) => i);
    const starts = ctx.b.ints(axes.map((i) => pads[i]!));
    const ends = ctx.b.ints(axes.map((i) => pads[i]! + x[i]!));
    return [ctx.b.node('Slice', [dy, starts, ends, ctx.b.ints(axes)], x), undefined];
  },
  // A unit-step slice: the gradient is zero-padded back to the input's extent.
  Slice: (ctx, node, dy) => {
    const x = ctx.shape(node.inputs[0]!);
    const starts = constInts(ctx, node.inputs[1]!);
    const axes = node.inputs[3] ? constInts(ctx, node.inputs[3]) : starts.map((_, i) => i);
    if (node.inputs[4] && constInts(ctx, node.inputs[4]).some((st) => st !== 1)) {
      return [steppedSliceGrad(ctx, node, dy, axes, starts, constInts(ctx, node.inputs[4])), undefined, undefined, undefined, undefined];
    }
    const y = ctx.shape(node.outputs[0]!);
    const before = x.map(() => 0);
    const after = x.map(() => 0);
    axes.forEach((axis, i) => {
      const a = axis < 0 ? axis + x.length : axis;
      const start = Math.min(Math.max(starts[i]! < 0 ? starts[i]! + x[a]! : starts[i]!, 0), x[a]!);
      before[a] = start;
      after[a] = x[a]! - start - y[a]!;
    });
    return [ctx.b.node('Pad', [dy, ctx.b.ints([...before, ...after])], x, { mode: attr.string('constant') }), undefined, undefined, undefined, undefined];
  },
  // Closed form over the batch statistics (M values per channel):
  // dx = gain (dy - mean(dy) - xc inv^2 mean(dy xc)), gain = inv scale.
  BatchNormTrain: (ctx, node, dy) => {
    const [, scale, bias] = node.inputs as [string, string, string];
    const [, , , centered, inv] = node.outputs as [string, string, string, string, string];
    const axes = intsAttr(node, 'axes', []);
    const x = ctx.shape(centered);
    const count = axes.reduce((n, a) => n * x[a]!, 1);
    const { b } = ctx;
    const sumDy = b.reduce('ReduceSum', dy, axes, true);
    const sumDyXc = b.reduce('ReduceSum', mul(ctx, dy, centered), axes, true);
    const gain = mul(ctx, inv, scale);
    const k1 = mul(ctx, mul(ctx, gain, mul(ctx, inv, inv)), mul(ctx, sumDyXc, b.constant([1 / count])));
    const k2 = mul(ctx, gain, mul(ctx, sumDy, b.constant([1 / count])));
    const dx = b.binary('Sub', b.binary('Sub', mul(ctx, dy, gain), mul(ctx, centered, k1)), k2);
    return [dx, reduceTo(ctx, mul(ctx, sumDyXc, inv), ctx.shape(scale)), reduceTo(ctx, sumDy, ctx.shape(bias))];
  },
  Resize: (ctx, node, dy) => [resizeGrad(ctx, node, dy), undefined, undefined, undefined],
  SoftmaxCrossEntropyLoss: (ctx, node, dy) => [softmaxCrossEntropyGrad(ctx, node, dy), undefined, undefined],
  Concat: (ctx, node, dy) => concatGrad(ctx, node, dy),
  Log: (ctx, node, dy) => [ctx.b.binary('Div', dy, node.inputs[0]!)],
  Abs: (ctx, node, dy) => [mul(ctx, dy, ctx.b.node('Sign', [node.inputs[0]!], ctx.shape(node.inputs[0]!)))],
  Sigmoid: (ctx, node, dy) => {
    const y = node.outputs[0]!;
    return [mul(ctx, dy, mul(ctx, y, ctx.b.binary('Sub', ctx.b.constant([1]), y)))];
  },
  // Where(c, a, b): dy goes to a where c holds, to b elsewhere (each summed down to its operand).
  Where: (ctx, node, dy) => {
    const [c, a, bb] = node.inputs as [string, string, string];
    const zero = ctx.b.constant([0]);
    const shape = ctx.shape(node.outputs[0]!);
    return [undefined, reduceTo(ctx, ctx.b.node('Where', [c, dy, zero], shape), ctx.shape(a)), reduceTo(ctx, ctx.b.node('Where', [c, zero, dy], shape), ctx.shape(bb))];
  },
  RoiAlign: (ctx, node, dy) => [roiAlignGrad(ctx, node, dy), undefined, undefined],
  ConvTranspose: (ctx, node, dy) => convTransposeGrad(ctx, node, dy),
  Conv: (ctx, node, dy) => {
    const geo = convGeometry(ctx, node);
    const db = node.inputs[2] ? ctx.b.reduce('ReduceSum', dy, [0, 2, 3], false) : undefined;
    return [convInputGrad(ctx, node, dy, geo), convWeightGrad(ctx, node, dy, geo), db];
  },
};

// ---------------------------------------------------------------- backward

/** Values that depend on any of `sources` (forward reachability). */
function dependents(graph: Graph, sources: Set<string>): Set<string> {
  const reached = new Set(sources);
  for (const node of graph.nodes) {
    if (node.inputs.some((i) => reached.has(i))) for (const o of node.outputs) reached.add(o);
  }
  return reached;
}

function sumAll(b: GraphBuilder, parts: string[]): string {
  return parts.reduce((acc, p) => b.binary('Add', acc, p));
}

/**
 * Appends the gradient of the scalar `loss` with respect to each of `wrt` to the graph, as outputs
 * named `grad:<name>`. Returns those output names in `wrt` order.
 */
export function backward(graph: Graph, loss: string, wrt: string[]): string[] {
  const b = new GraphBuilder(graph, 'grad/');
  const ctx: Ctx = {
    b,
    shape: (name) => b.shape(name).map((d) => {
      if (typeof d !== 'number') throw new SwiftFormerError('BAD_SHAPE', `gradient graphs need static shapes; ${name} has a symbolic axis '${d}'`);
      return d;
    }),
  };
  const live = dependents(graph, new Set(wrt));
  const contributions = new Map<string, string[]>([[loss, [b.constant([1], ctx.shape(loss))]]]);
  for (const node of [...graph.nodes].reverse()) {
    const parts = contributions.get(node.outputs[0]!);
    if (!parts || !node.inputs.some((i) => live.has(i))) continue;
    const rule = GRADIENTS[node.op];
    if (!rule) throw new SwiftFormerError('UNSUPPORTED', `no gradient rule for op '${node.op}' (node output ${node.outputs[0]})`);
    const dy = sumAll(b, parts);
    const grads = rule(ctx, node, dy);
    node.inputs.forEach((input, i) => {
      const g = grads[i];
      if (g === undefined || !live.has(input)) return;
      const list = contributions.get(input) ?? [];
      list.push(g);
      contributions.set(input, list);
    });
  }
  return wrt.map((name) => {
    const parts = contributions.get(name);
    // A parameter the loss does not reach (w_g under the softmax rule) has a zero gradient.
    const g = parts ? sumAll(b, parts) : b.constant(new Float32Array(ctx.shape(name).reduce((n, d) => n * d, 1)), ctx.shape(name));
    const out = b.node('Identity', [g], b.shape(name) as Shape, {}, `grad:${name}`);
    b.output(out);
    return out;
  });
}
