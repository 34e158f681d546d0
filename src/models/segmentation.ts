/**
 * The user-facing segmentation model: Semantic FPN weights (mmsegmentation checkpoints, bare
 * state dicts, or a classification checkpoint that starts the backbone of a new model) -> ONNX
 * Runtime sessions -> masks at the image's own size, as plain objects.
 *
 * Where each step of mmseg's test pipeline runs: the keep-ratio resize, normalization and padding
 * in TypeScript (bit-exact with OpenCV and mmcv, preprocess/segmentation.ts); backbone, neck and
 * head in the graph, up to the 1/4-resolution logits; the two bilinear resizes of those logits
 * (to the padded input, then, after cropping the padding, to the original size) and the argmax in
 * TypeScript, composed into one interpolation (`maskFromQuarterLogits`), which never holds K
 * full-resolution maps. `logits()` and the exported ONNX resize inside the graph instead.
 */
import { SwiftFormerError } from '../core/errors.js';
import { readImage, type ImageInput } from '../core/io.js';
import { formatShape, type FloatTensor, type StateDict } from '../core/tensor.js';
import { bindParams, toOnnx, type Graph } from '../graph/graph.js';
import { axisTaps, composeTaps, type Taps } from '../graph/interpolate.js';
import { optimizeForInference } from '../graph/passes.js';
import { segmentationInput, type SegmentationInput } from '../preprocess/segmentation.js';
import type { SessionOptions } from '../runtime/runtime.js';
import { readWeights } from '../weights/read.js';
import { readModelSource, type ModelSource } from './source.js';
import { refuseOtherFamily } from './families.js';
import type { TokenNorm } from './attention.js';
import { cardMetadata, checkPalette, readCard, type ModelCard, type RGB } from './card.js';
import { fitToParams, inferConfig, toOfficialKeys, type FitReport } from './fit.js';
import {
  DEFAULT_SCALE, emitSemanticFpn, fusedNeckWeights, inferSemanticFpnConfig, initialSemanticFpnWeights, isSemanticFpnState, remapSemanticFpnKeys,
  semanticFpnConfig, semanticFpnParams, validateSemanticFpnConfig, type SemanticFpnConfig,
} from './semfpn.js';
import { Sessions } from './sessions.js';
import { attentionFor, variantConfig, type SwiftFormerConfig } from './swiftformer.js';

export { isSemanticFpnState } from './semfpn.js';
export { classAreas, type ClassArea } from '../draw/overlay.js';

/** What `segment` returns: class indices per pixel at the image's size, and what they mean. */
export interface Segmentation {
  /** Row-major class indices, width x height. Uint8Array up to 256 classes, else Uint16Array. */
  mask: ClassMask;
  width: number;
  height: number;
  labels: readonly string[];
  palette: readonly RGB[];
}

/**
 * Class names and colors, as mmseg checkpoints' `meta` (CLASSES, PALETTE) carries them; and what
 * a model trained here records beside them (in safetensors metadata, or as strings in the .pth's
 * meta under the same keys): its test scale and its backbone's token normalization.
 */
export interface SegmentationMeta {
  labels?: string[];
  palette?: RGB[];
  scale?: [number, number];
  attention?: TokenNorm;
}

/** Metadata keys of the test scale and the Semantic FPN config (ONNX exports carry them too). */
export const SCALE_KEY = 'swiftformer.scale';
export const CONFIG_KEY = 'swiftformer.config';

/** The test scale and token normalization recorded under SCALE_KEY / CONFIG_KEY, checked. */
function recordedInference(get: (key: string) => unknown): Pick<SegmentationMeta, 'scale' | 'attention'> {
  const parse = (key: string): unknown => {
    const text = get(key);
    if (typeof text !== 'string') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${key} metadata is not valid JSON`);
    }
  };
  const scale = parse(SCALE_KEY);
  if (scale !== undefined && !(Array.isArray(scale) && scale.length === 2 && scale.every((v) => Number.isInteger(v) && v >= 32 && v <= 8192))) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${SCALE_KEY} metadata is not a (long, short) pair of sides in [32, 8192]`);
  }
  const attention = (parse(CONFIG_KEY) as { backbone?: { attention?: unknown } } | undefined)?.backbone?.attention;
  return {
    ...(scale ? { scale: scale as [number, number] } : {}),
    ...(attention === 'l2' || attention === 'softmax' ? { attention } : {}),
  };
}

export interface SegmentationOptions {
  /**
   * mmseg checkpoint or Semantic FPN state dict (.pth or .safetensors; path in Node, URL, bytes,
   * or a state dict); or a classification / fork_feat checkpoint (official, Hugging Face, timm,
   * trained here) whose backbone starts a new model (neck, head and norm0/2/4/6 initialized).
   * Absent: a randomly initialized model.
   */
  weights?: string | Uint8Array | StateDict;
  /** Backbone of a new model: a variant ('xs', 's', 'l1', 'l3') or config. Default: read off the weights, else 'xs'. */
  model?: string | SwiftFormerConfig;
  /** Class count, neck/head widths and dropout of a new model (default 150, 256, 128, 0.1); numClasses also re-heads weights with strict: false. */
  numClasses?: number;
  neckChannels?: number;
  headChannels?: number;
  dropout?: number;
  /** Class names and palette (default: the checkpoint's meta, else 'class i' and a VOC-style palette). */
  labels?: string[];
  palette?: RGB[];
  /** Test scale (long, short) of the keep-ratio resize (mmseg's (2048, 512)); null: run images at their size. */
  scale?: [number, number] | null;
  /** Token normalization of the backbone; default follows the weights' origin. */
  attention?: TokenNorm;
  /** false: load what fits a given config and initialize the rest. Default true for Semantic FPN weights. */
  strict?: boolean;
  /** Load weights that hold NaN or infinity (refused by default, naming the tensors). */
  allowNonFinite?: boolean;
  seed?: number;
  session?: SessionOptions;
  backend?: string;
}

// ---------------------------------------------------------------- weights and metadata

/** Class names and palette from an mmcv checkpoint's `meta` (a dict with CLASSES and PALETTE), checked. */
export function mmsegMeta(root: unknown): SegmentationMeta {
  const meta = root instanceof Map ? root.get('meta') : undefined;
  if (!(meta instanceof Map)) return {};
  const out: SegmentationMeta = {};
  const classes = meta.get('CLASSES');
  if (classes !== undefined && classes !== null) {
    if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) throw new SwiftFormerError('BAD_CHECKPOINT', "the checkpoint's meta.CLASSES is not a list of names");
    out.labels = classes;
  }
  const palette = meta.get('PALETTE');
  if (palette !== undefined && palette !== null) out.palette = checkPalette(palette, "the checkpoint's meta.PALETTE");
  return { ...out, ...recordedInference((key) => meta.get(key)) };
}

/**
 * A checkpoint's state dict and segmentation metadata: mmcv's layout (`meta`, `state_dict`) or a
 * bare state dict in .pth; safetensors with this library's card metadata (labels, palette).
 */
export async function readSegmentationWeights(bytes: Uint8Array, name = 'weights'): Promise<{ state: StateDict; meta: SegmentationMeta }> {
  const file = await readWeights(bytes, { name });
  return { state: file.state, meta: segmentationMeta(file) };
}

/**
 * Class names and palette of weights as read: mmcv's `meta` in a .pth file, this library's card in
 * a safetensors file; a repository's names (hf: id2label) come first.
 */
export function segmentationMeta(source: Pick<ModelSource, 'metadata' | 'root' | 'labels'>): SegmentationMeta {
  const card = readCard(source.metadata, 'segmentation');
  const meta: SegmentationMeta = source.root !== undefined ? mmsegMeta(source.root) : {
    ...(card.labels ? { labels: [...card.labels] } : {}), ...(card.palette ? { palette: [...card.palette] } : {}),
    ...recordedInference((key) => source.metadata[key]),
  };
  return source.labels ? { ...meta, labels: source.labels } : meta;
}

/**
 * PASCAL VOC's palette (class 0 black, then the bits of each index spread over the high bits of
 * r, g and b): distinct colors for any class count.
 */
export function defaultPalette(numClasses: number): RGB[] {
  return Array.from({ length: numClasses }, (_, i) => {
    const rgb: RGB = [0, 0, 0];
    for (let bit = 7, c = i; c > 0 && bit >= 0; bit--, c >>= 3) {
      for (let k = 0; k < 3; k++) rgb[k]! |= ((c >> k) & 1) << bit;
    }
    return rgb;
  });
}

// ---------------------------------------------------------------- building a model from weights

/** The backbone config a new model gets: explicit, or read off classification / backbone weights. */
function backboneConfig(model: SegmentationOptions['model'], official: StateDict | undefined): SwiftFormerConfig {
  if (typeof model === 'string') return variantConfig(model);
  if (model) return structuredClone(model);
  return official ? inferConfig(official) : variantConfig('xs');
}

function newConfig(backbone: SwiftFormerConfig, options: SegmentationOptions): SemanticFpnConfig {
  const overrides = Object.fromEntries((['numClasses', 'neckChannels', 'headChannels', 'dropout'] as const)
    .filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
  return semanticFpnConfig(backbone, overrides);
}

interface Built { config: SemanticFpnConfig; state: StateDict; report: FitReport | undefined }

const fitOptions = (options: SegmentationOptions, name: string, strict: boolean) => ({ strict, name, ...(options.allowNonFinite ? { allowNonFinite: true } : {}) });

/** Semantic FPN weights: config from the weights (class count overridable with strict: false), strict fit by default. */
function fromSemanticFpn(source: StateDict, options: SegmentationOptions, name: string): Built {
  const config: SemanticFpnConfig = { ...inferSemanticFpnConfig(source, options.dropout), ...(options.numClasses !== undefined ? { numClasses: options.numClasses } : {}) };
  if (options.model !== undefined) config.backbone = { ...backboneConfig(options.model, undefined), numClasses: 0, distillation: false };
  const remap = remapSemanticFpnKeys(source.keys(), config.backbone);
  config.backbone.attention = options.attention ?? attentionFor(remap.format);
  validateSemanticFpnConfig(config);
  const renamed = { format: remap.format, state: new Map([...remap.mapped].map(([from, to]) => [to, source.get(from)!])), unmatched: remap.unmatched };
  const { state, report } = fitToParams(renamed, semanticFpnParams(config), config.backbone.attention, fitOptions(options, name, options.strict !== false));
  return { config, state: fillMissing(state, config, options.seed ?? 0), report };
}

/**
 * A classification or fork_feat checkpoint as the backbone of a new model (the paper's recipe
 * starts from ImageNet weights): strict: false semantics for what a backbone does not have
 * (classifier norm and heads dropped; norm0/2/4/6, neck and head initialized), but every other
 * backbone key must be there with its shape.
 */
function fromBackbone(source: StateDict, options: SegmentationOptions, name: string): Built {
  const official = toOfficialKeys(source);
  const config = newConfig(backboneConfig(options.model, official.state), options);
  config.backbone.attention = options.attention ?? attentionFor(official.format);
  const renamed = { ...official, state: new Map([...official.state].map(([k, t]) => [`backbone.${k}`, t])) };
  const { state, report } = fitToParams(renamed, semanticFpnParams(config), config.backbone.attention, fitOptions(options, name, false));
  const required = report.missing.filter((k) => k.startsWith('backbone.') && !/^backbone\.norm\d+\./.test(k));
  if (report.mismatched.length > 0 || required.length > 0) {
    const problems = [
      ...report.mismatched.map((m) => `${m.key}: checkpoint ${formatShape(m.checkpoint)} vs model ${formatShape(m.model)}`),
      ...required.map((k) => `${k} missing`),
    ];
    throw new SwiftFormerError('KEY_MISMATCH', `${name} cannot start this backbone (${official.format} keys): ${problems.slice(0, 6).join('; ')}${problems.length > 6 ? `, ... (${problems.length - 6} more)` : ''}. Is it another variant? Pass the matching model.`);
  }
  return { config, state: fillMissing(state, config, options.seed ?? 0), report };
}

function fillMissing(state: StateDict, config: SemanticFpnConfig, seed: number): StateDict {
  if ([...semanticFpnParams(config).keys()].every((k) => state.has(k))) return state;
  for (const [key, t] of initialSemanticFpnWeights(config, seed)) if (!state.has(key)) state.set(key, t);
  return state;
}

/**
 * A segmentation model from a state dict already read (the dispatcher's entry: `loadModel` reads
 * a checkpoint once and hands Semantic FPN weights here), with the checkpoint's metadata
 * (`mmsegMeta` of a .pth root, or the card of a safetensors file).
 */
export function loadSemanticFpn(source: StateDict | undefined, meta: SegmentationMeta, given: SegmentationOptions = {}, name = 'weights'): SegmentationModel {
  const options = given.attention === undefined && meta.attention ? { ...given, attention: meta.attention } : given;
  let built: Built;
  if (!source) {
    const config = newConfig(backboneConfig(options.model, undefined), options);
    if (options.attention) config.backbone.attention = options.attention;
    built = { config, state: initialSemanticFpnWeights(config, options.seed ?? 0), report: undefined };
  } else {
    built = isSemanticFpnState(source.keys()) ? fromSemanticFpn(source, options, name) : fromBackbone(source, options, name);
  }
  const k = built.config.numClasses;
  const labels = options.labels ?? (meta.labels?.length === k ? meta.labels : undefined) ?? Array.from({ length: k }, (_, i) => `class ${i}`);
  const palette = options.palette ? checkPalette(options.palette, 'palette') : (meta.palette?.length === k ? meta.palette : undefined) ?? defaultPalette(k);
  if (labels.length !== k) throw new SwiftFormerError('BAD_ARGUMENT', `${labels.length} labels for a model of ${k} classes`);
  if (palette.length !== k) throw new SwiftFormerError('BAD_ARGUMENT', `a palette of ${palette.length} colors for a model of ${k} classes`);
  const scale = options.scale === undefined ? meta.scale ?? [...DEFAULT_SCALE] as [number, number] : options.scale;
  if (scale && !(scale.length === 2 && scale.every((v) => Number.isInteger(v) && v >= 32 && v <= 8192))) {
    throw new SwiftFormerError('BAD_ARGUMENT', `scale must be two integers in [32, 8192] (long, short), got ${JSON.stringify(scale)}`);
  }
  return new SegmentationModel(built.config, built.state, { task: 'segmentation', labels, palette }, scale, built.report, options);
}

// ---------------------------------------------------------------- the model

export type SegmentationOutput = 'logits' | 'mask';

/**
 * Sessions a segmenter keeps open, the least recently used closed first: one per padded input
 * size (and output), and images of other shapes pad to other sizes. Four covers a camera or two
 * and both of /v2's logits and /v1's segment at one size; past it a new size costs a session
 * creation rather than another session's weights and arena for good.
 */
export const SEGMENTER_SESSIONS = 4;

export class SegmentationModel {
  private readonly sessions: Sessions;
  /** The weights with the fused neck's derived ones (semfpn.ts fusedNeckWeights), made once. */
  private inferenceState: StateDict | undefined;

  constructor(
    readonly config: SemanticFpnConfig,
    /** Weights under mmseg's keys. */
    readonly state: StateDict,
    /** Task 'segmentation', class names and palette. */
    readonly card: ModelCard & { labels: readonly string[]; palette: readonly RGB[] },
    /** Test scale (long, short) of the keep-ratio resize; null: images run at their size. */
    readonly scale: [number, number] | null,
    /** How the weights were matched; undefined for random initialization. */
    readonly report: FitReport | undefined,
    options: Pick<SegmentationOptions, 'backend' | 'session'> = {},
  ) {
    this.sessions = new Sessions('this segmentation model', options.backend, options.session, { maxSessions: SEGMENTER_SESSIONS });
  }

  /** `await SegmentationModel.load({ weights: 'fpn_swiftformer_l1_ade20k.pth' })`. */
  static async load(options: SegmentationOptions = {}): Promise<SegmentationModel> {
    if (options.weights === undefined) return loadSemanticFpn(undefined, {}, options);
    return SegmentationModel.fromSource(await readModelSource(options.weights), options);
  }

  /** From weights already read: Semantic FPN weights, or a classifier's to start a new model's backbone. */
  static fromSource(source: ModelSource, options: SegmentationOptions = {}): SegmentationModel {
    refuseOtherFamily(source, 'a Semantic FPN segmentation model', 'segmentation');
    return loadSemanticFpn(source.state, segmentationMeta(source), options, source.name);
  }

  get task(): 'segmentation' {
    return 'segmentation';
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get labels(): readonly string[] {
    return this.card.labels;
  }

  get palette(): readonly RGB[] {
    return this.card.palette;
  }

  /**
   * The optimized eval graph with weights bound: `logits` (N,K,H,W) at the input size, its argmax
   * `mask`, or the head's `logits_quarter`. BatchNorm folded, the neck fused and composed with the head's first convs (semfpn.ts fusedHeadEntry).
   */
  graph(inputSize: number | [number, number] = 512, output: SegmentationOutput | 'logits_quarter' = 'logits'): Graph {
    this.inferenceState ??= fusedNeckWeights(this.state, this.config);
    return optimizeForInference(bindParams(emitSemanticFpn(this.config, { inputSize, output, fusedNeck: true, fusedHead: true }), this.inferenceState));
  }

  /**
   * ONNX bytes: input `pixel_values` (N,3,H,W) float32 (mmseg-normalized), output `logits`
   * (N,K,H,W) float32, or `mask` (N,H,W) uint8 (uint16 above 256 classes); dynamic batch.
   */
  toOnnx(inputSize: number | [number, number] = 512, output: SegmentationOutput = 'logits'): Uint8Array {
    return toOnnx(this.graph(inputSize, output), this.onnxMetadata());
  }

  /** What an exported file carries along: the card (task, labels, palette), config and test scale. */
  onnxMetadata(): Record<string, string> {
    return {
      [CONFIG_KEY]: JSON.stringify(this.config),
      ...(this.scale ? { [SCALE_KEY]: JSON.stringify(this.scale) } : {}),
      ...cardMetadata(this.card),
    };
  }

  /** Logits (N,K,H,W) at the input resolution for a normalized batch (H, W multiples of 32). */
  async logits(pixels: FloatTensor): Promise<FloatTensor> {
    return (await this.run('logits', pixels)).logits!;
  }

  /** The decode head's logits (N,K,H/4,W/4), before any resize. */
  async quarterLogits(pixels: FloatTensor): Promise<FloatTensor> {
    return (await this.run('logits_quarter', pixels)).logits_quarter!;
  }

  /** The model input of an image as mmseg's test pipeline makes it (resize into `scale`, normalize, pad). */
  async preprocess(image: ImageInput): Promise<SegmentationInput> {
    this.sessions.checkOpen();
    return segmentationInput(await readImage(image), this.scale);
  }

  /** Class indices per pixel of `image` (pixels, or a path / bytes / element the platform decodes) at its own size. */
  async segment(image: ImageInput): Promise<Segmentation> {
    const input = await this.preprocess(image);
    const mask = maskFromQuarterLogits((await this.quarterLogits(input.pixels)).data, this.numClasses, input);
    return { mask, width: input.original.width, height: input.original.height, labels: this.labels, palette: this.palette };
  }

  /** Gives back the memory the sessions' arenas hold, reopening them (sessions.ts). */
  trim(): Promise<void> {
    return this.sessions.trim();
  }

  /** Frees the sessions; calls in flight and later calls reject with RELEASED. */
  release(): Promise<void> {
    return this.sessions.release();
  }

  private run(output: SegmentationOutput | 'logits_quarter', pixels: FloatTensor): Promise<Record<string, FloatTensor>> {
    this.sessions.checkOpen();
    const [h, w] = checkPixels(pixels);
    return this.sessions.run(`${output}:${h}x${w}`, () => toOnnx(this.graph([h, w], output)), { pixel_values: pixels });
  }
}

function checkPixels(pixels: FloatTensor): [number, number] {
  const t = pixels as Partial<FloatTensor> | null | undefined;
  const [n, c, h, w] = (Array.isArray(t?.shape) ? t!.shape : []) as number[];
  if (!(t?.data instanceof Float32Array) || t.shape!.length !== 4 || c !== 3 || !n || t.data.length !== n * c * h! * w!) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32 with matching data, got ${Array.isArray(t?.shape) ? formatShape(t!.shape) : typeof t}`);
  }
  if (h! % 32 !== 0 || w! % 32 !== 0 || h! < 32 || w! < 32 || h! > 8192 || w! > 8192) {
    throw new SwiftFormerError('BAD_SHAPE', `input size ${h}x${w} is not supported: height and width must be multiples of 32 up to 8192 (segment() pads images itself)`);
  }
  return [h!, w!];
}

// ---------------------------------------------------------------- logits to mask

/** Class indices as compact as the class count allows. */
export type ClassMask = Uint8Array | Uint16Array;

/**
 * The argmax mask at the original size from decode-head logits `quarter` (K, H/4, W/4) of a padded
 * input whose top-left `input.resized` part is the image: mmseg's two bilinear resizes
 * (align_corners=False) composed, then the first maximal class per pixel.
 */
export function maskFromQuarterLogits(quarter: Float32Array, numClasses: number, input: SegmentationInput): ClassMask {
  const [, , h, w] = input.pixels.shape as [number, number, number, number];
  const [qh, qw] = [h / 4, w / 4];
  const k = numClasses;
  if (quarter.length !== k * qh * qw) throw new Error(`expected ${k}x${qh}x${qw} logits, got ${quarter.length} values`);
  const { width: W, height: H } = input.original;
  const composed = (q: number, padded: number, kept: number, out: number) => flatTaps(composeTaps(axisTaps(q, padded, 'bilinear').slice(0, kept), axisTaps(kept, out, 'bilinear')));
  const ys = composed(qh, h, input.resized.height, H);
  const xs = composed(qw, w, input.resized.width, W);
  // Classes innermost: every loop below reads and writes contiguous memory.
  const hwc = new Float32Array(k * qh * qw);
  for (let c = 0; c < k; c++) for (let p = 0, src = c * qh * qw; p < qh * qw; p++) hwc[p * k + c] = quarter[src + p]!;
  const mask = k <= 256 ? new Uint8Array(W * H) : new Uint16Array(W * H);
  const rows = new Float64Array(qw * k);
  const list = new Shortlist(qw, Math.min(SHORTLIST, k));
  for (let y = 0; y < H; y++) {
    rowsAt(hwc, ys, y, qw * k, rows);
    if (k > SHORTLIST) list.update(rows, k);
    for (let x = 0; x < W; x++) {
      const best = k > SHORTLIST ? list.best(rows, xs, x, k) : -1;
      mask[y * W + x] = best >= 0 ? best : bestClass(rows, xs, x, k);
    }
  }
  return mask;
}

/** Classes kept per column of a row by `Shortlist`. */
const SHORTLIST = 4;

/**
 * The few largest classes of every column of a row, and the largest value any other class has
 * there. An interpolated value is a convex combination of its taps, so a class outside every
 * tap's shortlist is at most the same combination of those bounds: when the best shortlisted class
 * beats it, that class is the argmax (ties inside the shortlist go to the lower index, as torch's
 * argmax does); otherwise all K classes are evaluated.
 */
class Shortlist {
  private readonly classes: Int32Array;
  private readonly values: Float64Array;
  private readonly bound: Float64Array;

  constructor(private readonly columns: number, private readonly size: number) {
    this.classes = new Int32Array(columns * size);
    this.values = new Float64Array(columns * size);
    this.bound = new Float64Array(columns);
  }

  update(rows: Float64Array, k: number): void {
    const { size, classes, values } = this;
    for (let x = 0; x < this.columns; x++) {
      const base = x * size;
      for (let i = 0; i < size; i++) values[base + i] = -Infinity;
      let bound = -Infinity;
      for (let c = 0; c < k; c++) {
        const v = rows[x * k + c]!;
        if (v <= values[base + size - 1]!) {
          if (v > bound) bound = v;
          continue;
        }
        bound = Math.max(bound, values[base + size - 1]!);
        let i = size - 1;
        for (; i > 0 && values[base + i - 1]! < v; i--) {
          values[base + i] = values[base + i - 1]!;
          classes[base + i] = classes[base + i - 1]!;
        }
        values[base + i] = v;
        classes[base + i] = c;
      }
      this.bound[x] = bound;
    }
  }

  /** The argmax at output column x, or -1 when the shortlists cannot decide it. */
  best(rows: Float64Array, xs: FlatTaps, x: number, k: number): number {
    let limit = 0;
    for (let j = 0; j < 3; j++) {
      const tap = xs.index[x * 3 + j]!;
      if (tap >= 0) limit += xs.weight[x * 3 + j]! * this.bound[tap]!;
    }
    let best = -Infinity;
    let arg = -1;
    for (let j = 0; j < 3; j++) {
      const tap = xs.index[x * 3 + j]!;
      if (tap < 0) break;
      for (let i = 0; i < this.size; i++) {
        const c = this.classes[tap * this.size + i]!;
        const v = valueAt(rows, xs, x, k, c);
        if (v > best || (v === best && c < arg)) {
          best = v;
          arg = c;
        }
      }
    }
    return best > limit ? arg : -1;
  }
}

/** The interpolated value of class c at output column x. */
function valueAt(rows: Float64Array, xs: FlatTaps, x: number, k: number, c: number): number {
  let v = 0;
  for (let j = 0; j < 3; j++) {
    const tap = xs.index[x * 3 + j]!;
    if (tap < 0) break;
    v += xs.weight[x * 3 + j]! * rows[tap * k + c]!;
  }
  return v;
}

/** Up to 3 taps per output sample, flat: index (-1 when absent) and weight. */
interface FlatTaps { index: Int32Array; weight: Float64Array }

function flatTaps(taps: Taps[]): FlatTaps {
  if (taps.some((t) => t.index.length > 3)) throw new Error('composed bilinear taps span at most 3 samples');
  const index = new Int32Array(taps.length * 3).fill(-1);
  const weight = new Float64Array(taps.length * 3);
  taps.forEach((t, i) => t.index.forEach((v, j) => { index[i * 3 + j] = v; weight[i * 3 + j] = t.weight[j]!; }));
  return { index, weight };
}

/** rows[x * K + c] = sum over output row y's taps of weight * logits[c, row, x]. */
function rowsAt(hwc: Float32Array, ys: FlatTaps, y: number, rowLength: number, rows: Float64Array): void {
  rows.fill(0);
  for (let j = 0; j < 3; j++) {
    const r = ys.index[y * 3 + j]!;
    if (r < 0) break;
    const weight = ys.weight[y * 3 + j]!;
    const base = r * rowLength;
    for (let i = 0; i < rowLength; i++) rows[i]! += weight * hwc[base + i]!;
  }
}

/** The first class of maximal interpolated value at output column x, over all K. */
function bestClass(rows: Float64Array, xs: FlatTaps, x: number, k: number): number {
  const a = xs.index[x * 3]! * k;
  const ib = xs.index[x * 3 + 1]!;
  const ic = xs.index[x * 3 + 2]!;
  const [wa, wb, wc] = [xs.weight[x * 3]!, xs.weight[x * 3 + 1]!, xs.weight[x * 3 + 2]!];
  const b = ib < 0 ? a : ib * k;
  const c3 = ic < 0 ? a : ic * k;
  let best = -Infinity;
  let arg = 0;
  for (let c = 0; c < k; c++) {
    const v = wa * rows[a + c]! + wb * rows[b + c]! + wc * rows[c3 + c]!;
    if (v > best) {
      best = v;
      arg = c;
    }
  }
  return arg;
}
