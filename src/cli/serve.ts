import { dirname, join } from 'node:path';
import { inContext, SwiftFormerError } from '../core/errors.js';
import { readSource } from '../core/io.js';
import { readCard } from '../models/card.js';
import { loadLabels } from '../models/labels.js';
import { DetectionModel } from '../models/detector.js';
import { denseTaskOf } from '../models/families.js';
import { SegmentationModel } from '../models/segmentation.js';
import { registerBackend, type SessionOptions } from '../runtime/runtime.js';
import { workerBackend } from '../node/ort-worker.js';
import {
  classifierModel, detectorModel, exportedDetectorModel, isExportedDetector, onnxModel, segmenterModel, type Batching, type ServedModel,
} from '../serve/models.js';
import { onnxSignature, type OnnxSignature } from '../serve/onnx.js';
import { launcherGone } from '../serve/allocator.js';
import { InferenceServer } from '../serve/server.js';
import { checkConfig, checkModelName, readRepository, specOf, type RepositoryModel } from '../serve/triton.js';
import { intOption, packageVersion, parse } from './args.js';
import { loadClassifier } from './classify.js';
import { readWeightsOption, resizeOptions } from './detect.js';
import { parseScale } from './segment.js';

export const usage = `Usage: swiftformer serve [--model NAME=WEIGHTS ...] [--repository DIR] [options]

An HTTP inference server speaking the Open Inference Protocol (KServe v2 REST, with Triton's
binary tensor extension), so Triton's and KServe's clients work against it, with dynamic
batching, a bounded queue and Prometheus metrics:
  GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready
  POST /v2/models/NAME/infer            tensors in, tensors out (FP32 in; FP32 / INT64 out)
  POST /v1/models/NAME/classify[?top=5] image bytes in, classify --json's predictions out
  POST /v1/models/NAME/segment[?overlay=true]
                                        segment --json's { width, height, mask, classes }, the
                                        mask a base64 palette PNG (pixel value = class index)
  POST /v1/models/NAME/detect[?threshold=0.5][&masks=false]
                                        detect --json's { width, height, detections }, each mask
                                        a base64 PNG (0/255, the image's size)
  GET  /metrics                         Prometheus text format

What a model serves follows its weights: a classifier classify and /v2 logits; Semantic FPN
weights segment and /v2 logits (pixel_values (N,3,H,W) mmseg-normalized, sides multiples of 32);
Mask R-CNN weights detect and /v2 the exported graph's outputs (boxes, scores, labels INT64,
masks, batch_index INT64; one request per run, any number of same-size images in it). Exported
.onnx files and repositories serve /v2, and classify for classifiers, detect for detectors.

  --model NAME=WEIGHTS  serve WEIGHTS as NAME: .pth, .safetensors, exported .onnx, https:// URL
                        or hf:ORG/NAME (repeatable; default: the bundled model, as 'default')
  --repository DIR      serve a Triton model repository (DIR/NAME/config.pbtxt and
                        DIR/NAME/<version>/model.onnx, as 'export --triton' writes it)
  --labels NAME=FILE    class names for model NAME, as classify's, segment's and detect's --labels
                        take them (repeatable; default: the weights' own, else the usual defaults)
  --host                address to listen on (default 127.0.0.1: this machine only)
  --port                port (default 8000; 0: any free port)
  --max-batch           most images per dynamic batch (default 16; 1: no batching)
  --max-delay-ms        how long a request waits for others to batch with (default 5)
  --max-queue           requests waiting per model before 503 + Retry-After (default 256)
  --timeout-ms          a request must arrive (else 408) and may wait in the queue (else 503)
                        this long (default 30000)
  --max-body-mb         largest request body, else 413 (default 64)
  --drain-ms            on SIGTERM or SIGINT, how long requests in flight may finish (default 10000)
  --idle-trim-ms        after this long without requests, give back the memory runs held (ONNX
                        Runtime's arenas, unreferenced buffers) and reopen the models (default
                        2000; 0: never)
  --threads             ONNX Runtime threads per model (default: all cores)
  --size, --max-pixels  as for classify (input side of models built from weights; image size limit)
  --scale               segmentation test scale, as segment's --size: S for (4S, S) or LONG,SHORT
                        (default: the weights' recorded scale, else (2048, 512))
  --min-size, --max-size  detection resize, as for detect (default 800 / 1333)

The first line on stdout is 'listening on http://HOST:PORT'. Repository models use their
config.pbtxt's max_batch_size and dynamic_batching.`;

interface Shared {
  batching: Batching;
  session: SessionOptions | undefined;
  classifyValues: Record<string, string | undefined>;
  /** Segmenters' test scale (undefined: the weights' own). */
  scale: [number, number] | undefined;
  /** Detectors' resize. */
  transform: { minSize?: number; maxSize?: number };
}

/** An ONNX graph classify can run: one (N,3,H,W) input and a (N,classes) output. */
function isClassifier(sig: OnnxSignature): boolean {
  const out = sig.outputs.find((o) => o.name === 'logits') ?? sig.outputs[0]!;
  return sig.inputs.length === 1 && sig.inputs[0]!.shape.length === 4 && out.shape.length === 2 && out.shape[1]! > 0
    && readCard(sig.metadata, 'classification').task === 'classification' && sig.metadata['swiftformer.head'] !== 'features';
}

/** The largest batch a graph allows: `want` when its inputs and outputs share a dynamic first axis, else 0. */
function batchable(sig: OnnxSignature, want: number): number {
  return sig.batchAxis ? want : 0;
}

interface OnnxServing {
  /** Default: the command line's, without a batch axis when the graph has none. */
  batching?: Batching;
  version?: string;
  /** A classifier's label file (Triton's label_filename) to use instead of the model's own labels. */
  labelFilename?: string;
  /** --labels: class names for a classifier or a detector; refused for graphs that serve /v2 only. */
  labels?: string;
  /** The inputs and outputs to serve (a Triton config's); default: the graph's. */
  io?: Pick<OnnxSignature, 'inputs' | 'outputs'>;
  /** Checks the graph before a session is made (a Triton config against its model). */
  check?: (sig: OnnxSignature) => void;
}

async function loadOnnx(name: string, path: string, shared: Shared, o: OnnxServing = {}): Promise<ServedModel> {
  const bytes = await readSource(path);
  const sig = onnxSignature(bytes, path);
  o.check?.(sig);
  const batching = o.batching ?? { ...shared.batching, maxBatch: batchable(sig, shared.batching.maxBatch) };
  const serving = { ...batching, ...(o.version ? { version: o.version } : {}) };
  const labels = o.labels ?? o.labelFilename;
  if (isClassifier(sig)) {
    const values = { ...shared.classifyValues, weights: path, ...(labels ? { labels } : {}) };
    return classifierModel(name, await loadClassifier(values, 'serve', new Set(), shared.session), { ...serving, signature: sig });
  }
  const session = shared.session ? { session: shared.session } : {};
  if (isExportedDetector(sig)) return exportedDetectorModel(name, bytes, sig, o.io ?? sig, { ...serving, ...session, ...(o.labels ? { labels: o.labels } : {}) });
  if (o.labels) throw new SwiftFormerError('BAD_ARGUMENT', `--labels ${name}=${o.labels}: ${path} is neither a classifier nor a detector export; it serves tensors on /v2 only, where class names have no place`);
  return onnxModel(name, bytes, o.io ?? sig, { ...serving, ...session });
}

/** NAME=VALUE, as --model and --labels take it: a valid model name and a value. */
function namedValue(spec: string, option: string, value: string): [string, string] {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) throw new SwiftFormerError('BAD_ARGUMENT', `--${option} takes NAME=${value}, got '${spec}'`);
  return [checkModelName(spec.slice(0, eq)), spec.slice(eq + 1)];
}

/** --labels NAME=FILE ...: a label file per model, each naming a model that is served. */
function labelFiles(specs: string[] | undefined, served: string[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const spec of specs ?? []) {
    const [name, file] = namedValue(spec, 'labels', 'FILE');
    if (files.has(name)) throw new SwiftFormerError('BAD_ARGUMENT', `--labels gives model '${name}' two label files`);
    if (!served.includes(name)) throw new SwiftFormerError('BAD_ARGUMENT', `--labels names model '${name}', which is not served (served: ${served.join(', ')})`);
    files.set(name, file);
  }
  return files;
}

async function loadNamed(name: string, source: string, labels: string | undefined, shared: Shared): Promise<ServedModel> {
  if (source.toLowerCase().endsWith('.onnx')) return loadOnnx(name, source, shared, labels ? { labels } : {});
  const dense = await loadDense(name, source, labels, shared);
  if (dense) return dense;
  const c = await loadClassifier({ ...shared.classifyValues, weights: source, ...(labels ? { labels } : {}) }, 'serve', new Set(), shared.session);
  return classifierModel(name, c, shared.batching);
}

/** Semantic FPN or Mask R-CNN weights (told apart by their keys) as a served model; undefined for a classifier's. */
async function loadDense(name: string, weights: string, labelFile: string | undefined, shared: Shared): Promise<ServedModel | undefined> {
  const source = await readWeightsOption(weights);
  const session = shared.session ? { session: shared.session } : {};
  switch (denseTaskOf(source.state.keys())) {
    case 'segmentation': {
      const labels = labelFile ? { labels: await loadLabels(labelFile) } : {};
      return segmenterModel(name, SegmentationModel.fromSource(source, { ...session, ...labels, ...(shared.scale ? { scale: shared.scale } : {}) }), shared.batching);
    }
    case 'detection':
      return detectorModel(name, await DetectionModel.fromSource(source, { ...session, settings: { transform: shared.transform }, ...(labelFile ? { labels: labelFile } : {}) }));
    default:
      return undefined;
  }
}

/** Loads one model; what goes wrong names the model (a server loads several). */
async function named<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    throw inContext(err, `model '${name}'`);
  }
}

/** --scale: segment's --size without 0 (images at their own size would each need a session of their own). */
function scaleOption(value: string | undefined): [number, number] | undefined {
  const scale = parseScale(value);
  if (scale === null) throw new SwiftFormerError('BAD_ARGUMENT', '--scale 0 is not for a server: every image size would need ONNX Runtime sessions of its own; give S or LONG,SHORT');
  return scale;
}

/** A repository model, batched as its config says (Triton's semantics), else as the command line says. */
function loadFromRepository(entry: RepositoryModel, labels: string | undefined, shared: Shared): Promise<ServedModel> {
  const { config } = entry;
  const given = labels ? { labels } : {};
  if (!config) return loadOnnx(entry.name, entry.path, shared, { version: entry.version, ...given });
  const modelDir = dirname(dirname(entry.path));
  const labelFile = config.outputs.find((o) => o.labelFilename)?.labelFilename;
  return loadOnnx(entry.name, entry.path, shared, {
    version: entry.version,
    batching: {
      maxBatch: config.maxBatchSize,
      dynamic: config.dynamicBatching !== undefined,
      maxDelayMs: (config.dynamicBatching?.maxQueueDelayMicroseconds ?? 0) / 1000,
    },
    io: { inputs: config.inputs.map((t) => specOf(t, config.maxBatchSize)), outputs: config.outputs.map((t) => specOf(t, config.maxBatchSize)) },
    check: (sig) => checkConfig(config, sig, join(modelDir, 'config.pbtxt')),
    ...(labelFile ? { labelFilename: join(modelDir, labelFile) } : {}),
    ...given,
  });
}

function describe(m: ServedModel): string {
  const tasks = Object.keys(m.tasks);
  const io = `${m.inputs.map((i) => `${i.name} [${i.shape}]`).join(', ')} -> ${m.outputs.map((o) => `${o.name} [${o.shape}]`).join(', ')}`;
  const batching = m.maxBatch === 0 ? 'no batch axis' : m.dynamic && m.maxBatch > 1 ? `batches of up to ${m.maxBatch} within ${m.maxDelayMs} ms` : 'one request per run';
  return `model '${m.name}'${m.version ? ` version ${m.version}` : ''}: ${io}; ${batching}${tasks.length > 0 ? `; /v1 ${tasks.join(', ')}` : ''}`;
}

/**
 * Resolves with the first of SIGTERM and SIGINT (a second one exits at once), or when the
 * launcher that relaunched this server has gone (allocator.ts).
 */
function nextSignal(): Promise<string> {
  const gone = launcherGone()?.then(() => 'the launcher exited');
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on).off('SIGINT', on);
      process.once('SIGTERM', () => process.exit(1)).once('SIGINT', () => process.exit(1));
      resolve(signal);
    };
    process.on('SIGTERM', on).on('SIGINT', on);
    void gone?.then(resolve);
  });
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { values, flags, lists } = parse(argv, {
    model: { type: 'string', multiple: true }, repository: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
    'max-batch': { type: 'string' }, 'max-delay-ms': { type: 'string' }, 'max-queue': { type: 'string' }, 'timeout-ms': { type: 'string' },
    'max-body-mb': { type: 'string' }, 'drain-ms': { type: 'string' }, 'idle-trim-ms': { type: 'string' }, threads: { type: 'string' }, size: { type: 'string' }, 'max-pixels': { type: 'string' },
    scale: { type: 'string' }, 'min-size': { type: 'string' }, 'max-size': { type: 'string' }, labels: { type: 'string', multiple: true },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  const threads = intOption(values.threads, 'threads');
  const drainMs = intOption(values['drain-ms'], 'drain-ms', 0) ?? 10_000;
  const shared: Shared = {
    batching: { maxBatch: intOption(values['max-batch'], 'max-batch') ?? 16, dynamic: true, maxDelayMs: intOption(values['max-delay-ms'], 'max-delay-ms', 0) ?? 5 },
    // ONNX Runtime's arena stays on (runs are faster with it); the server trims it when idle.
    session: { ...(threads ? { threads } : {}) },
    classifyValues: { size: values.size, 'max-pixels': values['max-pixels'] },
    scale: scaleOption(values.scale),
    transform: resizeOptions(values),
  };
  // The sessions run in a worker thread, so that requests are read while a batch runs.
  registerBackend(workerBackend, { preferred: true });
  // What is served, and every name checked, before the first model loads.
  const specs = (lists.model ?? []).map((spec) => namedValue(spec, 'model', 'WEIGHTS'));
  const repository = values.repository ? await readRepository(values.repository) : [];
  const names = [...specs.map(([name]) => name), ...repository.map((e) => e.name)];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new SwiftFormerError('BAD_ARGUMENT', `two models are named '${twice}'`);
  const labels = labelFiles(lists.labels, names.length > 0 ? names : ['default']);
  const models: ServedModel[] = [];
  try {
    for (const [name, source] of specs) models.push(await named(name, () => loadNamed(name, source, labels.get(name), shared)));
    for (const entry of repository) models.push(await named(entry.name, () => loadFromRepository(entry, labels.get(entry.name), shared)));
    if (models.length === 0) {
      const bundled = { ...shared.classifyValues, ...(labels.has('default') ? { labels: labels.get('default') } : {}) };
      models.push(classifierModel('default', await named('default', () => loadClassifier(bundled, 'serve', new Set(), shared.session)), shared.batching));
    }
    for (const m of models) await m.warmup?.();
  } catch (err) {
    await Promise.all(models.map((m) => m.release()));
    throw err;
  }
  const server = new InferenceServer(models, {
    maxQueue: intOption(values['max-queue'], 'max-queue') ?? 256,
    timeoutMs: intOption(values['timeout-ms'], 'timeout-ms') ?? 30_000,
    maxBodyBytes: (intOption(values['max-body-mb'], 'max-body-mb') ?? 64) * 1024 * 1024,
    maxPixels: intOption(values['max-pixels'], 'max-pixels', 0) ?? undefined,
    idleTrimMs: intOption(values['idle-trim-ms'], 'idle-trim-ms', 0) ?? 2000,
    version: packageVersion(),
  });
  const signal = nextSignal();
  let url: string;
  try {
    url = await server.listen(intOption(values.port, 'port', 0) ?? 8000, values.host ?? '127.0.0.1');
  } catch (err) {
    await server.shutdown(0);
    throw new SwiftFormerError('IO', `cannot listen on ${values.host ?? '127.0.0.1'}:${values.port ?? 8000}: ${(err as Error).message}`);
  }
  console.log(`listening on ${url}`);
  for (const m of models) console.error(describe(m));
  const received = await signal;
  console.error(`${received}: draining (up to ${drainMs} ms)`);
  const { drained, cut } = await server.shutdown(drainMs);
  if (!drained) throw new SwiftFormerError('IO', `${cut === 1 ? '1 request was' : `${cut} requests were`} still running after --drain-ms ${drainMs} and ${cut === 1 ? 'was' : 'were'} cut off`);
  console.error('stopped');
}
