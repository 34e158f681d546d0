/**
 * The user-facing detector: torchvision Mask R-CNN / Faster R-CNN weights on a SwiftFormer
 * backbone -> the one detection graph (maskrcnn.ts) -> an ONNX Runtime session, with results as
 * plain objects in the image's pixels, as transformers.js' object-detection pipeline gives them.
 *
 *   const detector = await DetectionModel.load({ weights: 'maskrcnn_swiftformer_xs.pth' });
 *   const found = await detector.detect(image, { threshold: 0.5 });
 *   // [{ index: 1, label: 'person', score: 0.98, box: { xmin, ymin, xmax, ymax }, mask: { width, height, data } }]
 */
import { SwiftFormerError } from '../core/errors.js';
import { readSource } from '../core/io.js';
import { bindParams, toOnnx, type Graph } from '../graph/graph.js';
import { optimizeForInference } from '../graph/passes.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import { formatShape, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.js';
import { toNormalizedCHW } from '../preprocess/transforms.js';
import type { RGBImage } from '../preprocess/resize.js';
import { readWeights } from '../weights/read.js';
import type { TokenNorm } from './attention.js';
import { cocoLabels, labelOf, loadLabels } from './labels.js';
import { recordedLabels } from './recorded.js';
import { attentionFor, remapKeys, VARIANTS, type SwiftFormerConfig } from './swiftformer.js';
import { inferConfig } from './fit.js';
import {
  emitMaskRcnn, fitMaskRcnnWeights, inferMaskRcnnConfig, initialMaskRcnnWeights, isMaskRcnnState, maskRcnnConfig, renamedDetectionState,
  SCORE_THRESHOLD_INPUT, type MaskRcnnConfig,
} from './maskrcnn.js';
import { checkImageSize } from './detection/transform.js';
import type { SettingsOverrides } from './detection/settings.js';

export interface DetectionModelOptions {
  /** A torchvision Mask R-CNN / Faster R-CNN checkpoint (bare state dict or references/detection's): path, URL, bytes or state dict. */
  weights?: string | Uint8Array | StateDict;
  /** Without `weights`: a new detector whose backbone starts from these SwiftFormer weights (classifier or fork_feat, any key format). */
  backbone?: string | Uint8Array | StateDict;
  /** Backbone of a new detector: a variant id or config (default: read off `backbone`, else 'xs'). */
  model?: string | SwiftFormerConfig;
  /** Classes of a new detector, background included (default 91, torchvision's COCO ids). */
  numClasses?: number;
  /** Class names (index 0 the background; a list without it is accepted too), or a label file. */
  labels?: readonly string[] | string;
  /** torchvision settings to change: `{ transform: { minSize: 512, maxSize: 853 } }`, thresholds, ... */
  settings?: SettingsOverrides;
  /** Entry of a full training checkpoint (default 'model'). */
  entry?: string;
  /** The backbone's attention rule (default l2, the official code's). */
  attention?: TokenNorm;
  /** Seed of a new detector's random initialization. */
  seed?: number;
  session?: SessionOptions;
  backend?: string;
}

/** A binary mask over the image: width x height bytes, 255 inside the object, 0 outside. */
export interface DetectionMask {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface Detection {
  /** Class index (0 is the background and never appears). */
  index: number;
  label: string;
  score: number;
  /** In the image's pixels (torchvision's x1, y1, x2, y2), unrounded. */
  box: { xmin: number; ymin: number; xmax: number; ymax: number };
  /** Mask R-CNN only: the mask probability thresholded at 0.5. */
  mask?: DetectionMask;
}

export interface DetectOptions {
  /** Keep detections scoring above this, in [0, 1] (default 0.5). */
  threshold?: number;
  /** Include masks (default true when the model has a mask head). */
  masks?: boolean;
}

/** The graph's outputs for a batch: detections flattened, `batch` telling their image. */
export interface RawDetections {
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  batch: Int32Array;
  /** (D, 1, H, W) probabilities; absent without a mask head. */
  masks?: FloatTensor;
}

function checkThreshold(threshold: number): void {
  if (!(typeof threshold === 'number' && threshold >= 0 && threshold <= 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `threshold must be a number in [0, 1], got ${String(threshold)}`);
  }
}

function int32Of(t: Tensor | undefined, name: string): Int32Array {
  if (!t || t.dtype !== 'int64') throw new Error(`detection graph output ${name} is missing or not int64`);
  return Int32Array.from(t.data, Number);
}

function float32Of(t: Tensor | undefined, name: string): FloatTensor {
  if (!t || t.dtype !== 'float32') throw new Error(`detection graph output ${name} is missing or not float32`);
  return t;
}

export class DetectionModel {
  private session: Promise<Session> | undefined;

  private constructor(
    readonly config: MaskRcnnConfig,
    /** Weights under torchvision's keys. */
    readonly state: StateDict,
    /** Class names, index 0 the background; undefined when unknown. */
    readonly labels: string[] | undefined,
    private readonly options: DetectionModelOptions,
  ) {}

  /** Loads a checkpoint, or builds a new detector (random heads, optionally a pretrained backbone). */
  static async load(options: DetectionModelOptions = {}): Promise<DetectionModel> {
    if (options.weights === undefined) return newDetector(options);
    const { state, metadata, name } = await readState(options.weights, options.entry);
    return loadDetectionModel(state, metadata, { ...options, name });
  }

  /** Whether the model predicts masks (Mask R-CNN) or boxes only (Faster R-CNN). */
  get hasMasks(): boolean {
    return this.config.maskLayers !== undefined;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** The eval graph with weights bound: `thresholdInput` adds the score_threshold input detect uses. */
  graph(options: { thresholdInput?: boolean } = {}): Graph {
    return optimizeForInference(bindParams(emitMaskRcnn(this.config, options), this.state));
  }

  /** The one-graph ONNX export (maskrcnn.ts's file comment gives its inputs and outputs). */
  toOnnx(): Uint8Array {
    return toOnnx(this.graph(), this.onnxMetadata());
  }

  onnxMetadata(): Record<string, string> {
    const { settings, ...architecture } = this.config;
    return {
      'swiftformer.task': this.hasMasks ? 'instance-segmentation' : 'object-detection',
      'swiftformer.detector': JSON.stringify(architecture),
      'swiftformer.settings': JSON.stringify(settings),
      ...(this.labels ? { 'swiftformer.labels': JSON.stringify(this.labels) } : {}),
    };
  }

  /**
   * Runs a batch of same-size images (N, 3, H, W), RGB in [0, 1]; detections scoring at or below
   * `threshold` (default 0: everything torchvision returns) are dropped before their masks are pasted.
   */
  async run(pixels: FloatTensor, options: { threshold?: number } = {}): Promise<RawDetections> {
    const threshold = options.threshold ?? 0;
    checkThreshold(threshold);
    const [n, c, h, w] = pixels.shape;
    if (pixels.shape.length !== 4 || c !== 3 || !(n! >= 1) || pixels.data.length !== n! * 3 * h! * w!) {
      throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32 in [0, 1], got ${formatShape(pixels.shape)} with ${pixels.data.length} values`);
    }
    checkImageSize(h!, w!, this.config.settings.transform);
    const session = await this.sessionOnce();
    const out = await session.runTyped({ pixel_values: pixels, [SCORE_THRESHOLD_INPUT]: { dtype: 'float32', shape: [], data: Float32Array.of(threshold) } });
    const raw: RawDetections = {
      boxes: float32Of(out.boxes, 'boxes').data,
      scores: float32Of(out.scores, 'scores').data,
      labels: int32Of(out.labels, 'labels'),
      batch: int32Of(out.batch_index, 'batch_index'),
    };
    if (this.hasMasks) raw.masks = float32Of(out.masks, 'masks');
    return raw;
  }

  /** Objects in one image: boxes in its pixels, labels, scores and (Mask R-CNN) binary masks. */
  async detect(image: RGBImage, options: DetectOptions = {}): Promise<Detection[]> {
    const threshold = options.threshold ?? 0.5;
    checkThreshold(threshold);
    checkImageSize(image.height, image.width, this.config.settings.transform);
    const raw = await this.run(toNormalizedCHW(image, [0, 0, 0], [1, 1, 1]), { threshold });
    return this.detections(raw, image.width, image.height, options.masks ?? true);
  }

  /** The detections of a single-image result as plain objects. */
  detections(raw: RawDetections, width: number, height: number, withMasks = true): Detection[] {
    const out: Detection[] = [];
    for (let i = 0; i < raw.scores.length; i++) {
      const index = raw.labels[i]!;
      const [xmin, ymin, xmax, ymax] = raw.boxes.subarray(4 * i, 4 * i + 4);
      const d: Detection = { index, label: labelOf(this.labels, index), score: raw.scores[i]!, box: { xmin: xmin!, ymin: ymin!, xmax: xmax!, ymax: ymax! } };
      if (withMasks && raw.masks) d.mask = binaryMask(raw.masks, i, width, height);
      out.push(d);
    }
    return out;
  }

  async release(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await (await session).release();
  }

  private sessionOnce(): Promise<Session> {
    this.session ??= getBackend(this.options.backend).createSession(toOnnx(this.graph({ thresholdInput: true })), this.options.session);
    this.session.catch(() => {
      this.session = undefined;
    });
    return this.session;
  }

  /** @internal */
  static create(config: MaskRcnnConfig, state: StateDict, labels: string[] | undefined, options: DetectionModelOptions): DetectionModel {
    return new DetectionModel(config, state, labels, options);
  }
}

/** Mask `i` of (D, 1, H, W) probabilities as 0/255 bytes (probability > 0.5), cut to width x height. */
export function binaryMask(masks: FloatTensor, i: number, width: number, height: number): DetectionMask {
  const [, , h, w] = masks.shape as [number, number, number, number];
  const data = new Uint8Array(width * height);
  const base = i * h * w;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data[y * width + x] = masks.data[base + y * w + x]! > 0.5 ? 255 : 0;
  }
  return { width, height, data };
}

interface LoadedState { state: StateDict; metadata: Record<string, string>; name: string }

async function readState(weights: string | Uint8Array | StateDict, entry: string | undefined): Promise<LoadedState> {
  if (weights instanceof Map) return { state: weights, metadata: {}, name: 'weights' };
  const name = typeof weights === 'string' ? weights : 'weights';
  const bytes = typeof weights === 'string' ? await readSource(weights) : weights;
  return { ...(await readWeights(bytes, entry === undefined ? { name } : { entry, name })), name };
}

/**
 * A detector from a state dict already read (what a checkpoint dispatcher calls when
 * `isMaskRcnnState(state.keys())`): config read off the weights, every key checked, labels from
 * `options.labels`, the weights' metadata, or COCO's names for 91 / 81 classes.
 */
export async function loadDetectionModel(
  state: StateDict, metadata: Record<string, string>, options: DetectionModelOptions & { name?: string } = {},
): Promise<DetectionModel> {
  const name = options.name ?? 'weights';
  if (!isMaskRcnnState(state.keys())) throw notADetector(state, name);
  const renamed = renamedDetectionState(state);
  const config = inferMaskRcnnConfig(renamed, options.settings);
  if (options.attention) config.backbone.attention = options.attention;
  const fitted = fitMaskRcnnWeights(state, config, name);
  const labels = await resolveLabels(options.labels, metadata, config.numClasses);
  return DetectionModel.create(config, fitted, labels, options);
}

function notADetector(state: StateDict, name: string): SwiftFormerError {
  const keys = [...state.keys()];
  const hint = keys.some((k) => /^(network|patch_embed|swiftformer|stages|stem)\./.test(k))
    ? ' It is a SwiftFormer classifier or backbone: pass it as `backbone` (--backbone) to start a new detector from it.'
    : keys.some((k) => k.startsWith('backbone.') && k.includes('decode_head')) || keys.some((k) => k.startsWith('decode_head.'))
      ? ' It is a segmentation model (mmsegmentation keys).'
      : '';
  const sample = keys.slice(0, 3).join(', ');
  return new SwiftFormerError('KEY_MISMATCH', `${name} is not a Mask R-CNN / Faster R-CNN checkpoint: no backbone.body, rpn.head and roi_heads keys (it has ${sample}${keys.length > 3 ? ', ...' : ''}).${hint}`);
}

async function newDetector(options: DetectionModelOptions): Promise<DetectionModel> {
  let backbone: { state: StateDict; attention: TokenNorm } | undefined;
  if (options.backbone !== undefined) {
    const loaded = await readState(options.backbone, options.entry);
    if (isMaskRcnnState(loaded.state.keys())) {
      throw new SwiftFormerError('BAD_ARGUMENT', `${loaded.name} is a whole detector: pass it as weights, not as backbone`);
    }
    backbone = officialBackbone(loaded.state);
  }
  const variant = options.model ?? (backbone ? inferConfig(backbone.state) : 'xs');
  const config = maskRcnnConfig(variant, { ...(options.numClasses !== undefined ? { numClasses: options.numClasses } : {}), ...(options.settings ? { settings: options.settings } : {}) });
  config.backbone.attention = options.attention ?? backbone?.attention ?? 'l2';
  const state = initialMaskRcnnWeights(config, options.seed ?? 0, backbone?.state);
  const labels = await resolveLabels(options.labels, {}, config.numClasses);
  return DetectionModel.create(config, state, labels, options);
}

/** Any SwiftFormer weights (official, Hugging Face, timm) as official backbone keys, classifier heads dropped. */
function officialBackbone(state: StateDict): { state: StateDict; attention: TokenNorm } {
  const remap = remapKeys(state.keys(), VARIANTS.xs!);
  const out: StateDict = new Map();
  for (const [from, to] of remap.mapped) if (!/^(norm|head|dist_head)\./.test(to)) out.set(to, state.get(from)!);
  if (![...out.keys()].some((k) => k.startsWith('network.'))) {
    throw new SwiftFormerError('KEY_MISMATCH', 'the backbone weights are not a SwiftFormer (no network.* keys after remapping)');
  }
  return { state: out, attention: attentionFor(remap.format) };
}

/** Names for a detector's classes: given (list or file), recorded in the weights, or COCO's; checked against the class count. */
async function resolveLabels(given: readonly string[] | string | undefined, metadata: Record<string, string>, numClasses: number): Promise<string[] | undefined> {
  const source = typeof given === 'string' ? given : 'the labels';
  const names = typeof given === 'string' ? await loadLabels(given) : given ? [...given] : recordedLabels(metadata);
  if (!names) return cocoLabels(numClasses);
  if (names.length === numClasses) return names;
  if (names.length === numClasses - 1) return ['__background__', ...names];
  throw new SwiftFormerError('BAD_ARGUMENT', `${source} has ${names.length} names but the detector has ${numClasses} classes (${numClasses - 1} and the background)`);
}
