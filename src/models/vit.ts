/**
 * ViT (Dosovitskiy et al., ICLR 2021) and FViT (Wen et al., "Fast Vision Transformer via Additive
 * Attention", CAI 2024: ViT with Fastformer's additive attention) as ONNX-emitting TypeScript.
 *
 * Order, as in timm's model files: modules, block, model, initialization, variant configs as data.
 * Parameters carry timm's `VisionTransformer` keys (`cls_token`, `pos_embed`, `patch_embed.proj`,
 * `blocks.<i>.{norm1,attn,norm2,mlp}`, `norm`, `head`); FViT's attention has the keys of
 * `fastformerAttention` (attention.ts). Tokens are feature maps of T x 1 pixels in the builder's
 * layout, so every Linear is the same 1x1 conv / GEMM the SwiftFormer graph uses:
 * (N, D, T, 1) in 'nchw' (eval), (D, N*T) in 'cnhw' (train).
 */
import { fastformerAttention, multiHeadSelfAttention, pointwiseLinear } from './attention.js';
import { SwiftFormerError } from '../core/errors.js';
import { attr, countParams, type Graph } from '../graph/graph.js';
import { combine, sameAs, type Layout, type Maps } from '../graph/layout.js';
import { emitContext, gelu, layerNorm, type Emit } from './modules.js';
import { countMacs } from '../graph/passes.js';
import { Random } from '../core/random.js';
import { float32, numel, type StateDict } from '../core/tensor.js';

export type VitAttention = 'mhsa' | 'fastformer';

export interface VitConfig {
  /** Side of the square patches (the patch embedding conv's kernel and stride). */
  patchSize: number;
  /** Hidden size D. */
  embedDim: number;
  /** Transformer blocks. */
  depth: number;
  /** Attention heads; must divide embedDim. */
  numHeads: number;
  /** MLP hidden size / D. */
  mlpRatio: number;
  /** 0 means no classifier: the output is the normalized class token. */
  numClasses: number;
  /** 'mhsa' (ViT) or 'fastformer' (FViT). */
  attention: VitAttention;
  /** Default input height and width; `pos_embed` has one row per patch of the emitted size, plus one. */
  imageSize: number;
}

export interface VitEmitOptions {
  /** 'train': composites with closed-form gradients; needs a fixed batch. */
  mode?: 'eval' | 'train';
  /** Batch size; 'batch' (symbolic) by default, a number for train graphs. */
  batch?: number;
  /** Feature-map layout; default 'nchw' for eval, 'cnhw' for train. */
  layout?: Layout;
  /** Input height and width (multiples of patchSize); default cfg.imageSize. */
  inputSize?: number | [number, number];
}

// ---------------------------------------------------------------- modules

/** fc1 -> GELU -> fc2 (timm's Mlp). Tokens -> same. */
function mlp(e: Emit, x: Maps, key: string, dim: number, hidden: number): Maps {
  return pointwiseLinear(e.b, gelu(e, pointwiseLinear(e.b, x, `${key}.fc1`, dim, hidden)), `${key}.fc2`, hidden, dim);
}

/**
 * Patch embedding, class token and position embeddings: (N,3,H,W) -> T+1 tokens, T = HW / p^2.
 * timm concatenates the class token in front and adds `pos_embed`; here the patch tokens are padded
 * with a zero token in front and `pos_embed` gets `cls_token` added to its row 0: the same sum,
 * with shapes that do not depend on the batch.
 */
function embed(e: Emit, pixels: string, cfg: VitConfig, grid: [number, number], layout: Layout): Maps {
  const { b } = e;
  const { embedDim: d, patchSize: p } = cfg;
  const t = grid[0] * grid[1];
  const patches = b.conv(pixels, b.param('patch_embed.proj.weight', [d, 3, p, p]), b.param('patch_embed.proj.bias', [d]), { stride: p });
  const cls = b.node('Pad', [b.param('cls_token', [1, 1, d]), b.ints([0, 0, 0, 0, t, 0])], [1, t + 1, d], { mode: attr.string('constant') });
  const table = b.binary('Add', b.param('pos_embed', [1, t + 1, d]), cls);
  const perToken = b.node('Transpose', [b.reshape(table, [t + 1, d])], [d, t + 1], { perm: attr.ints([1, 0]) });
  const pad = (x: string, shape: (number | string)[], before: number[]) =>
    b.node('Pad', [x, b.ints([...before, ...before.map(() => 0)])], shape, { mode: attr.string('constant') });
  const n = b.shape(pixels)[0]!;
  if (layout === 'nchw') {
    const tokens = b.reshape(patches, [0, d, t, 1], [n, d, t, 1]);
    return { value: b.binary('Add', pad(tokens, [n, d, t + 1, 1], [0, 0, 1, 0]), b.reshape(perToken, [1, d, t + 1, 1])), layout, grid: [n, t + 1, 1] };
  }
  const batch = n as number;
  const channelsFirst = b.node('Transpose', [patches], [d, batch, grid[0], grid[1]], { perm: attr.ints([1, 0, 2, 3]) });
  const tokens = pad(b.reshape(channelsFirst, [d, batch, t]), [d, batch, t + 1], [0, 0, 1]);
  return { value: b.reshape(b.binary('Add', tokens, b.reshape(perToken, [d, 1, t + 1])), [d, batch * (t + 1)]), layout, grid: [batch, t + 1, 1] };
}

function attention(e: Emit, x: Maps, key: string, cfg: VitConfig): Maps {
  const opts = { heads: cfg.numHeads };
  return cfg.attention === 'fastformer'
    ? fastformerAttention(e.b, x, key, cfg.embedDim, opts)
    : multiHeadSelfAttention(e.b, x, key, cfg.embedDim, opts);
}

// ---------------------------------------------------------------- block

/** Pre-LN transformer block: x + attn(norm1(x)), then + mlp(norm2(.)). Tokens -> same. */
function block(e: Emit, x: Maps, key: string, cfg: VitConfig): Maps {
  const d = cfg.embedDim;
  const y = combine(e.b, 'Add', x, attention(e, layerNorm(e, x, `${key}.norm1`, d), `${key}.attn`, cfg));
  return combine(e.b, 'Add', y, mlp(e, layerNorm(e, y, `${key}.norm2`, d), `${key}.mlp`, d, Math.floor(d * cfg.mlpRatio)));
}

// ---------------------------------------------------------------- model

/** The class token after the final norm (timm's global_pool 'token'), (N, D). */
function classToken(e: Emit, x: Maps, dim: number): string {
  const { b } = e;
  const first = (v: string, axis: number, shape: (number | string)[]) =>
    b.node('Slice', [v, b.ints([0]), b.ints([1]), b.ints([axis])], shape);
  if (x.layout === 'nchw') {
    const n = b.shape(x.value)[0]!;
    const normed = layerNorm(e, sameAs(x, first(x.value, 2, [n, dim, 1, 1])), 'norm', dim).value;
    return b.reshape(normed, [0, dim], [n, dim]);
  }
  const [n, t] = x.grid as [number, number, number];
  // (D, N, 1) rows: LayerNorm's axis is 0, as for 'cnhw' maps.
  const normed = layerNorm(e, sameAs(x, first(b.reshape(x.value, [dim, n, t]), 2, [dim, n, 1])), 'norm', dim).value;
  return b.node('Transpose', [b.reshape(normed, [dim, n])], [n, dim], { perm: attr.ints([1, 0]) });
}

export function vitInputHW(cfg: VitConfig, size: VitEmitOptions['inputSize']): [number, number] {
  const [h, w] = Array.isArray(size) ? size : [size ?? cfg.imageSize, size ?? cfg.imageSize];
  for (const v of [h, w]) {
    if (!Number.isInteger(v) || v < cfg.patchSize || v % cfg.patchSize !== 0 || v > 8192) {
      throw new SwiftFormerError('BAD_SHAPE', `input size ${h}x${w} is not supported: height and width must be multiples of the patch size ${cfg.patchSize} up to 8192`);
    }
  }
  return [h, w];
}

/**
 * Emits the graph. Input `pixel_values` (batch,3,H,W); output `logits` (batch, numClasses), or the
 * normalized class token (batch, D) when numClasses is 0.
 */
export function emitVit(cfg: VitConfig, opts: VitEmitOptions = {}): Graph {
  validateVitConfig(cfg);
  const [h, w] = vitInputHW(cfg, opts.inputSize);
  const train = opts.mode === 'train';
  if (train && !(Number.isInteger(opts.batch) && opts.batch! >= 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `a train graph needs a fixed batch size, got ${opts.batch}`);
  }
  const e = emitContext(train);
  const { b } = e;
  const layout = opts.layout ?? (train ? 'cnhw' : 'nchw');
  const pixels = b.input('pixel_values', [opts.batch ?? 'batch', 3, h, w]);
  let x = embed(e, pixels, cfg, [h / cfg.patchSize, w / cfg.patchSize], layout);
  for (let i = 0; i < cfg.depth; i++) x = block(e, x, `blocks.${i}`, cfg);
  const pooled = classToken(e, x, cfg.embedDim);
  const logits = cfg.numClasses === 0
    ? b.unary('Identity', pooled)
    : b.linear(pooled, b.param('head.weight', [cfg.numClasses, cfg.embedDim]), b.param('head.bias', [cfg.numClasses]));
  b.node('Identity', [logits], b.shape(logits), {}, 'logits');
  b.output('logits');
  return b.graph;
}

export function validateVitConfig(cfg: VitConfig): void {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', `invalid ViT config: ${msg}`);
  const positive = (v: number, max: number) => Number.isInteger(v) && v >= 1 && v <= max;
  if (!positive(cfg.patchSize, 1024)) throw bad(`patchSize must be a positive integer, got ${cfg.patchSize}`);
  if (!positive(cfg.embedDim, 16384)) throw bad(`embedDim must be a positive integer, got ${cfg.embedDim}`);
  if (!positive(cfg.depth, 1024)) throw bad(`depth must be a positive integer, got ${cfg.depth}`);
  if (!positive(cfg.numHeads, cfg.embedDim) || cfg.embedDim % cfg.numHeads !== 0) throw bad(`numHeads must divide embedDim ${cfg.embedDim}, got ${cfg.numHeads}`);
  if (!(cfg.mlpRatio > 0 && cfg.mlpRatio <= 16)) throw bad(`mlpRatio must be in (0, 16], got ${cfg.mlpRatio}`);
  if (!Number.isInteger(cfg.numClasses) || cfg.numClasses < 0 || cfg.numClasses > 1_000_000) throw bad(`numClasses must be an integer >= 0, got ${cfg.numClasses}`);
  if (cfg.attention !== 'mhsa' && cfg.attention !== 'fastformer') throw bad(`attention must be 'mhsa' or 'fastformer', got ${String(cfg.attention)}`);
  if (!positive(cfg.imageSize, 8192) || cfg.imageSize % cfg.patchSize !== 0) throw bad(`imageSize must be a multiple of patchSize, got ${cfg.imageSize}`);
}

// ---------------------------------------------------------------- counting

export interface VitInfo {
  /** Parameters at the given input size (pos_embed has one row per token). */
  params: number;
  /** Multiply-accumulates of one image: convolutions, Gemms and MatMuls (countMacs). */
  macs: number;
  /**
   * The part of `macs` in products of two activations (MatMul): q k^T and the weighted sum of v
   * for MHSA, the additive scores and token sums for Fastformer. Counters that hook only Linear
   * and Conv modules (thop, ptflops) leave these out.
   */
  attentionMacs: number;
  inputSize: [number, number];
  /** Tokens per image, class token included. */
  tokens: number;
  config: VitConfig;
}

/** MACs of MatMul nodes: the attention's activation-by-activation products in these graphs. */
export function matmulMacs(graph: Graph): number {
  return countMacs({ ...graph, nodes: graph.nodes.filter((n) => n.op === 'MatMul') });
}

export function vitInfo(cfg: VitConfig, inputSize?: number | [number, number]): VitInfo {
  const graph = emitVit(cfg, inputSize === undefined ? {} : { inputSize });
  const [h, w] = vitInputHW(cfg, inputSize);
  return {
    params: countParams(graph, () => false),
    macs: countMacs(graph),
    attentionMacs: matmulMacs(graph),
    inputSize: [h, w],
    tokens: (h / cfg.patchSize) * (w / cfg.patchSize) + 1,
    config: cfg,
  };
}

// ---------------------------------------------------------------- initialization

/**
 * Fresh weights as timm initializes a VisionTransformer: Linear weights and pos_embed
 * trunc_normal(0.02), biases 0, cls_token normal(1e-6), LayerNorm identity, the patch embedding
 * conv PyTorch's default U(+-1/sqrt(fan_in)); Fastformer's w_q / w_k trunc_normal(0.02).
 */
export function initialVitWeights(cfg: VitConfig, seed: number, inputSize?: number | [number, number]): StateDict {
  const rng = new Random(seed);
  const params = emitVit(cfg, inputSize === undefined ? {} : { inputSize }).params;
  const state: StateDict = new Map();
  for (const [key, shape] of params) {
    const n = numel(shape);
    const draw = (f: () => number) => Float32Array.from({ length: n }, f);
    let data: Float32Array;
    if (/(^|\.)norm\d?\.weight$/.test(key)) data = new Float32Array(n).fill(1);
    else if (key.endsWith('.bias')) data = new Float32Array(n);
    else if (key === 'cls_token') data = draw(() => rng.normal() * 1e-6);
    else if (key === 'patch_embed.proj.weight') {
      const bound = 1 / Math.sqrt(numel(shape.slice(1)));
      data = draw(() => rng.uniform(-bound, bound));
    } else data = draw(() => rng.truncNormal(0.02));
    state.set(key, float32(shape, data));
  }
  return state;
}

// ---------------------------------------------------------------- variants

const base = { embedDim: 768, depth: 12, numHeads: 12, mlpRatio: 4, numClasses: 1000, imageSize: 224 };

/**
 * ViT-B/16 and ViT-B/32 (hidden 768, MLP 3072, 12 heads, depth 12) with multi-head self-attention,
 * and the FViT paper's Fastformer versions of both.
 */
export const VIT_VARIANTS: Record<string, VitConfig> = {
  'vit-b16': { ...base, patchSize: 16, attention: 'mhsa' },
  'vit-b32': { ...base, patchSize: 32, attention: 'mhsa' },
  'fvit-b16': { ...base, patchSize: 16, attention: 'fastformer' },
  'fvit-b32': { ...base, patchSize: 32, attention: 'fastformer' },
};

function normalizeId(id: string): string {
  return id.toLowerCase().replace(/[_/]/g, '-').replace(/^(f?vit)-?b-?(\d+)$/, '$1-b$2');
}

/** True for the ids `vitConfig` accepts: 'vit-b16', 'ViT-B/16', 'vit_b32', 'fvit-b16', ... */
export function isVitId(id: string): boolean {
  return normalizeId(id) in VIT_VARIANTS;
}

export function vitConfig(id: string): VitConfig {
  const cfg = VIT_VARIANTS[normalizeId(id)];
  if (!cfg) throw new SwiftFormerError('UNKNOWN_MODEL', `unknown model '${id}': choose one of ${Object.keys(VIT_VARIANTS).join(', ')}`);
  return structuredClone(cfg);
}
