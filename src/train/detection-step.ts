/**
 * The Mask R-CNN training step as graphs with static shapes: torchvision 0.14's train-mode
 * forward (BatchNorm on batch statistics) from the padded batch to the five losses of
 * GeneralizedRCNN, and every parameter's gradient (graph/grad.ts). What takes no gradient is
 * decided outside and fed in (train/detection-targets.ts): anchor and proposal matching,
 * sampling, the sampled RoIs and their pyramid levels.
 *
 * One step graph holds it all but the mask head, and runs in two halves (graph/passes.ts
 * cutGraph): DetectionForward, the backbone, FPN and RPN up to the train-mode proposals, which go
 * to the sampling; then DetectionTrainStep, the rest, fed the forward's values (the backbone runs
 * once). The mask head and its loss run in chunks of MASK_CHUNK positives by their own graph
 * (buildMaskChunkGraph), whose gradient with respect to the pyramid seeds the step graph's
 * backward; so the positives' count, which varies from batch to batch, makes no step graphs.
 *
 *  - RPN (rpn.py compute_loss): binary cross-entropy with logits over the sampled anchors (mean),
 *    smooth-L1 (beta 1/9) on the positives' deltas against BoxCoder(1, 1, 1, 1) targets, summed
 *    and divided by the number sampled;
 *  - box head (fastrcnn_loss): cross-entropy over the sampled RoIs (mean), smooth-L1 (beta 1/9)
 *    of the positives' deltas of their own class against BoxCoder(10, 10, 5, 5) targets, summed
 *    and divided by the number of sampled RoIs;
 *  - mask head (maskrcnn_loss): binary cross-entropy with logits of each positive's own-class
 *    28 x 28 mask against the gt mask RoI-aligned onto its box (roi_align, adaptive sampling,
 *    aligned=False), mean over every pixel of every positive.
 *
 * Counts enter as per-row weights (1 / count on the rows that take part, 0 on padding), so one
 * graph serves every batch of its shape. The sampled RoIs come sorted by pyramid level, each level's
 * block padded to a fixed capacity (the shape's roiLevels): each level's RoIAlign pools its own
 * block only, as MultiScaleRoIAlign pools each RoI from its level alone. Static per-level
 * capacities keep the shapes static (the gradient code needs them) at the price of one graph per
 * capacity pattern; the trainer lets them only grow, so that few patterns occur. The mask head's
 * positives (few, their per-level counts varying) are pooled on every level and their own level
 * kept by a one-hot (mask_levels).
 *
 * Feeds (N images, A anchors, R sampled RoIs, P positives, G gt masks, K classes):
 *   images (N,3,H,W) normalized, resized, padded (and image_sizes (N,2) int64 for the proposals);
 *   anchors (A,4);
 *   rpn_labels, rpn_weights, rpn_box_weights (N,A); rpn_matched (N,A,4) matched gt boxes;
 *   rois (R,4) sorted by level, roi_batch (R) int64, roi_labels (R) int64 (-100: padding),
 *   roi_class (R,K) one-hot of positives' labels, roi_matched (R,4), roi_box_weights (R),
 *   roi_count_inverse (1);
 *   mask_rois (P,4), mask_batch (P) int64, mask_levels (P,4) one-hot, mask_class (P,K),
 *   mask_weights (P), gt_masks (G,1,H,W), mask_gt (P) int64 (row of gt_masks), cut into chunks;
 *   every parameter by its key.
 * Result: loss (the sum), the five losses by torchvision's names, every parameter's gradient, batch statistics.
 */
import { attr, GraphBuilder } from '../graph/graph.js';
import { toLayout, toNCHW, type Layout, type Maps } from '../graph/layout.js';
import { emitContext, conv, relu, type Emit } from '../models/modules.js';
import { roiShape, rpnShape, type MaskRcnnConfig } from '../models/maskrcnn.js';
import { featurePyramid } from '../models/detection/fpn.js';
import { regionProposals } from '../models/detection/rpn.js';
import { clipLimits } from '../models/detection/transform.js';
import { toOnnx } from '../graph/graph.js';
import { cutGraph } from '../graph/passes.js';
import { unsqueeze } from '../graph/ops.js';
import { encodeBoxes } from '../models/detection/boxes.js';
import { boxHead, maskHead } from '../models/detection/roi-heads.js';
import { levelScale } from '../models/detection/targets.js';
import { swiftFormerFeatures } from '../models/swiftformer.js';
import { finishStepGraph, stepOnnx, withParameters, type StepGraph, type StepResult } from './step.js';
import { backward } from '../graph/grad.js';
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor, StateDict, Tensor } from '../core/tensor.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';

export interface DetectionStepShape {
  batch: number;
  /** Padded batch height and width (multiples of 32). */
  height: number;
  width: number;
  /** The largest resized image height of the batch (MultiScaleRoIAlign's scales). */
  imageHeight: number;
  anchors: number;
  rois: number;
  maskRois: number;
  gtMasks: number;
  /** Sampled RoIs per pyramid level (rows sorted by level; sums to rois). */
  roiLevels: number[];
}

export const LOSS_NAMES = ['loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg'] as const;
export type LossName = (typeof LOSS_NAMES)[number];

const BETA = 1 / 9;

/** Elementwise binary cross-entropy with logits: max(x, 0) - x y + log(1 + exp(-|x|)). */
function bceWithLogits(b: GraphBuilder, x: string, y: string): string {
  const softplus = b.node('Log', [b.binary('Add', b.constant([1]), b.unary('Exp', b.unary('Neg', b.node('Abs', [x], b.shape(x)))))], b.shape(x));
  return b.binary('Add', b.binary('Sub', b.unary('Relu', x), b.binary('Mul', x, y)), softplus);
}

/** Elementwise smooth L1 of d: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta. */
function smoothL1(b: GraphBuilder, d: string): string {
  const shape = b.shape(d);
  const abs = b.node('Abs', [d], shape);
  const small = b.node('Less', [abs, b.constant([BETA])], shape);
  const quadratic = b.binary('Mul', b.binary('Mul', d, d), b.constant([0.5 / BETA]));
  return b.node('Where', [small, quadratic, b.binary('Sub', abs, b.constant([0.5 * BETA]))], shape);
}

function total(b: GraphBuilder, x: string): string {
  return b.reduce('ReduceSum', x, b.shape(x).map((_, i) => i), false);
}

/** The RPN head on one level, static shapes: logits (N, h*w*A), deltas (N, h*w*A, 4), anchors innermost. */
function rpnLevel(e: Emit, x: Maps, cfg: MaskRcnnConfig, anchors: number): { logits: string; deltas: string } {
  const { b } = e;
  const c = cfg.fpnChannels;
  let t = x;
  for (let i = 0; i < cfg.rpnConvDepth; i++) t = relu(e, conv(e, t, `rpn.head.conv.${i}.0`, c, c, 3));
  const logits = toNCHW(b, conv(e, t, 'rpn.head.cls_logits', c, anchors, 1));
  const deltas = toNCHW(b, conv(e, t, 'rpn.head.bbox_pred', c, 4 * anchors, 1));
  const [n, , h, w] = b.shape(logits) as number[];
  const k = h! * w! * anchors;
  const flatLogits = b.reshape(b.node('Transpose', [logits], [n!, h!, w!, anchors], { perm: attr.ints([0, 2, 3, 1]) }), [n!, k]);
  const grouped = b.reshape(deltas, [n!, anchors, 4, h! * w!]);
  const flatDeltas = b.reshape(b.node('Transpose', [grouped], [n!, h! * w!, anchors, 4], { perm: attr.ints([0, 3, 1, 2]) }), [n!, k, 4]);
  return { logits: flatLogits, deltas: flatDeltas };
}

/**
 * MultiScaleRoIAlign of `rois` (M,4), sorted by pyramid level: the first counts[0] rows are pooled
 * from level 0, the next counts[1] from level 1, ... Each RoI is pooled from its own level alone,
 * as torchvision does; a level without rows has no RoiAlign.
 */
function pooledByLevel(b: GraphBuilder, pyramid: string[], rois: string, batch: string, counts: readonly number[], channels: number, size: number, scales: number[], sampling: number): string {
  const parts: string[] = [];
  let start = 0;
  pyramid.forEach((f, l) => {
    const m = counts[l] ?? 0;
    if (m === 0) return;
    const rows = (x: string, shape: number[]) => b.node('Slice', [x, b.ints([start]), b.ints([start + m]), b.ints([0])], shape);
    parts.push(b.node('RoiAlign', [f, rows(rois, [m, 4]), rows(batch, [m])], [m, channels, size, size], {
      coordinate_transformation_mode: attr.string('output_half_pixel'), mode: attr.string('avg'),
      output_height: attr.int(size), output_width: attr.int(size), sampling_ratio: attr.int(sampling), spatial_scale: attr.float(scales[l]!),
    }));
    start += m;
  });
  const total = b.shape(rois)[0] as number;
  if (start !== total) throw new SwiftFormerError('BAD_SHAPE', `the per-level RoI counts [${counts.join(', ')}] add up to ${start}, the graph has ${total} RoIs`);
  return parts.length === 1 ? parts[0]! : b.node('Concat', parts, [total, channels, size, size], { axis: attr.int(0) });
}

/**
 * MultiScaleRoIAlign of `rois` (M,4) with their levels one-hot (M,4): every level pooled, the RoI's
 * own kept (the other levels' contributions, and their gradients, are multiplied by zero). For the
 * mask head's positives: few rows, whose per-level counts vary from batch to batch, so that
 * per-level blocks would multiply the graph shapes.
 */
function pooledByOneHot(b: GraphBuilder, pyramid: string[], rois: string, batch: string, levels: string, channels: number, size: number, scales: number[], sampling: number): string {
  const m = b.shape(rois)[0] as number;
  const parts = pyramid.map((f, l) => {
    const pooled = b.node('RoiAlign', [f, rois, batch], [m, channels, size, size], {
      coordinate_transformation_mode: attr.string('output_half_pixel'), mode: attr.string('avg'),
      output_height: attr.int(size), output_width: attr.int(size), sampling_ratio: attr.int(sampling), spatial_scale: attr.float(scales[l]!),
    });
    const pick = b.reshape(b.node('Slice', [levels, b.ints([l]), b.ints([l + 1]), b.ints([1])], [m, 1]), [m, 1, 1, 1]);
    return b.binary('Mul', pooled, pick);
  });
  return parts.reduce((acc, p) => b.binary('Add', acc, p));
}

/** Rows of (M, K, ...) summed against a one-hot (M, K): each row's own class. */
function ownClass(b: GraphBuilder, x: string, onehot: string, trailing: number[]): string {
  const [m, k] = b.shape(onehot) as number[];
  const picked = b.binary('Mul', x, b.reshape(onehot, [m!, k!, ...trailing.map(() => 1)]));
  return b.reduce('ReduceSum', picked, [1], false);
}

export interface DetectionStepGraph extends StepGraph {
  shape: DetectionStepShape;
  /**
   * The graph's first nodes compute the train-mode forward up to the RPN and its proposals, from
   * the images alone: the step runs them first (DetectionForward), samples, then runs the rest.
   */
  forwardNodes: number;
  /** The pyramid levels RoIAlign pools from (values of the forward half): the mask chunks' inputs (none without a mask head). */
  pyramid: string[];
}

/** The training graph of `cfg` for batches of `shape` (see the file comment). */
export function buildDetectionStepGraph(cfg: MaskRcnnConfig, shape: DetectionStepShape, layout: Layout = 'cnhw'): DetectionStepGraph {
  const e = emitContext(true);
  const { b } = e;
  const { batch: n, height: H, width: W, anchors: A, rois: R, maskRois: P, gtMasks: G } = shape;
  const K = cfg.numClasses;
  const C = cfg.fpnChannels;
  const s = cfg.settings;
  const images = b.input('images', [n, 3, H, W]);
  const body = swiftFormerFeatures(e, toLayout(b, images, layout), cfg.backbone, 'backbone.body.').map((m) => toLayout(b, toNCHW(b, m), 'nchw'));
  const features = featurePyramid(e, body, cfg.backbone.embedDims, C, 'backbone.fpn.');

  // RPN
  const perPosition = rpnShape(cfg).anchors;
  const levels = features.map((x) => rpnLevel(e, x, cfg, perPosition));
  const logits = b.node('Concat', levels.map((l) => l.logits), [n, A], { axis: attr.int(1) });
  const deltas = b.node('Concat', levels.map((l) => l.deltas), [n, A, 4], { axis: attr.int(1) });
  trainProposals(e, cfg, features, images, levels);
  const forwardNodes = b.graph.nodes.length;
  const lb = new GraphBuilder(b.graph, 'loss/');
  const anchors = lb.input('anchors', [A, 4]);
  const rpnTargets = encodeBoxes(lb, lb.input('rpn_matched', [n, A, 4]), lb.reshape(anchors, [1, A, 4]), [1, 1, 1, 1]);
  const lossObjectness = total(lb, lb.binary('Mul', bceWithLogits(lb, logits, lb.input('rpn_labels', [n, A])), lb.input('rpn_weights', [n, A])));
  const rpnBoxWeights = lb.reshape(lb.input('rpn_box_weights', [n, A]), [n, A, 1]);
  const lossRpnBox = total(lb, lb.binary('Mul', smoothL1(lb, lb.binary('Sub', deltas, rpnTargets)), rpnBoxWeights));

  // Box head
  const pyramid = features.slice(0, 4).map((f) => f.value);
  const scales = pyramid.map((f) => levelScale(b.shape(f)[2] as number, shape.imageHeight));
  const shapeOfHeads = roiShape(cfg);
  const rois = lb.input('rois', [R, 4]);
  const roiBatch = lb.input('roi_batch', [R], 'int64');
  const pooled = pooledByLevel(b, pyramid, rois, roiBatch, shape.roiLevels, C, s.roi.boxOutputSize, scales, s.roi.samplingRatio);
  const head = boxHead(e, pooled, shapeOfHeads, s.roi.boxOutputSize, 'roi_heads.');
  const ce = lb.softmaxCrossEntropySum(head.classLogits, lb.input('roi_labels', [R], 'int64'), -100);
  const lossClassifier = lb.binary('Mul', ce, lb.reshape(lb.input('roi_count_inverse', [1]), []));
  const picked = ownClass(lb, lb.reshape(head.boxRegression, [R, K, 4]), lb.input('roi_class', [R, K]), [4]);
  const roiTargets = encodeBoxes(lb, lb.input('roi_matched', [R, 4]), rois, s.roi.boxCoderWeights);
  const roiBoxWeights = lb.reshape(lb.input('roi_box_weights', [R]), [R, 1]);
  const lossBox = total(lb, lb.binary('Mul', smoothL1(lb, lb.binary('Sub', picked, roiTargets)), roiBoxWeights));

  const losses: Record<Exclude<LossName, 'loss_mask'>, string> = {
    loss_classifier: lossClassifier, loss_box_reg: lossBox, loss_objectness: lossObjectness, loss_rpn_box_reg: lossRpnBox,
  };
  for (const name of STEP_LOSSES) {
    lb.node('Identity', [losses[name]], [], {}, name);
    lb.output(name);
  }
  const loss = STEP_LOSSES.map((k) => losses[k]).reduce((acc, v) => lb.binary('Add', acc, v));
  // The mask head runs in chunks of its own graph (buildMaskChunkGraph), which gives the pyramid's
  // gradient from the mask loss: seeded here as sum(feature x that gradient), whose gradient it is.
  const seeded = cfg.maskLayers
    ? pyramid.reduce((acc, f, l) => lb.binary('Add', acc, total(lb, lb.binary('Mul', f, lb.input(`${MASK_FEATURE_GRAD}${l}`, b.shape(f) as number[])))), loss)
    : loss;
  return { ...finishStepGraph(lb, loss, seeded), shape, forwardNodes, pyramid: cfg.maskLayers ? pyramid : [] };
}

/** The step graph's four losses; loss_mask comes from the mask chunks. */
const STEP_LOSSES = LOSS_NAMES.filter((k) => k !== 'loss_mask');

/** Inputs of the step graph: the mask loss's gradient with respect to pyramid level l (MaskChunkStep). */
const MASK_FEATURE_GRAD = 'mask_feature_grad:';

/** Positives per run of the mask chunk graph (larger chunks ran faster per row; 16 is 3 to 5 runs at 128 px). */
export const MASK_CHUNK = 16;

/** The last chunk's rows are rounded up to a multiple of this (fewer graphs, fewer padding rows). */
export const MASK_REMAINDER = 4;

/** What the mask chunk graph depends on besides the chunk: the frame, the scales' image height, the gt masks' count. */
export type MaskFrame = Pick<DetectionStepShape, 'batch' | 'height' | 'width' | 'imageHeight' | 'gtMasks'>;

/** The pyramid levels RoIAlign pools from (FPN '0'..'3': strides 4 to 32) of a padded size. */
function pyramidShapes(cfg: MaskRcnnConfig, frame: DetectionFrame): number[][] {
  return [4, 8, 16, 32].map((stride) => [frame.batch, cfg.fpnChannels, frame.height / stride, frame.width / stride]);
}

/**
 * The mask head and maskrcnn_loss on MASK_CHUNK positives, from the pyramid levels (inputs
 * `feature:<l>`): outputs `loss_mask` (the chunk's part of the sum: its rows' weights are those of
 * the whole batch), grad:<key> of the mask head's parameters and grad:feature:<l>. The positives'
 * count then changes no graph: the step runs as many chunks as it has (MaskChunkStep).
 */
export function buildMaskChunkGraph(cfg: MaskRcnnConfig, frame: MaskFrame, rows = MASK_CHUNK): StepGraph {
  if (!cfg.maskLayers) throw new SwiftFormerError('BAD_ARGUMENT', 'the model has no mask head');
  const e = emitContext(true);
  const { b } = e;
  const s = cfg.settings;
  const K = cfg.numClasses;
  const P = rows;
  const { gtMasks: G, height: H, width: W } = frame;
  const pyramid = pyramidShapes(cfg, frame).map((shape, l) => b.input(`feature:${l}`, shape));
  const scales = pyramid.map((f) => levelScale(b.shape(f)[2] as number, frame.imageHeight));
  const heads = roiShape(cfg);
  const lb = new GraphBuilder(b.graph, 'loss/');
  const maskRois = lb.input('mask_rois', [P, 4]);
  const size = s.roi.maskOutputSize;
  const maskPooled = pooledByOneHot(b, pyramid, maskRois, lb.input('mask_batch', [P], 'int64'), lb.input('mask_levels', [P, 4]), cfg.fpnChannels, size, scales, s.roi.samplingRatio);
  const maskLogits = maskHead(e, maskPooled, heads, 'roi_heads.');
  const m = 2 * size;
  const own = ownClass(lb, maskLogits, lb.input('mask_class', [P, K]), [m, m]);
  const targets = lb.reshape(lb.node('RoiAlign', [lb.input('gt_masks', [G, 1, H, W]), maskRois, lb.input('mask_gt', [P], 'int64')], [P, 1, m, m], {
    coordinate_transformation_mode: attr.string('output_half_pixel'), mode: attr.string('avg'),
    output_height: attr.int(m), output_width: attr.int(m), sampling_ratio: attr.int(0), spatial_scale: attr.float(1),
  }), [P, m, m]);
  const weights = lb.reshape(lb.input('mask_weights', [P]), [P, 1, 1]);
  const loss = total(lb, lb.binary('Mul', bceWithLogits(lb, own, targets), weights));
  lb.node('Identity', [loss], [], {}, 'loss_mask');
  lb.output('loss_mask');
  const params = [...b.graph.params.keys()];
  backward(b.graph, 'loss_mask', [...params, ...pyramid]);
  return { graph: b.graph, params, batchStats: [] };
}

/** The mask feeds of assembleBatch, by row: what a padding row holds in each (detection-targets.ts). */
const MASK_ROWS: Record<string, number[]> = { mask_rois: [0, 0, 1, 1], mask_batch: [0], mask_levels: [], mask_class: [], mask_weights: [0], mask_gt: [0] };

/** Rows [start, start + chunk) of a mask feed, padding rows past its end. */
function chunkRows(t: Tensor, name: string, start: number, chunk: number): Tensor {
  const rows = t.shape[0]!;
  const width = t.data.length / rows;
  const pad = MASK_ROWS[name]!;
  const take = Math.min(chunk, rows - start);
  const shape = [chunk, ...t.shape.slice(1)];
  if (t.dtype === 'int64') {
    const out = new BigInt64Array(chunk * width);
    out.set(t.data.subarray(start * width, (start + take) * width));
    for (let r = take; r < chunk; r++) for (let c = 0; c < width; c++) out[r * width + c] = BigInt(pad[c] ?? 0);
    return { dtype: 'int64', shape, data: out };
  }
  const data = t.data as Float32Array;
  const out = new Float32Array(chunk * width);
  out.set(data.subarray(start * width, (start + take) * width));
  for (let r = take; r < chunk; r++) for (let c = 0; c < width; c++) out[r * width + c] = pad[c] ?? 0;
  return { dtype: 'float32', shape, data: out };
}

/**
 * The mask chunk graphs of one MaskFrame, compiled: MASK_CHUNK positives a run, the last run's
 * remainder by a graph of its size rounded up to MASK_REMAINDER (so that at most MASK_REMAINDER - 1
 * padding rows, zero-weighted, go through the head: torchvision's pass has none). The remainders'
 * graphs are compiled as they first occur (small graphs: a fraction of a second each).
 */
export class MaskChunkStep {
  private readonly graphs = new Map<number, Promise<{ step: StepGraph; session: Session }>>();

  private constructor(private readonly cfg: MaskRcnnConfig, private readonly frame: MaskFrame, private readonly options: { session?: SessionOptions; backend?: string }) {}

  static async create(cfg: MaskRcnnConfig, frame: MaskFrame, options: { session?: SessionOptions; backend?: string } = {}): Promise<MaskChunkStep> {
    const masks = new MaskChunkStep(cfg, frame, { ...(options.session ? { session: options.session } : {}), ...(options.backend ? { backend: options.backend } : {}) });
    await masks.graph(MASK_CHUNK);
    return masks;
  }

  private graph(rows: number): Promise<{ step: StepGraph; session: Session }> {
    let g = this.graphs.get(rows);
    if (!g) {
      const step = buildMaskChunkGraph(this.cfg, this.frame, rows);
      g = getBackend(this.options.backend).createSession(stepOnnx(step), { optimization: 'basic', ...this.options.session }).then((session) => ({ step, session }));
      this.graphs.set(rows, g);
    }
    return g;
  }

  /**
   * The mask loss over every positive of `feeds` (all its mask_* rows), chunk by chunk, from the
   * pyramid levels `pyramid`: the loss, the mask head's gradients and the levels' gradients, summed.
   */
  async run(state: StateDict, feeds: Record<string, Tensor>, pyramid: Tensor[]): Promise<{ loss: number; grads: Map<string, Float32Array>; featureGrads: Float32Array[] }> {
    const rows = feeds.mask_rois!.shape[0]!;
    const gt = feeds.gt_masks!.shape;
    const { gtMasks, height, width } = this.frame;
    if (gt[0] !== gtMasks || gt[2] !== height || gt[3] !== width) {
      throw new SwiftFormerError('BAD_SHAPE', `the mask chunks are of ${gtMasks} gt masks of ${height} x ${width}, the batch has ${gt[0]} of ${gt[2]} x ${gt[3]}`);
    }
    const fixed: Record<string, Tensor> = { gt_masks: feeds.gt_masks! };
    pyramid.forEach((t, l) => (fixed[`feature:${l}`] = t));
    let loss = 0;
    const grads = new Map<string, Float32Array>();
    const featureGrads: Float32Array[] = [];
    const add = (into: Float32Array | undefined, v: Float32Array) => {
      if (!into) return Float32Array.from(v);
      for (let i = 0; i < v.length; i++) into[i]! += v[i]!;
      return into;
    };
    for (let start = 0; start < rows; start += MASK_CHUNK) {
      const chunk = Math.min(MASK_CHUNK, Math.ceil((rows - start) / MASK_REMAINDER) * MASK_REMAINDER);
      const { step, session } = await this.graph(chunk);
      const rowsOfChunk = Object.fromEntries(Object.keys(MASK_ROWS).map((name) => [name, chunkRows(feeds[name]!, name, start, chunk)]));
      const out = await session.runTyped(withParameters(session.inputNames, state, { ...fixed, ...rowsOfChunk }, 'the mask chunk step'));
      loss += (out.loss_mask!.data as Float32Array)[0]!;
      for (const p of step.params) grads.set(p, add(grads.get(p), out[`grad:${p}`]!.data as Float32Array));
      pyramid.forEach((_, l) => (featureGrads[l] = add(featureGrads[l], out[`grad:feature:${l}`]!.data as Float32Array)));
    }
    return { loss, grads, featureGrads };
  }

  async release(): Promise<void> {
    for (const g of this.graphs.values()) await (await g).session.release();
  }
}

/**
 * The RPN's proposals with torchvision's training top-n (2000 before NMS per level, 2000 after per
 * image) from the step's own RPN outputs: `proposals` (N,T,4), best first, and `proposal_valid`
 * (N,T) int64 (1: a proposal, 0: padding), from `image_sizes` (N,2) int64. They go to the RoI
 * heads' sampling (detection-targets.ts) between the two halves of the step (DetectionForward).
 */
function trainProposals(e: Emit, cfg: MaskRcnnConfig, features: Maps[], images: string, heads: { logits: string; deltas: string }[]): void {
  const { b } = e;
  const s = cfg.settings;
  const sizes = b.input('image_sizes', [b.shape(images)[0] as number, 2], 'int64');
  const train = { ...s.rpn, preNmsTopNTest: s.rpn.preNmsTopNTrain, postNmsTopNTest: s.rpn.postNmsTopNTrain };
  const limits = unsqueeze(b, clipLimits(b, sizes), [1]);
  const proposals = regionProposals(e, features, images, limits, rpnShape(cfg), s.anchors, train, 'rpn.head.', heads);
  b.node('Identity', [proposals.boxes], b.shape(proposals.boxes), {}, 'proposals');
  b.output('proposals');
  b.node('Cast', [proposals.valid], b.shape(proposals.valid), { to: attr.int(7) }, 'proposal_valid');
  b.output('proposal_valid', 'int64');
}

const PROPOSAL_OUTPUTS = ['proposals', 'proposal_valid'];

export interface DetectionStepResult {
  loss: number;
  losses: Record<LossName, number>;
  grads: Map<string, FloatTensor>;
  stats: StepResult['stats'];
}

/** A batch frame: what the forward half of the step depends on. */
export type DetectionFrame = Pick<DetectionStepShape, 'batch' | 'height' | 'width'>;

/** Anchors of a padded size (detection-targets.ts pyramidGrids). */
export function anchorsFor(config: MaskRcnnConfig, height: number, width: number): number {
  const per = rpnShape(config).anchors;
  const grids = [4, 8, 16, 32].map((s) => (height / s) * (width / s));
  return per * (grids.reduce((a, b) => a + b, 0) + Math.ceil(height / 64) * Math.ceil(width / 64));
}

/** The smallest step shape of a frame (a RoI on each level): its graph's forward half is every shape's. */
export function frameShape(config: MaskRcnnConfig, frame: DetectionFrame): DetectionStepShape {
  const { batch, height, width } = frame;
  return { batch, height, width, imageHeight: height, anchors: anchorsFor(config, height, width), rois: 4, maskRois: 1, gtMasks: 1, roiLevels: [1, 1, 1, 1] };
}

/** The values the forward half hands to the rest of the step (DetectionForward.run), by name. */
export type HeldValues = Record<string, Tensor>;

/**
 * The first half of a training step, without gradients: the train-mode forward (BatchNorm on the
 * batch's statistics) of the backbone, FPN and RPN, and the RPN's proposals. Inputs the padded
 * `images` (N,3,H,W) and each image's resized size; out come, per image, its proposals (T_i x 4,
 * best first), and every value of the forward that the step's second half reads (`held`): the
 * step (DetectionTrainStep) continues from them rather than running the backbone again.
 */
export class DetectionForward {
  private constructor(private readonly session: Session, readonly held: readonly string[]) {}

  static async create(cfg: MaskRcnnConfig, frame: DetectionFrame, options: { session?: SessionOptions; backend?: string; layout?: Layout } = {}): Promise<DetectionForward> {
    const step = buildDetectionStepGraph(cfg, frameShape(cfg, frame), options.layout);
    const { front, held } = cutGraph(step.graph, step.forwardNodes, PROPOSAL_OUTPUTS);
    const bytes = toOnnx(front, {}, { paramsAsInputs: true });
    return new DetectionForward(await getBackend(options.backend).createSession(bytes, { optimization: 'basic', ...options.session }), held);
  }

  async run(state: StateDict, images: Tensor, imageSizes: [number, number][]): Promise<{ proposals: Float32Array[]; held: HeldValues }> {
    const feeds: Record<string, Tensor> = {
      images, image_sizes: { dtype: 'int64', shape: [imageSizes.length, 2], data: BigInt64Array.from(imageSizes.flat().map((v) => BigInt(v))) },
    };
    const out = await this.session.runTyped(withParameters(this.session.inputNames, state, feeds, 'the detection forward'));
    const boxes = out.proposals!.data as Float32Array;
    const valid = out.proposal_valid!.data as BigInt64Array;
    const [n, t] = out.proposals!.shape as [number, number];
    const proposals = Array.from({ length: n }, (_, i) => {
      let count = 0;
      while (count < t && valid[i * t + count] === 1n) count++;
      return boxes.slice(i * t * 4, (i * t + count) * 4);
    });
    return { proposals, held: Object.fromEntries(this.held.map((name) => [name, out[name]!])) };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * The rest of a training step for one batch shape, from the forward half's held values: the mask
 * chunks (a MaskChunkStep of the batch's MaskFrame), then the step graph, seeded with the
 * pyramid's gradient from the mask loss.
 */
export class DetectionTrainStep {
  private constructor(readonly step: DetectionStepGraph, private readonly session: Session, private readonly held: readonly string[]) {}

  static async create(cfg: MaskRcnnConfig, shape: DetectionStepShape, options: { session?: SessionOptions; backend?: string; layout?: Layout } = {}): Promise<DetectionTrainStep> {
    const step = buildDetectionStepGraph(cfg, shape, options.layout);
    const { back, held } = cutGraph(step.graph, step.forwardNodes, PROPOSAL_OUTPUTS);
    // ONNX Runtime's extended graph fusions compute this graph's box-head input gradient wrong
    // when run on 2 threads (found by the torchvision parity test); basic optimization is exact.
    const session = { optimization: 'basic' as const, ...options.session };
    return new DetectionTrainStep(step, await getBackend(options.backend).createSession(toOnnx(back, {}, { paramsAsInputs: true }), session), held);
  }

  /**
   * Runs the step on a batch's feeds (detection-targets.ts) with the parameters of `state`,
   * continuing from `held`, the DetectionForward run of the same images and parameters, with the
   * mask head's chunks run by `masks` (the MaskChunkStep of the batch's frame; a model without a
   * mask head has none).
   */
  async run(state: StateDict, feeds: Record<string, Tensor>, held: HeldValues, masks?: MaskChunkStep): Promise<DetectionStepResult> {
    if (this.step.pyramid.length > 0 && !masks) throw new SwiftFormerError('BAD_ARGUMENT', 'the detection training step of a model with a mask head needs its MaskChunkStep');
    const all: Record<string, Tensor> = { ...feeds };
    for (const name of this.held) {
      const t = held[name];
      if (!t) throw new SwiftFormerError('KEY_MISMATCH', `the detection training step needs the forward's ${name} (DetectionForward.run of the same frame)`);
      all[name] = t;
    }
    const mask = masks ? await masks.run(state, feeds, this.step.pyramid.map((name) => all[name]!)) : undefined;
    mask?.featureGrads.forEach((g, l) => (all[`${MASK_FEATURE_GRAD}${l}`] = { dtype: 'float32', shape: all[this.step.pyramid[l]!]!.shape, data: g }));
    const out = await this.session.runTyped(withParameters(this.session.inputNames, state, all, 'the detection training step'));
    const value = (name: string) => (out[name]!.data as Float32Array)[0]!;
    const grads = new Map(this.step.params.map((p) => [p, out[`grad:${p}`] as FloatTensor]));
    // The mask head's parameters are the chunks' alone (the step graph does not read them).
    for (const [key, g] of mask?.grads ?? []) grads.set(key, { dtype: 'float32', shape: state.get(key)!.shape, data: g });
    const stats = new Map(this.step.batchStats.map((s) => [s.key, {
      mean: out[`${s.key}:mean`]!.data as Float32Array, variance: out[`${s.key}:var`]!.data as Float32Array, count: s.count,
    }]));
    const losses = { ...Object.fromEntries(STEP_LOSSES.map((k) => [k, value(k)])), loss_mask: mask?.loss ?? 0 } as Record<LossName, number>;
    return { loss: value('loss') + losses.loss_mask, losses, grads, stats };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
