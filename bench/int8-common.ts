/**
 * What the INT8 benchmarks share: SwiftFormer-XS with the official-layout fixture weights
 * (../shared/fixtures/xs), its example inputs, calibration images (assets/examples at 224 with the
 * official transform), profiling a session, and the record of the machine.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concatBatch, type FloatTensor } from '../src/core/tensor.js';
import { inputBatches, type ImageDataset } from '../src/data/dataset.js';
import { openTrainingData } from '../src/node/datasets.js';
import { modelTransform } from '../src/preprocess/transforms.js';
import type { ImageClassifier } from '../src/models/exported.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import { loadSwiftFormer, type SwiftFormerModel } from '../src/models/model.js';
import { preprocess } from '../src/node/decode.js';
import { getBackend, type SessionOptions } from '../src/runtime/runtime.js';
import type { ProfileEvent } from '../src/measure/profile.js';
import { INTEGER_OPS, type IntegerOp, type QuantizeOptions } from '../src/graph/quantize.js';
import { fixtureTensor, FIXTURES } from '../test/fixtures.js';
import '../src/node/platform.js';

export { machineRecord } from '../src/cli/machine.js';

const EXAMPLES = fileURLToPath(new URL('../assets/examples/', import.meta.url));
export const DEFAULT_WEIGHTS = fileURLToPath(new URL('../assets/default/model.safetensors', import.meta.url));

/** XS with the fixture's random official-layout weights, and the fixture's two example inputs (224). */
export async function xsFixture(session?: SessionOptions): Promise<{ model: SwiftFormerModel; inputs: FloatTensor }> {
  const model = await loadSwiftFormer({ weights: `${FIXTURES}xs/checkpoint_model_only.pth`, ...(session ? { session } : {}) });
  return { model, inputs: fixtureTensor('xs', 'input.bin') };
}

/** The example photos of assets/examples, preprocessed as the official eval transform does, as one batch. */
export async function examplePhotos(size = 224): Promise<FloatTensor> {
  const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.png')).sort();
  return concatBatch(await Promise.all(files.map((f) => preprocess(join(EXAMPLES, f), { size }))));
}

/**
 * Runs `model` `runs` times on `feeds` with ONNX Runtime's profiler on and returns its trace.
 * Several models profile side by side (round-robin, as compareLatency times them).
 */
export async function profileRuns(models: (Uint8Array | string)[], feeds: Record<string, FloatTensor>[], runs: number, session: SessionOptions = {}): Promise<ProfileEvent[][]> {
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-profile-'));
  try {
    const sessions = await Promise.all(models.map((m, i) => getBackend().createSession(m, { ...session, profilePrefix: join(dir, `m${i}`) })));
    for (let r = 0; r < runs; r++) for (const [i, s] of sessions.entries()) await s.run(feeds[i]!);
    // ONNX Runtime writes the trace when the session ends.
    await Promise.all(sessions.map((s) => s.release()));
    const files = await readdir(dir);
    return Promise.all(models.map(async (_, i) => JSON.parse(await readFile(join(dir, files.find((f) => f.startsWith(`m${i}_`))!), 'utf8')) as ProfileEvent[]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const without = (...ops: IntegerOp[]) => INTEGER_OPS.filter((o) => !ops.includes(o));

/** The quantization choices the INT8 benchmarks compare, by name: each differs from `default` in one thing. */
export const VARIANTS: Record<string, QuantizeOptions> = {
  /** What export --int8 writes: every conv, Gemm, residual add and GELU on integers, QDQ, per-channel +-63 weights. */
  default: {},
  /** As the first INT8 export: Q/DQ around every conv and Gemm, GELU's erf pattern and the adds in float. */
  main: { ops: ['conv1x1', 'conv', 'depthwise', 'gemm'], fuseGelu: false },
  /** GELU in float (one Gelu node between a DequantizeLinear and a QuantizeLinear). */
  'float-gelu': { ops: without('gelu') },
  /** GELU in float as the erf pattern (ONNX Runtime duplicates the DequantizeLinear, fuses nothing). */
  'erf-gelu': { ops: without('gelu'), fuseGelu: false },
  'float-adds': { ops: without('add') },
  'float-depthwise': { ops: without('depthwise') },
  'float-3x3': { ops: without('conv') },
  /** Only the 1x1 convolutions and linear layers on integers. */
  'only-1x1': { ops: ['conv1x1', 'gemm'] },
  'per-tensor': { perChannel: false },
  /** Weights in +-127: for VNNI / AMX / ARM dot products (AVX2 kernels saturate). */
  'full-range': { weightMax: 127 },
  qoperator: { format: 'qoperator' },
};

/** A model trained here (default: the bundled Fashion-MNIST one) with its data and recorded transform. */
export async function trainedModel(weights = DEFAULT_WEIGHTS, data = 'fashion-mnist', session?: SessionOptions) {
  const model = await loadSwiftFormer({ weights, ...(session ? { session } : {}) });
  const preprocessing = model.card.preprocessing;
  if (!preprocessing) throw new Error(`${weights} has no recorded preprocessing: train it with this library`);
  const { train, test } = await openTrainingData(data);
  if (!test) throw new Error(`${data} has no test split`);
  const transform = (image: RGBImage) => modelTransform(image, preprocessing);
  return { model, train, test, transform, size: preprocessing.inputSize[0] };
}

/** Top-1 accuracy of `classifier` over `data`. */
export async function accuracy(classifier: ImageClassifier, data: ImageDataset, transform: (image: RGBImage) => FloatTensor): Promise<number> {
  let correct = 0;
  let start = 0;
  for await (const tensor of inputBatches(data, transform, 64)) {
    const top = argmaxRows((await classifier.logits(tensor)).data, tensor.shape[0]!);
    for (const label of top) if (label === data.label(start++)) correct++;
  }
  return correct / data.length;
}

/** The index of the largest value of each of the `rows` rows of `data`. */
export function argmaxRows(data: Float32Array, rows: number): number[] {
  const k = data.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let i = 1; i < k; i++) if (data[r * k + i]! > data[r * k + best]!) best = i;
    return best;
  });
}
