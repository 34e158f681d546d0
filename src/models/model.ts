/**
 * The user-facing model: config + weights -> graph -> ONNX Runtime session, with plain results.
 *
 * Loading is one pass: read the bytes, detect the key layout, rename to official keys once, infer
 * the config, fit against the shapes cached per config (swiftformer.ts paramShapes); the eval
 * graph is emitted once per input size and kept for the session and exports alike.
 */
import type { TokenNorm } from './attention.js';
import { SwiftFormerError } from '../core/errors.js';
import { bindParams, countParams, toOnnx, type Graph } from '../graph/graph.js';
import { readImage, type ImageInput } from '../core/io.js';
import { readModelSource, type ModelSource } from './source.js';
import { refuseOtherFamily } from './families.js';
import { countMacs, optimizeForInference } from '../graph/passes.js';
import type { SessionOptions } from '../runtime/runtime.js';
import {
  VARIANTS, emitSwiftFormer, evalGraph, initialWeights, inputHW, validateConfig, variantConfig,
  type Head, type SwiftFormerConfig,
} from './swiftformer.js';
import { formatShape, isBuffer, type FloatTensor, type StateDict } from '../core/tensor.js';
import { VIT_VARIANTS, isVitId, vitConfig, vitInfo, type VitConfig, type VitInfo } from './vit.js';
import { fitRenamed, headOf, inferConfig, toOfficialKeys, type FitReport } from './fit.js';
import { cardMetadata, inputOptions, readCard, type ModelCard } from './card.js';
import { predictions, type Prediction } from './classify.js';
import { defaultLabels } from './labels.js';
import { Sessions } from './sessions.js';
import { inputFor } from '../preprocess/transforms.js';

export interface ModelOptions {
  /** A variant id ('xs', 's', 'l1', 'l3') or a full config. Default: read off the weights, else 'xs'. */
  model?: string | SwiftFormerConfig;
  /** A file path (Node), URL, bytes, or a state dict. Default: random initialization. */
  weights?: string | Uint8Array | StateDict;
  /** Entry of a full training checkpoint: 'model' (default) or 'model_ema'. */
  entry?: string;
  /** Token normalization; default follows the weights' origin (Hugging Face keys: 'softmax'). */
  attention?: TokenNorm;
  /** 'classifier' (logits) or 'features' (official fork_feat). Default: what the weights hold. */
  head?: Head;
  /** Override the class count of a variant (with random init or strict: false). */
  numClasses?: number;
  /** false: load the weights that fit, report the rest (fine-tuning a new head). Default true. */
  strict?: boolean;
  /** Seed of the random initialization used when no weights are given. */
  seed?: number;
  /** Session options: threads, optimization level. */
  session?: SessionOptions;
  /** Runtime backend name (default: the platform's). */
  backend?: string;
  /** Load weights that hold NaN or infinity (refused by default, naming the tensors). */
  allowNonFinite?: boolean;
}

export interface StageInfo { name: string; shape: number[] }

export interface ModelInfo {
  /** Trainable parameters, distillation head included, BN running statistics excluded. */
  params: number;
  /** Multiply-accumulates for one image at `inputSize`. */
  macs: number;
  inputSize: [number, number];
  stages: StageInfo[];
  config: SwiftFormerConfig;
}

/** The registry's model ids: SwiftFormer variants (variantConfig) and the ViT family (vit.ts). */
export type SwiftFormerId = 'xs' | 's' | 'l1' | 'l3';
export type VitId = 'vit-b16' | 'vit-b32' | 'fvit-b16' | 'fvit-b32';

/**
 * Describes a model without weights: parameters, MACs and, for SwiftFormer, stage output shapes.
 * Any registry id, a SwiftFormer config, or a ViT config (vit.ts).
 */
export function modelInfo(model: SwiftFormerId | SwiftFormerConfig, inputSize?: number | [number, number]): ModelInfo;
export function modelInfo(model: VitId | VitConfig, inputSize?: number | [number, number]): VitInfo;
export function modelInfo(model: string | SwiftFormerConfig | VitConfig, inputSize?: number | [number, number]): ModelInfo | VitInfo;
export function modelInfo(model: string | SwiftFormerConfig | VitConfig, inputSize: number | [number, number] = 224): ModelInfo | VitInfo {
  if (typeof model === 'string' ? isVitId(model) : 'patchSize' in model) {
    return vitInfo(typeof model === 'string' ? vitConfig(model) : model as VitConfig, inputSize);
  }
  const config = typeof model === 'string' ? registryConfig(model) : model as SwiftFormerConfig;
  validateConfig(config);
  const graph = emitSwiftFormer(config, { inputSize, intermediates: true });
  const stages = graph.outputs
    .filter((o) => o.name.startsWith('stage'))
    .map((o) => ({ name: o.name, shape: o.shape.map((d) => (typeof d === 'number' ? d : 1)) }));
  return { params: countParams(graph, isBuffer), macs: countMacs(graph), inputSize: inputHW(inputSize), stages, config };
}

/** A SwiftFormer variant by id; an unknown id is an error listing every id of the registry. */
function registryConfig(id: string): SwiftFormerConfig {
  try {
    return variantConfig(id);
  } catch (err) {
    if (!(err instanceof SwiftFormerError) || err.code !== 'UNKNOWN_MODEL') throw err;
    throw new SwiftFormerError('UNKNOWN_MODEL', `unknown model '${id}': choose one of ${[...Object.keys(VARIANTS), ...Object.keys(VIT_VARIANTS)].join(', ')}`);
  }
}

// ---------------------------------------------------------------- options

const HEADS: readonly Head[] = ['classifier', 'features'];
const OPTIMIZATION = ['disabled', 'basic', 'extended', 'all'] as const;

function badOption(what: string): SwiftFormerError {
  return new SwiftFormerError('BAD_ARGUMENT', `loadModel: ${what}`);
}

/** Every option checked before anything is read, so a mistake is one SwiftFormerError naming it. */
export function checkModelOptions(options: unknown): asserts options is ModelOptions {
  if (options === null || typeof options !== 'object') throw badOption(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  const o = options as Record<string, unknown>;
  const w = o.weights;
  if (w !== undefined && typeof w !== 'string' && !(w instanceof Uint8Array) && !(w instanceof Map)) {
    throw badOption(`weights must be a path or URL, bytes (Uint8Array) or a state dict (Map), got ${typeof w}`);
  }
  if (o.model !== undefined && typeof o.model !== 'string' && (o.model === null || typeof o.model !== 'object')) {
    throw badOption(`model must be a variant id ('xs', 's', 'l1', 'l3') or a config object, got ${typeof o.model}`);
  }
  if (o.head !== undefined && !HEADS.includes(o.head as Head)) throw badOption(`head must be 'classifier' or 'features', got '${String(o.head)}'`);
  if (o.attention !== undefined && o.attention !== 'l2' && o.attention !== 'softmax') throw badOption(`attention must be 'l2' or 'softmax', got '${String(o.attention)}'`);
  if (o.entry !== undefined && typeof o.entry !== 'string') throw badOption('entry must be a string (model or model_ema)');
  for (const key of ['numClasses', 'seed'] as const) {
    const v = o[key];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0)) throw badOption(`${key} must be a non-negative integer, got ${String(v)}`);
  }
  for (const key of ['strict', 'allowNonFinite'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw badOption(`${key} must be true or false, got ${String(o[key])}`);
  }
  const session = o.session as Record<string, unknown> | undefined;
  if (session !== undefined) {
    if (session === null || typeof session !== 'object') throw badOption('session must be an object { threads, optimization }');
    const threads = session.threads;
    if (threads !== undefined && !(Number.isInteger(threads) && (threads as number) >= 0 && (threads as number) <= 1024)) {
      throw badOption(`session.threads must be an integer in 0..1024 (0: the runtime's default), got ${String(threads)}`);
    }
    if (session.optimization !== undefined && !OPTIMIZATION.includes(session.optimization as never)) {
      throw badOption(`session.optimization must be one of ${OPTIMIZATION.join(', ')}, got '${String(session.optimization)}'`);
    }
  }
}

/** A config the user wrote: every field checked, with the variant defaults for the ones left out. */
function userConfig(model: string | SwiftFormerConfig): SwiftFormerConfig {
  if (typeof model === 'string') return variantConfig(model);
  const given = model as Partial<SwiftFormerConfig>;
  for (const key of ['embedDims', 'depths'] as const) {
    if (!Array.isArray(given[key])) throw badOption(`model.${key} must be an array of one number per stage, got ${given[key] === undefined ? 'nothing' : typeof given[key]}`);
  }
  const stages = given.depths!.length;
  const config = { ...VARIANTS.xs!, downsamples: Array.from({ length: stages }, () => true), ...structuredClone(given) } as SwiftFormerConfig;
  validateConfig(config);
  return config;
}

// ---------------------------------------------------------------- loading

function taskOf(head: Head): ModelCard['task'] {
  return head === 'features' ? 'features' : 'classification';
}

export class SwiftFormerModel {
  private readonly sessions: Sessions;
  private readonly graphs = new Map<string, Graph>();

  private constructor(
    readonly config: SwiftFormerConfig,
    readonly head: Head,
    /** Weights under official keys. */
    readonly state: StateDict,
    /** How the weights were matched (format, attention rule, skipped keys); undefined for random init. */
    readonly report: FitReport | undefined,
    /** What the model knows of itself: task, class names, the input pipeline it records. */
    readonly card: ModelCard,
    options: ModelOptions,
  ) {
    this.sessions = new Sessions('this model', options.backend, options.session);
  }

  /** A classifier or fork_feat backbone; weights of a dense-prediction model are refused, naming what they are (see loadModel). */
  static async load(options: ModelOptions = {}): Promise<SwiftFormerModel> {
    checkModelOptions(options);
    const source = options.weights === undefined ? undefined : await readModelSource(options.weights, options.entry);
    return SwiftFormerModel.fromSource(source, options);
  }

  /**
   * A model from weights that already fit `config` under official keys (the trainer's, every
   * epoch): no renaming, no refit, no checks; the emitted graph of each size is shared.
   */
  static fromFitted(config: SwiftFormerConfig, state: StateDict, options: Pick<ModelOptions, 'session' | 'backend'> = {}): SwiftFormerModel {
    return new SwiftFormerModel(config, 'classifier', state, undefined, { task: 'classification' }, options);
  }

  /** Builds the model from weights already read (or none: the official initialization). */
  static fromSource(source: ModelSource | undefined, options: ModelOptions): SwiftFormerModel {
    if (source) refuseOtherFamily(source, 'a SwiftFormer classifier or backbone');
    const renamed = source ? toOfficialKeys(source.state) : undefined;
    const config = options.model !== undefined ? userConfig(options.model) : renamed ? inferConfig(renamed.state) : variantConfig('xs');
    if (options.numClasses !== undefined) config.numClasses = options.numClasses;
    if (options.attention) config.attention = options.attention;
    const head = options.head ?? (renamed ? headOf(renamed.state) : 'classifier');
    const seed = options.seed ?? 0;
    if (!source || !renamed) {
      return new SwiftFormerModel(config, head, initialWeights(config, head, seed), undefined, { task: taskOf(head) }, options);
    }
    const fit = fitRenamed(renamed, config, {
      head, name: source.name,
      ...(options.attention ? { attention: options.attention } : {}),
      ...(options.strict !== undefined ? { strict: options.strict } : {}),
      ...(options.allowNonFinite ? { allowNonFinite: true } : {}),
    });
    const state = options.strict === false ? fillMissing(fit.state, fit.config, head, seed) : fit.state;
    const card = readCard(source.metadata, taskOf(head));
    // A repository's names (hf: id2label) come before what the weights record, as resolveLabels orders them.
    const labels = source.labels ?? card.labels;
    return new SwiftFormerModel(fit.config, head, state, fit.report, { ...card, ...(labels ? { labels } : {}) }, options);
  }

  /** 'classification', or 'features' for a fork_feat backbone: the discriminant of loadModel's result. */
  get task(): 'classification' | 'features' {
    return this.head === 'features' ? 'features' : 'classification';
  }

  /** The input size the model's recorded pipeline takes, else the official 224. */
  get inputSize(): [number, number] {
    return this.card.preprocessing?.inputSize ?? [224, 224];
  }

  /** @deprecated use `inputSize` */
  defaultInputSize(): [number, number] {
    return this.inputSize;
  }

  info(inputSize: number | [number, number] = 224): ModelInfo {
    return modelInfo(this.config, inputSize);
  }

  /** The optimized eval graph with weights bound (BatchNorm and layer scales folded), emitted once per size. */
  graph(inputSize: number | [number, number] = 224): Graph {
    const [h, w] = inputHW(inputSize);
    const key = `${h}x${w}`;
    let graph = this.graphs.get(key);
    if (!graph) {
      graph = optimizeForInference(bindParams(evalGraph(this.config, this.head, [h, w]), this.state));
      this.graphs.set(key, graph);
    }
    return graph;
  }

  /** ONNX bytes: input `pixel_values` (batch,3,H,W), outputs `logits` or `features0..3`. */
  toOnnx(inputSize: number | [number, number] = this.inputSize): Uint8Array {
    return toOnnx(this.graph(inputSize), this.onnxMetadata());
  }

  /** What an exported file carries along: config, head, and the card (task, labels, preprocessing). */
  onnxMetadata(): Record<string, string> {
    return { 'swiftformer.config': JSON.stringify(this.config), 'swiftformer.head': this.head, ...cardMetadata(this.card) };
  }

  /**
   * One image as this model's input [1, 3, H, W]: decoded by the platform when it is not pixels
   * already, then the pipeline its weights record (a model trained here) or the official eval
   * transform at `size` (default 224). A size that contradicts a recorded pipeline is refused.
   */
  async preprocess(image: ImageInput, options: { size?: number } = {}): Promise<FloatTensor> {
    this.sessions.checkOpen();
    return inputFor(await readImage(image), inputOptions(this.card, options.size));
  }

  /** The `top` (default 5) most probable classes of one image, with the model's labels. */
  async classify(image: ImageInput, options: { top?: number; size?: number } = {}): Promise<Prediction[]> {
    const logits = await this.logits(await this.preprocess(image, options.size === undefined ? {} : { size: options.size }));
    const labels = this.card.labels ?? await defaultLabels(this.config.numClasses);
    return predictions(logits.data, labels, options.top ?? 5, typeof image === 'string' ? image : 'the image');
  }

  /** Runs a float32 NCHW batch; returns every graph output by name. */
  async run(pixels: FloatTensor): Promise<Record<string, FloatTensor>> {
    this.sessions.checkOpen();
    const [h, w] = checkPixels(pixels);
    return this.sessions.run(`${h}x${w}`, () => this.toOnnx([h, w]), { pixel_values: pixels });
  }

  /** Logits (batch, numClasses): head and dist_head averaged, as the official eval. */
  async logits(pixels: FloatTensor): Promise<FloatTensor> {
    if (this.head !== 'classifier') throw new SwiftFormerError('BAD_ARGUMENT', 'this model was loaded as a feature backbone (head: features); it has no logits');
    return (await this.run(pixels)).logits!;
  }

  /** The four stage feature maps after their BatchNorms (official fork_feat outputs). */
  async features(pixels: FloatTensor): Promise<FloatTensor[]> {
    if (this.head !== 'features') throw new SwiftFormerError('BAD_ARGUMENT', "features need a backbone: load fork_feat weights or pass head: 'features'");
    const out = await this.run(pixels);
    return this.config.depths.map((_, i) => out[`features${i}`]!);
  }

  /** Gives back the memory the sessions' arenas hold, reopening them (sessions.ts). */
  trim(): Promise<void> {
    return this.sessions.trim();
  }

  /** Frees the sessions; calls in flight and later calls reject with RELEASED. */
  release(): Promise<void> {
    return this.sessions.release();
  }
}

function checkPixels(pixels: FloatTensor): [number, number] {
  const t = pixels as Partial<FloatTensor> | null | undefined;
  if (!t || typeof t !== 'object' || !Array.isArray(t.shape) || !(t.data instanceof Float32Array)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `expected a float32 pixel batch { shape: [batch, 3, height, width], data: Float32Array }, got ${t === null ? 'null' : typeof t}`);
  }
  const [n, c, h, w] = t.shape;
  if (t.shape.length !== 4 || c !== 3 || !n) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32, got ${formatShape(t.shape)}`);
  }
  if (t.data.length !== n * c * h! * w!) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch ${formatShape(t.shape)} needs ${n * c * h! * w!} values, got ${t.data.length}`);
  }
  return inputHW([h!, w!]);
}

/** With strict: false, parameters the weights did not provide start from the initialization. */
function fillMissing(state: StateDict, config: SwiftFormerConfig, head: Head, seed: number): StateDict {
  const init = initialWeights(config, head, seed);
  for (const [key, t] of init) if (!state.has(key)) state.set(key, t);
  return state;
}

/** Loads a SwiftFormer classifier or backbone: `await loadSwiftFormer({ model: 'xs', weights: 'SwiftFormer_XS_ckpt.pth' })`. */
export function loadSwiftFormer(options: ModelOptions = {}): Promise<SwiftFormerModel> {
  return SwiftFormerModel.load(options);
}
