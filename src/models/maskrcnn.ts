/**
 * Mask R-CNN (and Faster R-CNN) on SwiftFormer, as torchvision 0.14 composes it: the official
 * `fork_feat` backbone as `backbone.body`, FeaturePyramidNetwork + LastLevelMaxPool as
 * `backbone.fpn`, RegionProposalNetwork (`rpn.head`) and RoIHeads (`roi_heads`), with every
 * default of torchvision's MaskRCNN (./detection/settings.ts). Parameters carry torchvision's
 * state_dict keys, so its checkpoints load as they are.
 *
 * Order, as the other model files: modules (./detection/), the model, checkpoint remap and
 * config inference, initialization, configs as data.
 *
 * The inference graph is ONE ONNX graph, from pixels to pasted masks:
 *   input  pixel_values (N, 3, H, W) float32, RGB in [0, 1], every image of the batch H x W
 *          (resizing to min_size / max_size happens inside, as torchvision's transform does);
 *   output boxes (D, 4) x1, y1, x2, y2 in input pixels, scores (D), labels (D) int64,
 *          masks (D, 1, H, W) probabilities (Mask R-CNN only), batch_index (D) int64:
 *          the detections of all images flattened, sorted by image, then by descending score.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Graph } from '../graph/graph.js';
import { GraphBuilder } from '../graph/graph.js';
import { compare, dimOf, identity, range, scalar, unsqueeze } from '../graph/ops.js';
import { toLayout, toNCHW, type Maps } from '../graph/layout.js';
import { emitContext, type Emit } from './modules.js';
import { initialWeights, swiftFormerFeatures, variantConfig, type SwiftFormerConfig } from './swiftformer.js';
import { fitToParams, inferConfig } from './fit.js';
import { Random } from '../core/random.js';
import { float32, numel, type StateDict, type Tensor } from '../core/tensor.js';
import { featurePyramid } from './detection/fpn.js';
import { regionProposals, type Proposals, type RpnShape } from './detection/rpn.js';
import {
  boxHead, flattenProposals, maskHead, maskProbabilities, poolRois, postprocessDetections, type Detections, type RoiHeadsShape,
} from './detection/roi-heads.js';
import { levelScales } from './detection/poolers.js';
import { boxesToOriginal, clipLimits, pasteMasks, transformImages, type ImageBatch } from './detection/transform.js';
import { resolveSettings, type DetectionSettings, type SettingsOverrides } from './detection/settings.js';

export interface MaskRcnnConfig {
  /** The SwiftFormer backbone (fork_feat: no classifier). */
  backbone: SwiftFormerConfig;
  /** FPN width (torchvision's `out_channels`, 256). */
  fpnChannels: number;
  /** Classes including the background (91 for torchvision's COCO models). */
  numClasses: number;
  /** TwoMLPHead width (1024). */
  representation: number;
  /** 3x3 conv layers of the RPN head (1). */
  rpnConvDepth: number;
  /** Mask head conv widths ([256, 256, 256, 256]); absent for Faster R-CNN (no masks). */
  maskLayers?: number[];
  /** Mask predictor width (256). */
  maskDimReduced?: number;
  settings: DetectionSettings;
}

// ---------------------------------------------------------------- model

const BODY = 'backbone.body.';
const FPN = 'backbone.fpn.';
const RPN = 'rpn.head.';
const ROI = 'roi_heads.';

export interface MaskRcnnEmitOptions {
  /**
   * 'pixels' (default): the one graph above. 'batch': inputs `images` (N, 3, H', W') normalized,
   * resized and padded, `image_sizes` and `original_sizes` (N, 2) int64, for batches of images
   * of different sizes (masks are pasted on the largest original size).
   */
  input?: 'pixels' | 'batch';
  /** Proposals as inputs instead of the RPN: `proposals` (N, T, 4) padded, `proposal_counts` (N) int64. */
  proposalsInput?: boolean;
  /**
   * Also output every stage: batch (the padded input of the backbone), resized_sizes, fpn_0..3,
   * fpn_pool, proposals_flat (M, 4) with proposal_batch (M), class_logits, box_regression,
   * boxes_resized (detections in resized-image pixels), mask_probabilities (D, 1, 28, 28: each
   * detection's mask before pasting).
   */
  intermediates?: boolean;
  /**
   * A float32 scalar input `score_threshold`: detections at or below it are dropped before their
   * masks are pasted (the library's detect). Default: none, torchvision's output.
   */
  thresholdInput?: boolean;
}

/** Name of the optional threshold input (MaskRcnnEmitOptions.thresholdInput). */
export const SCORE_THRESHOLD_INPUT = 'score_threshold';

/** The RPN head's shape of `cfg` (also the training step's, train/detection-step.ts). */
export function rpnShape(cfg: MaskRcnnConfig): RpnShape {
  const a = cfg.settings.anchors;
  return { channels: cfg.fpnChannels, anchors: a.sizes[0]!.length * a.aspectRatios[0]!.length, convDepth: cfg.rpnConvDepth };
}

/** The RoI heads' shape of `cfg` (also the training step's, train/detection-step.ts). */
export function roiShape(cfg: MaskRcnnConfig): RoiHeadsShape {
  return {
    channels: cfg.fpnChannels, representation: cfg.representation, numClasses: cfg.numClasses,
    ...(cfg.maskLayers ? { maskLayers: cfg.maskLayers, maskDimReduced: cfg.maskDimReduced ?? cfg.maskLayers.at(-1)! } : {}),
  };
}

function batchInputs(b: GraphBuilder): ImageBatch {
  return {
    images: b.input('images', ['batch', 3, 'padded_height', 'padded_width']),
    imageSizes: b.input('image_sizes', ['batch', 2], 'int64'),
    originalSizes: b.input('original_sizes', ['batch', 2], 'int64'),
  };
}

/** backbone.body + backbone.fpn: levels '0'..'3' and 'pool' (NCHW). */
export function backboneFeatures(e: Emit, images: string, cfg: MaskRcnnConfig): Maps[] {
  const body = swiftFormerFeatures(e, toLayout(e.b, images, 'nchw'), cfg.backbone, BODY);
  return featurePyramid(e, body, cfg.backbone.embedDims, cfg.fpnChannels, FPN);
}

function givenProposals(b: GraphBuilder): Proposals {
  const boxes = b.input('proposals', ['batch', 'proposals', 4]);
  const counts = b.input('proposal_counts', ['batch'], 'int64');
  const slots = unsqueeze(b, range(b, 0, dimOf(b, boxes, 1), 1, 'proposals'), [0]);
  return { boxes, valid: compare(b, 'Less', slots, unsqueeze(b, counts, [1])) };
}

function output(b: GraphBuilder, value: string, name: string, shape = b.shape(value), dtype?: 'int64'): void {
  identity(b, value, name, shape);
  b.output(name, dtype);
}

/** Emits the inference graph (see the file comment). */
export function emitMaskRcnn(cfg: MaskRcnnConfig, opts: MaskRcnnEmitOptions = {}): Graph {
  validateMaskRcnnConfig(cfg);
  const e = emitContext(false);
  const { b } = e;
  const s = cfg.settings;
  const batch = opts.input === 'batch'
    ? batchInputs(b)
    : transformImages(b, b.input('pixel_values', ['batch', 3, 'height', 'width']), s.transform);
  const threshold = opts.thresholdInput ? b.input(SCORE_THRESHOLD_INPUT, []) : scalar(b, -Infinity);
  const features = backboneFeatures(e, batch.images, cfg);
  const limits = clipLimits(b, batch.imageSizes);
  const proposals = opts.proposalsInput
    ? givenProposals(b)
    : regionProposals(e, features, batch.images, unsqueeze(b, limits, [1]), rpnShape(cfg), s.anchors, s.rpn, RPN);
  const pyramid = features.slice(0, 4);
  const scales = levelScales(b, pyramid.map((f) => f.value), batch.imageSizes);
  const rois = flattenProposals(b, proposals);
  const shape = roiShape(cfg);
  const head = boxHead(e, poolRois(b, pyramid, cfg.fpnChannels, rois.boxes, rois.batch, scales, s.roi, s.roi.boxOutputSize), shape, s.roi.boxOutputSize, ROI);
  const det = postprocessDetections(b, head, rois, proposals, limits, cfg.numClasses, s.roi, threshold);
  const d = 'detections';
  output(b, boxesToOriginal(b, det.boxes, det.batch, batch.imageSizes, batch.originalSizes), 'boxes', [d, 4]);
  output(b, det.scores, 'scores', [d]);
  output(b, det.labels, 'labels', [d], 'int64');
  const masks = cfg.maskLayers ? maskOutput(e, pyramid, det, scales, batch, cfg) : undefined;
  if (masks) output(b, masks.pasted, 'masks', [d, 1, 'height', 'width']);
  output(b, det.batch, 'batch_index', [d], 'int64');
  if (opts.intermediates) outputIntermediates(b, batch, features, rois, head, det, masks?.probabilities);
  return b.graph;
}

/** The mask branch: each detection's mask probabilities (D, 1, M, M) and their pasting into the image (D, 1, H, W). */
function maskOutput(
  e: Emit, pyramid: Maps[], det: Detections, scales: ReturnType<typeof levelScales>, batch: ImageBatch, cfg: MaskRcnnConfig,
): { probabilities: string; pasted: string } {
  const { b } = e;
  const s = cfg.settings.roi;
  const pooled = poolRois(b, pyramid, cfg.fpnChannels, det.boxes, det.batch, scales, s, s.maskOutputSize);
  const probs = maskProbabilities(b, maskHead(e, pooled, roiShape(cfg), ROI), det.labels);
  const original = boxesToOriginal(b, det.boxes, det.batch, batch.imageSizes, batch.originalSizes);
  return { probabilities: probs, pasted: pasteMasks(b, probs, original, det.batch, batch.originalSizes, 2 * s.maskOutputSize) };
}

function outputIntermediates(
  b: GraphBuilder, batch: ImageBatch, features: Maps[], rois: ReturnType<typeof flattenProposals>,
  head: { classLogits: string; boxRegression: string }, det: Detections, maskProbabilities?: string,
): void {
  output(b, batch.images, 'batch');
  output(b, batch.imageSizes, 'resized_sizes', undefined, 'int64');
  ['0', '1', '2', '3', 'pool'].forEach((name, i) => output(b, toNCHW(b, features[i]!), `fpn_${name}`));
  output(b, rois.boxes, 'proposals_flat', ['rois', 4]);
  output(b, rois.batch, 'proposal_batch', ['rois'], 'int64');
  output(b, head.classLogits, 'class_logits');
  output(b, head.boxRegression, 'box_regression');
  output(b, det.boxes, 'boxes_resized', ['detections', 4]);
  if (maskProbabilities) output(b, maskProbabilities, 'mask_probabilities', ['detections', 1, 'mask', 'mask']);
}

export function validateMaskRcnnConfig(cfg: MaskRcnnConfig): void {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', `invalid Mask R-CNN config: ${msg}`);
  if ((cfg.backbone.attentionType ?? 'additive') !== 'additive') {
    throw bad(`the detection graph takes images of any size, which only the additive attention supports (got ${cfg.backbone.attentionType})`);
  }
  for (const [name, v] of [['fpnChannels', cfg.fpnChannels], ['representation', cfg.representation], ['rpnConvDepth', cfg.rpnConvDepth]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65536) throw bad(`${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(cfg.numClasses) || cfg.numClasses < 2) throw bad(`numClasses counts the background too and must be at least 2, got ${cfg.numClasses}`);
  if (cfg.maskLayers && !cfg.maskLayers.every((w) => Number.isInteger(w) && w >= 1)) throw bad(`mask layer widths must be positive integers, got [${cfg.maskLayers}]`);
  if (cfg.settings.anchors.sizes.length !== 5) throw bad(`anchors need one entry per FPN level (5: '0'..'3' and 'pool'), got ${cfg.settings.anchors.sizes.length}`);
}

// ---------------------------------------------------------------- checkpoint remap

/** Whether a state dict's keys are torchvision's detection layout (backbone.body, rpn, roi_heads). */
export function isMaskRcnnState(keys: Iterable<string>): boolean {
  let body = false;
  let rpn = false;
  let roi = false;
  for (const raw of keys) {
    const k = raw.startsWith('module.') ? raw.slice(7) : raw;
    body ||= k.startsWith(BODY);
    rpn ||= k.startsWith(RPN);
    roi ||= k.startsWith('roi_heads.box_predictor.');
  }
  return body && rpn && roi;
}

export interface DetectionRemap {
  /** Source key -> torchvision key of today's layout. */
  mapped: Map<string, string>;
  unmatched: string[];
}

/**
 * A pure key rewrite to torchvision 0.14's names: DataParallel's `module.` prefix dropped, and the
 * renames torchvision's own loaders apply to older checkpoints (RPNHead `conv.weight` ->
 * `conv.0.0.weight`, FPN `inner_blocks.i.weight` -> `inner_blocks.i.0.weight`, MaskRCNNHeads
 * `mask_fcn<i+1>` -> `<i>.0`). Keys outside the detector's modules are reported.
 */
export function remapDetectionKeys(keys: Iterable<string>): DetectionRemap {
  const all = [...keys];
  const strip = all.length > 0 && all.every((k) => k.startsWith('module.'));
  const mapped = new Map<string, string>();
  const unmatched: string[] = [];
  for (const key of all) {
    let k = strip ? key.slice(7) : key;
    k = k
      .replace(/^rpn\.head\.conv\.(weight|bias)$/, 'rpn.head.conv.0.0.$1')
      .replace(/^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.(weight|bias)$/, 'backbone.fpn.$1.$2.0.$3')
      .replace(/^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$/, (_, i: string, p: string) => `roi_heads.mask_head.${Number(i) - 1}.0.${p}`);
    if (/^(backbone\.(body|fpn)|rpn\.head|roi_heads)\./.test(k)) mapped.set(key, k);
    else unmatched.push(key);
  }
  return { mapped, unmatched };
}

function shapeOfKey(state: StateDict, key: string): number[] | undefined {
  return state.get(key)?.shape;
}

function requireShape(state: StateDict, key: string, what: string): number[] {
  const shape = shapeOfKey(state, key);
  if (!shape) throw new SwiftFormerError('KEY_MISMATCH', `not a torchvision Mask R-CNN / Faster R-CNN checkpoint: no ${key} (${what})`);
  return shape;
}

/** Counts `<prefix><i>.0.weight` keys from 0 up. */
function countLayers(state: StateDict, prefix: string): number[] {
  const shapes: number[] = [];
  for (let i = 0; state.has(`${prefix}${i}.0.weight`); i++) shapes.push(state.get(`${prefix}${i}.0.weight`)!.shape[0]!);
  return shapes;
}

/**
 * Reads the architecture off weights in torchvision keys (remapped): the SwiftFormer backbone
 * from `backbone.body`, FPN width, RPN depth, box head width, class count, mask head widths.
 */
export function inferMaskRcnnConfig(state: StateDict, overrides: SettingsOverrides = {}): MaskRcnnConfig {
  const body: StateDict = new Map();
  for (const [k, t] of state) if (k.startsWith(BODY)) body.set(k.slice(BODY.length), t);
  if (!body.has('patch_embed.0.weight') || ![...body.keys()].some((k) => k.startsWith('network.'))) {
    const sample = [...body.keys()].slice(0, 3).join(', ') || 'no backbone.body keys';
    throw new SwiftFormerError('KEY_MISMATCH', `the detector's backbone is not a SwiftFormer: backbone.body has ${sample} where a SwiftFormer has patch_embed.* and network.*`);
  }
  const backbone = inferConfig(body);
  const fpnChannels = requireShape(state, `${FPN}inner_blocks.0.0.weight`, 'the FPN')[0]!;
  const numClasses = requireShape(state, `${ROI}box_predictor.cls_score.weight`, 'the box predictor')[0]!;
  const representation = requireShape(state, `${ROI}box_head.fc6.weight`, 'the TwoMLPHead')[0]!;
  const rpnConvDepth = countLayers(state, `${RPN}conv.`).length;
  const maskLayers = countLayers(state, `${ROI}mask_head.`);
  const reduced = shapeOfKey(state, `${ROI}mask_predictor.conv5_mask.weight`);
  const cfg: MaskRcnnConfig = {
    backbone, fpnChannels, numClasses, representation, rpnConvDepth: Math.max(rpnConvDepth, 1), settings: resolveSettings(overrides),
    ...(maskLayers.length > 0 ? { maskLayers, maskDimReduced: reduced?.[1] ?? maskLayers.at(-1)! } : {}),
  };
  const anchors = requireShape(state, `${RPN}cls_logits.weight`, 'the RPN head')[0]!;
  if (anchors !== rpnShape(cfg).anchors) {
    throw new SwiftFormerError('KEY_MISMATCH', `the RPN head predicts ${anchors} anchors per position, the anchor settings give ${rpnShape(cfg).anchors}: pass matching anchor sizes and aspect ratios`);
  }
  validateMaskRcnnConfig(cfg);
  return cfg;
}

/** Parameter keys and shapes of a config's graph (no image needed). */
export function maskRcnnParams(cfg: MaskRcnnConfig): Map<string, number[]> {
  return emitMaskRcnn(cfg).params;
}

/**
 * torchvision-key weights checked against the model `cfg` describes; missing, unexpected or
 * mis-shaped keys are one KEY_MISMATCH error naming them, non-finite values a BAD_CHECKPOINT.
 */
export function fitMaskRcnnWeights(source: StateDict, cfg: MaskRcnnConfig, name = 'weights', options: { allowNonFinite?: boolean } = {}): StateDict {
  const remap = remapDetectionKeys(source.keys());
  const renamed = { format: 'official' as const, state: new Map([...remap.mapped].map(([from, to]) => [to, source.get(from)!])), unmatched: remap.unmatched };
  return fitToParams(renamed, maskRcnnParams(cfg), cfg.backbone.attention, { name, ...options }).state;
}

/** Weights renamed to today's torchvision keys (for config inference before fitting). */
export function renamedDetectionState(source: StateDict): StateDict {
  const remap = remapDetectionKeys(source.keys());
  return new Map([...remap.mapped].map(([from, to]) => [to, source.get(from)!]));
}

// ---------------------------------------------------------------- initialization

/**
 * Fresh detector weights as torchvision initializes its modules: FPN convs kaiming_uniform(a=1)
 * with zero bias, RPN convs N(0, 0.01) with zero bias, mask head convs kaiming_normal(fan_out,
 * relu) with zero bias, mask predictor weights kaiming_normal(fan_out, relu), everything else
 * PyTorch's default (weight and bias U(+-1/sqrt(fan_in))). The backbone is `backbone` (official
 * keys: a classifier's without its head, or fork_feat weights) where it has a tensor, else the
 * official initialization (the fork_feat norms a classifier lacks start as identity).
 */
export function initialMaskRcnnWeights(cfg: MaskRcnnConfig, seed: number, backbone?: StateDict): StateDict {
  const params = maskRcnnParams(cfg);
  const body = initialWeights(cfg.backbone, 'features', seed);
  const rng = new Random(seed + 1);
  const state: StateDict = new Map();
  for (const [key, shape] of params) {
    if (key.startsWith(BODY)) {
      const official = key.slice(BODY.length);
      const given = backbone?.get(official);
      state.set(key, given && numel(given.shape) === numel(shape) ? { ...given, shape } as Tensor : body.get(official)!);
    } else {
      state.set(key, float32(shape, headValues(key, shape, params, rng)));
    }
  }
  return state;
}

function headValues(key: string, shape: number[], params: Map<string, number[]>, rng: Random): Float32Array {
  const n = numel(shape);
  const dot = key.lastIndexOf('.');
  const leaf = key.slice(dot + 1);
  const weight = params.get(`${key.slice(0, dot)}.weight`) ?? shape;
  // torch's fans: dimension 1 (fan_in) and 0 (fan_out) times the kernel size, ConvTranspose too.
  const receptive = numel(weight.slice(2));
  const fanIn = (weight[1] ?? 1) * receptive;
  const fanOut = weight[0]! * receptive;
  const fill = (v: number) => new Float32Array(n).fill(v);
  const draw = (f: () => number) => Float32Array.from({ length: n }, f);
  const normal = (std: number) => draw(() => rng.normal() * std);
  const uniform = (bound: number) => draw(() => rng.uniform(-bound, bound));
  if (key.startsWith(FPN)) return leaf === 'bias' ? fill(0) : uniform(Math.sqrt(3 / fanIn));
  if (key.startsWith(RPN)) return leaf === 'bias' ? fill(0) : normal(0.01);
  if (key.startsWith(`${ROI}mask_head.`)) return leaf === 'bias' ? fill(0) : normal(Math.sqrt(2 / fanOut));
  if (key.startsWith(`${ROI}mask_predictor.`) && leaf === 'weight') return normal(Math.sqrt(2 / fanOut));
  return uniform(1 / Math.sqrt(fanIn));
}

// ---------------------------------------------------------------- configs as data

/** torchvision's MaskRCNN defaults on a SwiftFormer variant: FPN 256, box head 1024, 4 x 256 mask convs, COCO's 91 classes. */
export function maskRcnnConfig(variant: string | SwiftFormerConfig = 'xs', options: { numClasses?: number; settings?: SettingsOverrides } = {}): MaskRcnnConfig {
  const backbone = typeof variant === 'string' ? variantConfig(variant) : structuredClone(variant);
  const cfg: MaskRcnnConfig = {
    backbone: { ...backbone, numClasses: 0, distillation: false },
    fpnChannels: 256, numClasses: options.numClasses ?? 91, representation: 1024, rpnConvDepth: 1,
    maskLayers: [256, 256, 256, 256], maskDimReduced: 256, settings: resolveSettings(options.settings),
  };
  validateMaskRcnnConfig(cfg);
  return cfg;
}

