/**
 * Latency of our SwiftFormer-XS graph vs the official ONNX export, side by side in one process on
 * the same onnxruntime-node with identical options, interleaved so that machine noise hits both
 * (src/measure/bench.ts compareLatency). Also checks that the two give the same logits.
 *
 *   node --import tsx bench/latency.ts [--rounds 60] [--threads 2] [--batches 1,16] [--json]
 */
import { fileURLToPath } from 'node:url';
import { compareLatency, getBackend, loadModel, syntheticPixels } from '../src/index.js';
import { relativeError } from '../test/fixtures.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    rounds: { type: 'string', default: '60' },
    threads: { type: 'string', default: '2' },
    batches: { type: 'string', default: '1,16' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const session = { threads: Number(values.threads) };
const fixtures = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));
const official = `${fixtures}official-onnx/swiftformer_xs.onnx`;

const model = await loadModel({ model: 'xs', weights: `${fixtures}xs/checkpoint_model_only.pth` });
const ours = model.toOnnx(224);

/** max|a - b| / max|b| of the two graphs' logits on one batch. */
async function agreement(batch: number): Promise<number> {
  const backend = getBackend();
  const [a, b] = await Promise.all([backend.createSession(ours, session), backend.createSession(official, session)]);
  const pixels = syntheticPixels(batch, 224);
  const x = (await a.run({ pixel_values: pixels })).logits!.data;
  const y = (await b.run({ input: pixels })).logits!.data;
  await Promise.all([a.release(), b.release()]);
  return relativeError(x, y);
}

const results = [];
for (const batch of values.batches.split(',').map(Number)) {
  const maxRelDiff = await agreement(batch);
  const [t, o] = await compareLatency(
    [{ name: 'ours', model: ours, input: 'pixel_values' }, { name: 'official', model: official, input: 'input' }],
    { batch, size: 224, rounds, session },
  );
  const row = { batch, oursMs: t!.medianMs, officialMs: o!.medianMs, ratio: t!.medianMs / o!.medianMs, maxRelDiff };
  results.push(row);
  if (!values.json) {
    console.log(`batch ${String(batch).padStart(3)}: ours ${row.oursMs.toFixed(2)} ms, official ${row.officialMs.toFixed(2)} ms, ratio ours/official ${row.ratio.toFixed(3)} (outputs agree to ${maxRelDiff.toExponential(1)} rel)`);
  }
}
if (values.json) console.log(JSON.stringify({ threads: session.threads, rounds, results }, null, 2));
await model.release();
