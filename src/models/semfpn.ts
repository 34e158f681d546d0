/**
 * Semantic FPN (Kirillov et al., 2019) on the SwiftFormer `fork_feat` backbone, exactly as
 * mmsegmentation 0.x composes it (`EncoderDecoder` with neck `FPN` and decode head `FPNHead`), as
 * EfficientFormer's and so SwiftFormer's ADE20K configs use it. Parameter names are mmseg's:
 * `backbone.*` (official fork_feat keys), `neck.lateral_convs.i.conv.*`, `neck.fpn_convs.i.conv.*`,
 * `decode_head.scale_heads.i.j.{conv,bn}.*`, `decode_head.conv_seg.*`.
 *
 * Order, as in timm's model files: modules (neck, head), model, initialization, checkpoint remap
 * and config inference, defaults as data.
 */
import { SwiftFormerError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { float32, numel, type StateDict } from '../core/tensor.js';
import { attr, GraphBuilder, type Graph, type OutputType } from '../graph/graph.js';
import { combine, resizeMaps, sameAs, toLayout, toNCHW, type Layout, type Maps } from '../graph/layout.js';
import { inferConfig } from './fit.js';
import { batchNorm, conv, emitContext, relu, type Emit } from './modules.js';
import {
  featureNorms, initialWeights, inputHW, remapKeys, stageNetworkIndices, swiftFormerStages, validateConfig, VARIANTS, type KeyFormat, type SwiftFormerConfig,
} from './swiftformer.js';

export interface SemanticFpnConfig {
  /** The fork_feat backbone (its numClasses and distillation are ignored). */
  backbone: SwiftFormerConfig;
  /** FPN out_channels (mmseg configs: 256). */
  neckChannels: number;
  /** FPNHead channels (128). */
  headChannels: number;
  numClasses: number;
  /** Dropout2d ratio before conv_seg (0.1); only training graphs use it. */
  dropout: number;
}

/** Strides of the four backbone levels; FPNHead's feature_strides. */
export const FEATURE_STRIDES = [4, 8, 16, 32] as const;

/** mmseg's `ignore_index` of segmentation labels. */
export const IGNORE_INDEX = 255;

// ---------------------------------------------------------------- modules

/**
 * mmseg FPN (num_outs = levels, no norm, no activation): 1x1 lateral convs, top-down
 * `lat[i-1] += interpolate(lat[i], nearest)`, then a 3x3 conv on each level. Maps in, maps out (same
 * grids). `fused` (inference graphs, weights from `fusedNeckWeights`): the backbone's stage outputs
 * before their BatchNorms; the same function computed as `fusedOutputConv` does, without the merged
 * maps of level 0 and with fewer multiply-adds.
 */
export function fpnNeck(e: Emit, features: Maps[], inDims: number[], channels: number, options: { fused?: Maps[]; prefix?: string } = {}): Maps[] {
  const prefix = options.prefix ?? 'neck.';
  const merged: Maps[] = [];
  for (let i = features.length - 1; i >= (options.fused ? 1 : 0); i--) {
    const lateral = conv(e, features[i]!, `${prefix}lateral_convs.${i}.conv`, inDims[i]!, channels, 1);
    const above = merged[i + 1];
    merged[i] = above ? combine(e.b, 'Add', lateral, resizeMaps(e.b, above, 'nearest', lateral.grid[1], lateral.grid[2])) : lateral;
  }
  return features.map((f, i) => (options.fused
    ? fusedOutputConv(e, options.fused[i]!, merged[i + 1], `${prefix}fpn_convs.${i}.conv`, inDims[i]!, channels)
    : conv(e, merged[i]!, `${prefix}fpn_convs.${i}.conv`, channels, channels, 3)));
}

/**
 * fpn_conv(lateral(norm(stage)) + up(above)), with norm the fork_feat BatchNorm and up the 2x
 * nearest upsample, split by linearity into
 * - a 3x3 conv of the stage output itself with the product of the BatchNorm's scale, the lateral
 *   and the fpn conv as weights (`.fused.weight`, C x inC x 3 x 3: inC is the backbone's width, far
 *   below C at level 0);
 * - the 3x3 conv of the upsampled map computed at the low resolution: each of the four output
 *   phases reads a 2x2 window of `above` (`.phases.weight`, 4C x C x 2 x 2: kernel rows and columns summed as
 *   the nearest upsample repeats them; zero padding maps onto zero padding), interleaved by
 *   DepthToSpace;
 * - the BatchNorm's shift and the lateral bias through the 3x3 conv, which differs at the border
 *   where taps fall on padding: a constant map, the conv (`.bias_taps.weight`) of a map of ones, which ONNX Runtime folds at load.
 * Exact up to float rounding (checked against mmseg's fixtures).
 */
function fusedOutputConv(e: Emit, f: Maps, above: Maps | undefined, key: string, inC: number, channels: number): Maps {
  const { b } = e;
  if (f.layout !== 'nchw') throw new Error('the fused FPN output conv is emitted on NCHW maps');
  let y = conv(e, f, `${key}.fused`, inC, channels, 3, { bias: false });
  const [n, h, w] = f.grid;
  if (above) {
    // One 2x2 conv gives all four phases (output channels phase-major); phase (dy, dx) is its
    // window shifted by (dy, dx) over the input padded by 1.
    const [, ah, aw] = above.grid;
    const all = b.conv(above.value, b.param(`${key}.phases.weight`, [4 * channels, channels, 2, 2]), undefined, { pad: 1 });
    const phases = [[0, 0], [0, 1], [1, 0], [1, 1]].map(([dy, dx], p) => b.node('Slice', [
      all, b.ints([p * channels, dy!, dx!]), b.ints([(p + 1) * channels, dy! + ah, dx! + aw]), b.ints([1, 2, 3]),
    ], [n, channels, ah, aw]));
    const stacked = b.node('Concat', phases, [n, 4 * channels, ah, aw], { axis: attr.int(1) });
    y = combine(b, 'Add', y, b.node('DepthToSpace', [stacked], [n, channels, h, w], { blocksize: attr.int(2), mode: attr.string('DCR') }));
  }
  const ones = b.binary('Add', b.node('ConstantOfShape', [b.ints([1, 1, h, w])], [1, 1, h, w]), b.constant([1]));
  const biasMap = b.conv(ones, b.param(`${key}.bias_taps.weight`, [channels, 1, 3, 3]), b.param(`${key}.bias`, [channels]), { pad: 1 });
  return combine(b, 'Add', y, biasMap);
}

/**
 * The derived weights a fused neck reads (fpnNeck's `fused`), from mmseg's: for every level i,
 * fpn_convs.i.conv.{fused, bias_taps, phases}.weight. Returns the state with them added.
 */
export function fusedNeckWeights(state: StateDict, cfg: SemanticFpnConfig): StateDict {
  const out: StateDict = new Map(state);
  const c = cfg.neckChannels;
  const netIndex = stageNetworkIndices(cfg.backbone);
  const get = (key: string) => {
    const t = state.get(key);
    if (!t || t.dtype !== 'float32') throw new SwiftFormerError('KEY_MISMATCH', `missing weight ${key}`);
    return t.data;
  };
  cfg.backbone.embedDims.forEach((inC, i) => {
    const key = `neck.fpn_convs.${i}.conv`;
    const w = get(`${key}.weight`); // (c, c, 3, 3)
    const lateral = get(`neck.lateral_convs.${i}.conv.weight`); // (c, inC)
    // The lateral conv on norm(x) = s x + t: weights L s, bias L t + b.
    const norm = `backbone.norm${netIndex[i]}`;
    const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((k) => get(`${norm}.${k}`)) as Float32Array[];
    const scale = gamma!.map((g, j) => g / Math.sqrt(variance![j]! + 1e-5));
    const shift = beta!.map((v, j) => v - mean![j]! * scale[j]!);
    const lateralBias = get(`neck.lateral_convs.${i}.conv.bias`).map((v, m) => v + shift.reduce((sum, t, j) => sum + lateral[m * inC + j]! * t, 0));
    const fused = new Float64Array(c * inC * 9);
    const biasTaps = new Float64Array(c * 9);
    for (let o = 0; o < c; o++) {
      for (let m = 0; m < c; m++) {
        for (let t = 0; t < 9; t++) {
          const v = w[(o * c + m) * 9 + t]!;
          biasTaps[o * 9 + t]! += v * lateralBias[m]!;
          for (let j = 0; j < inC; j++) fused[(o * inC + j) * 9 + t]! += v * lateral[m * inC + j]! * scale[j]!;
        }
      }
    }
    out.set(`${key}.fused.weight`, float32([c, inC, 3, 3], Float32Array.from(fused)));
    out.set(`${key}.bias_taps.weight`, float32([c, 1, 3, 3], Float32Array.from(biasTaps)));
    // Output phase d of the 2x nearest upsample: low-resolution tap r sums kernel taps TAPS[d][r].
    const TAPS = [[[0], [1, 2]], [[0, 1], [2]]] as const;
    const phases = new Float32Array(4 * c * c * 4);
    [[0, 0], [0, 1], [1, 0], [1, 1]].forEach(([dy, dx], p) => {
      for (let om = 0; om < c * c; om++) {
        for (let ry = 0; ry < 2; ry++) {
          for (let rx = 0; rx < 2; rx++) {
            let sum = 0;
            for (const ky of TAPS[dy!]![ry]!) for (const kx of TAPS[dx!]![rx]!) sum += w[om * 9 + ky * 3 + kx]!;
            phases[(p * c * c + om) * 4 + ry * 2 + rx] = sum;
          }
        }
      }
    });
    out.set(`${key}.phases.weight`, float32([4 * c, c, 2, 2], phases));
  });
  return out;
}

/**
 * One FPNHead level: max(1, log2(stride / 4)) blocks of 3x3 conv (no bias) + BN + ReLU, each
 * followed by a 2x bilinear upsample above stride 4. Sequential indices count the upsamples.
 */
function scaleHead(e: Emit, x: Maps, key: string, inC: number, channels: number, stride: number): Maps {
  const blocks = Math.max(1, Math.log2(stride / FEATURE_STRIDES[0]));
  let y = x;
  let index = 0;
  for (let k = 0; k < blocks; k++) {
    const block = `${key}.${index++}`;
    y = conv(e, y, `${block}.conv`, k === 0 ? inC : channels, channels, 3, { bias: false });
    y = relu(e, batchNorm(e, y, `${block}.bn`, channels));
    if (stride !== FEATURE_STRIDES[0]) {
      const [, h, w] = y.grid;
      y = resizeMaps(e.b, y, 'bilinear', 2 * h, 2 * w);
      index++;
    }
  }
  return y;
}

/**
 * mmseg FPNHead: the levels' scale heads summed at 1/4 (each resized bilinearly to level 0's
 * grid), Dropout2d, and the 1x1 `conv_seg`. `dropoutMask` (N,C,1,1 in NCHW; 0 or 1/(1-p)) is
 * the channel dropout drawn outside the graph; without it there is none (eval, or p = 0).
 */
export function fpnHead(e: Emit, features: Maps[], cfg: SemanticFpnConfig, dropoutMask?: string, prefix = 'decode_head.'): Maps {
  let sum: Maps | undefined;
  features.forEach((f, i) => {
    const y = scaleHead(e, f, `${prefix}scale_heads.${i}`, cfg.neckChannels, cfg.headChannels, FEATURE_STRIDES[i]!);
    if (!sum) sum = y;
    else sum = combine(e.b, 'Add', sum, resizeMaps(e.b, y, 'bilinear', sum.grid[1], sum.grid[2]));
  });
  const dropped = dropoutMask ? channelDropout(e, sum!, dropoutMask) : sum!;
  return conv(e, dropped, `${prefix}conv_seg`, cfg.headChannels, cfg.numClasses, 1);
}

/** Dropout2d with its mask given: maps times a per-image, per-channel factor (N,C,1,1). */
export function channelDropout(e: Emit, x: Maps, mask: string): Maps {
  if (x.layout !== 'nchw') throw new Error('channel dropout is emitted on NCHW maps');
  return sameAs(x, e.b.binary('Mul', x.value, mask));
}

// ---------------------------------------------------------------- model

/** What the model gives: the neck's outputs and the decode head's logits at 1/4 of the input. */
export interface SemanticFpnOutputs { neck: Maps[]; logits: Maps }

/**
 * Backbone (in the pixels' layout), then neck and head in NCHW: their convolutions are dense 3x3
 * ones, which ONNX Runtime runs on NCHW maps.
 */
export function semanticFpn(e: Emit, pixels: Maps, cfg: SemanticFpnConfig, options: { dropoutMask?: string; fusedNeck?: boolean } = {}): SemanticFpnOutputs {
  validateSemanticFpnConfig(cfg);
  const { dropoutMask } = options;
  const nchw = (maps: Maps[]) => maps.map((f) => toLayout(e.b, toNCHW(e.b, f), 'nchw'));
  const stages = nchw(swiftFormerStages(e, pixels, cfg.backbone, 'backbone.'));
  const features = featureNorms(e, stages, cfg.backbone, 'backbone.');
  const neck = fpnNeck(e, features, cfg.backbone.embedDims, cfg.neckChannels, options.fusedNeck ? { fused: stages } : {});
  return { neck, logits: fpnHead(e, neck, cfg, dropoutMask) };
}

export interface SemanticFpnEmitOptions {
  /** Input height and width, multiples of 32 (default 512). */
  inputSize?: number | [number, number];
  /** 'logits' (N,K,H,W) at the input size (default), 'mask' its argmax, 'logits_quarter' the head's (N,K,H/4,W/4). */
  output?: 'logits' | 'mask' | 'logits_quarter';
  /** Also output the neck's maps `features0..3` and the head's `logits_quarter`. */
  intermediates?: boolean;
  /** Backbone layout (default 'nchw'). */
  layout?: Layout;
  /** The neck as fpnNeck's `fused` computes it: bind the weights `fusedNeckWeights` derives. */
  fusedNeck?: boolean;
}

/** The mask's element type: uint8 up to 256 classes, else uint16. */
export function maskType(numClasses: number): OutputType {
  return numClasses <= 256 ? 'uint8' : 'uint16';
}

/** The eval graph: input `pixel_values` (batch,3,H,W), output per `options.output`. */
export function emitSemanticFpn(cfg: SemanticFpnConfig, options: SemanticFpnEmitOptions = {}): Graph {
  const [h, w] = inputHW(options.inputSize ?? 512);
  const e = emitContext(false);
  const { b } = e;
  const pixels = toLayout(b, b.input('pixel_values', ['batch', 3, h, w]), options.layout ?? 'nchw');
  const { neck, logits } = semanticFpn(e, pixels, cfg, { fusedNeck: options.fusedNeck ?? false });
  const output = options.output ?? 'logits';
  if (options.intermediates) neck.forEach((m, i) => namedOutput(b, m.value, `features${i}`));
  if (options.intermediates || output === 'logits_quarter') namedOutput(b, logits.value, 'logits_quarter');
  if (output === 'logits_quarter') return b.graph;
  const full = resizeOutOfBlockedLayout(b, logits.value, h, w);
  if (output === 'logits') {
    namedOutput(b, full, 'logits');
  } else {
    const argmax = b.node('ArgMax', [full], ['batch', h, w], { axis: attr.int(1), keepdims: attr.int(0) });
    const type = maskType(cfg.numClasses);
    b.node('Cast', [argmax], ['batch', h, w], { to: attr.int(type === 'uint8' ? 2 : 4) }, 'mask');
    b.output('mask', type);
  }
  return b.graph;
}

/**
 * The bilinear resize of the logits to the input size, with its sizes computed at run time: ONNX
 * Runtime then leaves it out of its blocked (NCHWc) layout, so the layout change happens on the
 * 1/4-resolution logits instead of on the 16x larger resized ones (measured: the reorder of the
 * full-resolution logits alone cost as much as the resize).
 */
function resizeOutOfBlockedLayout(b: GraphBuilder, x: string, h: number, w: number): string {
  const [n, c] = b.shape(x);
  const batchAndChannels = b.node('Slice', [b.node('Shape', [x], [4]), b.ints([0]), b.ints([2])], [2]);
  const sizes = b.node('Concat', [batchAndChannels, b.ints([h, w])], [4], { axis: attr.int(0) });
  const attrs = { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel') };
  return b.node('Resize', [x, '', '', sizes], [n!, c!, h, w], attrs);
}

function namedOutput(b: GraphBuilder, value: string, name: string): void {
  b.output(b.node('Identity', [value], b.shape(value), {}, name));
}

const shapeCache = new Map<string, ReadonlyMap<string, number[]>>();

/** Every parameter and buffer by mmseg key, with its shape (emitted once per config and kept, as swiftformer.ts's paramShapes). */
export function semanticFpnParams(cfg: SemanticFpnConfig): ReadonlyMap<string, number[]> {
  const key = JSON.stringify({ ...cfg, dropout: 0 });
  let shapes = shapeCache.get(key);
  if (!shapes) {
    shapes = emitSemanticFpn(cfg, { inputSize: 64 }).params;
    if (shapeCache.size >= 16) shapeCache.delete(shapeCache.keys().next().value!);
    shapeCache.set(key, shapes);
  }
  return shapes;
}

export function validateSemanticFpnConfig(cfg: SemanticFpnConfig): void {
  validateConfig(cfg.backbone);
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', `invalid Semantic FPN config: ${msg}`);
  const { depths, downsamples } = cfg.backbone;
  if (depths.length !== FEATURE_STRIDES.length || depths.some((_, i) => i < depths.length - 1 && downsamples[i] === false)) {
    throw bad(`the backbone must have ${FEATURE_STRIDES.length} stages of strides ${FEATURE_STRIDES.join(', ')} (downsampling between all of them)`);
  }
  for (const [name, v] of [['neckChannels', cfg.neckChannels], ['headChannels', cfg.headChannels], ['numClasses', cfg.numClasses]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65536) throw bad(`${name} must be an integer in [1, 65536], got ${v}`);
  }
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw bad(`dropout must be in [0, 1), got ${cfg.dropout}`);
}

// ---------------------------------------------------------------- initialization

/**
 * Fresh weights: the backbone as the official code initializes it (swiftformer.ts), the neck and
 * head as mmseg 0.x does: every ConvModule conv kaiming-normal (fan_out, ReLU gain) with zero
 * bias, BatchNorm identity, conv_seg N(0, 0.01) with zero bias.
 */
export function initialSemanticFpnWeights(cfg: SemanticFpnConfig, seed: number): StateDict {
  const state: StateDict = new Map();
  for (const [key, t] of initialWeights(cfg.backbone, 'features', seed)) state.set(`backbone.${key}`, t);
  const rng = new Random(seed + 1);
  for (const [key, shape] of semanticFpnParams(cfg)) {
    if (key.startsWith('backbone.')) continue;
    state.set(key, float32(shape, headValues(key, shape, rng)));
  }
  return state;
}

function headValues(key: string, shape: number[], rng: Random): Float32Array {
  const n = numel(shape);
  if (/\.bn\.(weight|running_var)$/.test(key)) return new Float32Array(n).fill(1);
  if (!key.endsWith('.weight') || key.includes('.bn.')) return new Float32Array(n);
  const std = key.startsWith('decode_head.conv_seg.') ? 0.01 : Math.sqrt(2 / (shape[0]! * shape[2]! * shape[3]!));
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

// ---------------------------------------------------------------- checkpoint remap and config inference

/** mmseg Semantic FPN weights: a decode head beside a backbone (no task flag needed). */
export function isSemanticFpnState(keys: Iterable<string>): boolean {
  let backbone = false;
  let head = false;
  for (const k of keys) {
    backbone ||= k.startsWith('backbone.');
    head ||= k.startsWith('decode_head.scale_heads.') || k.startsWith('decode_head.conv_seg.');
    if (backbone && head) return true;
  }
  return false;
}

export interface SemanticFpnRemap {
  /** Key format of the backbone's keys. */
  format: KeyFormat;
  mapped: Map<string, string>;
  unmatched: string[];
}

/**
 * A pure key rewrite to mmseg's names: `backbone.` keys in any format swiftformer.ts reads
 * (official, Hugging Face, timm) become official ones; neck and head keys stay as they are.
 */
export function remapSemanticFpnKeys(source: Iterable<string>, backbone: SwiftFormerConfig): SemanticFpnRemap {
  const keys = [...source];
  const inner = keys.filter((k) => k.startsWith('backbone.')).map((k) => k.slice('backbone.'.length));
  const remap = remapKeys(inner, backbone);
  const mapped = new Map<string, string>();
  const unmatched = remap.unmatched.map((k) => `backbone.${k}`);
  for (const [from, to] of remap.mapped) mapped.set(`backbone.${from}`, `backbone.${to}`);
  for (const k of keys) {
    if (/^(neck\.(lateral|fpn)_convs\.|decode_head\.(scale_heads|conv_seg)\.)/.test(k)) mapped.set(k, k);
    else if (!k.startsWith('backbone.')) unmatched.push(k);
  }
  return { format: remap.format, mapped, unmatched };
}

/**
 * The architecture read off the weights: the backbone from its keys (fit.ts's inferConfig), neck
 * width from the lateral convs, head width and class count from conv_seg. Dropout: `dropout`.
 */
export function inferSemanticFpnConfig(state: StateDict, dropout: number = DEFAULTS.dropout): SemanticFpnConfig {
  const remap = remapSemanticFpnKeys(state.keys(), VARIANTS.xs!);
  const backboneState: StateDict = new Map();
  for (const [from, to] of remap.mapped) if (to.startsWith('backbone.')) backboneState.set(to.slice('backbone.'.length), state.get(from)!);
  const backbone = { ...inferConfig(backboneState), numClasses: 0, distillation: false };
  const lateral = state.get('neck.lateral_convs.0.conv.weight')?.shape;
  const seg = state.get('decode_head.conv_seg.weight')?.shape;
  if (!lateral || !seg) {
    throw new SwiftFormerError('KEY_MISMATCH', `cannot infer the Semantic FPN: the weights lack ${lateral ? '' : 'neck.lateral_convs.0.conv.weight '}${seg ? '' : 'decode_head.conv_seg.weight'}`.trim());
  }
  const cfg: SemanticFpnConfig = { backbone, neckChannels: lateral[0]!, headChannels: seg[1]!, numClasses: seg[0]!, dropout };
  validateSemanticFpnConfig(cfg);
  return cfg;
}

// ---------------------------------------------------------------- defaults

/** EfficientFormer's / SwiftFormer's ADE20K Semantic FPN: FPN 256, head 128, 150 classes, dropout 0.1. */
export const DEFAULTS = { neckChannels: 256, headChannels: 128, numClasses: 150, dropout: 0.1 } as const;

/** mmseg's test scale for ADE20K, (long edge, short edge) bounds of Resize(keep_ratio=True). */
export const DEFAULT_SCALE: readonly [number, number] = [2048, 512];

/** A Semantic FPN on a backbone variant ('xs', 's', 'l1', 'l3') or config, with `DEFAULTS` overridden. */
export function semanticFpnConfig(backbone: SwiftFormerConfig, overrides: Partial<Omit<SemanticFpnConfig, 'backbone'>> = {}): SemanticFpnConfig {
  const cfg: SemanticFpnConfig = { ...DEFAULTS, ...overrides, backbone: { ...structuredClone(backbone), numClasses: 0, distillation: false } };
  validateSemanticFpnConfig(cfg);
  return cfg;
}
