/**
 * Mask R-CNN latency, batch 1: our one ONNX graph (DetectionModel.toOnnx, the file `export`
 * writes) against torchvision's own ONNX export of the same weights (bench/maskrcnn-torch.py
 * --export-onnx: torch.onnx.export of torchvision 0.14's MaskRCNN with the SwiftFormer backbone,
 * opset 17), both on the same onnxruntime-node with identical options, plus torchvision in eager
 * PyTorch (Debian's python3-torch on OpenBLAS) for reference, all three interleaved round by round.
 * Target: ours / torchvision's ONNX <= 0.9. Then where each graph's time goes: ONNX Runtime's
 * profiler, kernel times summed by stage (transform, backbone + FPN, RPN, box head, detections,
 * mask head, mask paste).
 *
 *   node --import tsx bench/detection.ts [--variants xs,l1] [--sizes 800x1333,512x853] [--rounds 10]
 *        [--threads 2] [--profile-runs 3] [--cls-scale 40] [--seed 0] [--no-eager]
 *        [--torch-script bench/maskrcnn-torch.py] [--json out.json] [--md out.md]
 *
 *   --variants xs,l1          backbones
 *   --sizes 800x1333,512x853  image sizes HxW (min_size / max_size = the image's short / long side)
 *   --rounds 10               timed rounds (each runs every contender once, interleaved)
 *   --threads 2               ONNX Runtime intra-op threads and torch.set_num_threads
 *   --profile-runs 3          profiled runs per graph for the time-by-stage tables (0: none)
 *   --cls-scale 40            factor on the fresh class logits (so that there are detections)
 *   --seed 0                  initialization seed
 *   --no-eager                skip eager PyTorch
 *   --torch-script PATH       the PyTorch reference (default bench/maskrcnn-torch.py)
 *   --json FILE, --md FILE    write the record / a markdown table
 *
 * A size HxW is an image of that size with min_size = min(H, W) and max_size = max(H, W), so the
 * transform keeps its size (800x1333: torchvision's defaults 800 / 1333).
 *
 * Weights: a fresh detector per variant as torchvision initializes one (COCO's 91 classes, FPN 256,
 * TwoMLPHead 1024, mask head 4 x 256; seed --seed), written as torchvision-key safetensors that
 * the PyTorch side loads. Freshly initialized class logits are all near 0 (every score ~1/91, below
 * the 0.05 box threshold: no detections, no masks), so the class logits are multiplied by
 * --cls-scale: with the default 40 the image gives 100 detections, the per-image maximum, and the
 * mask branch runs as on a busy COCO image. The test image is a smooth synthetic picture. Before
 * timing, the three must give the same detections (printed as a sanity line).
 * Needs Debian's /usr/bin/python3 with python3-torch, python3-torchvision and python3-onnx.
 * Run it under the heavy-run lock: flock /work/helpers/heavy.lock node --import tsx bench/detection.ts ...
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DetectionModel, getBackend, writeSafetensors, type StateDict } from '../src/index.js';
import { toOnnx } from '../src/graph/graph.js';
import { decodeModel, type Message } from '../src/graph/proto.js';
import { emitMaskRcnn } from '../src/models/maskrcnn.js';
import { bindParams } from '../src/graph/graph.js';
import { optimizeForInference } from '../src/graph/passes.js';
import { interleavedTimes, pairedRatio, timingOf, type Timing } from '../src/measure/bench.js';
import { kernelNodes, type ProfileEvent } from '../src/measure/profile.js';
import type { FloatTensor, Tensor } from '../src/core/tensor.js';
import { writeFileAtomic } from '../src/node/files.js';
import { profileRuns } from './int8-common.js';
import { machine } from './machine.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    variants: { type: 'string', default: 'xs,l1' },
    sizes: { type: 'string', default: '800x1333,512x853' },
    rounds: { type: 'string', default: '10' },
    threads: { type: 'string', default: '2' },
    'profile-runs': { type: 'string', default: '3' },
    'cls-scale': { type: 'string', default: '40' },
    seed: { type: 'string', default: '0' },
    'no-eager': { type: 'boolean', default: false },
    'torch-script': { type: 'string', default: fileURLToPath(new URL('maskrcnn-torch.py', import.meta.url)) },
    json: { type: 'string' },
    md: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const threads = Number(values.threads);
const profileRunCount = Number(values['profile-runs']);
const clsScale = Number(values['cls-scale']);
const seed = Number(values.seed);
const session = { threads, optimization: 'all' as const };
const script = values['torch-script'];
const sizes = values.sizes.split(',').map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`--sizes takes HxW entries, got ${s}`);
  return [Number(m[1]), Number(m[2])] as [number, number];
});
if (!existsSync(script)) {
  console.error(`${script} is missing: the PyTorch reference (bench/maskrcnn-torch.py) exports the other side; pass --torch-script <path>`);
  process.exit(1);
}

// ---------------------------------------------------------------- inputs

/** A fresh torchvision-initialized detector's weights, class logits scaled by `scale`. */
async function benchWeights(variant: string): Promise<StateDict> {
  const model = await DetectionModel.load({ model: variant, seed });
  const state = model.state;
  await model.release();
  const w = state.get('roi_heads.box_predictor.cls_score.weight')!.data as Float32Array;
  for (let i = 0; i < w.length; i++) w[i]! *= clsScale;
  return state;
}

/** A smooth synthetic picture (RGB in [0, 1], 3 x H x W): gradients and a soft checkerboard. */
function testImage(h: number, w: number): Float32Array {
  const px = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const checker = ((x >> 6) + (y >> 6)) & 1 ? 1 : -1;
        px[(c * h + y) * w + x] = 0.5 + 0.25 * Math.sin(x / 37 + c) * Math.cos(y / 53 - c) + 0.2 * checker * (c === 1 ? 1 : 0.5);
      }
    }
  }
  return px;
}

// ---------------------------------------------------------------- detections compared

interface Found { boxes: ArrayLike<number>; scores: ArrayLike<number>; labels: ArrayLike<number | bigint>; masks?: Tensor; maskPixels?: number[] }

/** The outputs both graphs name alike: boxes (D, 4), scores, labels (int64), masks (D, 1, H, W). */
function foundIn(out: Record<string, Tensor>): Found {
  return { boxes: out.boxes!.data as Float32Array, scores: out.scores!.data as Float32Array, labels: out.labels!.data as unknown as BigInt64Array, masks: out.masks! };
}

function iou(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  const ix = Math.max(0, Math.min(a[4 * i + 2]!, b[4 * j + 2]!) - Math.max(a[4 * i]!, b[4 * j]!));
  const iy = Math.max(0, Math.min(a[4 * i + 3]!, b[4 * j + 3]!) - Math.max(a[4 * i + 1]!, b[4 * j + 1]!));
  const area = (x: ArrayLike<number>, k: number) => (x[4 * k + 2]! - x[4 * k]!) * (x[4 * k + 3]! - x[4 * k + 1]!);
  const inter = ix * iy;
  return inter / (area(a, i) + area(b, j) - inter);
}

/** Detections of `a` and `b` paired as sets (same label, box IoU >= 0.99, score within 1e-4), as the fixture README compares them. */
function pairDetections(a: Found, b: Found): [number, number][] {
  const used = new Set<number>();
  const pairs: [number, number][] = [];
  for (let i = 0; i < a.scores.length; i++) {
    for (let j = 0; j < b.scores.length; j++) {
      if (used.has(j) || Number(a.labels[i]) !== Number(b.labels[j]) || Math.abs(a.scores[i]! - b.scores[j]!) > 1e-4) continue;
      if (iou(a.boxes, i, b.boxes, j) >= 0.99) {
        used.add(j);
        pairs.push([i, j]);
        break;
      }
    }
  }
  return pairs;
}

function maskPixels(masks: Tensor, i: number): number {
  const n = masks.shape[2]! * masks.shape[3]!;
  let count = 0;
  for (let k = i * n; k < (i + 1) * n; k++) if ((masks.data[k] as number) > 0.5) count++;
  return count;
}

/** The smallest IoU of the paired detections' masks thresholded at 0.5. */
function minMaskIou(a: Tensor, b: Tensor, pairs: [number, number][]): number {
  const n = a.shape[2]! * a.shape[3]!;
  let worst = 1;
  for (const [i, j] of pairs) {
    let inter = 0;
    let union = 0;
    for (let k = 0; k < n; k++) {
      const p = (a.data[i * n + k] as number) > 0.5;
      const q = (b.data[j * n + k] as number) > 0.5;
      if (p && q) inter++;
      if (p || q) union++;
    }
    worst = Math.min(worst, union === 0 ? 1 : inter / union);
  }
  return worst;
}

// ---------------------------------------------------------------- eager PyTorch, served by the reference script

interface Eager { found: Found; machine: Record<string, unknown>; run(): Promise<number>; close(): Promise<void> }

async function startEager(args: string[]): Promise<Eager> {
  const child: ChildProcessWithoutNullStreams = spawn('/usr/bin/python3', [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the eager PyTorch process ended: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return value as string;
  };
  const first = JSON.parse(await next()) as { machine: Record<string, unknown>; detections: { boxes: number[]; scores: number[]; labels: number[]; mask_pixels: number[] } };
  const d = first.detections;
  return {
    found: { boxes: d.boxes, scores: d.scores, labels: d.labels, maskPixels: d.mask_pixels },
    machine: first.machine,
    async run() {
      child.stdin.write('run\n');
      return Number(await next());
    },
    async close() {
      child.stdin.end('quit\n');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

// ---------------------------------------------------------------- time by stage

const STAGES = ['transform', 'backbone + FPN', 'RPN', 'box head', 'detections', 'mask head', 'mask paste', 'other'] as const;
type Stage = (typeof STAGES)[number];

/** Our graph's stages: what each intermediate output (emitMaskRcnn's `intermediates`) depends on, first stage first. */
const OUR_STAGE_OUTPUTS: [Stage, string[]][] = [
  ['transform', ['batch', 'resized_sizes']],
  ['backbone + FPN', ['fpn_0', 'fpn_1', 'fpn_2', 'fpn_3', 'fpn_pool']],
  ['RPN', ['proposals_flat', 'proposal_batch']],
  ['box head', ['class_logits', 'box_regression']],
  ['detections', ['boxes_resized', 'scores', 'labels', 'batch_index']],
  ['mask head', ['mask_probabilities']],
  ['mask paste', ['masks', 'boxes']],
];

const nodesOf = (model: Message) => ((model.graph as Message).node as Message[]);

/** Node name -> stage of our graph, each node in the first stage whose outputs it feeds. */
function ourStages(withIntermediates: Uint8Array): Map<string, Stage> {
  const nodes = nodesOf(decodeModel(withIntermediates));
  const producer = new Map<string, Message>();
  for (const n of nodes) for (const o of (n.output as string[]) ?? []) producer.set(o, n);
  const stage = new Map<string, Stage>();
  for (const [name, outputs] of OUR_STAGE_OUTPUTS) {
    const todo = [...outputs];
    while (todo.length > 0) {
      const node = producer.get(todo.pop()!);
      if (!node || stage.has(node.name as string)) continue;
      stage.set(node.name as string, name);
      todo.push(...((node.input as string[]) ?? []).filter((i) => i !== ''));
    }
  }
  return stage;
}

/** torchvision's stages from the scopes torch.onnx.export names nodes with. */
function theirStage(name: string): Stage {
  if (name.startsWith('/transform/')) return 'transform';
  if (name.startsWith('/backbone/')) return 'backbone + FPN';
  if (name.startsWith('/rpn/')) return 'RPN';
  if (/^\/roi_heads\/(box_roi_pool|box_head|box_predictor)\//.test(name)) return 'box head';
  if (/^\/roi_heads\/(mask_roi_pool|mask_head|mask_predictor)\//.test(name)) return 'mask head';
  if (name.startsWith('/roi_heads/')) return 'detections';
  return 'mask paste'; // GeneralizedRCNNTransform.postprocess (boxes rescaled, masks pasted) runs outside any module scope
}

/** Node names and output names of a graph, each -> its stage. */
function stageLookup(bytes: Uint8Array, stageOfNode: (name: string) => Stage | undefined): Map<string, Stage> {
  const lookup = new Map<string, Stage>();
  for (const n of nodesOf(decodeModel(bytes))) {
    const s = stageOfNode(n.name as string) ?? 'other';
    lookup.set(n.name as string, s);
    for (const o of (n.output as string[]) ?? []) lookup.set(o, s);
  }
  return lookup;
}

/**
 * Milliseconds per stage: each kernel's median over the profiled runs, found by its node or output
 * name. Kernels ONNX Runtime made up (NCHWc layout reorders, fused GELUs: `*_token_<n>` names)
 * count with the kernel that ran before them, which is in the same stage but at its borders.
 */
function timeByStage(events: ProfileEvent[], lookup: Map<string, Stage>): { ms: Record<Stage, number>; inserted: number } {
  const stageOf = new Map<string, Stage>();
  let previous: Stage = 'other';
  let inserted = 0;
  const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time')).sort((x, y) => (x.ts ?? 0) - (y.ts ?? 0));
  for (const e of kernels) {
    const key = e.name.replace(/_kernel_time$/, '');
    if (stageOf.has(key)) {
      previous = stageOf.get(key)!;
      continue;
    }
    const base = key.replace(/^fused /, '');
    const found = lookup.get(base) ?? lookup.get(base.replace(/(_token_\d+)?(_nchwc)?(_token_\d+)?$/, ''));
    if (!found) inserted++;
    previous = found ?? previous;
    stageOf.set(key, previous);
  }
  const ms = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<Stage, number>;
  for (const [key, node] of kernelNodes(events)) {
    const sorted = [...node.times].sort((a, b) => a - b);
    ms[stageOf.get(key) ?? 'other'] += sorted[sorted.length >> 1]! / 1000;
  }
  return { ms, inserted };
}

// ---------------------------------------------------------------- the runs

const dir = await mkdtemp(join(tmpdir(), 'swiftformer-bench-det-'));
const started = machine();
const rows: Record<string, unknown>[] = [];
let torchMachine: Record<string, unknown> | undefined;
const exec = promisify(execFile);
try {
  for (const variant of values.variants.split(',')) {
    const state = await benchWeights(variant);
    const weights = join(dir, `${variant}.safetensors`);
    await writeFile(weights, writeSafetensors(state));
    for (const [h, w] of sizes) {
      const settings = { transform: { minSize: Math.min(h, w), maxSize: Math.max(h, w) } };
      const model = await DetectionModel.load({ weights: state, settings });
      const ours = model.toOnnx();
      const oursStaged = toOnnx(optimizeForInference(bindParams(emitMaskRcnn(model.config, { intermediates: true }), model.state)));
      await model.release();
      const theirs = join(dir, `${variant}-${h}x${w}-torchvision.onnx`);
      const sizeArgs = ['--weights', weights, '--test-size', String(settings.transform.minSize), '--max-size', String(settings.transform.maxSize),
        '--export-size', `${h},${w}`, '--threads', String(threads)];
      process.stdout.write(`${variant} ${h}x${w}: exporting torchvision's model ... `);
      await exec('/usr/bin/python3', [script, '--export-onnx', theirs, ...sizeArgs], { maxBuffer: 1 << 26 });
      console.log('done');
      const pixels = testImage(h, w);
      const image = join(dir, `image-${h}x${w}.bin`);
      await writeFile(image, new Uint8Array(pixels.buffer));

      const backend = getBackend();
      const [a, b] = await Promise.all([backend.createSession(ours, session), backend.createSession(theirs, session)]);
      const oursFeeds = { pixel_values: { dtype: 'float32', shape: [1, 3, h, w], data: pixels } as FloatTensor };
      const theirFeeds = { images: { dtype: 'float32', shape: [3, h, w], data: pixels } as FloatTensor };
      const eager = values['no-eager'] ? undefined : await startEager(['--time-eager', image, ...sizeArgs]);
      torchMachine ??= eager?.machine;
      try {
        // The same detections from all three before timing.
        const mine = foundIn(await a.run(oursFeeds));
        const tv = foundIn(await b.run(theirFeeds));
        const pairs = pairDetections(mine, tv);
        const maskIou = minMaskIou(mine.masks!, tv.masks!, pairs);
        let eagerCheck: { detections: number; paired: number; maxMaskPixelRelDiff: number } | undefined;
        if (eager) {
          const eagerPairs = pairDetections(mine, eager.found);
          const pixelDiff = Math.max(0, ...eagerPairs.map(([i, j]) => Math.abs(maskPixels(mine.masks!, i) - eager.found.maskPixels![j]!) / Math.max(1, eager.found.maskPixels![j]!)));
          eagerCheck = { detections: eager.found.scores.length, paired: eagerPairs.length, maxMaskPixelRelDiff: pixelDiff };
        }
        const sanity = { ours: mine.scores.length, torchvisionOnnx: tv.scores.length, paired: pairs.length, minMaskIou: maskIou, eager: eagerCheck };
        console.log(`sanity ${variant} ${h}x${w}: ours ${sanity.ours} detections, torchvision ONNX ${sanity.torchvisionOnnx}, ${pairs.length} paired ` +
          `(label, box IoU >= 0.99, score within 1e-4), mask IoU >= ${maskIou.toFixed(4)}` +
          (eagerCheck ? `; eager ${eagerCheck.detections}, ${eagerCheck.paired} paired, mask pixel counts within ${(100 * eagerCheck.maxMaskPixelRelDiff).toFixed(2)}%` : ''));
        if (pairs.length !== mine.scores.length || pairs.length !== tv.scores.length) console.log('  WARNING: the two graphs do not give the same detections');

        const runs: (() => Promise<unknown>)[] = [() => a.run(oursFeeds), () => b.run(theirFeeds)];
        if (eager) runs.push(() => eager.run());
        // Eager reports its own time (the model call, without the pipe); ONNX Runtime's are timed here.
        const eagerTimes: number[] = [];
        const timedRuns = runs.map((run, i) => (i === 2 ? async () => { eagerTimes.push(await run() as number); } : run));
        const times = await interleavedTimes(timedRuns, rounds, 1);
        const [t, o] = [timingOf('ours', times[0]!), timingOf('torchvision onnx', times[1]!)];
        const e: Timing | undefined = eager ? timingOf('eager', eagerTimes.slice(-rounds)) : undefined;
        const row: Record<string, unknown> = {
          variant, height: h, width: w, minSize: settings.transform.minSize, maxSize: settings.transform.maxSize, batch: 1, threads, rounds,
          detections: mine.scores.length, sanity,
          oursMs: t.medianMs, torchvisionOnnxMs: o.medianMs, eagerMs: e?.medianMs,
          ratio: pairedRatio(t, o), ratioOfMedians: t.medianMs / o.medianMs, oursVsEager: e ? t.medianMs / e.medianMs : undefined,
          oursMinMs: t.minMs, torchvisionOnnxMinMs: o.minMs, eagerMinMs: e?.minMs, samples: { ours: t.samples, torchvisionOnnx: o.samples, eager: e?.samples },
        };
        console.log(`${variant} ${h}x${w}: ours ${t.medianMs.toFixed(0)} ms, torchvision ONNX ${o.medianMs.toFixed(0)} ms, ours/theirs ${(row.ratio as number).toFixed(3)}` +
          (e ? `, eager PyTorch ${e.medianMs.toFixed(0)} ms` : ''));
        rows.push(row);
      } finally {
        await Promise.all([a.release(), b.release()]);
        await eager?.close();
      }

      if (profileRunCount > 0) {
        const [ev0, ev1] = await profileRuns([ours, theirs], [oursFeeds, theirFeeds], profileRunCount, session);
        const stages = ourStages(oursStaged);
        const unstaged = nodesOf(decodeModel(ours)).filter((n) => !stages.has(n.name as string)).length;
        if (unstaged > 0) console.log(`  WARNING: ${unstaged} nodes of our graph are not in the graph with intermediates; they count as 'other'`);
        const mine = timeByStage(ev0!, stageLookup(ours, (n) => stages.get(n)));
        const tv = timeByStage(ev1!, stageLookup(new Uint8Array(await readFile(theirs)), theirStage));
        rows.at(-1)!.stages = { ours: mine.ms, torchvisionOnnx: tv.ms, runs: profileRunCount, insertedKernels: { ours: mine.inserted, torchvisionOnnx: tv.inserted } };
        console.log(`  kernel ms by stage (ours / torchvision ONNX): ${STAGES.map((s) => `${s} ${mine.ms[s].toFixed(0)} / ${tv.ms[s].toFixed(0)}`).join(', ')}`);
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

function markdown(): string {
  const f = (v: unknown) => (typeof v === 'number' ? v.toFixed(0) : '');
  const lines = [
    `# Mask R-CNN latency (bench/detection.ts)`, '',
    `CPU: ${String(started.cpu)}, ${String(started.cores)} cores, flags ${(started.flags as string[]).join(' ')}; onnxruntime-node with ${threads} threads; ` +
      `eager: PyTorch ${String(torchMachine?.torch ?? '?')} (${((torchMachine?.blas as string[] | undefined) ?? []).join(', ') || 'BLAS unknown'}), ${threads} threads. ` +
      `Batch 1, ${rounds} interleaved rounds, medians; ratio = median of the per-round ratios. Fresh detectors (seed ${seed}, class logits x ${clsScale}).`, '',
    '| model | image | detections | ours ms | torchvision ONNX ms | ours / theirs | eager PyTorch ms |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${String(r.variant).toUpperCase()} | ${String(r.height)}x${String(r.width)} | ${String(r.detections)} | ${f(r.oursMs)} | ${f(r.torchvisionOnnxMs)} | ${(r.ratio as number).toFixed(3)} | ${f(r.eagerMs)} |`),
  ];
  const staged = rows.filter((r) => r.stages);
  if (staged.length > 0) {
    lines.push('', 'Kernel time by stage (ONNX Runtime profiler, median of the profiled runs, ms): ours / torchvision ONNX.', '',
      `| model | image | ${STAGES.join(' | ')} |`, `| --- | --- | ${STAGES.map(() => '---').join(' | ')} |`);
    for (const r of staged) {
      const s = r.stages as { ours: Record<Stage, number>; torchvisionOnnx: Record<Stage, number> };
      lines.push(`| ${String(r.variant).toUpperCase()} | ${String(r.height)}x${String(r.width)} | ${STAGES.map((k) => `${f(s.ours[k])} / ${f(s.torchvisionOnnx[k])}`).join(' | ')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const record = {
  bench: 'detection', machine: started, torch: torchMachine, loadavgAfter: loadavg(), rounds, threads, seed, clsScale,
  workload: 'fresh torchvision-initialized Mask R-CNN (91 classes), class logits scaled, one synthetic image per size; the model\'s full output (all detections, masks pasted)',
  rows,
};
if (values.json) {
  await writeFileAtomic(values.json, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`wrote ${values.json}`);
}
if (values.md) {
  await writeFileAtomic(values.md, markdown());
  console.log(`wrote ${values.md}`);
}
