import { inputFor, type InputOptions } from '../preprocess/transforms.js';
import { decodeImage, MAX_IMAGE_PIXELS } from '../node/decode.js';
import type { RGBImage } from '../preprocess/resize.js';
import { SwiftFormerError } from '../core/errors.js';
import { defaultWeights, isRemoteSource, resolveWeights } from '../node/hub.js';
import { labelsFromHfConfig, loadLabels, resolveLabels, type LabelSources } from '../models/labels.js';
import { predictions, type Prediction } from '../models/classify.js';
import { inputOptions } from '../models/card.js';
import { OnnxClassifier, type ImageClassifier } from '../models/exported.js';
import { loadSwiftFormer } from '../models/model.js';
import type { SessionOptions } from '../runtime/runtime.js';
import { readSource } from '../core/io.js';
import { inputHW } from '../models/swiftformer.js';
import { concatBatch, type FloatTensor } from '../core/tensor.js';
import { choice, intOption, parse, usageError, type Options } from './args.js';
import { downloadProgress } from './progress.js';
import { finishPerImage } from './outcomes.js';

export const usage = `Usage: swiftformer classify <images...> [--weights <src>] [options]

Prints the top classes of each image (softmax of the logits), preprocessed as the official
evaluation does (bicubic resize to size/0.875, center crop, ImageNet normalization), or, for a
model trained with this library, as its training recorded (e.g. Fashion-MNIST: gray, 32x32).
  --weights     .pth, .safetensors or exported .onnx (also INT8) file, https:// URL, or hf:ORG/NAME[@revision]
                (default: the model bundled in the package, if any)
  --model       xs | s | l1 | l3 (default: read off the weights)
  --labels      class names: JSON array, JSON {"0": "name"}, HF config.json, or one per line
                (default: the weights' id2label, else ImageNet-1k names for 1000 classes)
  --top         how many classes to print per image (default 5)
  --json        print [{ file, predictions: [{ index, label, score }] }] ({ file, error } on failure)
  --size        input side, a multiple of 32 (default 224; a model trained here takes the size it records)
  --entry       model | model_ema, for full training checkpoints
  --attention   l2 | softmax (default: follows the weights' origin)
  --max-pixels  refuse larger images, as decompression bombs (default ${MAX_IMAGE_PIXELS}; 0: no limit)
  --allow-non-finite  load weights holding NaN or infinity (refused by default; such a model cannot score)

A file that cannot be read is reported at the end; the others are still classified (exit code 1).`;

/** Options shared by classify and eval. */
export const modelOptions: Options = {
  weights: { type: 'string' }, model: { type: 'string' }, labels: { type: 'string' }, size: { type: 'string' },
  entry: { type: 'string' }, attention: { type: 'string' }, json: { type: 'boolean' }, 'max-pixels': { type: 'string' },
  'allow-non-finite': { type: 'boolean' },
};

export interface Classifier {
  model: ImageClassifier;
  labels: string[] | undefined;
  /** How images become inputs: the model's recorded pipeline, or the official transform at a size. */
  input: InputOptions;
  numClasses: number;
  maxPixels: number;
}

/** Model, labels and input pipeline from the command-line options (downloads show a progress bar). */
export async function loadClassifier(values: Record<string, string | undefined>, command: string, flags: ReadonlySet<string> = new Set(), session?: SessionOptions): Promise<Classifier> {
  const attention = choice(values.attention, 'attention', ['l2', 'softmax'] as const);
  const maxPixels = intOption(values['max-pixels'], 'max-pixels', 0) ?? MAX_IMAGE_PIXELS;
  const requestedSize = intOption(values.size, 'size');
  if (requestedSize !== undefined) inputHW(requestedSize);
  let weights = values.weights;
  let repository: LabelSources['repository'];
  let labelFile = values.labels;
  let bundledConfig: Record<string, unknown> | undefined;

  if (weights === undefined) {
    const bundled = await defaultWeights();
    if (!bundled) {
      throw new SwiftFormerError(
        'BAD_ARGUMENT',
        `${command} needs weights and this package bundles none yet: pass --weights file.pth | https://... | hf:MBZUAI/swiftformer-xs`,
      );
    }
    weights = bundled.weights;
    if (bundled.config) bundledConfig = await readJson(bundled.config);
    labelFile ??= bundled.labels;
    const configLabels = bundledConfig ? labelsFromHfConfig(bundledConfig) : undefined;
    if (configLabels) repository = { labels: configLabels, name: bundled.config! };
  }
  // Where the weights are read from: a remote source's cached download, resolved once (one HEAD for hf:).
  let file = weights;
  if (isRemoteSource(weights)) {
    try {
      const resolved = await resolveWeights(weights, { onProgress: downloadProgress() });
      if (resolved.labels) repository = { labels: resolved.labels, name: `${weights}'s id2label` };
      file = resolved.path;
    } catch (err) {
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K'); // end a progress bar cut short
      throw err;
    }
  }
  const configSize = bundledConfig?.size ?? bundledConfig?.image_size;
  const configAttention = bundledConfig?.attention;
  const bundledAttention = configAttention === 'l2' || configAttention === 'softmax' ? configAttention : undefined;

  const model: ImageClassifier = file.toLowerCase().endsWith('.onnx')
    ? await OnnxClassifier.load(file, session ? { session } : {})
    : await loadSwiftFormer({
      weights: file,
      ...(session ? { session } : {}),
      ...(values.model ? { model: values.model } : {}),
      ...(values.entry ? { entry: values.entry } : {}),
      ...((attention ?? bundledAttention) ? { attention: attention ?? bundledAttention } : {}),
      ...(flags.has('allow-non-finite') ? { allowNonFinite: true } : {}),
    }).catch((err: unknown) => {
      // Weights of a dense-prediction model: name the command that takes them (flags: cliMessage).
      const dense = err instanceof SwiftFormerError && /its task is '(segmentation|detection)'/.exec(err.message)?.[1];
      const other = command === 'eval' ? ', or eval on a segmentation dataset (img_dir/ + ann_dir/, or ADE20K\'s images/ + annotations/)' : '';
      if (dense) throw new SwiftFormerError(err.code, `${err.message}: use swiftformer ${dense === 'segmentation' ? `segment${other}` : 'detect'}`);
      throw err;
    });
  try {
    if (model.head !== 'classifier') throw new SwiftFormerError('BAD_ARGUMENT', `${weights} is a feature backbone (fork_feat weights, no classifier head): it cannot classify`);
    const numClasses = model.config.numClasses;
    if (numClasses < 1) throw new SwiftFormerError('BAD_ARGUMENT', `${weights} has no classifier head (0 classes)`);
    const fixedSize = model instanceof OnnxClassifier ? model.inputSize?.[0] : undefined;
    const size = requestedSize ?? fixedSize ?? (typeof configSize === 'number' ? configSize : undefined);
    const input = inputOptions(model.card, size);
    const explicit = labelFile ? { labels: await loadLabels(labelFile), name: labelFile } : undefined;
    const labels = await resolveLabels({ ...(explicit ? { explicit } : {}), ...(repository ? { repository } : {}), ...(model.card.labels ? { recorded: model.card.labels } : {}) }, numClasses);
    return { model, labels, input, numClasses, maxPixels };
  } catch (err) {
    await model.release();
    throw err;
  }
}

/** One decoded image as the model takes it: its recorded preprocessing, else the official transform. */
export function pixelsOf(image: RGBImage, c: Classifier): FloatTensor {
  return inputFor(image, c.input);
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  const text = new TextDecoder().decode(await readSource(path));
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

export type Prepared = { file: string; pixels: FloatTensor } | { file: string; error: string };

/** Decodes and preprocesses files, a few at a time (bounded memory: each full-size image is dropped once cropped). */
export async function prepareImages(files: string[], c: Classifier, concurrency = 4): Promise<Prepared[]> {
  const out = new Array<Prepared>(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      const file = files[i]!;
      try {
        out[i] = { file, pixels: pixelsOf(await decodeImage(file, { maxPixels: c.maxPixels }), c) };
      } catch (err) {
        if (!(err instanceof SwiftFormerError)) throw err;
        out[i] = { file, error: err.message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return out;
}

/** Logits of a batch of [1,3,H,W] tensors, one Float32Array row per image. */
export async function logitRows(model: ImageClassifier, tensors: FloatTensor[]): Promise<Float32Array[]> {
  if (tensors.length === 0) return [];
  const logits = await model.logits(concatBatch(tensors));
  const classes = logits.shape[1]!;
  return tensors.map((_, i) => logits.data.subarray(i * classes, (i + 1) * classes));
}

type Result = { file: string; predictions: Prediction[] } | { file: string; error: string };

const BATCH = 16;

export async function classify(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, { ...modelOptions, top: { type: 'string' } }, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length === 0) throw usageError(usage, 'no images given');
  const top = intOption(values.top, 'top') ?? 5;
  const json = flags.has('json');
  const c = await loadClassifier(values, 'classify', flags);
  const results: Result[] = [];
  try {
    for (let start = 0; start < positionals.length; start += BATCH) {
      const prepared = await prepareImages(positionals.slice(start, start + BATCH), c);
      const ok = prepared.filter((p): p is Extract<Prepared, { pixels: FloatTensor }> => 'pixels' in p);
      const rows = await logitRows(c.model, ok.map((p) => p.pixels));
      const byFile = new Map(ok.map((p, i) => [p, rows[i]!]));
      for (const p of prepared) {
        if ('error' in p) {
          results.push(p);
          continue;
        }
        const best = predictions(byFile.get(p)!, c.labels, top, p.file);
        results.push({ file: p.file, predictions: best });
        if (!json) printPredictions(p.file, best);
      }
    }
  } finally {
    await c.model.release();
  }
  finishPerImage('classify', usage, results, json, 'classified');
}

function printPredictions(file: string, predictions: Prediction[]): void {
  console.log(file);
  for (const p of predictions) console.log(`  ${(p.score * 100).toFixed(2).padStart(6)}%  ${p.label} (${p.index})`);
}
