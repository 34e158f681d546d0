/**
 * The user-facing detector: torchvision Mask R-CNN / Faster R-CNN weights on a SwiftFormer
 * backbone (bare state dicts, references/detection checkpoints, or a classification checkpoint
 * that starts the backbone of a new detector) -> the one detection graph (maskrcnn.ts) -> an ONNX
 * Runtime session, with results as plain objects in the image's pixels, as transformers.js'
 * object-detection pipeline gives them.
 *
 *   const detector = await DetectionModel.load({ weights: 'maskrcnn_swiftformer_xs.pth' });
 *   const found = await detector.detect(image, { threshold: 0.5 });
 *   // [{ index: 1, label: 'person', score: 0.98, box: { xmin, ymin, xmax, ymax }, mask: { width, height, data } }]
 *
 * Everything runs in the graph, resizing included, so the library and an exported file give the
 * same detections; detect only feeds a score threshold, so masks are pasted for what it keeps.
 */
import { SwiftFormerError } from '../core/errors.js';
import { readImage, type ImageInput } from '../core/io.js';
import { formatShape, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.js';
import { bindParams, toOnnx, type Graph } from '../graph/graph.js';
import { optimizeForInference } from '../graph/passes.js';
import { toNormalizedCHW } from '../preprocess/transforms.js';
import type { SessionOptions } from '../runtime/runtime.js';
import type { TokenNorm } from './attention.js';
import { cardMetadata, readCard, type ModelCard } from './card.js';
import { refuseOtherFamily } from './families.js';
import { inferConfig, toOfficialKeys } from './fit.js';
import { cocoLabels, labelOf, loadLabels, resolveLabels } from './labels.js';
import {
  emitMaskRcnn, fitMaskRcnnWeights, inferMaskRcnnConfig, initialMaskRcnnWeights, isMaskRcnnState, maskRcnnConfig, renamedDetectionState,
  SCORE_THRESHOLD_INPUT, type MaskRcnnConfig,
} from './maskrcnn.js';
import { readModelSource, type ModelSource } from './source.js';
import { Sessions } from './sessions.js';
import { attentionFor, type SwiftFormerConfig } from './swiftformer.js';
import { checkImageSize } from './detection/transform.js';
import { resolveSettings, type DetectionSettings, type SettingsOverrides } from './detection/settings.js';

export { isMaskRcnnState } from './maskrcnn.js';

/** Metadata key of an exported detector's torchvision settings (transform, anchors, RPN, RoI heads). */
export const DETECTION_SETTINGS_KEY = 'swiftformer.detection';

/** The settings an exported detector records (resolved and checked; defaults where it records none). */
export function recordedDetectionSettings(metadata: Readonly<Record<string, string>>): DetectionSettings {
  const text = metadata[DETECTION_SETTINGS_KEY];
  let recorded: unknown;
  try {
    recorded = text === undefined ? {} : JSON.parse(text);
  } catch {
    throw new SwiftFormerError('BAD_CHECKPOINT', `the model's ${DETECTION_SETTINGS_KEY} metadata is not valid JSON`);
  }
  return resolveSettings(recorded as SettingsOverrides);
}

/**
 * The class names of an exported detection graph: those of a label file, checked against the
 * class count the export records (its architecture), else the names it recorded.
 */
export async function exportedDetectorLabels(metadata: Readonly<Record<string, string>>, given?: string): Promise<readonly string[] | undefined> {
  const recorded = readCard(metadata, 'detection').labels;
  if (given === undefined) return recorded;
  const numClasses = recordedNumClasses(metadata) ?? recorded?.length;
  return numClasses === undefined ? loadLabels(given) : detectorLabels(given, undefined, undefined, numClasses);
}

function recordedNumClasses(metadata: Readonly<Record<string, string>>): number | undefined {
  try {
    const n = (JSON.parse(metadata['swiftformer.config'] ?? '{}') as { numClasses?: unknown }).numClasses;
    return typeof n === 'number' && Number.isInteger(n) && n >= 2 ? n : undefined;
  } catch {
    throw new SwiftFormerError('BAD_CHECKPOINT', "the model's swiftformer.config metadata is not valid JSON");
  }
}

export interface DetectionModelOptions {
  /**
   * A torchvision Mask R-CNN / Faster R-CNN checkpoint (bare state dict or references/detection's
   * `{model, optimizer, lr_scheduler, args, epoch}`; .pth or .safetensors; path, URL, bytes or a
   * state dict), or SwiftFormer classification / fork_feat weights (any key layout) that start
   * the backbone of a new detector. Absent: a randomly initialized detector.
   */
  weights?: string | Uint8Array | StateDict;
  /** Entry of a full training checkpoint (default 'model'). */
  entry?: string;
  /** Backbone of a new detector: a variant id or config (default: read off the weights, else 'xs'). */
  model?: string | SwiftFormerConfig;
  /** Classes of a new detector, background included (default 91, torchvision's COCO ids). */
  numClasses?: number;
  /** Class names (index 0 the background; a list without it is accepted too), or a label file. */
  labels?: readonly string[] | string;
  /** torchvision settings to change: `{ transform: { minSize: 512, maxSize: 853 } }`, thresholds, ... */
  settings?: SettingsOverrides;
  /** The backbone's attention rule (default: the weights' origin's; l2 for the official code). */
  attention?: TokenNorm;
  /** Load weights that hold NaN or infinity (refused by default, naming the tensors). */
  allowNonFinite?: boolean;
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

function checkThreshold(threshold: unknown): asserts threshold is number {
  if (!(typeof threshold === 'number' && threshold >= 0 && threshold <= 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `threshold must be a number in [0, 1], got ${String(threshold)}`);
  }
}

function output(out: Record<string, Tensor>, name: string, dtype: 'float32' | 'int64'): Tensor {
  const t = out[name];
  if (!t || t.dtype !== dtype) throw new Error(`detection graph output ${name} is missing or not ${dtype}`);
  return t;
}

export class DetectionModel {
  private readonly sessions: Sessions;

  private constructor(
    readonly config: MaskRcnnConfig,
    /** Weights under torchvision's keys. */
    readonly state: StateDict,
    /** Task 'detection' and the class names (index 0 the background), when known. */
    readonly card: ModelCard,
    options: Pick<DetectionModelOptions, 'backend' | 'session'>,
  ) {
    this.sessions = new Sessions('this detection model', options.backend, options.session);
  }

  /** `await DetectionModel.load({ weights: 'maskrcnn.pth' })`; without weights, a new detector. */
  static async load(options: DetectionModelOptions = {}): Promise<DetectionModel> {
    if (options.weights === undefined) return newDetector(undefined, options);
    return DetectionModel.fromSource(await readModelSource(options.weights, options.entry), options);
  }

  /**
   * From weights already read (what `loadModel` hands over): a torchvision detector, or a
   * classifier's weights to start a new detector's backbone.
   */
  static async fromSource(source: ModelSource, options: DetectionModelOptions = {}): Promise<DetectionModel> {
    refuseOtherFamily(source, 'a Mask R-CNN detector', 'detection');
    if (!isMaskRcnnState(source.state.keys())) return newDetector(source, options);
    const config = inferMaskRcnnConfig(renamedDetectionState(source.state), options.settings);
    if (options.attention) config.backbone.attention = options.attention;
    const state = fitMaskRcnnWeights(source.state, config, source.name, options.allowNonFinite ? { allowNonFinite: true } : {});
    const card = readCard(source.metadata, 'detection');
    const labels = await detectorLabels(options.labels, source.labels, card.labels, config.numClasses);
    return new DetectionModel(config, state, { task: 'detection', ...(labels ? { labels } : {}) }, options);
  }

  get task(): 'detection' {
    return 'detection';
  }

  /** Whether the model predicts masks (Mask R-CNN) or boxes only (Faster R-CNN). */
  get hasMasks(): boolean {
    return this.config.maskLayers !== undefined;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** Class names, index 0 the background; undefined when nothing names them. */
  get labels(): readonly string[] | undefined {
    return this.card.labels;
  }

  /** The eval graph with weights bound; `thresholdInput` adds the score_threshold input detect feeds. */
  graph(options: { thresholdInput?: boolean } = {}): Graph {
    return optimizeForInference(bindParams(emitMaskRcnn(this.config, options), this.state));
  }

  /** The one-graph ONNX export (maskrcnn.ts's file comment gives its inputs and outputs). */
  toOnnx(): Uint8Array {
    return toOnnx(this.graph(), this.onnxMetadata());
  }

  /** What an exported file carries along: the card (task, labels), the architecture and torchvision's settings. */
  onnxMetadata(): Record<string, string> {
    const { settings, ...architecture } = this.config;
    return { 'swiftformer.config': JSON.stringify(architecture), [DETECTION_SETTINGS_KEY]: JSON.stringify(settings), ...cardMetadata(this.card) };
  }

  /**
   * Runs a batch of same-size images (N, 3, H, W), RGB in [0, 1]; detections scoring at or below
   * `threshold` (default 0: everything torchvision returns) are dropped before their masks are pasted.
   */
  async run(pixels: FloatTensor, options: { threshold?: number } = {}): Promise<RawDetections> {
    const threshold = options.threshold ?? 0;
    checkThreshold(threshold);
    const t = pixels as Partial<FloatTensor> | undefined;
    const [n, c, h, w] = (Array.isArray(t?.shape) ? t!.shape : []) as number[];
    if (!(t?.data instanceof Float32Array) || t.shape!.length !== 4 || c !== 3 || !(n! >= 1) || t.data.length !== n! * 3 * h! * w!) {
      throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32 in [0, 1], got ${Array.isArray(t?.shape) ? formatShape(t!.shape) : typeof t}`);
    }
    checkImageSize(h!, w!, this.config.settings.transform);
    const feeds = { pixel_values: pixels, [SCORE_THRESHOLD_INPUT]: { dtype: 'float32' as const, shape: [], data: Float32Array.of(threshold) } };
    const out = await this.sessions.runTyped('detect', () => toOnnx(this.graph({ thresholdInput: true })), feeds);
    return rawDetections(out, this.hasMasks);
  }

  /** Objects in one image (pixels, or a path / bytes / element the platform decodes), in its pixels. */
  async detect(image: ImageInput, options: DetectOptions = {}): Promise<Detection[]> {
    const threshold = options.threshold ?? 0.5;
    checkThreshold(threshold);
    this.sessions.checkOpen();
    const rgb = await readImage(image);
    checkImageSize(rgb.height, rgb.width, this.config.settings.transform);
    const raw = await this.run(toNormalizedCHW(rgb, [0, 0, 0], [1, 1, 1]), { threshold });
    return this.detections(raw, rgb.width, rgb.height, options.masks ?? true);
  }

  /** The detections of a single-image result as plain objects. */
  detections(raw: RawDetections, width: number, height: number, withMasks = true): Detection[] {
    return toDetections(raw, this.labels, width, height, withMasks);
  }

  /** Gives back the memory the session' arena holds, reopening it (sessions.ts). */
  trim(): Promise<void> {
    return this.sessions.trim();
  }

  /** Frees the session; calls in flight and later calls reject with RELEASED. */
  release(): Promise<void> {
    return this.sessions.release();
  }

  /** @internal for newDetector */
  static create(config: MaskRcnnConfig, state: StateDict, labels: string[] | undefined, options: DetectionModelOptions): DetectionModel {
    return new DetectionModel(config, state, { task: 'detection', ...(labels ? { labels } : {}) }, options);
  }
}

/**
 * The detection graph's outputs (maskrcnn.ts's file comment) as RawDetections: what `run` returns,
 * and what a server running an exported file gets from its session.
 */
export function rawDetections(out: Record<string, Tensor>, hasMasks: boolean): RawDetections {
  const ints = (name: string) => Int32Array.from(output(out, name, 'int64').data as BigInt64Array, Number);
  return {
    boxes: output(out, 'boxes', 'float32').data as Float32Array,
    scores: output(out, 'scores', 'float32').data as Float32Array,
    labels: ints('labels'),
    batch: ints('batch_index'),
    ...(hasMasks ? { masks: output(out, 'masks', 'float32') as FloatTensor } : {}),
  };
}

/** The detections of a single-image result as plain objects, named by `labels` (index 0 the background). */
export function toDetections(raw: RawDetections, labels: readonly string[] | undefined, width: number, height: number, withMasks = true): Detection[] {
  return Array.from(raw.scores, (score, i) => {
    const index = raw.labels[i]!;
    const [xmin, ymin, xmax, ymax] = raw.boxes.subarray(4 * i, 4 * i + 4) as unknown as [number, number, number, number];
    const d: Detection = { index, label: labelOf(labels, index), score, box: { xmin, ymin, xmax, ymax } };
    if (withMasks && raw.masks) d.mask = binaryMask(raw.masks, i, width, height);
    return d;
  });
}

/** Mask `i` of (D, 1, H, W) probabilities as 0/255 bytes (probability > 0.5), cut to width x height. */
export function binaryMask(masks: FloatTensor, i: number, width: number, height: number): DetectionMask {
  const [, , h, w] = masks.shape as [number, number, number, number];
  if (width > w || height > h) throw new Error(`a ${width}x${height} mask from ${w}x${h} maps`);
  const data = new Uint8Array(width * height);
  const base = i * h * w;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data[y * width + x] = masks.data[base + y * w + x]! > 0.5 ? 255 : 0;
  }
  return { width, height, data };
}

/**
 * A new detector (torchvision's initialization), its backbone from `source` when given: SwiftFormer
 * weights in any key layout, classifier head dropped (the fork_feat norms a classifier lacks start
 * as identity); every other backbone key must fit.
 */
async function newDetector(source: ModelSource | undefined, options: DetectionModelOptions): Promise<DetectionModel> {
  const official = source ? toOfficialKeys(source.state) : undefined;
  if (official && ![...official.state.keys()].some((k) => k.startsWith('network.'))) {
    const sample = [...source!.state.keys()].slice(0, 3).join(', ');
    throw new SwiftFormerError('KEY_MISMATCH', `${source!.name} is neither a Mask R-CNN detector (torchvision keys backbone.body, rpn.head, roi_heads) nor SwiftFormer weights to start one from (it has ${sample})`);
  }
  const backbone = official ? new Map([...official.state].filter(([k]) => !/^(norm|head|dist_head)\./.test(k))) : undefined;
  const variant = options.model ?? (backbone ? inferConfig(backbone) : 'xs');
  const config = maskRcnnConfig(variant, {
    ...(options.numClasses !== undefined ? { numClasses: options.numClasses } : {}), ...(options.settings ? { settings: options.settings } : {}),
  });
  config.backbone.attention = options.attention ?? (official ? attentionFor(official.format) : 'l2');
  if (backbone) checkBackbone(backbone, config, source!.name);
  const state = initialMaskRcnnWeights(config, options.seed ?? 0, backbone);
  const labels = await detectorLabels(options.labels, undefined, undefined, config.numClasses);
  return DetectionModel.create(config, state, labels, options);
}

/** Every backbone tensor of a new detector must come from the given weights, with its shape (norm0/2/4/6 excepted). */
function checkBackbone(backbone: StateDict, config: MaskRcnnConfig, name: string): void {
  const params = emitMaskRcnn(config).params;
  const problems: string[] = [];
  for (const [key, shape] of params) {
    if (!key.startsWith('backbone.body.') || /^backbone\.body\.norm\d+\./.test(key)) continue;
    const t = backbone.get(key.slice('backbone.body.'.length));
    if (!t) problems.push(`${key} missing`);
    else if (t.data.length !== shape.reduce((a, b) => a * b, 1)) problems.push(`${key}: checkpoint ${formatShape(t.shape)} vs model ${formatShape(shape)}`);
  }
  if (problems.length > 0) {
    throw new SwiftFormerError('KEY_MISMATCH', `${name} cannot start this detector's backbone: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `, ... (${problems.length - 5} more)` : ''}. Is it another variant? Pass the matching model.`);
  }
}

/**
 * The class names of a detector: given (a list or a label file), the repository's, the weights'
 * recorded ones, else COCO's for 91 or 81 classes. A list one short of the class count is taken
 * to leave out the background.
 */
async function detectorLabels(
  given: readonly string[] | string | undefined, repository: string[] | undefined, recorded: readonly string[] | undefined, numClasses: number,
): Promise<string[] | undefined> {
  const withBackground = (names: readonly string[]) => (names.length === numClasses - 1 ? ['__background__', ...names] : [...names]);
  const explicit = typeof given === 'string' ? { labels: withBackground(await loadLabels(given)), name: given } : given ? { labels: withBackground(given), name: 'the labels' } : undefined;
  try {
    const labels = await resolveLabels({
      ...(explicit ? { explicit } : {}),
      ...(repository ? { repository: { labels: withBackground(repository), name: "the repository's id2label" } } : {}),
      ...(recorded ? { recorded: withBackground(recorded) } : {}),
    }, numClasses);
    return labels ?? cocoLabels(numClasses);
  } catch (err) {
    if (err instanceof SwiftFormerError && err.code === 'BAD_ARGUMENT') {
      throw new SwiftFormerError('BAD_ARGUMENT', `${err.message} (${numClasses - 1} and the background)`);
    }
    throw err;
  }
}
