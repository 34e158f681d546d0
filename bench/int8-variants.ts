/**
 * The INT8 quantization choices, each measured: latency of SwiftFormer-XS at 224 against fp32
 * (interleaved rounds in one process; ratios are medians of per-round ratios), agreement with
 * fp32 on the official-layout XS fixture (top-1 and logits' relative error on its two example
 * inputs and the ten example photos, with this processor's integer kernels and as exact
 * dequantized arithmetic, which is what processors whose kernels do not saturate compute), and,
 * with --fmnist, the test accuracy drop of the bundled Fashion-MNIST model.
 *
 *   node --import tsx bench/int8-variants.ts [--variants default,main,...|all] [--batches 1,16]
 *        [--rounds 20] [--threads 2] [--fmnist] [--out bench/results/int8-variants.json]
 *
 * Calibration: the ten example photos (XS), 512 training images spread over the set (Fashion-MNIST).
 */
import { loadavg } from 'node:os';
import { writeFileAtomic } from '../src/node/files.js';
import { toOnnx, type Graph } from '../src/graph/graph.js';
import { quantizeStatic } from '../src/graph/quantize.js';
import { compareLatency, pairedRatio } from '../src/measure/bench.js';
import { describeCpu } from '../src/measure/cpu.js';
import { concatBatch, type FloatTensor } from '../src/core/tensor.js';
import { inputBatches, limitDataset } from '../src/data/dataset.js';
import { OnnxClassifier } from '../src/models/exported.js';
import { getBackend, type SessionOptions } from '../src/runtime/runtime.js';
import { localCpu } from '../src/cli/machine.js';
import { relativeError } from '../test/fixtures.js';
import { accuracy, argmaxRows, examplePhotos, machineRecord, trainedModel, VARIANTS, xsFixture } from './int8-common.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    variants: { type: 'string', default: 'all' },
    batches: { type: 'string', default: '1,16' },
    rounds: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    fmnist: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const session: SessionOptions = { threads: Number(values.threads) };
const names = values.variants === 'all' ? Object.keys(VARIANTS) : values.variants.split(',');
for (const n of names) if (!VARIANTS[n]) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS).join(', ')}`);
const loadBefore = loadavg();
console.log(`CPU: ${describeCpu(localCpu())}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);

/** Logits of a graph on `x`, with ONNX Runtime's integer kernels, or unoptimized (DequantizeLinear then float ops). */
async function logitsOf(graph: Graph, x: FloatTensor, exact: boolean): Promise<Float32Array> {
  const s = await getBackend().createSession(toOnnx(graph), { ...session, ...(exact ? { optimization: 'disabled' as const } : {}) });
  try {
    return (await s.run({ pixel_values: x })).logits!.data;
  } finally {
    await s.release();
  }
}

interface Agreement { top1Agree: number; inputs: number; relError: number }

function agreement(logits: Float32Array, reference: Float32Array, rows: number): Agreement {
  const [a, b] = [argmaxRows(logits, rows), argmaxRows(reference, rows)];
  return { top1Agree: a.filter((c, i) => c === b[i]).length, inputs: rows, relError: relativeError(logits, reference) };
}

// ---------------------------------------------------------------- XS at 224: agreement, then latency
const { model, inputs } = await xsFixture(session);
const fp32 = model.graph(224);
const photos = await examplePhotos(224);
const evalSet = concatBatch([inputs, photos]);
const reference = await logitsOf(fp32, evalSet, false);
const rows = evalSet.shape[0]!;
const graphs = new Map<string, Graph>();
const variants: Record<string, { kernels: Agreement; exact: Agreement; bytes: number; fmnist?: { fp32: number; int8: number; dropPoints: number; exact?: number }; latency: { batch: number; ratio: number }[] }> = {};
for (const name of names) {
  const { graph } = await quantizeStatic(fp32, [photos], { ...VARIANTS[name], session });
  graphs.set(name, graph);
  variants[name] = {
    kernels: agreement(await logitsOf(graph, evalSet, false), reference, rows),
    exact: agreement(await logitsOf(graph, evalSet, true), reference, rows),
    bytes: toOnnx(graph).length, latency: [],
  };
  const v = variants[name]!;
  console.log(`${name}: top-1 as fp32 on ${v.kernels.top1Agree}/${rows} (exact arithmetic ${v.exact.top1Agree}/${rows}), logits relative error ${v.kernels.relError.toFixed(4)} (exact ${v.exact.relError.toFixed(4)}), ${(v.bytes / 1e6).toFixed(2)} MB`);
}
await model.release();

const latency: { batch: number; fp32Ms: number; loadavg: number[] }[] = [];
for (const batch of values.batches.split(',').map(Number)) {
  const contenders = [{ name: 'fp32', model: toOnnx(fp32), input: 'pixel_values' }, ...names.map((n) => ({ name: n, model: toOnnx(graphs.get(n)!), input: 'pixel_values' }))];
  const timings = await compareLatency(contenders, { batch, size: 224, rounds: Number(values.rounds), session });
  latency.push({ batch, fp32Ms: timings[0]!.medianMs, loadavg: loadavg() });
  for (const t of timings.slice(1)) variants[t.name]!.latency.push({ batch, ratio: pairedRatio(t, timings[0]!) });
  console.log(`batch ${batch} (fp32 ${timings[0]!.medianMs.toFixed(1)} ms; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}): ${timings.slice(1).map((t) => `${t.name} ${pairedRatio(t, timings[0]!).toFixed(3)}`).join(', ')}`);
}

// ---------------------------------------------------------------- Fashion-MNIST accuracy
if (values.fmnist) {
  const fm = await trainedModel(undefined, undefined, session);
  const calibration = limitDataset(fm.train, 512);
  const fp32Accuracy = await accuracy(fm.model, fm.test, fm.transform);
  const classifierAccuracy = async (bytes: Uint8Array, options: SessionOptions) => {
    const int8 = await OnnxClassifier.load(bytes, { session: options });
    try {
      return await accuracy(int8, fm.test, fm.transform);
    } finally {
      await int8.release();
    }
  };
  for (const name of names) {
    const { graph } = await quantizeStatic(fm.model.graph(fm.size), inputBatches(calibration, fm.transform, 64), { ...VARIANTS[name], session });
    const int8Accuracy = await classifierAccuracy(toOnnx(graph), session);
    variants[name]!.fmnist = { fp32: fp32Accuracy, int8: int8Accuracy, dropPoints: 100 * (fp32Accuracy - int8Accuracy) };
    // Full-range weights saturate here: what a processor with VNNI computes is the exact arithmetic.
    if (VARIANTS[name]!.weightMax === 127) variants[name]!.fmnist!.exact = await classifierAccuracy(toOnnx(graph), { ...session, optimization: 'disabled' });
    console.log(`${name}: Fashion-MNIST ${(100 * int8Accuracy).toFixed(2)}% (fp32 ${(100 * fp32Accuracy).toFixed(2)}%)${variants[name]!.fmnist!.exact ? `, exact arithmetic ${(100 * variants[name]!.fmnist!.exact!).toFixed(2)}%` : ''}`);
  }
  await fm.model.release();
}

console.log('\n| variant | INT8/fp32 ' + latency.map((l) => `b${l.batch}`).join(' | ') + ' | top-1 as fp32 | logits rel. error (exact) | MB |' + (values.fmnist ? ' Fashion-MNIST drop |' : ''));
console.log('| --- | ' + latency.map(() => '---').join(' | ') + ' | --- | --- | --- |' + (values.fmnist ? ' --- |' : ''));
for (const [name, v] of Object.entries(variants)) {
  const cells = [name, ...v.latency.map((l) => l.ratio.toFixed(3)), `${v.kernels.top1Agree}/${v.kernels.inputs}`, `${v.kernels.relError.toFixed(4)} (${v.exact.relError.toFixed(4)})`, (v.bytes / 1e6).toFixed(2)];
  if (v.fmnist) cells.push(`${v.fmnist.dropPoints.toFixed(2)} points`);
  console.log(`| ${cells.join(' | ')} |`);
}
if (values.out) {
  const record = {
    model: 'xs (fixture weights, official layout)', size: 224, rounds: Number(values.rounds), threads: session.threads,
    calibration: 'assets/examples (10 photos)', agreementInputs: 'xs/input.bin (2) + assets/examples (10)',
    machine: { ...machineRecord(), loadavgBefore: loadBefore }, latency, variants, options: Object.fromEntries(names.map((n) => [n, VARIANTS[n]])),
  };
  await writeFileAtomic(values.out, `${JSON.stringify(record, null, 2)}\n`);
}
