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
  initialWeights, inputHW, remapKeys, swiftFormerFeatures, validateConfig, VARIANTS, type KeyFormat, type SwiftFormerConfig,
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
 * `lat[i-1] += interpolate(lat[i], nearest)`, then a 3x3 conv on each level. Maps in, maps out (same grids).
 */
export function fpnNeck(e: Emit, features: Maps[], inDims: number[], channels: number, prefix = 'neck.'): Maps[] {
  const laterals = features.map((f, i) => conv(e, f, `${prefix}lateral_convs.${i}.conv`, inDims[i]!, channels, 1));
  for (let i = laterals.length - 1; i > 0; i--) {
    const [, h, w] = laterals[i - 1]!.grid;
    laterals[i - 1] = combine(e.b, 'Add', laterals[i - 1]!, resizeMaps(e.b, laterals[i]!, 'nearest', h, w));
  }
  return laterals.map((l, i) => conv(e, l, `${prefix}fpn_convs.${i}.conv`, channels, channels, 3));
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
export function semanticFpn(e: Emit, pixels: Maps, cfg: SemanticFpnConfig, dropoutMask?: string): SemanticFpnOutputs {
  validateSemanticFpnConfig(cfg);
  const features = swiftFormerFeatures(e, pixels, cfg.backbone, 'backbone.').map((f) => toLayout(e.b, toNCHW(e.b, f), 'nchw'));
  const neck = fpnNeck(e, features, cfg.backbone.embedDims, cfg.neckChannels);
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
  const { neck, logits } = semanticFpn(e, pixels, cfg);
  const output = options.output ?? 'logits';
  if (options.intermediates) neck.forEach((m, i) => namedOutput(b, m.value, `features${i}`));
  if (options.intermediates || output === 'logits_quarter') namedOutput(b, logits.value, 'logits_quarter');
  if (output === 'logits_quarter') return b.graph;
  const full = b.resize(logits.value, 'bilinear', h, w);
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
