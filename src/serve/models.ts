/**
 * What the server serves: a model with tensor inference for /v2 (named FP32 inputs; FP32 or INT64
 * outputs, such as a detector's labels; batch along axis 0 where the model has one) and, per
 * task, an image handler for /v1/models/{name}/classify|segment|detect.
 *
 * A task comes in one of two forms. A batched task turns an image into one row of the model's
 * inputs and that row's outputs into the answer, so its requests share the model's dynamic
 * batches (classification). A direct task handles one image itself, for models whose pipeline is
 * more than one tensor run: a segmenter's `segment(image)` (keep-ratio resize into its test scale,
 * so images of different shapes have different input sizes) and a detector's
 * `detect(image, { threshold, masks })`; its requests still go through the model's bounded queue,
 * one image per run. Their answers are what `segment --json` and `detect --json` print, with the
 * masks as base64 PNGs instead of file paths.
 *
 * On /v2 a segmenter runs its logits (pixel_values -> logits at the input size, batched when the
 * sizes agree). A detector runs its one graph (pixel_values -> boxes, scores, labels (INT64),
 * masks, batch_index (INT64)), whose outputs are flattened over the images of a request: it has no
 * batch axis to share between requests (max_batch_size 0, as `export --triton` writes it), so each
 * request runs on its own, holding as many same-size images as it likes. An exported detector
 * (our ONNX file, its metadata naming the task, classes and resize) serves /v1 detect as well.
 */
import { SwiftFormerError } from '../core/errors.js';
import { concatBatch, formatShape, type FloatTensor, type Tensor } from '../core/tensor.js';
import { overlay } from '../draw/overlay.js';
import type { ImageClassifier } from '../models/exported.js';
import { SwiftFormerModel } from '../models/model.js';
import { predictions } from '../models/classify.js';
import {
  binaryMask, exportedDetectorLabels, rawDetections, recordedDetectionSettings, toDetections, type DetectionModel, type Detection, type RawDetections,
} from '../models/detector.js';
import { checkImageSize } from '../models/detection/transform.js';
import { readCard } from '../models/card.js';
import { classAreas, type SegmentationModel } from '../models/segmentation.js';
import { encodeGrayPng, encodeRgbPng, maskPng } from '../node/png.js';
import type { RGBImage } from '../preprocess/resize.js';
import { inputFor, toNormalizedCHW, type InputOptions } from '../preprocess/transforms.js';
import { Sessions } from '../models/sessions.js';
import { handOver, type SessionOptions } from '../runtime/runtime.js';
import type { BufferPool } from './buffers.js';
import { HttpError } from './http.js';
import type { OnnxSignature, TensorSpec } from './onnx.js';

/** The inputs of a run: the server takes FP32 tensors only. */
export type Feeds = Record<string, FloatTensor>;

/** The outputs of a run: FP32, or INT64 (a detector's labels and batch indices). */
export type Outputs = Record<string, Tensor>;

export const IMAGE_TASKS = ['classify', 'segment', 'detect'] as const;
export type TaskName = (typeof IMAGE_TASKS)[number];

/** An image endpoint that rides the model's batches: image -> one row of inputs, that row's outputs -> answer. */
export interface BatchedImageTask {
  prepare(image: RGBImage, query: URLSearchParams): Feeds;
  answer(outputs: Outputs, query: URLSearchParams): unknown;
}

/** An image endpoint whose model does its own pre- and post-processing, one image per call. */
export interface DirectImageTask {
  /** Refuses bad query values (400) before the image is read. */
  check?(query: URLSearchParams): void;
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
  /** Runs one batch: every input with the same number of rows, every output with them too (when maxBatch > 0). */
  run(feeds: Feeds): Promise<Outputs>;
  /** Refuses inputs the shapes allow but the model does not (400). */
  check?(feeds: Feeds): void;
  /** Gives back the memory runs held (ONNX Runtime's arenas), keeping the model ready. */
  trim?(): Promise<void>;
  /** Runs once so that the first request does not pay for session creation. */
  warmup?(): Promise<void>;
  release(): Promise<void>;
}

const PLATFORM = 'onnxruntime_onnx';

/** Output datatypes the server returns (the runtime adapter's tensor types). */
const OUTPUT_DATATYPES: readonly string[] = ['FP32', 'INT64'];

/**
 * The server takes float32 inputs and returns float32 or int64 outputs (the runtime adapter's
 * tensor types): other models are refused when loaded, naming the tensor.
 */
function requireSupported(name: string, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): void {
  for (const s of inputs) {
    if (s.datatype !== 'FP32') throw new SwiftFormerError('UNSUPPORTED', `model '${name}': input '${s.name}' is ${s.datatype}; this server takes FP32 inputs only`);
  }
  for (const s of outputs) {
    if (!OUTPUT_DATATYPES.includes(s.datatype)) {
      const hint = s.datatype === 'UINT8' || s.datatype === 'UINT16' ? ' (a segmentation export with --output mask? export the logits instead, the default)' : '';
      throw new SwiftFormerError('UNSUPPORTED', `model '${name}': output '${s.name}' is ${s.datatype}; this server returns FP32 and INT64 outputs only${hint}`);
    }
  }
}

/** What every served model states: name, platform, version, batching, and its inputs and outputs. */
function basics(name: string, serving: Batching & { version?: string }, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]) {
  requireSupported(name, inputs, outputs);
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

/**
 * The check of a model built from weights, whose sessions are made per input size: past
 * MAX_INPUT_SIZES sizes a new one is refused (400) rather than holding ever more sessions.
 */
function sizeCap(name: string, input: string): (feeds: Feeds) => void {
  const sizes = new Set<string>();
  return (feeds) => {
    const [, , h, w] = feeds[input]!.shape;
    const size = `${h}x${w}`;
    if (!sizes.has(size) && sizes.size >= MAX_INPUT_SIZES) {
      throw new HttpError(400, `model '${name}' already runs ${MAX_INPUT_SIZES} input sizes (${[...sizes].join(', ')}), the most this server keeps sessions for; send one of those`);
    }
    if (h! % 32 === 0 && w! % 32 === 0 && h! > 0 && w! > 0) sizes.add(size);
  };
}

// ---------------------------------------------------------------- query parameters

/** `top` as classify's --top: a positive integer, default 5. */
function topParam(query: URLSearchParams): number {
  const text = query.get('top');
  if (text === null) return 5;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, `top must be an integer >= 1, got '${text}'`);
  return n;
}

/** `threshold` as detect's --threshold: a number in [0, 1], default 0.5. */
function thresholdParam(query: URLSearchParams): number {
  const text = query.get('threshold');
  if (text === null) return 0.5;
  const t = Number(text);
  if (text.trim() === '' || !(t >= 0 && t <= 1)) throw new HttpError(400, `threshold must be a number in [0, 1], got '${text}'`);
  return t;
}

/** A true/false switch (also 1/0). */
function flagParam(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const text = query.get(name);
  if (text === null) return fallback;
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new HttpError(400, `${name} must be true or false, got '${text}'`);
}

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

// ---------------------------------------------------------------- classification

/** A classifier: /v2 runs its logits, /v1 classify answers `{ predictions: [{ index, label, score }] }` as `classify --json`. */
export function classifierModel(name: string, c: ClassifierParts, serving: ClassifierServing): ServedModel {
  const { signature } = serving;
  const input: TensorSpec = signature?.inputs[0] ?? { name: 'pixel_values', datatype: 'FP32', shape: [-1, 3, -1, -1] };
  // The output OnnxClassifier reads.
  const output: TensorSpec = signature ? (signature.outputs.find((o) => o.name === 'logits') ?? signature.outputs[0]!) : { name: 'logits', datatype: 'FP32', shape: [-1, c.model.config.numClasses] };
  const classify: BatchedImageTask = {
    prepare: (image, query) => {
      topParam(query); // a bad ?top= is refused before the image runs
      return { [input.name]: inputFor(image, c.input) };
    },
    answer: (outputs, query) => ({ predictions: predictions(outputs[output.name]!.data as Float32Array, c.labels, topParam(query), 'the uploaded image') }),
  };
  return {
    ...basics(name, serving, [input], [output]),
    ...(c.labels ? { labels: c.labels } : {}),
    tasks: { classify },
    run: async (feeds) => ({ [output.name]: await c.model.logits(feeds[input.name]!) }),
    ...(c.model instanceof SwiftFormerModel ? { check: sizeCap(name, input.name) } : {}),
    async warmup() {
      await c.model.logits(classify.prepare({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) }, new URLSearchParams())[input.name]!);
    },
    ...(c.model.trim ? { trim: () => c.model.trim!() } : {}),
    release: () => c.model.release(),
  };
}

// ---------------------------------------------------------------- segmentation

const PIXELS = 'pixel_values';

/**
 * A Semantic FPN segmenter: /v2 runs its logits (pixel_values (N,3,H,W) mmseg-normalized, H and W
 * multiples of 32 -> logits (N,K,H,W)), batched when the sizes agree; /v1 segment answers
 * `segment --json`'s `{ width, height, mask, classes }` with the mask as a base64 palette PNG
 * (pixel value = class index), and with `?overlay=true` the overlay picture too.
 */
export function segmenterModel(name: string, model: SegmentationModel, serving: Batching & { version?: string }): ServedModel {
  const segment: DirectImageTask = {
    check: (query) => void flagParam(query, 'overlay', false),
    async run(image, query) {
      const result = await model.segment(image);
      const picture = flagParam(query, 'overlay', false) ? overlay(image, result) : undefined;
      return {
        width: result.width,
        height: result.height,
        mask: base64(maskPng(result)),
        ...(picture ? { overlay: base64(encodeRgbPng(picture.data, picture.width, picture.height)) } : {}),
        classes: classAreas(result),
      };
    },
  };
  return {
    ...basics(name, serving, [{ name: PIXELS, datatype: 'FP32', shape: [-1, 3, -1, -1] }], [{ name: 'logits', datatype: 'FP32', shape: [-1, model.numClasses, -1, -1] }]),
    tasks: { segment },
    run: async (feeds) => ({ logits: await model.logits(feeds[PIXELS]!) }),
    check: sizeCap(name, PIXELS),
    async warmup() {
      await model.segment({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) });
    },
    trim: () => model.trim(),
    release: () => model.release(),
  };
}

// ---------------------------------------------------------------- detection

/** The detection graph's outputs (maskrcnn.ts's file comment), as `export` writes them. */
export function detectionOutputs(hasMasks: boolean): TensorSpec[] {
  return [
    { name: 'boxes', datatype: 'FP32', shape: [-1, 4] },
    { name: 'scores', datatype: 'FP32', shape: [-1] },
    { name: 'labels', datatype: 'INT64', shape: [-1] },
    ...(hasMasks ? [{ name: 'masks', datatype: 'FP32', shape: [-1, 1, -1, -1] } as TensorSpec] : []),
    { name: 'batch_index', datatype: 'INT64', shape: [-1] },
  ];
}

/** `detect --json`'s entry for one image, masks as base64 PNGs (0/255, the image's size) instead of files. */
function detectionAnswer(image: RGBImage, found: readonly Detection[]): unknown {
  return {
    width: image.width,
    height: image.height,
    detections: found.map(({ mask, ...d }) => (mask ? { ...d, mask: base64(encodeGrayPng(mask.data, mask.width, mask.height)) } : d)),
  };
}

/**
 * A Mask R-CNN / Faster R-CNN detector: /v1 detect[?threshold=0.5][&masks=false] answers
 * `detect --json`'s `{ width, height, detections }`; /v2 runs the exported graph's computation
 * (every detection torchvision returns; no batch axis shared between requests).
 */
export function detectorModel(name: string, model: DetectionModel, serving: { version?: string } = {}): ServedModel {
  const detect: DirectImageTask = {
    check: checkDetectQuery,
    async run(image, query) {
      const found = await model.detect(image, { threshold: thresholdParam(query), masks: flagParam(query, 'masks', true) && model.hasMasks });
      return detectionAnswer(image, found);
    },
  };
  return {
    ...basics(name, { maxBatch: 0, dynamic: false, maxDelayMs: 0, ...serving }, [{ name: PIXELS, datatype: 'FP32', shape: [-1, 3, -1, -1] }], detectionOutputs(model.hasMasks)),
    tasks: { detect },
    // Threshold 0 drops nothing: torchvision's score threshold (0.05) has already applied, as in the export.
    run: async (feeds) => detectionTensors(await model.run(feeds[PIXELS]!, { threshold: 0 })),
    async warmup() {
      await model.run({ dtype: 'float32', shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) });
    },
    trim: () => model.trim(),
    release: () => model.release(),
  };
}

function checkDetectQuery(query: URLSearchParams): void {
  thresholdParam(query);
  flagParam(query, 'masks', true);
}

/** The outputs /v1 detect reads off an exported detection graph. */
const DETECTION_OUTPUTS = ['boxes', 'scores', 'labels', 'batch_index'];

/** Whether an ONNX graph is our detection export (its metadata says so, its tensors are the graph's). */
export function isExportedDetector(sig: OnnxSignature): boolean {
  return readCard(sig.metadata, 'classification').task === 'detection' && sig.inputs.length === 1 && sig.inputs[0]!.name === PIXELS
    && DETECTION_OUTPUTS.every((n) => sig.outputs.some((o) => o.name === n));
}

/**
 * An exported detector: /v2 as any ONNX model, and /v1 detect as for weights. The graph gives
 * every detection torchvision returns; those scoring above the threshold are kept and their masks
 * thresholded at 0.5, which is what `detect` computes (it only feeds the threshold into the graph
 * so that the masks of the others are never pasted).
 */
export async function exportedDetectorModel(
  name: string, bytes: Uint8Array, sig: OnnxSignature, io: Pick<OnnxSignature, 'inputs' | 'outputs'>, serving: Batching & { version?: string; session?: SessionOptions; labels?: string },
): Promise<ServedModel> {
  const { transform } = recordedDetectionSettings(sig.metadata);
  const labels = await exportedDetectorLabels(sig.metadata, serving.labels);
  const base = await onnxModel(name, bytes, { inputs: io.inputs, outputs: sig.outputs }, serving);
  const hasMasks = sig.outputs.some((o) => o.name === 'masks');
  const detect: DirectImageTask = {
    check: checkDetectQuery,
    async run(image, query) {
      const { width, height } = image;
      checkImageSize(height, width, transform, 'the uploaded image');
      const raw = rawDetections(await base.run({ [PIXELS]: toNormalizedCHW(image, [0, 0, 0], [1, 1, 1]) }), hasMasks);
      const threshold = thresholdParam(query);
      const masks = hasMasks && flagParam(query, 'masks', true);
      const kept = toDetections(raw, labels, width, height, false).flatMap((d, i) => {
        if (!(d.score > threshold)) return [];
        return [masks ? { ...d, mask: binaryMask(raw.masks!, i, width, height) } : d];
      });
      return detectionAnswer(image, kept);
    },
  };
  // /v2 answers the outputs the server states (a Triton config may list fewer).
  const outputs = new Set(io.outputs.map((o) => o.name));
  return {
    ...base,
    outputs: io.outputs,
    tasks: { detect },
    // What DetectionModel.run refuses, refused here too rather than failing inside ONNX Runtime.
    check(feeds) {
      const [n, , h, w] = feeds[PIXELS]!.shape as [number, number, number, number];
      if (n < 1) throw new HttpError(400, `input '${PIXELS}' holds no images`);
      checkImageSize(h, w, transform, `input '${PIXELS}'`);
    },
    run: async (feeds) => Object.fromEntries(Object.entries(await base.run(feeds)).filter(([n]) => outputs.has(n))),
  };
}

/** RawDetections back as the graph's tensors (int64 labels and batch indices). */
function detectionTensors(raw: RawDetections): Outputs {
  const d = raw.scores.length;
  const int64 = (v: Int32Array): Tensor => ({ dtype: 'int64', shape: [d], data: BigInt64Array.from(v, (x) => BigInt(x)) });
  return {
    boxes: { dtype: 'float32', shape: [d, 4], data: raw.boxes },
    scores: { dtype: 'float32', shape: [d], data: raw.scores },
    labels: int64(raw.labels),
    ...(raw.masks ? { masks: raw.masks } : {}),
    batch_index: int64(raw.batch),
  };
}

// ---------------------------------------------------------------- any ONNX model

/** Any ONNX model with FP32 inputs and FP32 / INT64 outputs, on /v2 only: every graph input and output (or those a Triton config lists). */
export async function onnxModel(name: string, bytes: Uint8Array, io: Pick<OnnxSignature, 'inputs' | 'outputs'>, serving: Batching & { version?: string; session?: SessionOptions }): Promise<ServedModel> {
  const fields = basics(name, serving, io.inputs, io.outputs);
  const sessions = new Sessions(`model '${name}'`, undefined, serving.session);
  const build = () => bytes;
  await sessions.open('model', build);
  return {
    ...fields,
    tasks: {},
    async run(feeds) {
      const out = await sessions.runTyped('model', build, feeds);
      return Object.fromEntries(io.outputs.map((o) => [o.name, out[o.name]!]));
    },
    trim: () => sessions.trim(),
    release: () => sessions.release(),
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

/** Rows `start` to `end` of a tensor, along axis 0 (a view, no copy). */
function rowsOfTensor(t: Tensor, start: number, end: number): Tensor {
  const rowSize = t.data.length / t.shape[0]!;
  const shape = [end - start, ...t.shape.slice(1)];
  return t.dtype === 'int64'
    ? { dtype: 'int64', shape, data: t.data.subarray(start * rowSize, end * rowSize) }
    : { dtype: 'float32', shape, data: t.data.subarray(start * rowSize, end * rowSize) };
}

/**
 * Runs several requests' inputs as one batch (joined along axis 0) and splits the outputs back.
 * The batch is joined into a buffer of the pool (a copy even for one request: the request's data
 * is a view into its body, which a worker thread could only get as a fresh copy), handed over so
 * that an engine in a worker thread takes it instead of a copy, and given back to the pool when it
 * returns; the requests' bodies go back to the pool once joined.
 */
export async function runBatch(model: ServedModel, inputs: Feeds[], pool: BufferPool): Promise<Outputs[]> {
  const take = (bytes: number) => pool.take(bytes);
  const recycle = (buffer: ArrayBuffer) => pool.adopt(buffer);
  const giveBack = (feeds: Feeds) => {
    for (const t of Object.values(feeds)) pool.give(t.data.buffer);
  };
  const names = Object.keys(inputs[0]!);
  const batch: Feeds = Object.fromEntries(names.map((n) => [n, handOver(concatBatch(inputs.map((f) => f[n]!), take), recycle)]));
  inputs.forEach(giveBack);
  let out: Outputs;
  try {
    out = await model.run(batch);
  } finally {
    giveBack(batch);
  }
  if (inputs.length === 1) return [out];
  const rows = inputs.map((f) => rowsOf(model, f));
  const total = rows.reduce((a, b) => a + b, 0);
  const split: Outputs[] = inputs.map(() => ({}));
  for (const [name, t] of Object.entries(out)) {
    if (t.shape[0] !== total) throw new SwiftFormerError('BAD_SHAPE', `model '${model.name}': output '${name}' has shape ${formatShape(t.shape)}, not ${total} rows: it cannot be batched`);
    let start = 0;
    rows.forEach((r, i) => {
      split[i]![name] = rowsOfTensor(t, start, start + r);
      start += r;
    });
  }
  return split;
}
