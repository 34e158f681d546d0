/**
 * A classifier from an exported ONNX file (ours, INT8 or float, or another exporter's): the same
 * small surface as SwiftFormerModel for classify and eval. Config, labels and preprocessing come
 * from the file's metadata when this library wrote it.
 */
import { SwiftFormerError } from '../core/errors.js';
import { readSource } from '../core/io.js';
import { decodeModel, type Message } from '../graph/proto.js';
import type { SessionOptions } from '../runtime/runtime.js';
import { readCard, type ModelCard } from './card.js';
import { Sessions } from './sessions.js';
import type { SwiftFormerConfig } from './swiftformer.js';
import { formatShape, type FloatTensor } from '../core/tensor.js';

/** What classify and eval need of a model. */
export interface ImageClassifier {
  readonly head: 'classifier' | 'features';
  readonly config: Pick<SwiftFormerConfig, 'numClasses'> & Partial<SwiftFormerConfig>;
  readonly card: ModelCard;
  logits(pixels: FloatTensor): Promise<FloatTensor>;
  /** Gives back the memory the sessions' arenas hold, keeping the model ready (sessions.ts). */
  trim?(): Promise<void>;
  release(): Promise<void>;
}

interface GraphIO { input: string; inputDims: (number | string)[]; output: string; classes: number }

function dims(value: Message | undefined): (number | string)[] {
  const shape = ((value?.type as Message | undefined)?.tensorType as Message | undefined)?.shape as Message | undefined;
  return ((shape?.dim as Message[] | undefined) ?? []).map((d) => (d.dimValue as number | undefined) ?? (d.dimParam as string | undefined) ?? '?');
}

/** Reads inputs, outputs and metadata without keeping the decoded model around. */
function describe(bytes: Uint8Array, name: string): { io: GraphIO; metadata: Record<string, string> } {
  const model = decodeModel(bytes);
  const graph = model.graph as Message | undefined;
  const initializers = new Set(((graph?.initializer as Message[] | undefined) ?? []).map((t) => t.name as string));
  const inputs = ((graph?.input as Message[] | undefined) ?? []).filter((i) => !initializers.has(i.name as string));
  const outputs = (graph?.output as Message[] | undefined) ?? [];
  const input = inputs[0];
  const output = outputs.find((o) => o.name === 'logits') ?? outputs[0];
  const inputDims = dims(input);
  const classes = dims(output).at(-1);
  if (!input || !output || inputDims.length !== 4 || typeof classes !== 'number') {
    throw new SwiftFormerError('BAD_ARGUMENT', `${name} is not an image classifier: expected one (N,3,H,W) input and a (N,classes) output`);
  }
  const metadata: Record<string, string> = {};
  for (const p of (model.metadataProps as Message[] | undefined) ?? []) metadata[p.key as string] = p.value as string;
  return { io: { input: input.name as string, inputDims, output: output.name as string, classes }, metadata };
}

export class OnnxClassifier implements ImageClassifier {
  readonly head = 'classifier';
  private readonly sessions: Sessions;

  private constructor(
    private readonly bytes: Uint8Array,
    private readonly io: GraphIO,
    readonly config: ImageClassifier['config'],
    readonly card: ModelCard,
    /** The file's own metadata, beyond the card: what exported it (config, head, INT8 settings). */
    readonly metadata: Readonly<Record<string, string>>,
    private readonly name: string,
    options: { session?: SessionOptions; backend?: string },
  ) {
    this.sessions = new Sessions(name, options.backend, options.session);
  }

  static async load(source: string | Uint8Array, options: { session?: SessionOptions; backend?: string } = {}): Promise<OnnxClassifier> {
    const name = typeof source === 'string' ? source : 'ONNX model';
    const bytes = typeof source === 'string' ? await readSource(source) : source;
    const { io, metadata } = describe(bytes, name);
    let config: ImageClassifier['config'] = { numClasses: io.classes };
    if (metadata['swiftformer.config']) config = { ...JSON.parse(metadata['swiftformer.config']) as SwiftFormerConfig, numClasses: io.classes };
    if (metadata['swiftformer.head'] === 'features') throw new SwiftFormerError('BAD_ARGUMENT', `${name} is a feature backbone: it has no logits`);
    const model = new OnnxClassifier(bytes, io, config, readCard(metadata, 'classification'), metadata, name, options);
    // The session is created now, so that a file ONNX Runtime cannot load fails at load time.
    await model.sessions.open('model', () => bytes);
    return model;
  }

  /** Fixed (H, W) of the input, when the file fixes them. */
  get inputSize(): [number, number] | undefined {
    const [, , h, w] = this.io.inputDims;
    return typeof h === 'number' && typeof w === 'number' ? [h, w] : undefined;
  }

  async logits(pixels: FloatTensor): Promise<FloatTensor> {
    const size = this.inputSize;
    if (size && (pixels.shape[2] !== size[0] || pixels.shape[3] !== size[1])) {
      throw new SwiftFormerError('BAD_SHAPE', `${this.name} takes ${size[0]}x${size[1]} images, got ${formatShape(pixels.shape)}`);
    }
    return (await this.sessions.run('model', () => this.bytes, { [this.io.input]: pixels }))[this.io.output]!;
  }

  trim(): Promise<void> {
    return this.sessions.trim();
  }

  release(): Promise<void> {
    return this.sessions.release();
  }
}
