/**
 * Mask R-CNN training side by side with torchvision (bench/maskrcnn-torch.py), on the same machine:
 * XS Mask R-CNN (FPN 256, TwoMLPHead 1024, mask head 4 x 256) from the bundled Fashion-MNIST
 * classifier's backbone (assets/default/model.safetensors) on the Fashion-MNIST scenes in COCO
 * format (scripts/make-scenes.ts), with the same data, schedule (AdamW lr 2e-4, weight decay 1e-4
 * on every parameter, linear warm-up from 0.001 x lr, x0.1 steps at the given epochs), image sizes
 * (short and long side --size), batch and threads on both sides.
 *
 *   node --import tsx bench/detection-train.ts --data data/scenes-det [--size 128] [--batch 2] [--epochs 4]
 *        [--milestones 3] [--warmup 100] [--threads 2] [--window 3] [--windows 6] [--out runs/detection-train]
 *        [--json bench/results/detection-train-scenes.json] [--skip-throughput] [--skip-train] [--profile DIR]
 *
 * 1. Throughput, interleaved (bench/train-side-by-side.ts): `window` iterations of ours, then of
 *    torchvision's, `windows` times, after one warm-up window each. An iteration is what training
 *    does per step: the batch (flip, resize), the train-mode proposals, matching and sampling, the
 *    forward, the five losses, the backward, the BatchNorm statistics and the AdamW update.
 * 2. Training: `swiftformer train --task detection` into <out>/ours (our evaluator each epoch), then
 *    maskrcnn-torch.py into <out>/torch (COCO results files each epoch) on the same images in the
 *    same order with the same flips (<out>/plan.json, see writePlan).
 * 3. The report: box and mask AP per epoch, both sides scored by OUR COCOeval (torchvision's results
 *    files through scoreCocoResults), training losses, epoch throughput, the machine; written to
 *    --json and the chart beside it (.svg).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../src/node/platform.js';
import { parseCocoInstances, parseCocoResults } from '../src/data/coco.js';
import { lineChart } from '../src/draw/svg.js';
import { evaluateCoco, type IouType } from '../src/metrics/cocoeval.js';
import { DetectionModel } from '../src/models/detector.js';
import { openCocoData } from '../src/node/coco-data.js';
import { writeFileAtomic } from '../src/node/files.js';
import { DetectionBatches, detectionParams, epochPlan } from '../src/train/detection-trainer.js';
import { LOSS_NAMES } from '../src/train/detection-step.js';
import { cloneState, createOptimizer, globalGradNorm } from '../src/train/optim.js';
import { updateRunningStats } from '../src/train/step.js';
import { machine } from './machine.js';
import { interleave, printProfile, profileByOp, throughputRecord, torchServer } from './train-side-by-side.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    data: { type: 'string', default: 'data/scenes-det' },
    size: { type: 'string', default: '128' },
    batch: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '4' },
    milestones: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '100' },
    lr: { type: 'string', default: '2e-4' },
    threads: { type: 'string', default: '2' },
    window: { type: 'string', default: '3' },
    windows: { type: 'string', default: '6' },
    seed: { type: 'string', default: '0' },
    backbone: { type: 'string', default: fileURLToPath(new URL('../assets/default/model.safetensors', import.meta.url)) },
    out: { type: 'string', default: 'runs/detection-train' },
    json: { type: 'string' },
    'skip-throughput': { type: 'boolean' },
    'skip-train': { type: 'boolean' },
    profile: { type: 'string' },
  },
});
const data = values.data;
const size = Number(values.size);
const batch = Number(values.batch);
const threads = Number(values.threads);
const epochs = Number(values.epochs);
const milestones = values.milestones.split(',').filter((m) => m.trim() !== '').map(Number);
const oursDir = join(values.out, 'ours');
const torchDir = join(values.out, 'torch');
const torchJson = join(values.out, 'torch.json');
const throughputJson = join(values.out, 'throughput.json');
const planJson = join(values.out, 'plan.json');

const torchArgs = [
  '--data', data, '--batch-size', String(batch), '--min-size', String(size), '--max-size', String(size), '--test-size', String(size),
  '--threads', String(threads), '--backbone', values.backbone, '--seed', values.seed, '--lr', values.lr, '--weight-decay', '1e-4', '--opt', 'adamw',
];

// ---------------------------------------------------------------- 1. throughput, interleaved

async function throughput(): Promise<Record<string, unknown>> {
  const torch = await torchServer('maskrcnn-torch.py', torchArgs);
  const train = await openCocoData(data, 'train');
  const model = await DetectionModel.load({ weights: values.backbone, numClasses: train.labels.numClasses, labels: train.labels.names, settings: { transform: { minSize: size, maxSize: size } } });
  const config = structuredClone(model.config);
  const state = cloneState(model.state);
  await model.release();
  const settings = { minSizes: [size], maxSize: size, flipProb: 0.5 };
  const batches = new DetectionBatches(config, train, settings, Number(values.seed), batch, { threads });
  const params = detectionParams(config, batch);
  const optimizer = createOptimizer({ kind: 'adamw', weightDecay: 1e-4, betas: [0.9, 0.999], eps: 1e-8, decayAll: true }, state, params);
  const stepsPerEpoch = Math.floor(train.length / batch);
  const phases: Record<string, number> = {};
  const padding = { rois: 0, roiRows: 0, positives: 0, maskRows: 0 };
  let g = 0;
  const ours = async (k: number, into: Record<string, number> | undefined, on = batches): Promise<number[]> => {
    const seconds: number[] = [];
    for (let i = 0; i < k; i++, g++) {
      const t0 = performance.now();
      const { result, timing, shape, counts } = await on.run(state, Math.floor(g / stepsPerEpoch), g % stepsPerEpoch);
      const t1 = performance.now();
      if (!Number.isFinite(result.loss) || !Number.isFinite(globalGradNorm(result.grads, params))) throw new Error('non-finite');
      updateRunningStats(state, result.stats, 0.1);
      optimizer.step(result.grads, Number(values.lr));
      const t2 = performance.now();
      if (into) {
        for (const [phase, ms] of Object.entries(timing)) into[phase] = (into[phase] ?? 0) + ms;
        into.update = (into.update ?? 0) + (t2 - t1);
        Object.assign(padding, { rois: padding.rois + counts.rois, roiRows: padding.roiRows + shape.rois, positives: padding.positives + counts.positives, maskRows: padding.maskRows + shape.maskRois });
      }
      seconds.push((t2 - t0) / 1000);
    }
    return seconds;
  };
  const window = Number(values.window);
  const windows = Number(values.windows);
  let warm = false;
  const run = await interleave(async (k) => {
    const s = await ours(k, warm ? phases : undefined);
    warm = true;
    return s;
  }, torch, { window, windows, warmup: 2, batch });
  torch.end();
  const total = Object.values(phases).reduce((a, b) => a + b, 0);
  const record = throughputRecord('detection-train-throughput', torch, run, batch);
  const result = {
    ...record,
    model: `Mask R-CNN XS (FPN ${config.fpnChannels}, box head ${config.representation}, mask head ${config.maskLayers?.join('/')}, ${config.numClasses} classes)`,
    batch, size, threads, window, windows,
    our_time_split: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, v / total])),
    our_rows: { sampled_rois: padding.rois, roi_rows: padding.roiRows, positives: padding.positives, mask_rows: padding.maskRows },
  };
  const rates = record.img_per_s as { ours: number; pytorch: number };
  console.log(`throughput: ours ${rates.ours.toFixed(3)} img/s, torchvision ${rates.pytorch.toFixed(3)} img/s: ours / torchvision = ${(rates.ours / rates.pytorch).toFixed(3)}`);
  console.log(`our time: ${Object.entries(result.our_time_split).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(', ')}; rows: ${JSON.stringify(result.our_rows)}`);
  if (values.profile) {
    await mkdir(values.profile, { recursive: true });
    const profiled = new DetectionBatches(config, train, settings, Number(values.seed), batch, { threads, profilePrefix: join(values.profile, 'maskrcnn-train') });
    await ours(4, undefined, profiled);
    await profiled.release();
    // The newest file is the last step graph's (the proposal graph's comes first): its runs after the first.
    printProfile(profileByOp(values.profile, 'maskrcnn-train', 4), 'step graph run (4 runs, the first included)');
  }
  await batches.release();
  await writeFileAtomic(throughputJson, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

// ---------------------------------------------------------------- 2. training, both sides

function run(command: string, args: string[]): Promise<{ seconds: number; loadavg: number[][] }> {
  const t0 = performance.now();
  const before = loadavg();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve({ seconds: (performance.now() - t0) / 1000, loadavg: [before, loadavg()] }) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

const oursCommand = [
  '--import', 'tsx', fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)), 'train', '--task', 'detection', '--data', data,
  '--finetune', values.backbone, '--min-size', String(size), '--max-size', String(size), '--epochs', String(epochs), '--batch-size', String(batch),
  '--lr', values.lr, '--weight-decay', '1e-4', '--optimizer', 'adamw', '--milestones', milestones.join(','), '--warmup-steps', values.warmup,
  '--seed', values.seed, '--threads', String(threads), '--out', oursDir,
];
const torchCommand = [
  fileURLToPath(new URL('maskrcnn-torch.py', import.meta.url)), ...torchArgs, '--epochs', String(epochs), '--lr-steps', milestones.join(','),
  '--warmup-iters', values.warmup, '--out', torchDir, '--json', torchJson, '--plan', planJson,
];

/**
 * The images, in order and with their flips, that our training draws each epoch: torchvision's side
 * trains on the same sequence (its --plan), so that the two runs differ only by the implementation
 * and by the anchor and proposal samples each draws. Two independent shuffles left a gap between the
 * runs' APs that a single seed could not tell from noise at this AP level.
 */
async function writePlan(): Promise<void> {
  const train = await openCocoData(data, 'train');
  const d = { minSizes: [size], flipProb: 0.5 };
  const plan = Array.from({ length: epochs }, (_, epoch) => epochPlan(train, d, Number(values.seed), epoch, batch)
    .map((p) => ({ image_id: p.imageId, flip: p.flip, min_size: p.minSize })));
  await writeFileAtomic(planJson, `${JSON.stringify({ seed: Number(values.seed), batch, epochs: plan })}\n`);
}

// ---------------------------------------------------------------- 3. the report

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

function scoreTorch(epoch: { results: Record<'bbox' | 'segm', string> }): Record<IouType, number[]> {
  const gt = parseCocoInstances(json(join(data, 'annotations', 'instances_val.json')), 'instances_val.json');
  const score = (kind: IouType) => {
    const rows = json(epoch.results[kind]) as unknown[];
    // An empty results file scores 0 everywhere (pycocotools' loadRes refuses it).
    return rows.length === 0 ? new Array<number>(12).fill(0) : evaluateCoco(gt, parseCocoResults(rows, gt, epoch.results[kind]).detections, kind).stats;
  };
  return { bbox: score('bbox'), segm: score('segm') };
}

function report(timing: Record<string, unknown>): Record<string, unknown> {
  const ours = readFileSync(join(oursDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const torch = json(torchJson);
  const epochsOut = ours.map((m, i) => {
    const t = torch.epochs[i];
    const s = t ? scoreTorch(t) : undefined;
    return {
      epoch: m.epoch,
      ours: {
        bbox_AP: m.test_bbox_AP, bbox_AP50: m.test_bbox_AP50, segm_AP: m.test_segm_AP, segm_AP50: m.test_segm_AP50,
        train_loss: m.train_loss, losses: Object.fromEntries(LOSS_NAMES.map((k) => [k, m[`train_${k}`]])), img_per_s: m.img_per_s, seconds: m.seconds, phase_ms: m.phase_ms,
      },
      ...(t && s ? {
        torchvision: {
          bbox_AP: s.bbox[0], bbox_AP50: s.bbox[1], segm_AP: s.segm[0], segm_AP50: s.segm[1],
          train_loss: LOSS_NAMES.reduce((a, k) => a + t[k], 0), losses: Object.fromEntries(LOSS_NAMES.map((k) => [k, t[k]])), img_per_s: t.img_per_s, seconds: t.seconds, detections: t.detections,
        },
      } : {}),
    };
  });
  const last = epochsOut.at(-1)!;
  const dataset = json(join(data, 'dataset.json'));
  const a = dataset.args;
  return {
    bench: 'detection-train-scenes', date: new Date().toISOString(), ...machine(),
    data: `${data}: scripts/make-scenes.ts --train ${a.train} --val ${a.val} --size ${a.size} --seed ${a.seed} (${torch.train_images} train / ${torch.val_images} val scenes, ${torch.num_classes - 1} classes)`,
    recipe: {
      model: 'Mask R-CNN XS: SwiftFormer-XS fork_feat + FPN 256 + LastLevelMaxPool, RPN, TwoMLPHead 1024, mask head 4 x 256 (torchvision 0.14 defaults); backbone from assets/default/model.safetensors',
      optimizer: `AdamW lr ${values.lr}, weight decay 1e-4 on every parameter`, schedule: `x0.1 at epoch(s) ${milestones.join(', ')}, linear warm-up over ${values.warmup} iterations from 0.001 x lr`,
      epochs, batch, image_size: `short side ${size}, long side <= ${size}`, flip: 0.5, threads,
      order: 'both sides train on the same images in the same order with the same flips (plan.json from our seeded draws); each draws its own anchor and proposal samples',
      evaluation: 'COCO box and mask AP on the val split, both sides scored by our COCOeval (src/metrics/cocoeval.ts); torchvision\'s detections read from its COCO results files',
    },
    torchvision: { torch: torch.torch, blas: torch.blas, threads: torch.threads, backbone_init: torch.backbone_init },
    training_wall: timing,
    epochs: epochsOut,
    final: {
      bbox_AP: { ours: last.ours.bbox_AP, torchvision: last.torchvision?.bbox_AP }, segm_AP: { ours: last.ours.segm_AP, torchvision: last.torchvision?.segm_AP },
      bbox_AP_gap_points: last.torchvision ? 100 * (last.ours.bbox_AP - last.torchvision.bbox_AP!) : undefined,
    },
    ...(existsSync(throughputJson) ? { throughput_interleaved: json(throughputJson) } : {}),
  };
}

function chart(result: Record<string, unknown>): string {
  const epochsOut = result.epochs as { epoch: number; ours: Record<string, number>; torchvision?: Record<string, number> }[];
  const curve = (side: 'ours' | 'torchvision', key: string, scale = 100) => epochsOut.flatMap((e) => (e[side] ? [[e.epoch, scale * e[side]![key]!] as [number, number]] : []));
  const xRange: [number, number] = [1, Math.max(2, epochsOut.length)];
  const panel = (title: string, key: string, yLabel: string, scale = 100) => ({
    title, xLabel: 'epoch', yLabel, xRange, integerX: true,
    series: [{ name: 'ours (ONNX Runtime)', points: curve('ours', key, scale) }, { name: 'torchvision', points: curve('torchvision', key, scale), dash: '5,3' }],
  });
  return lineChart([panel('val box AP (%)', 'bbox_AP', 'AP (%)'), panel('val mask AP (%)', 'segm_AP', 'AP (%)'), panel('training loss (sum of five)', 'train_loss', 'loss', 1)],
    { title: `Mask R-CNN XS on the Fashion-MNIST scenes, ours vs torchvision (${String(result.cpu)}, ${threads} threads)` });
}

// ---------------------------------------------------------------- main

await mkdir(values.out, { recursive: true });
if (!values['skip-throughput']) await throughput();
// With --skip-train the report is rebuilt from the runs in --out: keep their wall times from the last report.
const timing: Record<string, unknown> = values['skip-train'] && values.json && existsSync(values.json) ? json(values.json).training_wall ?? {} : {};
if (!values['skip-train']) {
  await writePlan();
  console.error(`ours: node ${oursCommand.join(' ')}`);
  timing.ours = await run(process.execPath, oursCommand);
  console.error(`torchvision: /usr/bin/python3 ${torchCommand.join(' ')}`);
  timing.torchvision = await run('/usr/bin/python3', torchCommand);
}
if (!existsSync(join(oursDir, 'metrics.jsonl')) || !existsSync(torchJson)) {
  console.log(`no training runs in ${values.out} (run without --skip-train): no report`);
  process.exit(0);
}
const result = report(timing);
const pct = (x: number | undefined) => (x === undefined ? '-' : (100 * x).toFixed(2));
console.log('| epoch | box AP ours | box AP torchvision | mask AP ours | mask AP torchvision | loss ours | loss torchvision | img/s ours | img/s torchvision |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const e of result.epochs as { epoch: number; ours: Record<string, number>; torchvision?: Record<string, number> }[]) {
  const t = e.torchvision;
  console.log(`| ${e.epoch} | ${pct(e.ours.bbox_AP)} | ${pct(t?.bbox_AP)} | ${pct(e.ours.segm_AP)} | ${pct(t?.segm_AP)} | ${e.ours.train_loss!.toFixed(3)} | ${t?.train_loss?.toFixed(3) ?? '-'} | ${e.ours.img_per_s!.toFixed(3)} | ${t?.img_per_s?.toFixed(3) ?? '-'} |`);
}
if (values.json) {
  await writeFileAtomic(values.json, `${JSON.stringify(result, null, 2)}\n`);
  const svg = values.json.replace(/\.json$/, '') + '.svg';
  await writeFileAtomic(svg, chart(result));
  console.log(`wrote ${values.json} and ${svg}`);
}
