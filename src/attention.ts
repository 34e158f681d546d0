/**
 * Attention modules, emitted on NCHW feature maps (a token is a pixel, its features the channels).
 */
import type { GraphBuilder } from './graph.js';

/**
 * How the per-token attention scores are normalized:
 * - 'l2': over the token axis, the official code since July 2023 (F.normalize(A, dim=1));
 * - 'softmax': the initial release and Hugging Face's port: a softmax over an axis of size 1,
 *   so every weight is exactly 1 and `w_g` has no effect.
 */
export type TokenNorm = 'l2' | 'softmax';

/** torch Linear(in, out) applied to every pixel: a 1x1 convolution with the weight reshaped. */
export function pointwiseLinear(b: GraphBuilder, x: string, key: string, inDim: number, outDim: number): string {
  const weight = b.reshape(b.param(`${key}.weight`, [outDim, inDim]), [outDim, inDim, 1, 1]);
  return b.conv(x, weight, b.param(`${key}.bias`, [outDim]));
}

/**
 * Efficient additive attention (SwiftFormer), one head, token_dim = dim. Keys as in the official
 * `EfficientAdditiveAttnetion`: to_query, to_key, w_g (D,1), Proj, final. (N,D,H,W) -> same.
 *
 *   q = normalize(Wq x), k = normalize(Wk x)        (L2 over channels)
 *   A = norm_tokens((q . w_g) / sqrt(D))            (per token)
 *   G = sum over tokens of A q                       (N,D,1,1)
 *   out = final(Proj(G * k) + q)
 */
export function efficientAdditiveAttention(b: GraphBuilder, x: string, key: string, dim: number, norm: TokenNorm): string {
  const q = b.l2Normalize(pointwiseLinear(b, x, `${key}.to_query`, dim, dim), [1]);
  const k = b.l2Normalize(pointwiseLinear(b, x, `${key}.to_key`, dim, dim), [1]);
  const wg = b.param(`${key}.w_g`, [dim, 1]);
  let global: string;
  if (norm === 'l2') {
    const score = b.conv(q, b.reshape(wg, [1, dim, 1, 1]), undefined);
    const scaled = b.binary('Mul', score, b.constant([dim ** -0.5]));
    const weights = b.l2Normalize(scaled, [2, 3]);
    global = b.reduce('ReduceSum', b.binary('Mul', weights, q), [2, 3], true);
  } else {
    global = b.reduce('ReduceSum', q, [2, 3], true);
  }
  const mixed = pointwiseLinear(b, b.binary('Mul', global, k), `${key}.Proj`, dim, dim);
  return pointwiseLinear(b, b.binary('Add', mixed, q), `${key}.final`, dim, dim);
}
