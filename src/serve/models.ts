/**
 * What the server serves: a model with tensor inference for /v2 (named FP32 inputs and outputs,
 * batch along axis 0) and, per task, an image handler for /v1/models/{name}/classify|segment|detect.
 *
 * A task comes in one of two forms. A batched task turns an image into one row of the model's
 * inputs and that row's outputs into the answer, so its requests share the model's dynamic
 * batches (classification). A direct task handles one image itself, for models whose pipeline is
 * more than one tensor run (a segmentation model's `segment(image)`, a detector's
 * `detect(image, { threshold })`); its requests still go through the model's bounded queue.
 * When those models land, serving them is a few lines:
 *
 *   tasks.segment = { run: async (image) => segmentationAnswer(await model.segment(image)) };
 *   tasks.detect = { run: (image, q) => model.detect(image, { threshold: numberParam(q, 'threshold', 0.5) }) };
 */
import { SwiftFormerError } from '../core/errors.js';
import { concatBatch, formatShape, type FloatTensor } from '../core/tensor.js';
import type { ImageClassifier } from '../models/exported.js';
import { SwiftFormerModel } from '../models/model.js';
import { predictions } from '../models/classify.js';
import type { RGBImage } from '../preprocess/resize.js';
import { inputFor, type InputOptions } from '../preprocess/transforms.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import { HttpError } from './http.js';
import type { OnnxSignature, TensorSpec } from './onnx.js';

export type Feeds = Record<string, FloatTensor>;

export const IMAGE_TASKS = ['classify', 'segment', 'detect'] as const;
export type TaskName = (typeof IMAGE_TASKS)[number];

/** An image endpoint that rides the model's batches: image -> one row of inputs, that row's outputs -> answer. */
export interface BatchedImageTask {
  prepare(image: RGBImage, query: URLSearchParams): Feeds;
  answer(outputs: Feeds, query: URLSearchParams): unknown;
}

/** An image endpoint whose model does its own pre- and post-processing, one image per call. */
export interface DirectImageTask {
  run(image: RGBImage, query: URLSearchParams): Promise<unknown>;
}

export type ImageTask = BatchedImageTask | DirectImageTask;

export const isDirect = (task: ImageTask): task is DirectImageTask => 'run' in task;

export interface Batching {
  /** Most rows per request and per run; 0: the model has no batch axis (shapes are whole). */
  maxBatch: number;
  /** false: every request runs on its own (a Triton config without dynamic_batching). */
  dynamic: boolean;
  /** How long the oldest waiting request may wait for others to join its batch. */
  maxDelayMs: number;
}

export interface ServedModel extends Batching {
  readonly name: string;
  /** The protocol's platform string; ONNX models are Triton's 'onnxruntime_onnx'. */
  readonly platform: string;
  /** The version served, for models from a repository. */
  readonly version?: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Class names of the scores output, for Triton's classification extension. */
  readonly labels?: readonly string[];
  readonly tasks: Partial<Record<TaskName, ImageTask>>;
  /** Runs one batch: every input with the same number of rows, every output with them too. */
  run(feeds: Feeds): Promise<Feeds>;
  /** Refuses inputs the shapes allow but the model does not (400). */
  check?(feeds: Feeds): void;
  /** Runs once so that the first request does not pay for session creation. */
  warmup?(): Promise<void>;
  release(): Promise<void>;
}

const PLATFORM = 'onnxruntime_onnx';

/** The server runs float32 tensors (the runtime adapter's one type): other models are refused when loaded. */
function requireFp32(name: string, specs: readonly TensorSpec[], kind: string): void {
  for (const s of specs) {
    if (s.datatype !== 'FP32') throw new SwiftFormerError('UNSUPPORTED', `model '${name}': ${kind} '${s.name}' is ${s.datatype}; this server runs FP32 tensors only`);
  }
}

/** What every served model states: name, platform, version, batching, and its (FP32) inputs and outputs. */
function basics(name: string, serving: Batching & { version?: string }, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]) {
  requireFp32(name, inputs, 'input');
  requireFp32(name, outputs, 'output');
  const { maxBatch, dynamic, maxDelayMs, version } = serving;
  return { name, platform: PLATFORM, ...(version ? { version } : {}), maxBatch, dynamic, maxDelayMs, inputs, outputs };
}

/** The pieces of a loaded classifier (the CLI's loadClassifier gives them, so /v1 answers as `classify --json`). */
export interface ClassifierParts {
  model: ImageClassifier;
  labels: string[] | undefined;
  /** How an image becomes the model's input (its recorded pipeline, or the official transform at a size). */
  input: InputOptions;
}

export interface ClassifierServing extends Batching {
  /** The ONNX file's inputs and outputs; undefined for a model built from weights. */
  signature?: OnnxSignature;
  version?: string;
}

/** A SwiftFormer model built from weights makes one ONNX Runtime session per input size: cap them. */
export const MAX_INPUT_SIZES = 8;

/** `top` as classify's --top: a positive integer, default 5. */
function topParam(query: URLSearchParams): number {
  const text = query.get('top');
  if (text === null) return 5;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, `top must be an integer >= 1, got '${text}'`);
  return n;
}

/** A classifier: /v2 runs its logits, /v1 classify answers `{ predictions: [{ index, label, score }] }` as `classify --json`. */
export function classifierModel(name: string, c: ClassifierParts, serving: ClassifierServing): ServedModel {
  const { signature } = serving;
  const input: TensorSpec = signature?.inputs[0] ?? { name: 'pixel_values', datatype: 'FP32', shape: [-1, 3, -1, -1] };
  // The output OnnxClassifier reads.
  const output: TensorSpec = signature ? (signature.outputs.find((o) => o.name === 'logits') ?? signature.outputs[0]!) : { name: 'logits', datatype: 'FP32', shape: [-1, c.model.config.numClasses] };
  const sizes = new Set<string>();
  const classify: BatchedImageTask = {
    prepare: (image, query) => {
      topParam(query); // a bad ?top= is refused before the image runs
      return { [input.name]: inputFor(image, c.input) };
    },
    answer: (outputs, query) => ({ predictions: predictions(outputs[output.name]!.data, c.labels, topParam(query), 'the uploaded image') }),
  };
  return {
    ...basics(name, serving, [input], [output]),
    ...(c.labels ? { labels: c.labels } : {}),
    tasks: { classify },
    run: async (feeds) => ({ [output.name]: await c.model.logits(feeds[input.name]!) }),
    check(feeds) {
      if (!(c.model instanceof SwiftFormerModel)) return;
      const [, , h, w] = feeds[input.name]!.shape;
      const size = `${h}x${w}`;
      if (!sizes.has(size) && sizes.size >= MAX_INPUT_SIZES) {
        throw new HttpError(400, `model '${name}' already runs ${MAX_INPUT_SIZES} input sizes (${[...sizes].join(', ')}), the most this server keeps sessions for; send one of those`);
      }
      if (h! % 32 === 0 && w! % 32 === 0 && h! > 0 && w! > 0) sizes.add(size);
    },
    async warmup() {
      await c.model.logits(classify.prepare({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) }, new URLSearchParams())[input.name]!);
    },
    release: () => c.model.release(),
  };
}

/** Any FP32 ONNX model, on /v2 only: every graph input and output (or those a Triton config lists). */
export async function onnxModel(name: string, bytes: Uint8Array, io: Pick<OnnxSignature, 'inputs' | 'outputs'>, serving: Batching & { version?: string; session?: SessionOptions }): Promise<ServedModel> {
  const fields = basics(name, serving, io.inputs, io.outputs);
  const session = await getBackend().createSession(bytes, serving.session);
  return {
    ...fields,
    tasks: {},
    async run(feeds) {
      const out = await session.run(feeds);
      return Object.fromEntries(io.outputs.map((o) => [o.name, out[o.name]!]));
    },
    release: () => session.release(),
  };
}

/** The shapes after the batch axis: requests with the same key can share a batch. */
export function batchKey(feeds: Feeds): string {
  return Object.entries(feeds).map(([n, t]) => `${n}${formatShape(t.shape.slice(1))}`).join(';');
}

/** Rows of a request: the batch axis of its inputs (1 for a model without one). */
export function rowsOf(model: Pick<ServedModel, 'maxBatch'>, feeds: Feeds): number {
  return model.maxBatch === 0 ? 1 : Object.values(feeds)[0]!.shape[0]!;
}

/** Runs several requests' inputs as one batch (joined along axis 0) and splits the outputs back. */
export async function runBatch(model: ServedModel, inputs: Feeds[]): Promise<Feeds[]> {
  if (inputs.length === 1) return [await model.run(inputs[0]!)];
  const names = Object.keys(inputs[0]!);
  const out = await model.run(Object.fromEntries(names.map((n) => [n, concatBatch(inputs.map((f) => f[n]!))])));
  const rows = inputs.map((f) => rowsOf(model, f));
  const total = rows.reduce((a, b) => a + b, 0);
  const split: Feeds[] = inputs.map(() => ({}));
  for (const [name, t] of Object.entries(out)) {
    if (t.shape[0] !== total) throw new SwiftFormerError('BAD_SHAPE', `model '${model.name}': output '${name}' has shape ${formatShape(t.shape)}, not ${total} rows: it cannot be batched`);
    const rowSize = t.data.length / total;
    let start = 0;
    rows.forEach((r, i) => {
      split[i]![name] = { dtype: 'float32', shape: [r, ...t.shape.slice(1)], data: t.data.subarray(start * rowSize, (start + r) * rowSize) };
      start += r;
    });
  }
  return split;
}
