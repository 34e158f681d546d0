/**
 * Attention modules, emitted on NCHW feature maps (a token is a pixel, its features the channels).
 */
import type { GraphBuilder } from './graph.js';
import { channelAxis, normalizeOverTokens, pointwise, scaleByGlobal, sumOverTokens } from './layout.js';

/**
 * How the per-token attention scores are normalized:
 * - 'l2': over the token axis, the official code since July 2023 (F.normalize(A, dim=1));
 * - 'softmax': the initial release and Hugging Face's port: a softmax over an axis of size 1,
 *   so every weight is exactly 1 and `w_g` has no effect.
 */
export type TokenNorm = 'l2' | 'softmax';

/** torch Linear(in, out) applied to every pixel: a 1x1 convolution, its output times `scale`. */
export function pointwiseLinear(b: GraphBuilder, x: string, key: string, inDim: number, outDim: number, scale?: string): string {
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
export function efficientAdditiveAttention(b: GraphBuilder, x: string, key: string, dim: number, norm: TokenNorm, outputScale?: string): string {
  const channels = [channelAxis(b)];
  const q = b.l2Normalize(pointwiseLinear(b, x, `${key}.to_query`, dim, dim), channels);
  const k = b.l2Normalize(pointwiseLinear(b, x, `${key}.to_key`, dim, dim), channels);
  const wg = b.param(`${key}.w_g`, [dim, 1]);
  let global: string;
  if (norm === 'l2') {
    const score = b.binary('Mul', pointwise(b, q, wg, undefined, dim, 1), b.constant([dim ** -0.5]));
    global = sumOverTokens(b, normalizeOverTokens(b, score), q);
  } else {
    global = sumOverTokens(b, undefined, q);
  }
  const mixed = pointwiseLinear(b, scaleByGlobal(b, global, k), `${key}.Proj`, dim, dim);
  return pointwiseLinear(b, b.binary('Add', mixed, q), `${key}.final`, dim, dim, outputScale);
}
