/**
 * Attention modules, emitted on feature maps in their layout (a token is a pixel, its
 * features the channels): SwiftFormer's efficient additive attention, Fastformer's additive
 * attention and multi-head self-attention. The multi-head ones work on a per-head view of the maps
 * (reshapes, and in 'cnhw' one transpose each way), so one implementation serves both layouts.
 */
import { attr, type GraphBuilder } from '../graph/graph.js';
import {
  channelAxis, combine, normalizeOverTokens, perChannel, pointwise, sameAs, scaleByGlobal, sumOverTokens, type Maps,
} from '../graph/layout.js';

/**
 * How the per-token attention scores are normalized:
 * - 'l2': over the token axis, the official code since July 2023 (F.normalize(A, dim=1));
 * - 'softmax': the initial release and Hugging Face's port: a softmax over an axis of size 1,
 *   so every weight is exactly 1 and `w_g` has no effect.
 */
export type TokenNorm = 'l2' | 'softmax';

/** torch Linear(in, out) applied to every pixel: a 1x1 convolution, its output times `scale`. */
export function pointwiseLinear(b: GraphBuilder, x: Maps, key: string, inDim: number, outDim: number, scale?: string): Maps {
  return pointwise(b, x, b.param(`${key}.weight`, [outDim, inDim]), b.param(`${key}.bias`, [outDim]), inDim, outDim, scale);
}

/**
 * Efficient additive attention (SwiftFormer), one head, token_dim = dim. Keys as in the official
 * `EfficientAdditiveAttnetion`: to_query, to_key, w_g (D,1), Proj, final. (N,D,H,W) -> same,
 * times `outputScale` (the block's layer scale) when given.
 *
 *   q = normalize(Wq x), k = normalize(Wk x)        (L2 over channels)
 *   A = norm_tokens((q . w_g) / sqrt(D))            (per token)
 *   G = sum over tokens of A q                       (N,D,1,1)
 *   out = final(Proj(G * k) + q)
 */
export function efficientAdditiveAttention(b: GraphBuilder, x: Maps, key: string, dim: number, norm: TokenNorm, outputScale?: string): Maps {
  const channels = [channelAxis(x)];
  const normalize = (y: Maps) => sameAs(y, b.l2Normalize(y.value, channels));
  const q = normalize(pointwiseLinear(b, x, `${key}.to_query`, dim, dim));
  const k = normalize(pointwiseLinear(b, x, `${key}.to_key`, dim, dim));
  const wg = b.param(`${key}.w_g`, [dim, 1]);
  let global: string;
  if (norm === 'l2') {
    const score = combine(b, 'Mul', pointwise(b, q, wg, undefined, dim, 1), b.constant([dim ** -0.5]));
    global = sumOverTokens(b, normalizeOverTokens(b, score), q);
  } else {
    global = sumOverTokens(b, undefined, q);
  }
  const mixed = pointwiseLinear(b, scaleByGlobal(b, global, k), `${key}.Proj`, dim, dim);
  return pointwiseLinear(b, combine(b, 'Add', mixed, q), `${key}.final`, dim, dim, outputScale);
}

// ---------------------------------------------------------------- heads view

/**
 * Which attention a SwiftFormer encoder (or a ViT block) uses:
 * - 'additive': SwiftFormer's efficient additive attention (one head, linear in tokens);
 * - 'fastformer': Fastformer's additive attention (Wu et al. 2021), multi-head, linear in tokens;
 * - 'mhsa': multi-head self-attention, softmax(Q K^T / sqrt d) V (quadratic in tokens).
 */
export type AttentionType = 'additive' | 'fastformer' | 'mhsa';

export const ATTENTION_TYPES: readonly AttentionType[] = ['additive', 'fastformer', 'mhsa'];

/**
 * Feature maps viewed per head as (B0, B1, d, T): tokens last, the head's features before them,
 * two batch axes in front: (N, heads, d, T) in 'nchw', (heads, N, d, T) in 'cnhw'.
 */
interface HeadsView { heads: number; headDim: number; tokens: number; batch: [string | number, string | number] }

function headsOf(b: GraphBuilder, x: Maps, heads: number): HeadsView {
  const shape = b.shape(x.value);
  const channels = shape[channelAxis(x)] as number;
  if (!Number.isInteger(channels / heads)) throw new Error(`${channels} channels do not split into ${heads} heads`);
  const [n, h, w] = x.grid;
  return { heads, headDim: channels / heads, tokens: h * w, batch: x.layout === 'cnhw' ? [heads, n] : [n, heads] };
}

/** Feature maps (layout) -> per-head view (B0, B1, d, T). */
function toHeads(b: GraphBuilder, x: Maps, v: HeadsView): string {
  const { heads, headDim: d, tokens } = v;
  if (x.layout === 'nchw') return b.reshape(x.value, [0, heads, d, tokens], [...v.batch, d, tokens]);
  const n = x.grid[0] as number;
  const split = b.reshape(x.value, [heads, d, n, tokens]);
  return b.node('Transpose', [split], [heads, n, d, tokens], { perm: attr.ints([0, 2, 1, 3]) });
}

/** Per-head view (B0, B1, d, T) -> feature maps shaped as `like`. */
function fromHeads(b: GraphBuilder, y: string, like: Maps, v: HeadsView): Maps {
  const shape = b.shape(like.value);
  if (like.layout === 'nchw') return sameAs(like, b.reshape(y, [0, ...(shape.slice(1) as number[])], shape));
  const merged = b.node('Transpose', [y], [v.heads, v.headDim, like.grid[0], v.tokens], { perm: attr.ints([0, 2, 1, 3]) });
  return sameAs(like, b.reshape(merged, shape as number[]));
}

/** A per-head vector parameter (heads, d) shaped to left-multiply a heads view: w (.., 1, d) @ (B0, B1, d, T). */
function perHeadRow(b: GraphBuilder, w: string, v: HeadsView, x: Maps): string {
  return b.reshape(w, x.layout === 'nchw' ? [v.heads, 1, v.headDim] : [v.heads, 1, 1, v.headDim]);
}

/**
 * Additive pooling over tokens, per head: softmax_t((w . x_t) / sqrt d), then sum_t weight_t x_t.
 * x: heads view (B0,B1,d,T), w: (heads, d) -> (B0,B1,d,1).
 */
function additivePool(b: GraphBuilder, x: string, w: string, v: HeadsView, layout: Maps): string {
  const score = b.node('MatMul', [perHeadRow(b, w, v, layout), x], [...v.batch, 1, v.tokens]);
  const weights = b.softmax(b.binary('Mul', score, b.constant([v.headDim ** -0.5])), 3);
  const column = b.reshape(weights, [0, 0, v.tokens, 1], [...v.batch, v.tokens, 1]);
  return b.node('MatMul', [x, column], [...v.batch, v.headDim, 1]);
}

/** The rows [part * dim, (part + 1) * dim) of a fused parameter (torch's qkv Linear). */
function rows(b: GraphBuilder, param: string, part: number, dim: number): string {
  const shape = b.shape(param) as number[];
  return b.node('Slice', [param, b.ints([part * dim]), b.ints([(part + 1) * dim]), b.ints([0])], [dim, ...shape.slice(1)]);
}

export interface MultiHeadOptions {
  heads: number;
  /** Per-channel factor (C values, e.g. a layer scale) on the module's output. */
  outputScale?: string;
}

/**
 * Fastformer's additive attention (Wu et al. 2021, "Fastformer: Additive Attention Can Be All You
 * Need"), as the FViT paper (Wen et al., CAI 2024) puts it into ViT. Per head h with
 * d = dim / heads features:
 *
 *   q_i = Wq x_i, k_i = Wk x_i, v_i = q_i (the paper's query-value parameter sharing)
 *   alpha = softmax_i(w_q . q_i / sqrt d),  q = sum_i alpha_i q_i          (global query)
 *   p_i = q * k_i,  beta = softmax_i(w_k . p_i / sqrt d),  k = sum_i beta_i p_i   (global key)
 *   u_i = k * v_i,  out_i = transform(u_i) + q_i
 *
 * Keys: query, key, (value when `shareQueryValue` is false), w_q (heads, d), w_k (heads, d),
 * transform. Linear in tokens: every step is per token or a sum over tokens.
 * Feature maps (N,D,H,W) / (D, N*H*W) -> same.
 */
export function fastformerAttention(
  b: GraphBuilder, x: Maps, key: string, dim: number, opts: MultiHeadOptions & { shareQueryValue?: boolean },
): Maps {
  const view = headsOf(b, x, opts.heads);
  const query = pointwiseLinear(b, x, `${key}.query`, dim, dim);
  const keys = pointwiseLinear(b, x, `${key}.key`, dim, dim);
  const q = toHeads(b, query, view);
  const k = toHeads(b, keys, view);
  const v = opts.shareQueryValue === false ? toHeads(b, pointwiseLinear(b, x, `${key}.value`, dim, dim), view) : q;
  const wq = b.param(`${key}.w_q`, [view.heads, view.headDim]);
  const wk = b.param(`${key}.w_k`, [view.heads, view.headDim]);
  const globalQuery = additivePool(b, q, wq, view, x);
  const p = b.binary('Mul', globalQuery, k);
  const globalKey = additivePool(b, p, wk, view, x);
  const u = fromHeads(b, b.binary('Mul', globalKey, v), query, view);
  const out = combine(b, 'Add', pointwiseLinear(b, u, `${key}.transform`, dim, dim), query);
  return opts.outputScale ? combine(b, 'Mul', out, perChannel(b, x, opts.outputScale, dim)) : out;
}

/**
 * Multi-head self-attention (Vaswani et al. 2017; ViT's, timm's key names): qkv = Linear(dim, 3 dim),
 * per head softmax(q k^T / sqrt d) v, then proj. Quadratic in tokens: the (T, T) weights per head.
 * Feature maps -> same.
 */
export function multiHeadSelfAttention(b: GraphBuilder, x: Maps, key: string, dim: number, opts: MultiHeadOptions): Maps {
  const view = headsOf(b, x, opts.heads);
  const { headDim: d, tokens: t, batch } = view;
  const weight = b.param(`${key}.qkv.weight`, [3 * dim, dim]);
  const bias = b.param(`${key}.qkv.bias`, [3 * dim]);
  const project = (part: number, scale?: string) =>
    toHeads(b, pointwise(b, x, rows(b, weight, part, dim), rows(b, bias, part, dim), dim, dim, scale), view);
  const q = project(0, b.constant(new Float32Array(dim).fill(d ** -0.5), [dim]));
  const k = project(1);
  const v = project(2);
  // Tokens-major (T, d) operands so that the softmax runs over the last axis (measured 1.4x faster
  // in ONNX Runtime than over axis 2 of the transposed product): row i = query i over the keys.
  const swap = (m: string, shape: (string | number)[]) => b.node('Transpose', [m], [...batch, ...shape], { perm: attr.ints([0, 1, 3, 2]) });
  const weights = b.softmax(b.node('MatMul', [swap(q, [t, d]), k], [...batch, t, t]), 3);
  const mixed = fromHeads(b, swap(b.node('MatMul', [weights, swap(v, [t, d])], [...batch, t, d]), [d, t]), x, view);
  return pointwiseLinear(b, mixed, `${key}.proj`, dim, dim, opts.outputScale);
}
