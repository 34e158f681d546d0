/**
 * Memory layouts of feature maps, and the layout-dependent ops the model emits through them.
 *
 * - 'nchw' (inference): what ONNX Runtime's convolution kernels are built for; with constant
 *   weights it rewrites them into its blocked NCHWc format.
 * - 'cnhw' (training): channels first, then the batch, stored as a matrix (C, N*H*W). A 1x1 conv
 *   or a Linear over channels is then one GEMM over every position of every image, and so are
 *   both of its gradients, with no transposes; per-channel scales broadcast along the long axis.
 *   Training graphs feed weights as inputs (NCHWc needs constants) and run at small resolutions,
 *   where per-image GEMMs are tiny, and where 4-D maps of 2x2 or 1x1 pixels would put ONNX
 *   Runtime's broadcasting on its per-element path (measured: 50x slower on (C,N,1,1) than on
 *   (C,N)). The spatial view (N,H,W) exists only inside convolutions and token reductions.
 *
 * A value of feature maps travels as `Maps`: its name, its layout and its grid (N, H, W), so an
 * op never depends on what the builder last emitted, and a new head can mix layouts freely.
 */
import { attr, type Dim, type GraphBuilder } from './graph.js';

export type Layout = 'nchw' | 'cnhw';

/** Feature maps: the value, its layout, and (N, H, W) (N is symbolic in eval graphs). */
export interface Maps {
  readonly value: string;
  readonly layout: Layout;
  readonly grid: readonly [Dim, number, number];
}

/** The same maps as `like` (layout and grid), holding `value`. */
export function sameAs(like: Maps, value: string): Maps {
  return { value, layout: like.layout, grid: like.grid };
}

export function channelAxis(x: Maps): number {
  return x.layout === 'cnhw' ? 0 : 1;
}

export function channelsOf(b: GraphBuilder, x: Maps): number {
  return b.shape(x.value)[channelAxis(x)] as number;
}

/** A per-channel vector (any shape with C values) shaped to broadcast over `x`. */
export function perChannel(b: GraphBuilder, x: Maps, v: string, channels: number): string {
  return b.reshape(v, x.layout === 'cnhw' ? [channels, 1] : [channels, 1, 1]);
}

/** Elementwise op of two maps of one layout and grid (or maps and a broadcastable value). */
export function combine(b: GraphBuilder, op: 'Add' | 'Mul' | 'Sub', x: Maps, y: Maps | string): Maps {
  return sameAs(x, b.binary(op, x.value, typeof y === 'string' ? y : y.value));
}

/** An (N,C,H,W) value as maps in `layout`. */
export function toLayout(b: GraphBuilder, nchw: string, layout: Layout): Maps {
  const [n, , h, w] = b.shape(nchw);
  const grid = [n!, h as number, w as number] as const;
  if (layout === 'nchw') return { value: nchw, layout, grid };
  return { value: toRows(b, nchw), layout, grid };
}

/** Maps as an (N,C,H,W) value, whatever their layout. */
export function toNCHW(b: GraphBuilder, x: Maps): string {
  return x.layout === 'nchw' ? x.value : fromRows(b, x);
}

/** (N,C,H,W) -> (C, N*H*W). */
function toRows(b: GraphBuilder, x: string): string {
  const [n, c, h, w] = b.shape(x) as number[];
  const t = b.node('Transpose', [x], [c!, n!, h!, w!], { perm: attr.ints([1, 0, 2, 3]) });
  return b.reshape(t, [c!, n! * h! * w!]);
}

/** (C, N*H*W) -> (N,C,H,W). */
function fromRows(b: GraphBuilder, x: Maps): string {
  const [c] = b.shape(x.value) as number[];
  const [n, h, w] = x.grid as [number, number, number];
  const t = b.reshape(x.value, [c!, n, h, w]);
  return b.node('Transpose', [t], [n, c!, h, w], { perm: attr.ints([1, 0, 2, 3]) });
}

/**
 * A 1x1 convolution / Linear over channels. `weight` holds (O, C) values in any shape
 * ((O,C), (O,C,1,1)); `bias` (O) or undefined; `scale` (O values, e.g. a layer scale) multiplies
 * the output. In 'cnhw' the scale multiplies the weights and bias instead, which is the same
 * function but touches O*C values rather than a whole feature map (forward and backward).
 */
export function pointwise(b: GraphBuilder, x: Maps, weight: string, bias: string | undefined, inC: number, outC: number, scale?: string): Maps {
  if (x.layout === 'nchw') {
    const y = b.conv(x.value, b.reshape(weight, [outC, inC, 1, 1]), bias);
    return sameAs(x, scale ? b.binary('Mul', y, b.reshape(scale, [outC, 1, 1])) : y);
  }
  const [, m] = b.shape(x.value) as number[];
  const column = scale ? b.reshape(scale, [outC, 1]) : undefined;
  const scaled = (v: string) => (column ? b.binary('Mul', v, column) : v);
  const inputs = [scaled(b.reshape(weight, [outC, inC])), x.value];
  if (bias) inputs.push(scaled(b.reshape(bias, [outC, 1])));
  return sameAs(x, b.node('Gemm', inputs, [outC, m!]));
}

/** A kxk convolution with same padding: dense (stem, downsampling) or depthwise. */
export function spatialConv(
  b: GraphBuilder, x: Maps, weight: string, bias: string | undefined,
  opts: { stride: number; pad: number; groups: number },
): Maps {
  if (x.layout === 'nchw') {
    const y = b.conv(x.value, weight, bias, opts);
    const [n, , h, w] = b.shape(y);
    return { value: y, layout: 'nchw', grid: [n!, h as number, w as number] };
  }
  const [c] = b.shape(x.value) as number[];
  if (opts.groups === c && opts.groups > 1 && opts.stride === 1) return sameAs(x, depthwise(b, x, weight, bias, opts.pad));
  // Dense convolutions are few and small: run them in NCHW between two transposes.
  return toLayout(b, b.conv(fromRows(b, x), weight, bias, opts), 'cnhw');
}

/**
 * Depthwise conv in 'cnhw'. ONNX Runtime's grouped convolution loops over channels and images
 * (and its Pad, on maps this small, element by element), so:
 * - a 1x1 map sees only the centre tap: a per-channel scale;
 * - up to 8x8 (P <= 64 pixels): per channel the conv is a P x P matrix built from the kernel by a
 *   constant 0/1 expansion (a GEMM), applied to every image at once by one batched MatMul
 *   (C, N, P) @ (C, P, P); its gradients are MatMuls and GEMMs too;
 * - larger maps: one grouped Conv over (1, C*N, H, W), the weights repeated per image.
 */
function depthwise(b: GraphBuilder, maps: Maps, weight: string, bias: string | undefined, pad: number): string {
  const x = maps.value;
  const [c, m] = b.shape(x) as number[];
  const [n, h, w] = maps.grid as [number, number, number];
  const k = (b.shape(weight) as number[])[2]!;
  if (2 * pad !== k - 1) throw new Error(`depthwise conv of kernel ${k} needs padding ${(k - 1) / 2}, got ${pad}`);
  const p = h * w;
  let y: string;
  if (p === 1) {
    const centre = b.node('Slice', [weight, b.ints([pad, pad]), b.ints([pad + 1, pad + 1]), b.ints([2, 3])], [c!, 1, 1, 1]);
    y = b.binary('Mul', x, b.reshape(centre, [c!, 1]));
  } else if (p <= 64) {
    const spread = b.node('Gemm', [b.reshape(weight, [c!, k * k]), b.constant(tapExpansion(h, w, k, pad), [k * k, p * p])], [c!, p * p]);
    const product = b.node('MatMul', [b.reshape(x, [c!, n, p]), b.reshape(spread, [c!, p, p])], [c!, n, p]);
    y = b.reshape(product, [c!, m!]);
  } else {
    const repeated = b.node('Expand', [b.reshape(weight, [c!, 1, 1, k, k]), b.ints([c!, n, 1, k, k])], [c!, n, 1, k, k]);
    const flat = b.conv(b.reshape(x, [1, c! * n, h, w]), b.reshape(repeated, [c! * n, 1, k, k]), undefined, { pad, groups: c! * n });
    y = b.reshape(flat, [c!, m!]);
  }
  return bias ? b.binary('Add', y, perChannel(b, maps, bias, c!)) : y;
}

/**
 * E (k*k, P*P) with E[t, i*P + o] = 1 where kernel tap t links input pixel i to output pixel o
 * (same padding), so that (kernel (k*k) @ E) reshaped (P, P) maps a row of pixels to the output.
 */
function tapExpansion(h: number, w: number, k: number, pad: number): Float32Array {
  const p = h * w;
  const e = new Float32Array(k * k * p * p);
  for (let o = 0; o < p; o++) {
    for (let i = 0; i < p; i++) {
      const di = Math.floor(i / w) - Math.floor(o / w) + pad;
      const dj = (i % w) - (o % w) + pad;
      if (di >= 0 && di < k && dj >= 0 && dj < k) e[(di * k + dj) * p * p + i * p + o] = 1;
    }
  }
  return e;
}

/** (C, N*H*W) viewed as (C, N, H*W): each image's tokens on the last axis. */
function perImage(b: GraphBuilder, x: Maps, value: string = x.value): string {
  const [c] = b.shape(value) as number[];
  const [n, h, w] = x.grid as [number, number, number];
  return b.reshape(value, [c!, n, h * w]);
}

/** L2-normalizes a one-channel score map over each image's tokens. */
export function normalizeOverTokens(b: GraphBuilder, score: Maps): Maps {
  if (score.layout === 'nchw') return sameAs(score, b.l2Normalize(score.value, [2, 3]));
  return sameAs(score, b.reshape(b.l2Normalize(perImage(b, score), [2]), b.shape(score.value) as number[]));
}

/**
 * Sum over each image's tokens of weights * x (weights: one channel, or all ones when undefined),
 * in a shape that broadcasts against the maps: (N,C,1,1) in 'nchw', (C,N,1) in 'cnhw', or on
 * 1x1 maps, where the sum has one term, the product itself.
 */
export function sumOverTokens(b: GraphBuilder, weights: Maps | undefined, x: Maps): string {
  const weighted = weights ? b.binary('Mul', weights.value, x.value) : x.value;
  if (x.layout === 'nchw') return b.reduce('ReduceSum', weighted, [2, 3], true);
  const [, h, w] = x.grid;
  return h * w === 1 ? weighted : b.reduce('ReduceSum', perImage(b, x, weighted), [2], true);
}

/** x scaled token-wise by a per-image vector from `sumOverTokens`. */
export function scaleByGlobal(b: GraphBuilder, global: string, x: Maps): Maps {
  if (x.layout === 'nchw' || b.shape(global).length === 2) return sameAs(x, b.binary('Mul', global, x.value));
  return sameAs(x, b.reshape(b.binary('Mul', global, perImage(b, x)), b.shape(x.value) as number[]));
}

/** Global average pool to (N, C). */
export function globalPool(b: GraphBuilder, x: Maps): string {
  if (x.layout === 'nchw') return b.reduce('ReduceMean', x.value, [2, 3], false);
  const [, h, w] = x.grid;
  const pooled = h * w === 1 ? x.value : b.reduce('ReduceMean', perImage(b, x), [2], false);
  const [c, n] = b.shape(pooled);
  return b.node('Transpose', [pooled], [n!, c!], { perm: attr.ints([1, 0]) });
}

/** Maps resized to an (outH, outW) grid with torch's F.interpolate rules (GraphBuilder.resize). */
export function resizeMaps(b: GraphBuilder, x: Maps, mode: 'nearest' | 'bilinear', outH: number, outW: number): Maps {
  const [n, h, w] = x.grid;
  if (h === outH && w === outW) return x;
  if (x.layout === 'nchw') return { value: b.resize(x.value, mode, outH, outW), layout: 'nchw', grid: [n, outH, outW] };
  // (C, N*H*W) is (C, N, H, W) in memory: resize that view.
  const [c] = b.shape(x.value) as number[];
  const view = b.reshape(x.value, [c!, n as number, h, w]);
  return { value: b.reshape(b.resize(view, mode, outH, outW), [c!, (n as number) * outH * outW]), layout: 'cnhw', grid: [n, outH, outW] };
}
