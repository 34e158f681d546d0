/**
 * INT8 against fp32 for a model trained here (default: the bundled Fashion-MNIST model), as
 * `swiftformer export --int8` makes it: test accuracy of both over the whole test set, and
 * latency side by side (interleaved, same runtime; ratios are medians of per-round ratios).
 *
 *   node --import tsx bench/int8.ts [--weights assets/default/model.safetensors] [--data fashion-mnist]
 *        [--calibration-images 512] [--batches 1,64] [--rounds 40] [--json FILE]
 */
import { loadavg } from 'node:os';
import { compareLatency, pairedRatio } from '../src/measure/bench.js';
import { inputBatches, limitDataset } from '../src/data/dataset.js';
import { OnnxClassifier } from '../src/models/exported.js';
import { writeFileAtomic } from '../src/node/files.js';
import { int8Onnx } from '../src/cli/export.js';
import { accuracy, DEFAULT_WEIGHTS, machineRecord, trainedModel } from './int8-common.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    weights: { type: 'string', default: DEFAULT_WEIGHTS },
    data: { type: 'string', default: 'fashion-mnist' },
    'calibration-images': { type: 'string', default: '512' },
    batches: { type: 'string', default: '1,64' },
    rounds: { type: 'string', default: '40' },
    json: { type: 'string' },
  },
});
const session = { threads: 2 };
const loadBefore = loadavg();

const { model, train, test, transform, size } = await trainedModel(values.weights, values.data, session);
const calibration = limitDataset(train, Number(values['calibration-images']));
const int8Bytes = await int8Onnx(model, size, inputBatches(calibration, transform, 64), { session });
const int8 = await OnnxClassifier.load(int8Bytes, { session });
const floatAccuracy = await accuracy(model, test, transform);
const int8Accuracy = await accuracy(int8, test, transform);
console.log(`test accuracy (${test.length} images): fp32 ${(100 * floatAccuracy).toFixed(2)}%, int8 ${(100 * int8Accuracy).toFixed(2)}%, drop ${(100 * (floatAccuracy - int8Accuracy)).toFixed(2)} points`);

const latency = [];
for (const batch of values.batches.split(',').map(Number)) {
  const [f, q] = await compareLatency(
    [{ name: 'fp32', model: model.toOnnx(size), input: 'pixel_values' }, { name: 'int8', model: int8Bytes, input: 'pixel_values' }],
    { batch, size, rounds: Number(values.rounds), session },
  );
  const ratio = pairedRatio(q!, f!);
  latency.push({ batch, fp32Ms: f!.medianMs, int8Ms: q!.medianMs, ratio, loadavg: loadavg() });
  console.log(`batch ${batch}: fp32 ${f!.medianMs.toFixed(2)} ms, int8 ${q!.medianMs.toFixed(2)} ms, int8/fp32 ${ratio.toFixed(3)}`);
}
await int8.release();
await model.release();
const summary = {
  weights: values.weights, data: values.data, size, calibrationImages: calibration.length, testImages: test.length, int8Bytes: int8Bytes.length,
  fp32Accuracy: floatAccuracy, int8Accuracy, dropPoints: 100 * (floatAccuracy - int8Accuracy), latency,
  machine: { ...machineRecord(), loadavgBefore: loadBefore },
};
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(summary, null, 2)}\n`);
