/**
 * Semantic FPN training throughput, ours against the PyTorch reference (bench/semfpn-torch.py), in
 * alternating short windows on the same machine: K iterations of our training loop, then K of
 * PyTorch's, repeated, so that both sides see the same load. Each iteration is what training
 * does per step: the batch from the data pipeline (mmseg's augmentation of the scenes, batch B
 * at a C x C crop), the step (forward, loss, backward), the BatchNorm statistics and the AdamW
 * update. Both sides: the same data, architecture (XS Semantic FPN, FPN 256, head 128, 11
 * classes, from the bundled Fashion-MNIST classifier's backbone), batch and threads.
 *
 *   node --import tsx bench/segmentation-train.ts --data data/scenes [--batch 8] [--crop 128]
 *        [--threads 2] [--window 4] [--windows 8] [--json bench/results/segmentation-train-throughput.json]
 *        [--profile DIR]   (also writes an ONNX Runtime profile of 3 of our steps and prints its top ops)
 *
 * Reported: images/s per side over all timed windows (total images / total seconds) and per
 * window, the ratio ours / PyTorch's, our time split into data wait, step and update, and the
 * machine (CPU model, flags, load average before and after).
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import '../src/node/platform.js';
import { SegmentationModel } from '../src/models/segmentation.js';
import { openSegmentationData } from '../src/node/segmentation-data.js';
import { writeFileAtomic } from '../src/node/files.js';
import { prefetched } from '../src/train/loader.js';
import { cloneState, createOptimizer, globalGradNorm } from '../src/train/optim.js';
import { defaultImgScale, SegmentationLoader } from '../src/train/segmentation-trainer.js';
import { SegmentationTrainStep } from '../src/train/segmentation-step.js';
import { updateRunningStats } from '../src/train/step.js';
import { machine } from './machine.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: 'data/scenes' },
    batch: { type: 'string', default: '8' },
    crop: { type: 'string', default: '128' },
    threads: { type: 'string', default: '2' },
    window: { type: 'string', default: '4' },
    windows: { type: 'string', default: '8' },
    backbone: { type: 'string', default: fileURLToPath(new URL('../assets/default/model.safetensors', import.meta.url)) },
    json: { type: 'string' },
    profile: { type: 'string' },
  },
});
const batch = Number(values.batch);
const crop = Number(values.crop);
const threads = Number(values.threads);
const window = Number(values.window);
const windows = Number(values.windows);

// ---------------------------------------------------------------- the PyTorch side, a timing server

const torch = spawn('/usr/bin/python3', [
  fileURLToPath(new URL('semfpn-torch.py', import.meta.url)), '--data', values.data, '--serve-steps', '--batch-size', String(batch),
  '--crop', `${crop},${crop}`, '--img-scale', defaultImgScale([crop, crop]).join(','), '--threads', String(threads), '--backbone', values.backbone,
], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: torch.stdout })[Symbol.asyncIterator]();
async function torchLine(): Promise<Record<string, unknown>> {
  for (;;) {
    const next = await lines.next();
    if (next.done) throw new Error('the PyTorch side ended early');
    if (next.value.startsWith('{')) return JSON.parse(next.value);
    process.stderr.write(`torch: ${next.value}\n`);
  }
}
async function torchWindow(k: number): Promise<number[]> {
  torch.stdin.write(`${k}\n`);
  return (await torchLine()).seconds as number[];
}

// ---------------------------------------------------------------- our side, the training loop's work per iteration

const data = await openSegmentationData(values.data, { splits: ['train'] });
const model = await SegmentationModel.load({ weights: values.backbone, numClasses: data.classes.length, strict: false });
const config = model.config;
const state = cloneState(model.state);
await model.release();
const pipeline = { cropSize: [crop, crop] as [number, number], imgScale: defaultImgScale([crop, crop]), ratioRange: [0.5, 2] as [number, number], catMaxRatio: 0.75, flipProb: 0.5, photometric: true, ignoreIndex: 255 };
const loader = new SegmentationLoader(data.train!, batch, pipeline, 0, { channels: config.headChannels, p: config.dropout });

async function ourSteps(step: SegmentationTrainStep, optimizer: ReturnType<typeof createOptimizer>, from: number, k: number, phases: Record<string, number>): Promise<number[]> {
  const seconds: number[] = [];
  let mark = performance.now();
  for await (const b of prefetched(from, from + k, 1, (g) => loader.batch(g, g - from))) {
    const t0 = performance.now();
    const result = await step.run(state, b.pixels, b.labels, b.mask);
    const t1 = performance.now();
    if (!Number.isFinite(result.loss) || !Number.isFinite(globalGradNorm(result.grads, step.step.params))) throw new Error('non-finite');
    updateRunningStats(state, result.stats, 0.1);
    optimizer.step(result.grads, 2e-4);
    const t2 = performance.now();
    phases.data = (phases.data ?? 0) + (t0 - mark);
    phases.step = (phases.step ?? 0) + (t1 - t0);
    phases.update = (phases.update ?? 0) + (t2 - t1);
    seconds.push((t2 - mark) / 1000);
    mark = performance.now();
  }
  return seconds;
}

const sessionOptions = { threads };
const step = await SegmentationTrainStep.create(config, { batch, inputSize: crop }, sessionOptions);
const optimizer = createOptimizer({ kind: 'adamw', weightDecay: 1e-4, betas: [0.9, 0.999], eps: 1e-8, decayAll: true }, state, step.step.params);
const ready = await torchLine();
const before = loadavg();
const ours: number[][] = [];
const theirs: number[][] = [];
const phases: Record<string, number> = {};
let g = 0;
// Warm-up: one untimed window each (first runs allocate and tune).
await ourSteps(step, optimizer, g, 2, {});
g += 2;
await torchWindow(2);
for (let w = 0; w < windows; w++) {
  ours.push(await ourSteps(step, optimizer, g, window, phases));
  g += window;
  theirs.push(await torchWindow(window));
  const rate = (s: number[]) => ((batch * s.length) / s.reduce((a, b) => a + b, 0)).toFixed(2);
  console.error(`window ${w + 1}/${windows}: ours ${rate(ours.at(-1)!)} img/s, PyTorch ${rate(theirs.at(-1)!)} img/s  (load ${loadavg()[0]!.toFixed(2)})`);
}
const after = loadavg();
torch.stdin.end();

const imgPerSec = (all: number[][]) => (batch * all.flat().length) / all.flat().reduce((a, b) => a + b, 0);
const oursRate = imgPerSec(ours);
const theirsRate = imgPerSec(theirs);
const total = Object.values(phases).reduce((a, b) => a + b, 0);
const result = {
  bench: 'segmentation-train-throughput', date: new Date().toISOString(), ...machine(), loadavg_before: before, loadavg_after: after,
  torch: { version: ready.torch, blas: ready.blas, threads: ready.threads }, onnxruntime: JSON.parse(readFileSync(fileURLToPath(new URL('../node_modules/onnxruntime-node/package.json', import.meta.url)), 'utf8')).version,
  model: `Semantic FPN XS (FPN ${config.neckChannels}, head ${config.headChannels}, ${config.numClasses} classes)`, batch, crop, threads, window, windows,
  img_per_s: { ours: oursRate, pytorch: theirsRate }, ratio_ours_over_pytorch: oursRate / theirsRate,
  per_window_img_per_s: { ours: ours.map((s) => (batch * s.length) / s.reduce((a, b) => a + b, 0)), pytorch: theirs.map((s) => (batch * s.length) / s.reduce((a, b) => a + b, 0)) },
  our_time_split: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, v / total])),
};
console.log(`ours ${oursRate.toFixed(2)} img/s, PyTorch ${theirsRate.toFixed(2)} img/s: ours / PyTorch = ${(oursRate / theirsRate).toFixed(3)}`);
console.log(`our time: ${Object.entries(result.our_time_split).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(', ')}`);
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(result, null, 2)}\n`);

if (values.profile) {
  await mkdir(values.profile, { recursive: true });
  const profiled = await SegmentationTrainStep.create(config, { batch, inputSize: crop }, { threads, profilePrefix: join(values.profile, 'semfpn-train') });
  await ourSteps(profiled, optimizer, g, 3, {});
  await profiled.release();
  const file = readdirSync(values.profile).filter((f) => f.startsWith('semfpn-train')).sort().at(-1)!;
  const events = JSON.parse(readFileSync(join(values.profile, file), 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
  const byOp = new Map<string, number>();
  for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) byOp.set(e.args?.op_name ?? '?', (byOp.get(e.args?.op_name ?? '?') ?? 0) + e.dur);
  const sum = [...byOp.values()].reduce((a, b) => a + b, 0);
  console.log(`ONNX Runtime profile (${join(values.profile, file)}), kernel time by op over 3 steps:`);
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${op.padEnd(24)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${((100 * us) / sum).toFixed(1)}%`);
}
await step.release();
