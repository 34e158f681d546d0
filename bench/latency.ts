/**
 * Latency of our SwiftFormer-XS graph vs the official ONNX export, side by side in one process on
 * the same onnxruntime-node with identical options, interleaved so that machine noise hits both.
 *
 *   node --import tsx bench/latency.ts [--rounds 60] [--threads 2] [--batches 1,16] [--json]
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { getBackend, loadModel, type FloatTensor, type Session } from '../src/index.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '60' },
    threads: { type: 'string', default: '2' },
    batches: { type: 'string', default: '1,16' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const threads = Number(values.threads);
const fixtures = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function randomPixels(batch: number): FloatTensor {
  const data = new Float32Array(batch * 3 * 224 * 224);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 2;
  return { dtype: 'float32', shape: [batch, 3, 224, 224], data };
}

async function time(session: Session, feeds: Record<string, FloatTensor>): Promise<number> {
  const start = performance.now();
  await session.run(feeds);
  return performance.now() - start;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / m;
}

const model = await loadModel({ model: 'xs', weights: `${fixtures}xs/checkpoint_model_only.pth` });
const backend = getBackend();
const options = { threads, optimization: 'all' as const };
const ours = await backend.createSession(model.toOnnx(224), options);
const official = await backend.createSession(`${fixtures}official-onnx/swiftformer_xs.onnx`, options);

const results = [];
for (const batch of values.batches.split(',').map(Number)) {
  const pixels = randomPixels(batch);
  const a = (await ours.run({ pixel_values: pixels })).logits!;
  const b = (await official.run({ input: pixels })).logits!;
  const agreement = maxRelDiff(a.data, b.data);
  const warmup = Math.max(3, Math.round(rounds / 10));
  for (let i = 0; i < warmup; i++) {
    await time(ours, { pixel_values: pixels });
    await time(official, { input: pixels });
  }
  const t = { ours: [] as number[], official: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    // Alternate which one goes first so neither always runs on a warmer cache.
    if (i % 2 === 0) {
      t.ours.push(await time(ours, { pixel_values: pixels }));
      t.official.push(await time(official, { input: pixels }));
    } else {
      t.official.push(await time(official, { input: pixels }));
      t.ours.push(await time(ours, { pixel_values: pixels }));
    }
  }
  const row = { batch, oursMs: median(t.ours), officialMs: median(t.official), ratio: median(t.ours) / median(t.official), maxRelDiff: agreement };
  results.push(row);
  if (!values.json) {
    console.log(`batch ${String(batch).padStart(3)}: ours ${row.oursMs.toFixed(2)} ms, official ${row.officialMs.toFixed(2)} ms, ratio ours/official ${row.ratio.toFixed(3)} (outputs agree to ${agreement.toExponential(1)} rel)`);
  }
}
if (values.json) console.log(JSON.stringify({ threads, rounds, results }, null, 2));
await ours.release();
await official.release();
await model.release();
