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
import { readSource } from '../core/io.js';
import { formatShape, type FloatTensor, type StateDict } from '../core/tensor.js';
import { bindParams, toOnnx, type Graph } from '../graph/graph.js';
import { axisTaps, composeTaps, type Taps } from '../graph/interpolate.js';
import { optimizeForInference } from '../graph/passes.js';
import type { RGBImage } from '../preprocess/resize.js';
import { segmentationInput, type SegmentationInput } from '../preprocess/segmentation.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import { readPth } from '../weights/pth.js';
import { readWeights } from '../weights/read.js';
import type { TokenNorm } from './attention.js';
import { fitToParams, inferConfig, type FitReport } from './fit.js';
import {
  DEFAULT_SCALE, emitSemanticFpn, inferSemanticFpnConfig, initialSemanticFpnWeights, isSemanticFpnState, remapSemanticFpnKeys,
  semanticFpnConfig, validateSemanticFpnConfig, type SemanticFpnConfig,
} from './semfpn.js';
import { attentionFor, remapKeys, VARIANTS, variantConfig, type SwiftFormerConfig } from './swiftformer.js';

export { isSemanticFpnState } from './semfpn.js';

export type RGB = [number, number, number];

/** What `segment` returns: class indices per pixel at the image's size, and what they mean. */
export interface Segmentation {
  /** Row-major class indices, width x height. Uint8Array up to 256 classes, else Uint16Array. */
  mask: ClassMask;
  width: number;
  height: number;
  labels: string[];
  palette: RGB[];
}

/** Class names and colors, as mmseg checkpoints' `meta` (CLASSES, PALETTE) carries them. */
export interface SegmentationMeta {
  labels?: string[];
  palette?: RGB[];
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
  seed?: number;
  session?: SessionOptions;
  backend?: string;
  /** Sessions kept for different padded input sizes (default 4; the oldest is released). */
  maxSessions?: number;
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
  return out;
}

/** What a safetensors file of this library records: `swiftformer.labels`, `swiftformer.palette` (JSON). */
export function recordedSegmentationMeta(metadata: Readonly<Record<string, string>>): SegmentationMeta {
  const parse = (key: string): unknown => {
    const text = metadata[key];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${key} metadata is not valid JSON`);
    }
  };
  const out: SegmentationMeta = {};
  const labels = parse('swiftformer.labels');
  if (labels !== undefined) {
    if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new SwiftFormerError('BAD_CHECKPOINT', "the weights' swiftformer.labels is not a list of names");
    out.labels = labels;
  }
  const palette = parse('swiftformer.palette');
  if (palette !== undefined) out.palette = checkPalette(palette, "the weights' swiftformer.palette");
  return out;
}

function checkPalette(value: unknown, what: string): RGB[] {
  const ok = Array.isArray(value) && value.every((c) => Array.isArray(c) && c.length === 3 && c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
  if (!ok) throw new SwiftFormerError('BAD_CHECKPOINT', `${what} is not a list of [r, g, b] colors in 0..255`);
  return (value as number[][]).map((c) => [c[0]!, c[1]!, c[2]!]);
}

/** A checkpoint's state dict and segmentation metadata, from .pth (mmcv layout or bare) or safetensors bytes. */
export async function readSegmentationWeights(bytes: Uint8Array, name = 'weights'): Promise<{ state: StateDict; meta: SegmentationMeta; metadata: Record<string, string> }> {
  const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  if (isZip) {
    const file = await readPth(bytes);
    return { state: file.stateDict(), meta: mmsegMeta(file.root), metadata: {} };
  }
  const { state, metadata } = await readWeights(bytes, { name });
  return { state, meta: recordedSegmentationMeta(metadata), metadata };
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

/** Semantic FPN weights: config from the weights (class count overridable with strict: false), strict fit by default. */
function fromSemanticFpn(source: StateDict, options: SegmentationOptions, name: string): Built {
  const inferred = inferSemanticFpnConfig(source, options.dropout);
  const config: SemanticFpnConfig = { ...inferred, ...(options.numClasses !== undefined ? { numClasses: options.numClasses } : {}) };
  if (typeof options.model === 'string' || options.model) config.backbone = { ...backboneConfig(options.model, undefined), numClasses: 0, distillation: false };
  const remap = remapSemanticFpnKeys(source.keys(), config.backbone);
  config.backbone.attention = options.attention ?? attentionFor(remap.format);
  validateSemanticFpnConfig(config);
  const params = emitSemanticFpn(config, { inputSize: 64 }).params;
  const { state, report } = fitToParams(source, remap, params, config.backbone.attention, { strict: options.strict !== false, name });
  return { config, state: fillMissing(state, config, options.seed ?? 0), report };
}

/**
 * A classification or fork_feat checkpoint as the backbone of a new model (the paper's recipe
 * starts from ImageNet weights): strict: false semantics for what a backbone does not have
 * (classifier norm and heads dropped; norm0/2/4/6, neck and head initialized), but every other
 * backbone key must be there with its shape.
 */
function fromBackbone(source: StateDict, options: SegmentationOptions, name: string): Built {
  const probe = remapKeys(source.keys(), VARIANTS.xs!);
  const official: StateDict = new Map([...probe.mapped].map(([from, to]) => [to, source.get(from)!]));
  const config = newConfig(backboneConfig(options.model, official), options);
  const remap = remapKeys(source.keys(), config.backbone);
  config.backbone.attention = options.attention ?? attentionFor(remap.format);
  const mapped = new Map([...remap.mapped].map(([from, to]) => [from, `backbone.${to}`]));
  const params = emitSemanticFpn(config, { inputSize: 64 }).params;
  const { state, report } = fitToParams(source, { format: remap.format, mapped, unmatched: remap.unmatched }, params, config.backbone.attention, { strict: false, name });
  const required = report.missing.filter((k) => k.startsWith('backbone.') && !/^backbone\.norm\d+\./.test(k));
  if (report.mismatched.length > 0 || required.length > 0) {
    const problems = [
      ...report.mismatched.map((m) => `${m.key}: checkpoint ${formatShape(m.checkpoint)} vs model ${formatShape(m.model)}`),
      ...required.slice(0, 6).map((k) => `${k} missing`),
    ];
    throw new SwiftFormerError('KEY_MISMATCH', `${name} cannot start this backbone (${remap.format} keys): ${problems.slice(0, 6).join('; ')}${problems.length > 6 ? ', ...' : ''}. Is it another variant? Pass the matching model.`);
  }
  return { config, state: fillMissing(state, config, options.seed ?? 0), report };
}

function fillMissing(state: StateDict, config: SemanticFpnConfig, seed: number): StateDict {
  if ([...emitSemanticFpn(config, { inputSize: 64 }).params.keys()].every((k) => state.has(k))) return state;
  for (const [key, t] of initialSemanticFpnWeights(config, seed)) if (!state.has(key)) state.set(key, t);
  return state;
}

/**
 * A segmentation model from a state dict already read (the dispatcher's entry: `loadModel` reads
 * a checkpoint once and hands Semantic FPN weights here), with the checkpoint's metadata.
 */
export function loadSemanticFpn(source: StateDict | undefined, meta: SegmentationMeta, options: SegmentationOptions = {}, name = 'weights'): SegmentationModel {
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
  const palette = options.palette ?? (meta.palette?.length === k ? meta.palette : undefined) ?? defaultPalette(k);
  if (labels.length !== k) throw new SwiftFormerError('BAD_ARGUMENT', `${labels.length} labels for a model of ${k} classes`);
  if (palette.length !== k) throw new SwiftFormerError('BAD_ARGUMENT', `a palette of ${palette.length} colors for a model of ${k} classes`);
  const scale = options.scale === undefined ? [...DEFAULT_SCALE] as [number, number] : options.scale;
  if (scale && !(scale.length === 2 && scale.every((s) => Number.isInteger(s) && s >= 32 && s <= 8192))) {
    throw new SwiftFormerError('BAD_ARGUMENT', `scale must be two integers in [32, 8192] (long, short), got ${JSON.stringify(scale)}`);
  }
  return new SegmentationModel(built.config, built.state, labels, palette, scale, built.report, options);
}

// ---------------------------------------------------------------- the model

export type SegmentationOutput = 'logits' | 'mask';

export class SegmentationModel {
  readonly task = 'segmentation' as const;
  private readonly sessions = new Map<string, Promise<Session>>();

  constructor(
    readonly config: SemanticFpnConfig,
    /** Weights under mmseg's keys. */
    readonly state: StateDict,
    readonly labels: string[],
    readonly palette: RGB[],
    /** Test scale (long, short) of the keep-ratio resize; null: images run at their size. */
    readonly scale: [number, number] | null,
    /** How the weights were matched; undefined for random initialization. */
    readonly report: FitReport | undefined,
    private readonly options: SegmentationOptions = {},
  ) {}

  /** `await SegmentationModel.load({ weights: 'fpn_swiftformer_l1_ade20k.pth' })`. */
  static async load(options: SegmentationOptions = {}): Promise<SegmentationModel> {
    if (options.weights === undefined) return loadSemanticFpn(undefined, {}, options);
    if (options.weights instanceof Map) return loadSemanticFpn(options.weights, {}, options);
    const name = typeof options.weights === 'string' ? options.weights : 'weights';
    const bytes = typeof options.weights === 'string' ? await readSource(options.weights) : options.weights;
    const { state, meta } = await readSegmentationWeights(bytes, name);
    return loadSemanticFpn(state, meta, options, name);
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** The optimized eval graph with weights bound: `logits` (N,K,H,W) at the input size, or its argmax `mask`. */
  graph(inputSize: number | [number, number] = 512, output: SegmentationOutput | 'logits_quarter' = 'logits'): Graph {
    return optimizeForInference(bindParams(emitSemanticFpn(this.config, { inputSize, output }), this.state));
  }

  /**
   * ONNX bytes: input `pixel_values` (N,3,H,W) float32 (mmseg-normalized), output `logits`
   * (N,K,H,W) float32, or `mask` (N,H,W) uint8 (uint16 above 256 classes); dynamic batch.
   */
  toOnnx(inputSize: number | [number, number] = 512, output: SegmentationOutput = 'logits'): Uint8Array {
    return toOnnx(this.graph(inputSize, output), this.onnxMetadata());
  }

  /** What an exported file carries along: task, config, class names and palette. */
  onnxMetadata(): Record<string, string> {
    return {
      'swiftformer.task': 'segmentation',
      'swiftformer.config': JSON.stringify(this.config),
      'swiftformer.labels': JSON.stringify(this.labels),
      'swiftformer.palette': JSON.stringify(this.palette),
      ...(this.scale ? { 'swiftformer.scale': JSON.stringify(this.scale) } : {}),
    };
  }

  /** Logits (N,K,H,W) at the input resolution for a normalized batch (H, W multiples of 32). */
  async logits(pixels: FloatTensor): Promise<FloatTensor> {
    const [h, w] = checkPixels(pixels);
    return (await (await this.session('logits', h, w)).run({ pixel_values: pixels })).logits!;
  }

  /** The decode head's logits (N,K,H/4,W/4), before any resize. */
  async quarterLogits(pixels: FloatTensor): Promise<FloatTensor> {
    const [h, w] = checkPixels(pixels);
    return (await (await this.session('logits_quarter', h, w)).run({ pixel_values: pixels })).logits_quarter!;
  }

  /** The model input of an image as mmseg's test pipeline makes it (resize into `scale`, normalize, pad). */
  input(image: RGBImage): SegmentationInput {
    return segmentationInput(image, this.scale);
  }

  /** Class indices per pixel of `image` at its own size, with mmseg's test pipeline. */
  async segment(image: RGBImage): Promise<Segmentation> {
    const input = this.input(image);
    const mask = maskFromQuarterLogits((await this.quarterLogits(input.pixels)).data, this.numClasses, input);
    return { mask, width: input.original.width, height: input.original.height, labels: this.labels, palette: this.palette };
  }

  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s).release()));
  }

  private session(output: SegmentationOutput | 'logits_quarter', h: number, w: number): Promise<Session> {
    const key = `${output}:${h}x${w}`;
    let session = this.sessions.get(key);
    if (session) {
      this.sessions.delete(key);
      this.sessions.set(key, session); // most recently used last
      return session;
    }
    session = getBackend(this.options.backend).createSession(toOnnx(this.graph([h, w], output)), this.options.session);
    session.catch(() => this.sessions.delete(key));
    this.sessions.set(key, session);
    const limit = this.options.maxSessions ?? 4;
    for (const [old, s] of this.sessions) {
      if (this.sessions.size <= limit) break;
      this.sessions.delete(old);
      void s.then((x) => x.release(), () => undefined);
    }
    return session;
  }
}

function checkPixels(pixels: FloatTensor): [number, number] {
  const [n, c, h, w] = pixels.shape;
  if (pixels.shape.length !== 4 || c !== 3 || !n || pixels.data.length !== n * c * h! * w!) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32, got ${formatShape(pixels.shape)} with ${pixels.data.length} values`);
  }
  if (h! % 32 !== 0 || w! % 32 !== 0 || h! < 32 || w! < 32) {
    throw new SwiftFormerError('BAD_SHAPE', `input size ${h}x${w} is not supported: height and width must be multiples of 32 (segment() pads images itself)`);
  }
  return [h!, w!];
}

/** Fraction of the pixels of each class present in a mask, largest first. */
export function classAreas(result: Segmentation): { index: number; label: string; fraction: number }[] {
  const counts = new Float64Array(result.labels.length);
  for (const v of result.mask) counts[v]!++;
  const total = result.mask.length;
  return [...counts.keys()].filter((i) => counts[i]! > 0).sort((a, b) => counts[b]! - counts[a]! || a - b)
    .map((index) => ({ index, label: result.labels[index]!, fraction: counts[index]! / total }));
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
  if (quarter.length !== numClasses * qh * qw) throw new Error(`expected ${numClasses}x${qh}x${qw} logits, got ${quarter.length} values`);
  const { width: W, height: H } = input.original;
  const tapsOf = (q: number, padded: number, kept: number, out: number) => composeTaps(axisTaps(q, padded, 'bilinear').slice(0, kept), axisTaps(kept, out, 'bilinear'));
  const ys = tapsOf(qh, h, input.resized.height, H);
  const xs = tapsOf(qw, w, input.resized.width, W);
  const mask = numClasses <= 256 ? new Uint8Array(W * H) : new Uint16Array(W * H);
  const plane = qh * qw;
  const rows = new Float64Array(numClasses * qw);
  const candidates = new Int32Array(numClasses);
  for (let y = 0; y < H; y++) {
    interpolateRows(quarter, ys[y]!, numClasses, plane, qw, rows);
    for (let x = 0; x < W;) {
      // Output columns with the same taps form a run: one candidate list serves the run.
      const taps = xs[x]!;
      let end = x + 1;
      while (end < W && sameIndices(xs[end]!, taps)) end++;
      const count = candidatesOf(rows, taps, numClasses, qw, candidates);
      for (; x < end; x++) mask[y * W + x] = bestOf(rows, xs[x]!, candidates, count, qw);
    }
  }
  return mask;
}

/** rows[c * qw + x] = sum over the row taps of weight * quarter[c, row, x]. */
function interpolateRows(quarter: Float32Array, taps: Taps, numClasses: number, plane: number, qw: number, rows: Float64Array): void {
  rows.fill(0);
  taps.index.forEach((r, k) => {
    const weight = taps.weight[k]!;
    for (let c = 0; c < numClasses; c++) {
      const src = c * plane + r * qw;
      const dst = c * qw;
      for (let x = 0; x < qw; x++) rows[dst + x]! += weight * quarter[src + x]!;
    }
  });
}

function sameIndices(a: Taps, b: Taps): boolean {
  return a.index.length === b.index.length && a.index.every((v, i) => v === b.index[i]);
}

/**
 * Classes that can be the maximum somewhere in a run: an interpolated value lies between the min
 * and the max of its taps (the weights are convex), so a class whose max is below the best min
 * cannot win. Ascending class order, so the first maximum wins ties as torch's argmax does.
 */
function candidatesOf(rows: Float64Array, taps: Taps, numClasses: number, qw: number, out: Int32Array): number {
  let best = -Infinity;
  for (let c = 0; c < numClasses; c++) {
    let min = Infinity;
    for (const x of taps.index) min = Math.min(min, rows[c * qw + x]!);
    best = Math.max(best, min);
  }
  let count = 0;
  for (let c = 0; c < numClasses; c++) {
    let max = -Infinity;
    for (const x of taps.index) max = Math.max(max, rows[c * qw + x]!);
    if (max >= best) out[count++] = c;
  }
  return count;
}

function bestOf(rows: Float64Array, taps: Taps, candidates: Int32Array, count: number, qw: number): number {
  let best = -Infinity;
  let arg = 0;
  for (let i = 0; i < count; i++) {
    const c = candidates[i]!;
    let v = 0;
    for (let k = 0; k < taps.index.length; k++) v += taps.weight[k]! * rows[c * qw + taps.index[k]!]!;
    if (v > best) {
      best = v;
      arg = c;
    }
  }
  return arg;
}
