/**
 * The Semantic FPN training step as one graph, beside the classification step (step.ts): the
 * train-mode forward pass (BatchNorm on batch statistics), mmseg's decode-head loss computed on
 * the logits resized bilinearly to the label size inside the graph, every parameter's gradient,
 * and the BatchNorm batch statistics.
 *
 * Loss (mmseg 0.x CrossEntropyLoss, ignore_index 255): per-pixel softmax cross-entropy, summed over
 * the pixels not ignored and divided by the number of ALL label pixels (`avg_non_ignore=False`,
 * mmseg's default) or by the number of pixels not ignored ('non-ignored').
 */
import { SwiftFormerError } from '../core/errors.js';
import { attr, GraphBuilder } from '../graph/graph.js';
import { toLayout, type Layout } from '../graph/layout.js';
import { emitContext } from '../models/modules.js';
import { IGNORE_INDEX, semanticFpn, type SemanticFpnConfig } from '../models/semfpn.js';
import { inputHW } from '../models/swiftformer.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import type { FloatTensor, StateDict } from '../core/tensor.js';
import { finishStepGraph, runStep, stepOnnx, type StepGraph, type StepResult } from './step.js';

export interface SegmentationStepOptions {
  batch: number;
  /** Input height and width (multiples of 32). */
  inputSize: number | [number, number];
  /** Label height and width (default: the input's). */
  labelSize?: [number, number];
  /** 'all' (mmseg's default) or 'non-ignored' (mmseg's avg_non_ignore=True). */
  average?: 'all' | 'non-ignored';
  /** Label value that takes no part in the loss (255). */
  ignoreIndex?: number;
  /** Backbone layout (default 'cnhw'; neck and head run in NCHW). */
  layout?: Layout;
}

/**
 * Inputs: `pixel_values` (N,3,H,W); `labels` (N,h,w) class indices as float32 (ignoreIndex on
 * ignored pixels); when `cfg.dropout` > 0, `dropout_mask` (N,headChannels,1,1), Dropout2d's mask
 * scaled by 1/(1-p) (`dropoutMask` draws one); every trainable parameter by its key.
 * Outputs: `loss`, `logits_quarter` (train mode), `grad:<key>`, batch statistics.
 */
export function buildSegmentationStepGraph(cfg: SemanticFpnConfig, options: SegmentationStepOptions): StepGraph {
  const { batch } = options;
  if (!(Number.isInteger(batch) && batch > 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `a train graph needs a fixed batch size of at least 2 (BatchNorm statistics), got ${batch}`);
  }
  const [h, w] = inputHW(options.inputSize);
  const [lh, lw] = options.labelSize ?? [h, w];
  const e = emitContext(true);
  const { b } = e;
  const pixels = toLayout(b, b.input('pixel_values', [batch, 3, h, w]), options.layout ?? 'cnhw');
  const mask = cfg.dropout > 0 ? b.input('dropout_mask', [batch, cfg.headChannels, 1, 1]) : undefined;
  const { logits } = semanticFpn(e, pixels, cfg, mask ? { dropoutMask: mask } : {});
  b.output(b.node('Identity', [logits.value], b.shape(logits.value), {}, 'logits_quarter'));
  const lb = new GraphBuilder(b.graph, 'loss/');
  const labels = lb.node('Cast', [lb.input('labels', [batch, lh, lw])], [batch, lh, lw], { to: attr.int(7) });
  const ignoreIndex = options.ignoreIndex ?? IGNORE_INDEX;
  const sum = lb.softmaxCrossEntropySum(lb.resize(logits.value, 'bilinear', lh, lw), labels, ignoreIndex);
  const loss = options.average === 'non-ignored'
    ? lb.binary('Div', sum, countNotIgnored(lb, labels, ignoreIndex))
    : lb.binary('Mul', sum, lb.constant([1 / (batch * lh * lw)]));
  return finishStepGraph(lb, loss);
}

/** Number of label pixels that are not `ignoreIndex` (at least 1, so an all-ignored batch gives loss 0). */
function countNotIgnored(b: GraphBuilder, labels: string, ignoreIndex: number): string {
  const shape = b.shape(labels);
  const kept = b.node('Not', [b.node('Equal', [labels, b.ints([ignoreIndex])], shape)], shape);
  const count = b.reduce('ReduceSum', b.node('Cast', [kept], shape, { to: attr.int(1) }), shape.map((_, i) => i), false);
  return b.binary('Max', count, b.constant([1]));
}

/** Dropout2d's mask: per image and channel 0 with probability p, else 1/(1-p). Shape (N,C,1,1). */
export function dropoutMask(batch: number, channels: number, p: number, random: () => number): FloatTensor {
  const keep = 1 / (1 - p);
  return { dtype: 'float32', shape: [batch, channels, 1, 1], data: Float32Array.from({ length: batch * channels }, () => (random() < p ? 0 : keep)) };
}

/** A compiled segmentation step: parameters and a batch in; loss, gradients, batch statistics out. */
export class SegmentationTrainStep {
  private constructor(readonly step: StepGraph, private readonly session: Session, readonly config: SemanticFpnConfig, readonly options: SegmentationStepOptions) {}

  static async create(cfg: SemanticFpnConfig, options: SegmentationStepOptions, session: SessionOptions = {}, backend?: string): Promise<SegmentationTrainStep> {
    const step = buildSegmentationStepGraph(cfg, options);
    return new SegmentationTrainStep(step, await getBackend(backend).createSession(stepOnnx(step), session), cfg, options);
  }

  /** `labels` (N,h,w) float32 class indices; `mask` is required when the config's dropout > 0. `logits` are the 1/4-resolution ones. */
  async run(state: StateDict, pixels: FloatTensor, labels: FloatTensor, mask?: FloatTensor): Promise<StepResult> {
    const feeds: Record<string, FloatTensor> = { pixel_values: pixels, labels };
    if (this.config.dropout > 0) {
      if (!mask) throw new SwiftFormerError('BAD_ARGUMENT', `this step applies Dropout2d (p = ${this.config.dropout}): pass its mask (dropoutMask())`);
      feeds.dropout_mask = mask;
    }
    return runStep(this.session, this.step, state, feeds, 'logits_quarter');
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
