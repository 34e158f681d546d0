/**
 * One AdamW step over SwiftFormer-XS-sized parameters (3.5 M floats by default): the WebAssembly
 * SIMD kernel against the JavaScript loop (`simd: false`), side by side in one run: the two
 * step in turns, each round starting with the other (src/measure/bench.ts interleavedTimes), so
 * that this machine's drift hits both alike. Prints the median step time of each and the median
 * of the per-round ratios; `--out FILE` writes them as JSON with the machine (CPU, cores, SIMD
 * flags, load average).
 *
 *   node --import tsx bench/adamw.ts [--params 3500000] [--rounds 50] [--out FILE]
 *
 * The numbers of both paths against PyTorch's formula are test/train.test.ts's; this is only speed.
 */
import type { StateDict } from '../src/core/tensor.js';
import { interleavedTimes, pairedRatio, timingOf } from '../src/measure/bench.js';
import { writeFileAtomic } from '../src/node/files.js';
import { AdamW } from '../src/train/optim.js';
import { simdAvailable } from '../src/train/simd.js';
import { benchArgs } from './args.js';
import { machine } from './machine.js';

const { values } = benchArgs(import.meta.url, {
  options: { params: { type: 'string', default: '3500000' }, rounds: { type: 'string', default: '50' }, out: { type: 'string' } },
});
const [params, rounds] = [Number(values.params), Number(values.rounds)];
if (!simdAvailable()) {
  console.error('this runtime has no WebAssembly SIMD: there is only the JavaScript path to time');
  process.exit(1);
}

/** One step of an optimizer over one parameter of `params` floats, with a constant gradient. */
function stepper(simd: boolean): () => Promise<void> {
  const state: StateDict = new Map([['w', { dtype: 'float32', shape: [params], data: new Float32Array(params).fill(0.5) }]]);
  const grads = new Map([['w', { dtype: 'float32' as const, shape: [params], data: new Float32Array(params).fill(1e-3) }]]);
  const opt = new AdamW(state, ['w'], { lr: 1e-3, weightDecay: 0.025, simd });
  return async () => opt.step(grads);
}

// Warm-up rounds: the first touch of the memory, the JIT.
const [simdTimes, jsTimes] = await interleavedTimes([stepper(true), stepper(false)], rounds, 3);
const [simd, js] = [timingOf('SIMD', simdTimes!), timingOf('JavaScript', jsTimes!)];
const result = { params, rounds, simdMs: simd.medianMs, jsMs: js.medianMs, ratio: pairedRatio(js, simd), simdSamples: simd.samples, jsSamples: js.samples, machine: machine(), node: process.version };
console.log(`median: SIMD ${result.simdMs.toFixed(2)} ms, JavaScript ${result.jsMs.toFixed(2)} ms per step of ${params} parameters: the kernel is ${result.ratio.toFixed(2)}x faster (${result.machine.cpu})`);
if (values.out) await writeFileAtomic(values.out, `${JSON.stringify(result, null, 2)}\n`);
