/**
 * INT8 against fp32 for a model trained here (default: the bundled Fashion-MNIST model): test
 * accuracy of both over the whole test set, and latency side by side (interleaved, same runtime).
 *
 *   node --import tsx bench/int8.ts [--weights assets/default/model.safetensors] [--data fashion-mnist]
 *        [--calibration-images 512] [--batches 1,64] [--rounds 40] [--json FILE]
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { compareLatency } from '../src/measure/bench.js';
import { inputBatches, limitDataset, type ImageDataset } from '../src/data/dataset.js';
import { openTrainingData } from '../src/node/datasets.js';
import { modelTransform } from '../src/preprocess/transforms.js';
import { OnnxClassifier, type ImageClassifier } from '../src/models/exported.js';
import { writeFileAtomic } from '../src/node/files.js';
import { toOnnx } from '../src/graph/graph.js';
import { loadSwiftFormer } from '../src/models/model.js';
import { quantizeStatic } from '../src/graph/quantize.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import '../src/node/platform.js';

const { values } = parseArgs({
  options: {
    weights: { type: 'string', default: fileURLToPath(new URL('../assets/default/model.safetensors', import.meta.url)) },
    data: { type: 'string', default: 'fashion-mnist' },
    'calibration-images': { type: 'string', default: '512' },
    batches: { type: 'string', default: '1,64' },
    rounds: { type: 'string', default: '40' },
    json: { type: 'string' },
  },
});
const session = { threads: 2 };

const model = await loadSwiftFormer({ weights: values.weights, session });
const recordedInput = model.card.preprocessing;
if (!recordedInput) throw new Error(`${values.weights} has no recorded preprocessing: train it with this library`);
const preprocessing = recordedInput;
const { train, test } = await openTrainingData(values.data);
if (!test) throw new Error(`${values.data} has no test split`);

const transform = (image: RGBImage) => modelTransform(image, preprocessing);

async function accuracy(classifier: ImageClassifier, data: ImageDataset): Promise<number> {
  let correct = 0;
  let start = 0;
  for await (const tensor of inputBatches(data, transform, 64)) {
    const logits = await classifier.logits(tensor);
    const k = logits.shape[1]!;
    for (let i = 0; i < tensor.shape[0]!; i++, start++) {
      const row = logits.data.subarray(i * k, (i + 1) * k);
      if (row.indexOf(Math.max(...row)) === data.label(start)) correct++;
    }
  }
  return correct / data.length;
}

const [size] = preprocessing.inputSize;
const calibration = limitDataset(train, Number(values['calibration-images']));
const { graph } = await quantizeStatic(model.graph(size), inputBatches(calibration, transform, 64), { session });
const int8Bytes = toOnnx(graph, model.onnxMetadata());
const int8 = await OnnxClassifier.load(int8Bytes, { session });
const floatAccuracy = await accuracy(model, test);
const int8Accuracy = await accuracy(int8, test);
console.log(`test accuracy (${test.length} images): fp32 ${(100 * floatAccuracy).toFixed(2)}%, int8 ${(100 * int8Accuracy).toFixed(2)}%, drop ${(100 * (floatAccuracy - int8Accuracy)).toFixed(2)} points`);

const latency = [];
for (const batch of values.batches.split(',').map(Number)) {
  const [f, q] = await compareLatency(
    [{ name: 'fp32', model: model.toOnnx(size), input: 'pixel_values' }, { name: 'int8', model: int8Bytes, input: 'pixel_values' }],
    { batch, size, rounds: Number(values.rounds), session },
  );
  latency.push({ batch, fp32Ms: f!.medianMs, int8Ms: q!.medianMs, ratio: q!.medianMs / f!.medianMs });
  console.log(`batch ${batch}: fp32 ${f!.medianMs.toFixed(2)} ms, int8 ${q!.medianMs.toFixed(2)} ms, int8/fp32 ${(q!.medianMs / f!.medianMs).toFixed(3)}`);
}
await int8.release();
await model.release();
const cpuFlags = process.platform === 'linux' ? (await import('node:fs')).readFileSync('/proc/cpuinfo', 'utf8') : '';
const summary = {
  weights: values.weights, data: values.data, calibrationImages: calibration.length, testImages: test.length,
  fp32Accuracy: floatAccuracy, int8Accuracy, dropPoints: 100 * (floatAccuracy - int8Accuracy), latency,
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, avx512vnni: /avx512_vnni/.test(cpuFlags), avxvnni: /avx_vnni/.test(cpuFlags) },
};
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(summary, null, 2)}\n`);
