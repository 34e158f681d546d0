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
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../src/node/platform.js';
import { SegmentationModel } from '../src/models/segmentation.js';
import { openSegmentationData } from '../src/node/segmentation-data.js';
import { writeFileAtomic } from '../src/node/files.js';
import { prefetched } from '../src/train/loader.js';
import { cloneState, createOptimizer, globalGradNorm } from '../src/train/optim.js';
import { defaultImgScale, SegmentationLoader } from '../src/train/segmentation-trainer.js';
import { SegmentationTrainStep } from '../src/train/segmentation-step.js';
import { updateRunningStats } from '../src/train/step.js';
import { interleave, printProfile, profileByOp, throughputRecord, torchServer } from './train-side-by-side.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
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

const torch = await torchServer('semfpn-torch.py', [
  '--data', values.data, '--batch-size', String(batch), '--crop', `${crop},${crop}`, '--img-scale', defaultImgScale([crop, crop]).join(','),
  '--threads', String(threads), '--backbone', values.backbone,
]);

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
const phases: Record<string, number> = {};
let g = 0;
const run = await interleave(async (k) => {
  const seconds = await ourSteps(step, optimizer, g, k, g === 0 ? {} : phases);
  g += k;
  return seconds;
}, torch, { window, windows, warmup: 2, batch });
torch.end();

const total = Object.values(phases).reduce((a, b) => a + b, 0);
const record = throughputRecord('segmentation-train-throughput', torch, run, batch);
const result = {
  ...record,
  model: `Semantic FPN XS (FPN ${config.neckChannels}, head ${config.headChannels}, ${config.numClasses} classes)`, batch, crop, threads, window, windows,
  our_time_split: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, v / total])),
};
const rates = record.img_per_s as { ours: number; pytorch: number };
console.log(`ours ${rates.ours.toFixed(2)} img/s, PyTorch ${rates.pytorch.toFixed(2)} img/s: ours / PyTorch = ${(rates.ours / rates.pytorch).toFixed(3)}`);
console.log(`our time: ${Object.entries(result.our_time_split).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(', ')}`);
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(result, null, 2)}\n`);

if (values.profile) {
  await mkdir(values.profile, { recursive: true });
  const profiled = await SegmentationTrainStep.create(config, { batch, inputSize: crop }, { threads, profilePrefix: join(values.profile, 'semfpn-train') });
  await ourSteps(profiled, optimizer, g, 3, {});
  await profiled.release();
  printProfile(profileByOp(values.profile, 'semfpn-train', 3), 'step (3 steps)');
}
await step.release();
