/**
 * The user-facing model: config + weights -> graph -> ONNX Runtime session, with plain results.
 */
import type { TokenNorm } from './attention.js';
import { SwiftFormerError } from '../core/errors.js';
import { bindParams, countParams, toOnnx, type Graph } from '../graph/graph.js';
import { readSource } from '../core/io.js';
import { recordedPreprocessing } from './recorded.js';
import { countMacs, optimizeForInference } from '../graph/passes.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import {
  VARIANTS, emitSwiftFormer, initialWeights, inputHW, remapKeys, validateConfig, variantConfig,
  type Head, type SwiftFormerConfig,
} from './swiftformer.js';
import { formatShape, isBuffer, type FloatTensor, type StateDict } from '../core/tensor.js';
import { VIT_VARIANTS, isVitId, vitConfig, vitInfo, type VitConfig, type VitInfo } from './vit.js';
import { fitWeights, headOf, inferConfig, type FitReport } from './fit.js';
import { readWeights } from '../weights/read.js';

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

interface LoadedState { state: StateDict; metadata: Record<string, string>; name: string }

async function loadState(weights: ModelOptions['weights'], entry: string | undefined): Promise<LoadedState> {
  if (weights instanceof Map) return { state: weights, metadata: {}, name: 'weights' };
  const name = typeof weights === 'string' ? weights : 'weights';
  const bytes = typeof weights === 'string' ? await readSource(weights) : weights!;
  return { ...(await readWeights(bytes, entry === undefined ? { name } : { entry, name })), name };
}

/** Model config: explicit, or inferred from the weights (in any key format). */
function resolveConfig(options: ModelOptions, state: StateDict | undefined): SwiftFormerConfig {
  if (typeof options.model === 'string') return variantConfig(options.model);
  if (options.model) return structuredClone(options.model);
  if (!state) return variantConfig('xs');
  const remap = remapKeys(state.keys(), VARIANTS.xs!);
  const official: StateDict = new Map([...remap.mapped].map(([from, to]) => [to, state.get(from)!]));
  return inferConfig(official);
}

export class SwiftFormerModel {
  private readonly sessions = new Map<string, Promise<Session>>();

  private constructor(
    readonly config: SwiftFormerConfig,
    readonly head: Head,
    /** Weights under official keys. */
    readonly state: StateDict,
    /** How the weights were matched (format, attention rule, skipped keys); undefined for random init. */
    readonly report: FitReport | undefined,
    private readonly options: ModelOptions,
    /** String metadata of a safetensors weight file (models trained here record config, labels, preprocessing). */
    readonly metadata: Record<string, string> = {},
  ) {}

  static async load(options: ModelOptions = {}): Promise<SwiftFormerModel> {
    const loaded = options.weights === undefined ? undefined : await loadState(options.weights, options.entry);
    const config = resolveConfig(options, loaded?.state);
    if (options.numClasses !== undefined) config.numClasses = options.numClasses;
    if (options.attention) config.attention = options.attention;
    const head = options.head ?? (loaded ? headOf(loaded.state) : 'classifier');
    if (!loaded) {
      return new SwiftFormerModel(config, head, initialWeights(config, head, options.seed ?? 0), undefined, options);
    }
    const fit = fitWeights(loaded.state, config, { ...pick(options, ['attention', 'strict']), head, name: loaded.name });
    const state = options.strict === false ? fillMissing(fit.state, fit.config, head, options.seed ?? 0) : fit.state;
    return new SwiftFormerModel(fit.config, head, state, fit.report, options, loaded.metadata);
  }

  /** The input size a trained model recorded, else 224. */
  defaultInputSize(): [number, number] {
    return recordedPreprocessing(this.metadata)?.inputSize ?? [224, 224];
  }

  info(inputSize: number | [number, number] = 224): ModelInfo {
    return modelInfo(this.config, inputSize);
  }

  /** The optimized eval graph with weights bound (BatchNorm and layer scales folded). */
  graph(inputSize: number | [number, number] = 224): Graph {
    const graph = emitSwiftFormer(this.config, { head: this.head, inputSize });
    return optimizeForInference(bindParams(graph, this.state));
  }

  /** ONNX bytes: input `pixel_values` (batch,3,H,W), outputs `logits` or `features0..3`. */
  toOnnx(inputSize: number | [number, number] = this.defaultInputSize()): Uint8Array {
    return toOnnx(this.graph(inputSize), this.onnxMetadata());
  }

  /** What an exported file carries along: config, head, and a trained model's labels and preprocessing. */
  onnxMetadata(): Record<string, string> {
    const recorded = Object.entries(this.metadata).filter(([k]) => k === 'swiftformer.labels' || k === 'swiftformer.preprocessing');
    return { 'swiftformer.config': JSON.stringify(this.config), 'swiftformer.head': this.head, ...Object.fromEntries(recorded) };
  }

  /** Runs a float32 NCHW batch; returns every graph output by name. */
  async run(pixels: FloatTensor): Promise<Record<string, FloatTensor>> {
    const [h, w] = checkPixels(pixels);
    const session = await this.session(h, w);
    return session.run({ pixel_values: pixels });
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

  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s).release()));
  }

  private session(h: number, w: number): Promise<Session> {
    const key = `${h}x${w}`;
    let session = this.sessions.get(key);
    if (!session) {
      session = getBackend(this.options.backend).createSession(this.toOnnx([h, w]), this.options.session);
      this.sessions.set(key, session);
    }
    return session;
  }
}

function checkPixels(pixels: FloatTensor): [number, number] {
  const [n, c, h, w] = pixels.shape;
  if (pixels.shape.length !== 4 || c !== 3 || !n) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch must be (batch, 3, height, width) float32, got ${formatShape(pixels.shape)}`);
  }
  if (pixels.data.length !== n * c * h! * w!) {
    throw new SwiftFormerError('BAD_SHAPE', `pixel batch ${formatShape(pixels.shape)} needs ${n * c * h! * w!} values, got ${pixels.data.length}`);
  }
  return inputHW([h!, w!]);
}

/** With strict: false, parameters the weights did not provide start from the initialization. */
function fillMissing(state: StateDict, config: SwiftFormerConfig, head: Head, seed: number): StateDict {
  const init = initialWeights(config, head, seed);
  for (const [key, t] of init) if (!state.has(key)) state.set(key, t);
  return state;
}

function pick<T extends object, K extends keyof T>(obj: T, keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** Loads a model: `await loadModel({ model: 'xs', weights: 'SwiftFormer_XS_ckpt.pth' })`. */
export function loadModel(options: ModelOptions = {}): Promise<SwiftFormerModel> {
  return SwiftFormerModel.load(options);
}
