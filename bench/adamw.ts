/**
 * One AdamW step over SwiftFormer-XS-sized parameters (3.5 M floats by default): the WebAssembly
 * SIMD kernel against the JavaScript loop (`simd: false`), side by side in one run, the two taking
 * turns round by round (this machine's speed drifts more within minutes than between the two).
 * Prints the median step time of each and their ratio; `--out FILE` writes them as JSON with the
 * machine (CPU, cores, SIMD flags, load average).
 *
 *   node --import tsx bench/adamw.ts [--params 3500000] [--steps 10] [--rounds 5] [--out FILE]
 *
 * The numbers of both paths against PyTorch's formula are test/train.test.ts's; this is only speed.
 */
import type { StateDict } from '../src/core/tensor.js';
import { writeFileAtomic } from '../src/node/files.js';
import { AdamW } from '../src/train/optim.js';
import { simdAvailable } from '../src/train/simd.js';
import { benchArgs } from './args.js';
import { machine } from './machine.js';

const { values } = benchArgs(import.meta.url, {
  options: { params: { type: 'string', default: '3500000' }, steps: { type: 'string', default: '10' }, rounds: { type: 'string', default: '5' }, out: { type: 'string' } },
});
const [params, steps, rounds] = [Number(values.params), Number(values.steps), Number(values.rounds)];
if (!simdAvailable()) {
  console.error('this runtime has no WebAssembly SIMD: there is only the JavaScript path to time');
  process.exit(1);
}

/** An optimizer over one parameter of `params` floats, and its gradient. */
function setup(simd: boolean): { opt: AdamW; grads: Map<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> } {
  const state: StateDict = new Map([['w', { dtype: 'float32', shape: [params], data: new Float32Array(params).fill(0.5) }]]);
  const grads = new Map([['w', { dtype: 'float32' as const, shape: [params], data: new Float32Array(params).fill(1e-3) }]]);
  return { opt: new AdamW(state, ['w'], { lr: 1e-3, weightDecay: 0.025, simd }), grads };
}

/** Milliseconds per step, each of `steps` timed; the median. */
function timeSteps({ opt, grads }: ReturnType<typeof setup>): number {
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    opt.step(grads);
    times.push(performance.now() - t);
  }
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const paths = { simd: setup(true), js: setup(false) };
for (const p of Object.values(paths)) p.opt.step(p.grads); // warm-up: first touch of the memory, JIT
const perRound: { simd: number; js: number }[] = [];
for (let r = 0; r < rounds; r++) {
  const simd = timeSteps(paths.simd);
  const js = timeSteps(paths.js);
  perRound.push({ simd, js });
  console.log(`round ${r + 1}: SIMD ${simd.toFixed(2)} ms, JavaScript ${js.toFixed(2)} ms per step (${(js / simd).toFixed(2)}x)`);
}
const result = {
  params, steps, rounds,
  simdMs: median(perRound.map((p) => p.simd)),
  jsMs: median(perRound.map((p) => p.js)),
  ratio: median(perRound.map((p) => p.js / p.simd)),
  perRound,
  machine: machine(),
  node: process.version,
};
console.log(`median: SIMD ${result.simdMs.toFixed(2)} ms, JavaScript ${result.jsMs.toFixed(2)} ms per step of ${params} parameters: the kernel is ${result.ratio.toFixed(2)}x faster (${result.machine.cpu})`);
if (values.out) await writeFileAtomic(values.out, `${JSON.stringify(result, null, 2)}\n`);
