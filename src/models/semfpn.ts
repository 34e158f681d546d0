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
export function fpnNeck(e: Emit, features: Maps[], inDims: number[], channels: number, options: { fused?: Maps[] } = {}): Maps[] {
  const merged = topDown(e, features, inDims, channels, options.fused ? 1 : 0);
  return features.map((f, i) => (options.fused
    ? fusedOutputConv(e, options.fused[i]!, merged[i + 1], i, inDims[i]!, channels)
    : conv(e, merged[i]!, `neck.fpn_convs.${i}.conv`, channels, channels, 3)));
}

/** FPN's top-down pathway for levels >= `from`: merged[i] = lateral_i(features[i]) + up(merged[i + 1]). */
function topDown(e: Emit, features: Maps[], inDims: number[], channels: number, from: number): Maps[] {
  const merged: Maps[] = [];
  for (let i = features.length - 1; i >= from; i--) {
    const lateral = conv(e, features[i]!, `neck.lateral_convs.${i}.conv`, inDims[i]!, channels, 1);
    const above = merged[i + 1];
    merged[i] = above ? combine(e.b, 'Add', lateral, resizeMaps(e.b, above, 'nearest', lateral.grid[1], lateral.grid[2])) : lateral;
  }
  return merged;
}

/**
 * fpn_conv(lateral(norm(stage)) + up(above)), with norm the fork_feat BatchNorm and up the 2x
 * nearest upsample, split by linearity into
 * - a 3x3 conv of the stage output itself with the product of the BatchNorm's scale, the lateral
 *   and the fpn conv as weights (C x inC x 3 x 3: inC is the backbone's width, far below C at level 0);
 * - the 3x3 conv of the upsampled map computed at the low resolution: each of the four output
 *   phases reads a 2x2 window of `above` (4C x C x 2 x 2: kernel rows and columns summed as the
 *   nearest upsample repeats them; zero padding maps onto zero padding), interleaved by DepthToSpace;
 * - the BatchNorm's shift and the lateral bias through the 3x3 conv, which differs at the border
 *   where taps fall on padding: a constant map, the conv of a map of ones.
 * The derived kernels are computed from mmseg's weights in the graph (neckKernels), so ONNX Runtime
 * folds them at load. Exact up to float rounding (checked against mmseg's fixtures).
 */
function fusedOutputConv(e: Emit, f: Maps, above: Maps | undefined, level: number, inC: number, channels: number): Maps {
  const { b } = e;
  if (f.layout !== 'nchw') throw new Error('the fused FPN output conv is emitted on NCHW maps');
  const kernels = neckKernels(b, level, inC, channels);
  let y = sameAs(f, b.conv(f.value, kernels.fused, undefined, { pad: 1 }));
  const [n, h, w] = f.grid;
  if (above) {
    // One 2x2 conv gives all four phases (output channels phase-major); phase (dy, dx) is its
    // window shifted by (dy, dx) over the input padded by 1.
    const [, ah, aw] = above.grid;
    const all = b.conv(above.value, upsamplePhases(b, kernels.fpn), undefined, { pad: 1 });
    const phases = [[0, 0], [0, 1], [1, 0], [1, 1]].map(([dy, dx], p) => b.node('Slice', [
      all, b.ints([p * channels, dy!, dx!]), b.ints([(p + 1) * channels, dy! + ah, dx! + aw]), b.ints([1, 2, 3]),
    ], [n, channels, ah, aw]));
    const stacked = b.node('Concat', phases, [n, 4 * channels, ah, aw], { axis: attr.int(1) });
    y = combine(b, 'Add', y, b.node('DepthToSpace', [stacked], [n, channels, h, w], { blocksize: attr.int(2), mode: attr.string('DCR') }));
  }
  return combine(b, 'Add', y, neckBiasMap(b, kernels, channels, h, w));
}

interface NeckKernels {
  /** mmseg's fpn conv (C, C, 3, 3) and bias (C). */
  fpn: string;
  bias: string;
  /** The fpn conv after the lateral conv after the BatchNorm's scale: (C, inC, 3, 3). */
  fused: string;
  /** The fpn conv of the lateral bias and the BatchNorm's shift through the lateral: (C, 1, 3, 3). */
  biasTaps: string;
}

/**
 * Level i's fused neck kernels as graph nodes on its weights, which ONNX Runtime folds at load (all
 * inputs are initializers): the 1x1 lateral after the 3x3 fpn conv is a 1x1 conv of the fpn kernel
 * seen as C images of C channels. The lateral's weights with the BatchNorm folded in come from
 * fusedNeckWeights.
 */
function neckKernels(b: GraphBuilder, level: number, inC: number, channels: number): NeckKernels {
  const key = `neck.fpn_convs.${level}.conv`;
  const lateral = `neck.lateral_convs.${level}.conv.scaled`;
  const fpn = b.param(`${key}.weight`, [channels, channels, 3, 3]);
  const lateralT = b.node('Transpose', [b.param(`${lateral}.weight`, [channels, inC, 1, 1])], [inC, channels, 1, 1], { perm: attr.ints([1, 0, 2, 3]) });
  const lateralBias = b.reshape(b.param(`${lateral}.bias`, [channels]), [1, channels, 1, 1]);
  return {
    fpn,
    bias: b.param(`${key}.bias`, [channels]),
    fused: b.conv(fpn, lateralT, undefined),
    biasTaps: b.conv(fpn, lateralBias, undefined),
  };
}

/** The constant part of a fused FPN output (BatchNorm shift, lateral and fpn biases), (1, C, h, w). */
function neckBiasMap(b: GraphBuilder, kernels: NeckKernels, channels: number, h: number, w: number): string {
  const ones = b.binary('Add', b.node('ConstantOfShape', [b.ints([1, 1, h, w])], [1, 1, h, w]), b.constant([1]));
  return b.conv(ones, kernels.biasTaps, kernels.bias, { pad: 1 });
}

/**
 * Whether level `i`'s head entry (below) takes fewer multiply-adds than the fused FPN output conv
 * followed by the head's first 3x3 conv: per output pixel 25*O*inC + 9*O*C against
 * 9*C*inC + 4*C*C + 9*O*C (C neck, O head channels). The top level has nothing above it.
 */
export function composesHead(cfg: SemanticFpnConfig, i: number): boolean {
  const inC = cfg.backbone.embedDims[i]!;
  const [c, o] = [cfg.neckChannels, cfg.headChannels];
  return i < FEATURE_STRIDES.length - 1 && 25 * o * inC < 9 * c * inC + 4 * c * c;
}

/**
 * The first block of level i's scale head before its ReLU, bn(head(fpn(neck input))), straight from
 * the stage output `f` and the merged map `above`, without the neck's output map: the two 3x3
 * convs compose into 5x5 ones (on `f`; and on the 2x nearest upsample of `above`, computed at the
 * low resolution as four phases of 3x3 convs interleaved by DepthToSpace). The composite kernels
 * are convolutions of the weights, left in the graph for ONNX Runtime to fold at load.
 * The composite also reads the neck map one pixel beyond the image, where the head sees zero
 * padding: the four border strips of that ring are recomputed (thin convs) and subtracted.
 */
function fusedHeadEntry(e: Emit, f: Maps, above: Maps, level: number, cfg: SemanticFpnConfig): Maps {
  const { b } = e;
  const [c, o, inC] = [cfg.neckChannels, cfg.headChannels, cfg.backbone.embedDims[level]!];
  const head = `decode_head.scale_heads.${level}.0.conv`;
  const [n, h, w] = f.grid;
  const kernels = neckKernels(b, level, inC, c);
  const scaled = b.param(`${head}.scaled.weight`, [o, c, 3, 3]);
  const flipped = b.node('Slice', [scaled, b.ints([-1, -1]), b.ints([-4, -4]), b.ints([2, 3]), b.ints([-1, -1])], [o, c, 3, 3]);
  const onStage = composedKernel(b, flipped, kernels.fused);
  const onAbove = upsamplePhases(b, composedKernel(b, flipped, kernels.fpn));
  const phases = b.conv(above.value, onAbove, undefined, { pad: 1 });
  const terms = [
    b.conv(f.value, onStage, undefined, { pad: 2 }),
    b.node('DepthToSpace', [phases], [n, o, h, w], { blocksize: attr.int(2), mode: attr.string('DCR') }),
    b.conv(neckBiasMap(b, kernels, c, h, w), scaled, b.param(`${head}.shift`, [o]), { pad: 1 }),
    ...RING.map((side) => ringCorrection(b, f, above, side, kernels, scaled)),
  ];
  return { value: b.node('Sum', terms, [n, o, h, w]), layout: 'nchw', grid: f.grid };
}

/**
 * The kernel of `outer` (3x3, given spatially flipped, (O, C, 3, 3)) applied after `inner`
 * (C, J, 3, 3): (O, J, 5, 5), as a conv of `inner` seen as J images of C channels.
 */
function composedKernel(b: GraphBuilder, flippedOuter: string, inner: string): string {
  const [o] = b.shape(flippedOuter) as number[];
  const [c, j] = b.shape(inner) as number[];
  const images = b.node('Transpose', [inner], [j!, c!, 3, 3], { perm: attr.ints([1, 0, 2, 3]) });
  const full = b.conv(images, flippedOuter, undefined, { pad: 2 });
  return b.node('Transpose', [full], [o!, j!, 5, 5], { perm: attr.ints([1, 0, 2, 3]) });
}

/**
 * A k x k kernel (O, C, k, k; k odd, padding (k-1)/2) applied to the 2x nearest upsample of a map,
 * as four kernels on the map itself, phase-major (4O, C, t, t): output row 2i + d reads the upsampled
 * rows 2i + d + s - (k-1)/2, and kernel rows s that land on the same low row add up. Those are
 * 2-wide windows of the kernel at stride 2, padded by one on the near side when d + (k-1)/2 is odd:
 * k = 3 gives 2x2 kernels ({0},{1,2} for d = 0), k = 5 3x3 ones ({0,1},{2,3},{4}).
 */
function upsamplePhases(b: GraphBuilder, kernel: string): string {
  const [o, c, k] = b.shape(kernel) as number[];
  const taps = b.reshape(kernel, [o! * c!, 1, k!, k!]);
  const window = b.constant([1, 1, 1, 1], [1, 1, 2, 2]);
  const near = (d: number) => (d + (k! - 1) / 2) % 2;
  const far = (d: number) => (k! + near(d)) % 2;
  const t = (k! + 1) / 2;
  const phases = [[0, 0], [0, 1], [1, 0], [1, 1]].map(([dy, dx]) => b.node('Conv', [taps, window], [o! * c!, 1, t, t], {
    kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]), pads: attr.ints([near(dy!), near(dx!), far(dy!), far(dx!)]),
  }));
  return b.reshape(b.node('Concat', phases, [4 * o! * c!, 1, t, t], { axis: attr.int(0) }), [4 * o!, c!, t, t]);
}

type RingSide = 'top' | 'bottom' | 'left' | 'right';
const RING: readonly RingSide[] = ['top', 'bottom', 'left', 'right'];

/**
 * Minus the head conv of the neck map's values on one side of the ring just outside the image
 * (which the composite kernels read and the head's zero padding does not), as a full-size map.
 * Top and bottom strips cover the corners; left and right only the image's rows.
 * The ring values are the neck's 3x3 convs, the kernel row or column that reaches over the border,
 * on the stage map's and the upsampled merged map's edge row or column, stacked.
 */
function ringCorrection(b: GraphBuilder, f: Maps, above: Maps, side: RingSide, kernels: NeckKernels, headScaled: string): string {
  const [n, h, w] = f.grid;
  const [, ah, aw] = above.grid;
  const [o, c] = b.shape(headScaled) as number[];
  const inC = b.shape(f.value)[1] as number;
  const rows = side === 'top' || side === 'bottom';
  const far = side === 'bottom' || side === 'right';
  const axis = rows ? 2 : 3;
  const edgeShape = (x: string): number[] => (b.shape(x) as number[]).map((d, a) => (a === axis ? 1 : d));
  const slice = (x: string, at: number) => b.node('Slice', [x, b.ints([at]), b.ints([at + 1]), b.ints([axis])], edgeShape(x));
  const aboveEdge = slice(above.value, far ? (rows ? ah : aw) - 1 : 0);
  const upsampled = b.resize(aboveEdge, 'nearest', rows ? 1 : h, rows ? w : 1);
  const stacked = b.node('Concat', [slice(f.value, far ? (rows ? h : w) - 1 : 0), upsampled], rows ? [n, inC + c!, 1, w] : [n, inC + c!, h, 1], { axis: attr.int(1) });
  // The neck kernels' row (column) reaching over this border: the far side of the kernel at the near border.
  const neckTap = far ? 0 : 2;
  const ringKernel = b.node('Concat', [slice(kernels.fused, neckTap), slice(kernels.fpn, neckTap)], rows ? [c!, inC + c!, 1, 3] : [c!, inC + c!, 3, 1], { axis: attr.int(1) });
  const headKernel = b.unary('Neg', slice(headScaled, far ? 2 : 0));
  const kernel = rows ? [1, 3] : [3, 1];
  // Rows: the ring row over columns -1..w (pads 2); columns: over the image's rows only (pads 1).
  const ring = b.node('Conv', [stacked, ringKernel], rows ? [n, c!, 1, w + 2] : [n, c!, h, 1], {
    kernel_shape: attr.ints(kernel), pads: attr.ints(rows ? [0, 2, 0, 2] : [1, 0, 1, 0]),
  });
  const strip = b.node('Conv', [ring, headKernel], rows ? [n, o!, 1, w] : [n, o!, h, 1], {
    kernel_shape: attr.ints(kernel), pads: attr.ints(rows ? [0, 0, 0, 0] : [1, 0, 1, 0]),
  });
  const pads = [0, 0, 0, 0, 0, 0, 0, 0];
  pads[(far ? 0 : 4) + axis] = (rows ? h : w) - 1;
  return b.node('Pad', [strip, b.ints(pads)], [n, o!, h, w]);
}

/**
 * The small derived weights a fused neck and head read (the rest is graph arithmetic on mmseg's
 * weights, folded at load): per level, the lateral conv on norm(x) = s x + t as
 * `neck.lateral_convs.i.conv.scaled.{weight, bias}` (L s, L t + b); per level whose head entry is
 * fused, the head's first conv with its BatchNorm folded in, `decode_head.scale_heads.i.0.conv.
 * {scaled.weight, shift}`. Returns the state with them added.
 */
export function fusedNeckWeights(state: StateDict, cfg: SemanticFpnConfig): StateDict {
  const out: StateDict = new Map(state);
  const netIndex = stageNetworkIndices(cfg.backbone);
  const get = (key: string) => {
    const t = state.get(key);
    if (!t || t.dtype !== 'float32') throw new SwiftFormerError('KEY_MISMATCH', `missing weight ${key}`);
    return t.data;
  };
  const c = cfg.neckChannels;
  cfg.backbone.embedDims.forEach((inC, i) => {
    const lateral = `neck.lateral_convs.${i}.conv`;
    const weight = get(`${lateral}.weight`); // (c, inC)
    const { scale, shift } = foldedNorm(get, `backbone.norm${netIndex[i]}`);
    const bias = get(`${lateral}.bias`).map((v, m) => v + shift.reduce((sum, t, j) => sum + weight[m * inC + j]! * t, 0));
    out.set(`${lateral}.scaled.weight`, float32([c, inC, 1, 1], weight.map((v, mj) => v * scale[mj % inC]!)));
    out.set(`${lateral}.scaled.bias`, float32([c], bias));
    if (!composesHead(cfg, i)) return;
    const head = `decode_head.scale_heads.${i}.0`;
    const norm = foldedNorm(get, `${head}.bn`);
    out.set(`${head}.conv.scaled.weight`, float32([cfg.headChannels, c, 3, 3], get(`${head}.conv.weight`).map((v, j) => v * norm.scale[Math.floor(j / (c * 9))]!)));
    out.set(`${head}.conv.shift`, float32([cfg.headChannels], norm.shift));
  });
  return out;
}

/** An eval-mode BatchNorm (mmseg's eps 1e-5) as x * scale + shift. */
function foldedNorm(get: (key: string) => Float32Array, key: string): { scale: Float32Array; shift: Float32Array } {
  const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((k) => get(`${key}.${k}`)) as Float32Array[];
  const scale = gamma!.map((g, j) => g / Math.sqrt(variance![j]! + 1e-5));
  return { scale, shift: beta!.map((v, j) => v - mean![j]! * scale[j]!) };
}

/**
 * One FPNHead level: max(1, log2(stride / 4)) blocks of 3x3 conv (no bias) + BN + ReLU, each
 * followed by a 2x bilinear upsample above stride 4. Sequential indices count the upsamples.
 */
function scaleHead(e: Emit, x: HeadInput, key: string, inC: number, channels: number, stride: number): Maps {
  const blocks = Math.max(1, Math.log2(stride / FEATURE_STRIDES[0]));
  let y = 'entry' in x ? x.entry : x.neck;
  let index = 0;
  for (let k = 0; k < blocks; k++) {
    const block = `${key}.${index++}`;
    if (k > 0 || !('entry' in x)) y = batchNorm(e, conv(e, y, `${block}.conv`, k === 0 ? inC : channels, channels, 3, { bias: false }), `${block}.bn`, channels);
    y = relu(e, y);
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
export function fpnHead(e: Emit, features: (Maps | HeadInput)[], cfg: SemanticFpnConfig, dropoutMask?: string, prefix = 'decode_head.'): Maps {
  let sum: Maps | undefined;
  features.forEach((f, i) => {
    const y = scaleHead(e, 'entry' in f || 'neck' in f ? f : { neck: f }, `${prefix}scale_heads.${i}`, cfg.neckChannels, cfg.headChannels, FEATURE_STRIDES[i]!);
    if (!sum) sum = y;
    else sum = combine(e.b, 'Add', sum, resizeMaps(e.b, y, 'bilinear', sum.grid[1], sum.grid[2]));
  });
  const dropped = dropoutMask ? channelDropout(e, sum!, dropoutMask) : sum!;
  return conv(e, dropped, `${prefix}conv_seg`, cfg.headChannels, cfg.numClasses, 1);
}

/** A level's input to the head: the neck's map, or its first block before the ReLU (fusedHeadEntry). */
export type HeadInput = { neck: Maps } | { entry: Maps };

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
export function semanticFpn(e: Emit, pixels: Maps, cfg: SemanticFpnConfig, options: { dropoutMask?: string; fusedNeck?: boolean; fusedHead?: boolean } = {}): SemanticFpnOutputs {
  validateSemanticFpnConfig(cfg);
  const { dropoutMask } = options;
  const nchw = (maps: Maps[]) => maps.map((f) => toLayout(e.b, toNCHW(e.b, f), 'nchw'));
  const stages = nchw(swiftFormerStages(e, pixels, cfg.backbone, 'backbone.'));
  const features = featureNorms(e, stages, cfg.backbone, 'backbone.');
  if (options.fusedHead) return { neck: [], logits: fpnHead(e, fusedNeckAndHeadEntries(e, stages, features, cfg), cfg, dropoutMask) };
  const neck = fpnNeck(e, features, cfg.backbone.embedDims, cfg.neckChannels, options.fusedNeck ? { fused: stages } : {});
  return { neck, logits: fpnHead(e, neck, cfg, dropoutMask) };
}

/** The fused neck, each level handing the head its first block where composesHead says that is cheaper. */
function fusedNeckAndHeadEntries(e: Emit, stages: Maps[], features: Maps[], cfg: SemanticFpnConfig): HeadInput[] {
  const dims = cfg.backbone.embedDims;
  const merged = topDown(e, features, dims, cfg.neckChannels, 1);
  return stages.map((f, i) => (composesHead(cfg, i)
    ? { entry: fusedHeadEntry(e, f, merged[i + 1]!, i, cfg) }
    : { neck: fusedOutputConv(e, f, merged[i + 1], i, dims[i]!, cfg.neckChannels) }));
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
  /**
   * As fusedNeck, and the neck's output convs composed with the head's first ones (fusedHeadEntry)
   * where that is cheaper: the neck maps are then not computed, so no `features` outputs.
   */
  fusedHead?: boolean;
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
  const { neck, logits } = semanticFpn(e, pixels, cfg, { fusedNeck: options.fusedNeck ?? false, fusedHead: options.fusedHead ?? false });
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
 * head as mmseg 0.x with mmcv 1.x ends up with them: the FPN's convs Xavier-uniform with zero
 * bias (FPN's init_cfg, applied by init_weights after its ConvModules' own kaiming init at
 * construction), the head's ConvModule convs kaiming-normal (fan_out, ReLU gain; nothing later
 * overrides them), BatchNorm identity, conv_seg N(0, 0.01) with zero bias (the head's init_cfg).
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
  const [out, inC, kh, kw] = shape as [number, number, number, number];
  if (key.startsWith('neck.')) {
    const bound = Math.sqrt(6 / ((inC + out) * kh * kw));
    return Float32Array.from({ length: n }, () => rng.uniform(-bound, bound));
  }
  const std = key.startsWith('decode_head.conv_seg.') ? 0.01 : Math.sqrt(2 / (out * kh * kw));
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
