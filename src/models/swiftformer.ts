/**
 * SwiftFormer (Shaker et al., ICCV 2023) as ONNX-emitting TypeScript.
 *
 * Order, as in timm's model files: small modules, blocks, stage, model, checkpoint remaps,
 * variant configs. Every emitter takes the official state_dict prefix of its module, so the
 * graph's parameters carry the official key names. Everything runs in NCHW: the official code
 * permutes to tokens (B, N, C) around the attention, but a Linear over channels is a 1x1
 * convolution, so the graph needs no transposes at all.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Graph } from '../graph/graph.js';
import {
  ATTENTION_TYPES, efficientAdditiveAttention, fastformerAttention, multiHeadSelfAttention, type AttentionType, type TokenNorm,
} from './attention.js';
import { combine, globalPool, toLayout, toNCHW, type Layout, type Maps } from '../graph/layout.js';
import { batchNorm, conv, emitContext, gelu, relu, type Emit } from './modules.js';
import { Random } from '../core/random.js';
import { float32, numel, type StateDict } from '../core/tensor.js';

export interface SwiftFormerConfig {
  /** Channels per stage. */
  embedDims: number[];
  /** Blocks per stage; the last `vitNum` blocks of each stage are SwiftFormer encoders. */
  depths: number[];
  mlpRatio: number;
  /** 0 means no classifier: the output is the pooled feature vector. */
  numClasses: number;
  /** A second head (`dist_head`) trained by distillation; eval averages the two. */
  distillation: boolean;
  /** Attention blocks at the end of each stage (official: 1). */
  vitNum: number;
  /** Downsampling Embedding before stage i+1 (also inserted whenever the width changes). */
  downsamples: boolean[];
  /** Token normalization of the attention weights: 'l2' (official) or 'softmax' (Hugging Face). */
  attention: TokenNorm;
  /**
   * The attention of the encoder blocks, for ablations: 'additive' (default, the official model
   * and keys), 'fastformer' or 'mhsa' (attention.ts; keys `attn.query`... / `attn.qkv`, `attn.proj`).
   */
  attentionType?: AttentionType;
  /** Heads of 'fastformer' and 'mhsa' (default 1); must divide every stage width. */
  attentionHeads?: number;
}

/** What to emit: the classifier, or the four normalized stage outputs (official `fork_feat`). */
export type Head = 'classifier' | 'features';

export interface EmitOptions {
  head?: Head;
  /** 'train': BatchNorm on batch statistics, `logits` and `dist_logits` kept apart; needs a fixed batch. */
  mode?: 'eval' | 'train';
  /** Batch size; 'batch' (symbolic) by default, a number for train graphs. */
  batch?: number;
  /** Feature-map layout (layout.ts); default 'nchw' for eval, 'cnhw' for train. */
  layout?: Layout;
  /** Input height and width; each must be a positive multiple of 32. */
  inputSize?: number | [number, number];
  /** Also output the raw output of every stage (`stage0` ... `stage3`). */
  intermediates?: boolean;
}

// ---------------------------------------------------------------- small modules

/** A layer scale, stored (C,1,1) as the official parameters are; it multiplies a 1x1 conv's output. */
function layerScale(e: Emit, key: string, channels: number): string {
  return e.b.param(key, [channels, 1, 1]);
}

/** Stem: two 3x3 stride-2 convs, each + BN + ReLU. (N,3,H,W) -> (N,C,H/4,W/4). */
function stem(e: Emit, x: Maps, key: string, outC: number): Maps {
  let y = conv(e, x, `${key}.0`, 3, outC / 2, 3, { stride: 2 });
  y = relu(e, batchNorm(e, y, `${key}.1`, outC / 2));
  y = conv(e, y, `${key}.3`, outC / 2, outC, 3, { stride: 2 });
  return relu(e, batchNorm(e, y, `${key}.4`, outC));
}

/** Downsampling between stages: 3x3 stride-2 conv + BN. (N,C,H,W) -> (N,C',H/2,W/2). */
function embedding(e: Emit, x: Maps, key: string, inC: number, outC: number): Maps {
  return batchNorm(e, conv(e, x, `${key}.proj`, inC, outC, 3, { stride: 2 }), `${key}.norm`, outC);
}

/** BN -> 1x1 -> GELU -> 1x1 (official Mlp), times `scale`. (N,C,H,W) -> same. */
function mlp(e: Emit, x: Maps, key: string, dim: number, hidden: number, scale: string): Maps {
  const y = batchNorm(e, x, `${key}.norm1`, dim);
  return conv(e, gelu(e, conv(e, y, `${key}.fc1`, dim, hidden, 1)), `${key}.fc2`, hidden, dim, 1, { scale });
}

// ---------------------------------------------------------------- blocks

/**
 * ConvEncoder, and with hidden = dim the SwiftFormerLocalRepresentation:
 * x + layer_scale * pw2(GELU(pw1(BN(dw3x3(x))))). (N,C,H,W) -> same.
 */
function convEncoder(e: Emit, x: Maps, key: string, dim: number, hidden: number): Maps {
  let y = conv(e, x, `${key}.dwconv`, dim, dim, 3, { groups: dim });
  y = batchNorm(e, y, `${key}.norm`, dim);
  y = gelu(e, conv(e, y, `${key}.pwconv1`, dim, hidden, 1));
  y = conv(e, y, `${key}.pwconv2`, hidden, dim, 1, { scale: layerScale(e, `${key}.layer_scale`, dim) });
  return combine(e.b, 'Add', x, y);
}

/** The encoder's token mixer, times the layer scale `scale`: the config's attention type. */
function attention(e: Emit, x: Maps, key: string, dim: number, cfg: SwiftFormerConfig, scale: string): Maps {
  const heads = cfg.attentionHeads ?? 1;
  switch (cfg.attentionType ?? 'additive') {
    case 'additive': return efficientAdditiveAttention(e.b, x, key, dim, cfg.attention, scale);
    case 'fastformer': return fastformerAttention(e.b, x, key, dim, { heads, outputScale: scale });
    case 'mhsa': return multiHeadSelfAttention(e.b, x, key, dim, { heads, outputScale: scale });
  }
}

/** SwiftFormerEncoder: local representation, then attention and MLP residuals with layer scales. */
function swiftFormerEncoder(e: Emit, x: Maps, key: string, dim: number, hidden: number, cfg: SwiftFormerConfig): Maps {
  const local = convEncoder(e, x, `${key}.local_representation`, dim, dim);
  const attn = attention(e, local, `${key}.attn`, dim, cfg, layerScale(e, `${key}.layer_scale_1`, dim));
  const y = combine(e.b, 'Add', local, attn);
  return combine(e.b, 'Add', y, mlp(e, y, `${key}.linear`, dim, hidden, layerScale(e, `${key}.layer_scale_2`, dim)));
}

// ---------------------------------------------------------------- stage

/** One stage: ConvEncoders, then `vitNum` SwiftFormer encoders. Key `<network>.<block>`. */
function stage(e: Emit, x: Maps, key: string, dim: number, depth: number, cfg: SwiftFormerConfig): Maps {
  const hidden = Math.floor(cfg.mlpRatio * dim);
  let y = x;
  for (let block = 0; block < depth; block++) {
    y = depth - block <= cfg.vitNum
      ? swiftFormerEncoder(e, y, `${key}.${block}`, dim, hidden, cfg)
      : convEncoder(e, y, `${key}.${block}`, dim, hidden);
  }
  return y;
}

// ---------------------------------------------------------------- model

/** Index into the official `network` ModuleList of each stage (Embeddings sit in between). */
export function stageNetworkIndices(cfg: SwiftFormerConfig): number[] {
  const indices: number[] = [];
  let next = 0;
  cfg.depths.forEach((_, i) => {
    indices.push(next++);
    if (i < cfg.depths.length - 1 && hasEmbedding(cfg, i)) next++;
  });
  return indices;
}

function hasEmbedding(cfg: SwiftFormerConfig, i: number): boolean {
  return (cfg.downsamples[i] ?? true) || cfg.embedDims[i] !== cfg.embedDims[i + 1];
}

export function inputHW(size: EmitOptions['inputSize']): [number, number] {
  const [h, w] = Array.isArray(size) ? size : [size ?? 224, size ?? 224];
  for (const d of [h, w]) {
    if (!Number.isInteger(d) || d < 32 || d % 32 !== 0 || d > 8192) {
      throw new SwiftFormerError('BAD_SHAPE', `input size ${h}x${w} is not supported: height and width must be multiples of 32 between 32 and 8192`);
    }
  }
  return [h, w];
}

/** What the network gives before any head: every stage's raw output, and the last one's input to the head. */
interface Trunk { stages: Maps[]; last: Maps }

/** Stem, stages and the Embeddings between them, keys under `prefix`. Pixels (N,3,H,W) in the maps' layout. */
function trunk(e: Emit, pixels: Maps, cfg: SwiftFormerConfig, prefix: string): Trunk {
  let x = stem(e, pixels, `${prefix}patch_embed`, cfg.embedDims[0]!);
  const netIndex = stageNetworkIndices(cfg);
  const stages: Maps[] = [];
  cfg.depths.forEach((depth, i) => {
    const dim = cfg.embedDims[i]!;
    x = stage(e, x, `${prefix}network.${netIndex[i]}`, dim, depth, cfg);
    stages.push(x);
    if (i < cfg.depths.length - 1 && hasEmbedding(cfg, i)) {
      x = embedding(e, x, `${prefix}network.${netIndex[i]! + 1}`, dim, cfg.embedDims[i + 1]!);
    }
  });
  return { stages, last: x };
}

/**
 * The official `fork_feat` backbone inside a larger model: the four stage outputs after their
 * BatchNorms `norm0`, `norm2`, ... (the `network` indices), every key under `prefix`
 * (`backbone.` in mmsegmentation, `backbone.body.` in torchvision). Strides 4, 8, 16, 32.
 */
export function swiftFormerFeatures(e: Emit, pixels: Maps, cfg: SwiftFormerConfig, prefix = ''): Maps[] {
  return featureNorms(e, swiftFormerStages(e, pixels, cfg, prefix), cfg, prefix);
}

/** The four stage outputs before the fork_feat BatchNorms (a consumer may fold those itself). */
export function swiftFormerStages(e: Emit, pixels: Maps, cfg: SwiftFormerConfig, prefix = ''): Maps[] {
  validateConfig(cfg);
  return trunk(e, pixels, cfg, prefix).stages;
}

/** The fork_feat BatchNorms `norm0`, `norm2`, ... on the stage outputs. */
export function featureNorms(e: Emit, stages: Maps[], cfg: SwiftFormerConfig, prefix = ''): Maps[] {
  const netIndex = stageNetworkIndices(cfg);
  return stages.map((s, i) => batchNorm(e, s, `${prefix}norm${netIndex[i]}`, cfg.embedDims[i]!));
}

/** A graph output `name` holding the maps as (N,C,H,W). */
function outputMaps(b: Emit['b'], x: Maps, name: string): void {
  const nchw = toNCHW(b, x);
  b.output(b.node('Identity', [nchw], b.shape(nchw), {}, name));
}

function classifierHead(e: Emit, x: Maps, cfg: SwiftFormerConfig): string {
  const { b } = e;
  const dim = cfg.embedDims.at(-1)!;
  const pooled = globalPool(b, batchNorm(e, x, 'norm', dim));
  if (cfg.numClasses === 0) return b.unary('Identity', pooled);
  const linear = (key: string) =>
    b.linear(pooled, b.param(`${key}.weight`, [cfg.numClasses, dim]), b.param(`${key}.bias`, [cfg.numClasses]));
  const head = linear('head');
  if (!cfg.distillation) return head;
  // Training keeps the two heads apart (the distillation loss needs both).
  if (e.train) {
    b.output(b.node('Identity', [linear('dist_head')], b.shape(head), {}, 'dist_logits'));
    return head;
  }
  // Eval semantics of the official model: the two heads are averaged.
  return b.binary('Mul', b.binary('Add', head, linear('dist_head')), b.constant([0.5]));
}

/**
 * Emits the eval graph. Input `pixel_values` (batch,3,H,W); output `logits` (batch,numClasses),
 * or `features0..3` (batch,C_i,H/2^(i+2),W/2^(i+2)) for head 'features'.
 */
export function emitSwiftFormer(cfg: SwiftFormerConfig, opts: EmitOptions = {}): Graph {
  validateConfig(cfg);
  const [h, w] = inputHW(opts.inputSize);
  const train = opts.mode === 'train';
  if (train && !(Number.isInteger(opts.batch) && opts.batch! > 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `a train graph needs a fixed batch size of at least 2 (BatchNorm statistics), got ${opts.batch}`);
  }
  const e = emitContext(train);
  const { b } = e;
  const layout = opts.layout ?? (train ? 'cnhw' : 'nchw');
  const pixels = toLayout(b, b.input('pixel_values', [opts.batch ?? 'batch', 3, h, w]), layout);
  const { stages, last } = trunk(e, pixels, cfg, '');
  if ((opts.head ?? 'classifier') === 'classifier') {
    const logits = classifierHead(e, last, cfg);
    b.node('Identity', [logits], b.shape(logits), {}, 'logits');
    b.output('logits');
  } else {
    const netIndex = stageNetworkIndices(cfg);
    stages.forEach((s, i) => outputMaps(b, batchNorm(e, s, `norm${netIndex[i]}`, cfg.embedDims[i]!), `features${i}`));
  }
  if (opts.intermediates) stages.forEach((s, i) => outputMaps(b, s, `stage${i}`));
  return b.graph;
}

export function validateConfig(cfg: SwiftFormerConfig): void {
  const n = cfg.depths.length;
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', `invalid SwiftFormer config: ${msg}`);
  if (n < 1 || cfg.embedDims.length !== n) throw bad(`depths (${n}) and embedDims (${cfg.embedDims.length}) must have the same non-zero length`);
  if (cfg.depths.some((d) => !Number.isInteger(d) || d < 1)) throw bad(`depths must be positive integers, got [${cfg.depths}]`);
  if (cfg.embedDims.some((d) => !Number.isInteger(d) || d < 2 || d % 2 !== 0 || d > 8192)) throw bad(`embedDims must be even integers up to 8192, got [${cfg.embedDims}]`);
  if (!(cfg.mlpRatio > 0 && cfg.mlpRatio <= 16)) throw bad(`mlpRatio must be in (0, 16], got ${cfg.mlpRatio}`);
  if (!Number.isInteger(cfg.numClasses) || cfg.numClasses < 0 || cfg.numClasses > 1_000_000) throw bad(`numClasses must be an integer >= 0, got ${cfg.numClasses}`);
  if (!Number.isInteger(cfg.vitNum) || cfg.vitNum < 0) throw bad(`vitNum must be an integer >= 0, got ${cfg.vitNum}`);
  if (cfg.attention !== 'l2' && cfg.attention !== 'softmax') throw bad(`attention must be 'l2' or 'softmax', got ${String(cfg.attention)}`);
  if (cfg.attentionType !== undefined && !ATTENTION_TYPES.includes(cfg.attentionType)) {
    throw bad(`attentionType must be one of ${ATTENTION_TYPES.join(', ')}, got ${String(cfg.attentionType)}`);
  }
  const heads = cfg.attentionHeads ?? 1;
  if (!Number.isInteger(heads) || heads < 1 || cfg.embedDims.some((d) => d % heads !== 0)) {
    throw bad(`attentionHeads must be a positive integer dividing every width [${cfg.embedDims}], got ${cfg.attentionHeads}`);
  }
}


// ---------------------------------------------------------------- initialization

/**
 * Fresh weights as the official code initializes them: Linear weights trunc_normal(0.02) and zero
 * bias (its cls_init_weights); convs PyTorch's default U(+-1/sqrt(fan_in)); BatchNorm identity;
 * ConvEncoder layer scales 1, attention-block layer scales 1e-5; w_g standard normal.
 */
export function initialWeights(cfg: SwiftFormerConfig, head: Head, seed: number): StateDict {
  const rng = new Random(seed);
  const params = paramShapes(cfg, head);
  const state: StateDict = new Map();
  for (const [key, shape] of params) state.set(key, float32(shape, initialValues(key, shape, params, rng)));
  return state;
}

const shapeCache = new Map<string, ReadonlyMap<string, number[]>>();
const graphCache = new Map<string, Graph>();

/** A bounded memo: the oldest entry goes when it is full. */
function memo<T>(cache: Map<string, T>, key: string, make: () => T, limit = 16): T {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    if (cache.size >= limit) cache.delete(cache.keys().next().value!);
    cache.set(key, value);
  }
  return value;
}

/**
 * The unbound eval graph of a (config, head, size), emitted once and shared: binding weights
 * (bindParams) and folding (optimizeForInference) return new graphs and leave it intact, so an
 * evaluation every epoch or a model per checkpoint costs no emission.
 */
export function evalGraph(cfg: SwiftFormerConfig, head: Head, [h, w]: [number, number]): Graph {
  return memo(graphCache, JSON.stringify([cfg, head, h, w]), () => emitSwiftFormer(cfg, { head, inputSize: [h, w] }), 8);
}

/**
 * Every parameter and buffer of a model by official key, with its shape: what fitting and
 * initialization check against. Emitted once per (config, head) and kept (shapes do not depend
 * on the input size), so loading and fine-tuning never emit a graph just to learn shapes again.
 */
export function paramShapes(cfg: SwiftFormerConfig, head: Head = 'classifier'): ReadonlyMap<string, number[]> {
  return memo(shapeCache, JSON.stringify([cfg, head]), () => emitSwiftFormer(cfg, { head }).params);
}

function initialValues(key: string, shape: number[], params: ReadonlyMap<string, number[]>, rng: Random): Float32Array {
  const n = numel(shape);
  const fill = (v: number) => new Float32Array(n).fill(v);
  const draw = (f: () => number) => Float32Array.from({ length: n }, f);
  const [, prefix = '', leaf = ''] = /^(.*)\.([^.]+)$/.exec(key) ?? [];
  if (params.has(`${prefix}.running_mean`)) {
    return fill(leaf === 'weight' || leaf === 'running_var' ? 1 : 0);
  }
  if (/layer_scale_[12]$/.test(key)) return fill(1e-5);
  if (/layer_scale$/.test(key)) return fill(1);
  if (leaf === 'w_g') return draw(() => rng.normal());
  const weightShape = params.get(`${prefix}.weight`) ?? shape;
  if (weightShape.length === 2) return leaf === 'bias' ? fill(0) : draw(() => rng.truncNormal(0.02));
  const bound = 1 / Math.sqrt(numel(weightShape.slice(1)));
  return draw(() => rng.uniform(-bound, bound));
}

// ---------------------------------------------------------------- checkpoint remaps

/** Where a state dict came from, judged by its key names. */
export type KeyFormat = 'official' | 'huggingface' | 'timm';

export interface Remap {
  format: KeyFormat;
  /** Keys rewritten to the official names (insertion order of the source). */
  mapped: Map<string, string>;
  /** Source keys no rule applies to. */
  unmatched: string[];
}

/** Detects the key format: Hugging Face keys start with `swiftformer.`, timm's with `stem.` or `stages.`. */
export function detectKeyFormat(keys: Iterable<string>): KeyFormat {
  for (const k of keys) {
    if (k.startsWith('swiftformer.')) return 'huggingface';
    if (k.startsWith('stem.') || k.startsWith('stages.')) return 'timm';
  }
  return 'official';
}

/** Hugging Face transformers' names (see its convert_swiftformer_original_to_hf) back to official ones. */
function fromHuggingFace(key: string): string | undefined {
  let k = key
    .replace('.point_wise_conv', '.pwconv')
    .replace('.depth_wise_conv', '.dwconv')
    .replace('.attn.proj.', '.attn.Proj.');
  if (k.startsWith('swiftformer.patch_embed.patch_embedding.')) return k.replace('swiftformer.patch_embed.patch_embedding.', 'patch_embed.');
  const block = /^swiftformer\.encoder\.network\.(\d+)\.blocks\.(\d+)\.(.+)$/.exec(k);
  if (block) return `network.${block[1]}.${block[2]}.${block[3]}`;
  if (k.startsWith('swiftformer.encoder.network.')) return k.replace('swiftformer.encoder.', '');
  k = k.replace(/^swiftformer\./, '');
  return /^(norm|head|dist_head)\./.test(k) ? k : undefined;
}

/** timm's names (its swiftformer.py checkpoint_filter_fn, inverted) back to official ones. */
function fromTimm(key: string, stageIndex: number[]): string | undefined {
  const k = key
    .replace(/^stem\./, 'patch_embed.')
    .replace(/^head_dist\./, 'dist_head.')
    .replace('.attn.proj.', '.attn.Proj.')
    .replace(/\.(layer_scale(?:_1|_2)?)\.gamma$/, '.$1');
  const block = /^stages\.(\d+)\.blocks\.(.+)$/.exec(k);
  if (block) {
    const index = stageIndex[Number(block[1])];
    return index === undefined ? undefined : `network.${index}.${block[2]}`;
  }
  const down = /^stages\.(\d+)\.downsample\.(.+)$/.exec(k);
  if (down) {
    const index = stageIndex[Number(down[1])];
    return index === undefined || index === 0 ? undefined : `network.${index - 1}.${down[2]}`;
  }
  return /^(patch_embed|network|norm\d*|head|dist_head)\b/.test(k) ? k : undefined;
}

/**
 * Official `network` indices of timm's stages, read off timm's own keys: stage N > 0 starts with
 * an Embedding exactly when it has `stages.N.downsample.*` keys.
 */
function timmStageIndices(keys: readonly string[]): number[] {
  const stages = new Set<number>();
  const downsampled = new Set<number>();
  for (const k of keys) {
    const m = /^stages\.(\d+)\.(blocks|downsample)\./.exec(k);
    if (!m) continue;
    stages.add(Number(m[1]));
    if (m[2] === 'downsample') downsampled.add(Number(m[1]));
  }
  const indices: number[] = [];
  for (let n = 0; n <= Math.max(-1, ...stages); n++) indices.push(n === 0 ? 0 : indices[n - 1]! + 1 + (downsampled.has(n) ? 1 : 0));
  return indices;
}

/**
 * A pure key rewrite to the official names. Reports the keys no rule matched; it does not check
 * that the result fits a model (that is `fitWeights`' job). timm's stage numbering is resolved
 * with `cfg` when given, else from the keys themselves, so a checkpoint is renamed once, before
 * its architecture is known.
 */
export function remapKeys(source: Iterable<string>, cfg?: SwiftFormerConfig, format?: KeyFormat): Remap {
  const keys = [...source];
  format ??= detectKeyFormat(keys);
  const stageIndex = format !== 'timm' ? [] : cfg ? stageNetworkIndices(cfg) : timmStageIndices(keys);
  const mapped = new Map<string, string>();
  const unmatched: string[] = [];
  for (const key of keys) {
    const target = format === 'official' ? key : format === 'huggingface' ? fromHuggingFace(key) : fromTimm(key, stageIndex);
    if (target === undefined) unmatched.push(key);
    else mapped.set(key, target);
  }
  return { format, mapped, unmatched };
}

/** The attention rule a weight source was trained with, unless the user says otherwise. */
export function attentionFor(format: KeyFormat): TokenNorm {
  return format === 'huggingface' ? 'softmax' : 'l2';
}

// ---------------------------------------------------------------- variants

const base = { mlpRatio: 4, numClasses: 1000, distillation: true, vitNum: 1, downsamples: [true, true, true, true], attention: 'l2' as TokenNorm };

/** The paper's variants (widths and depths per stage). */
export const VARIANTS: Record<string, SwiftFormerConfig> = {
  xs: { ...base, embedDims: [48, 56, 112, 220], depths: [3, 3, 6, 4] },
  s: { ...base, embedDims: [48, 64, 168, 224], depths: [3, 3, 9, 6] },
  l1: { ...base, embedDims: [48, 96, 192, 384], depths: [4, 3, 10, 5] },
  l3: { ...base, embedDims: [64, 128, 320, 512], depths: [4, 4, 12, 6] },
};

/** Accepts 'xs', 'XS', 'swiftformer_xs', 'swiftformer-xs', 'SwiftFormer_XS'. */
export function variantConfig(id: string): SwiftFormerConfig {
  const name = id.toLowerCase().replace(/^swiftformer[-_]/, '');
  const cfg = VARIANTS[name];
  if (!cfg) {
    throw new SwiftFormerError('UNKNOWN_MODEL', `unknown model '${id}': choose one of ${Object.keys(VARIANTS).join(', ')}`);
  }
  return structuredClone(cfg);
}
