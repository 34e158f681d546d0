/**
 * Latency and memory of the three attentions against the token count: SwiftFormer's efficient
 * additive attention, Fastformer's additive attention and multi-head self-attention.
 *
 * - block: the attention module alone on a (1, D, S, S) map, T = S^2 tokens;
 * - model: SwiftFormer-XS with each attention (attentionType) at input sizes 224 ... 1024, and
 *   ViT-B/16 against FViT-B/16 (pass --models to choose).
 *
 * Every point runs in its own child process (eval graph, random weights, batch 1, ONNX Runtime
 * through the library's backend): latency is the median of the timed runs, memory the growth of
 * the child's peak RSS from just before the session is created to the end of the runs (ONNX
 * Runtime's copy of the weights plus its activation arena). Points whose MHSA attention matrices
 * alone would exceed --max-gb are skipped and recorded as such. Writes <out>.json and <out>.svg
 * (a hand-written chart, log-log: slope 1 is linear growth, slope 2 quadratic).
 *
 *   node --import tsx bench/attention.ts [--quick] [--modes block,model] [--threads 2]
 *     [--rounds 10] [--dim 64] [--heads 1] [--sides 14,28,56,80,112,128] [--sizes 224,320,448,512,640,768,1024]
 *     [--models xs,vit-b16] [--max-gb 3] [--out bench/results/attention]
 *
 * --quick: small settings that finish in a minute (sides 8,16,32; sizes 224,320; xs only; 3 rounds).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../src/node/platform.js';
import { efficientAdditiveAttention, fastformerAttention, multiHeadSelfAttention, type AttentionType } from '../src/models/attention.js';
import { bindParams, GraphBuilder, toOnnx, type Graph } from '../src/graph/graph.js';
import { toLayout } from '../src/graph/layout.js';
import { countMacs, optimizeForInference } from '../src/graph/passes.js';
import { Random } from '../src/core/random.js';
import { getBackend } from '../src/runtime/runtime.js';
import { emitSwiftFormer, initialWeights, variantConfig } from '../src/models/swiftformer.js';
import { float32, numel, type FloatTensor, type StateDict } from '../src/core/tensor.js';
import { emitVit, initialVitWeights, vitConfig } from '../src/models/vit.js';
import { lineChart, type Series } from '../src/draw/svg.js';
import { benchArgs } from './args.js';

const ATTENTIONS: AttentionType[] = ['additive', 'fastformer', 'mhsa'];
const ATTENTION_COLORS: Record<string, string> = { additive: '#1f77b4', fastformer: '#2ca02c', mhsa: '#d62728' };

/** One measurement, run in a child process. */
interface Point {
  kind: 'block' | 'model';
  attention: AttentionType;
  /** block: channels; model: the model id ('xs', 'vit-b16'). */
  dim: number;
  heads: number;
  model?: string;
  /** block: map side S (T = S^2); model: input size. */
  size: number;
  threads: number;
  rounds: number;
}

interface Measured {
  ms: number;
  msMin: number;
  runs: number;
  /** Peak RSS growth from just before session creation to the end of the runs, MB. */
  peakMB: number;
  /** RSS growth through session creation alone, MB. */
  sessionMB: number;
  macs: number;
}

// ---------------------------------------------------------------- graphs

function randomState(params: Map<string, number[]>, seed: number): StateDict {
  const rng = new Random(seed);
  const state: StateDict = new Map();
  for (const [key, shape] of params) state.set(key, float32(shape, Float32Array.from({ length: numel(shape) }, () => rng.normal() * 0.05)));
  return state;
}

function blockGraph(p: Point): { graph: Graph; input: number[] } {
  const b = new GraphBuilder();
  const input = [1, p.dim, p.size, p.size];
  const x = toLayout(b, b.input('pixel_values', input), 'nchw');
  const y = p.attention === 'additive'
    ? efficientAdditiveAttention(b, x, 'attn', p.dim, 'l2')
    : (p.attention === 'fastformer' ? fastformerAttention : multiHeadSelfAttention)(b, x, 'attn', p.dim, { heads: p.heads });
  b.node('Identity', [y.value], input, {}, 'logits');
  b.output('logits');
  return { graph: bindParams(b.graph, randomState(b.graph.params, 1)), input };
}

function modelGraph(p: Point): { graph: Graph; input: number[] } {
  const input = [1, 3, p.size, p.size];
  if (p.model!.includes('vit')) {
    const cfg = { ...vitConfig(p.model!), attention: p.attention === 'mhsa' ? 'mhsa' as const : 'fastformer' as const };
    return { graph: bindParams(emitVit(cfg, { inputSize: p.size }), initialVitWeights(cfg, 0, p.size)), input };
  }
  const cfg = { ...variantConfig(p.model!), attentionType: p.attention, attentionHeads: p.heads };
  return { graph: bindParams(emitSwiftFormer(cfg, { inputSize: p.size }), initialWeights(cfg, 'classifier', 0)), input };
}

/** Builds the point's eval graph (random weights, folded as for export) and writes its ONNX. */
function prepare(p: Point, file: string): { macs: number; input: number[] } {
  const { graph, input } = p.kind === 'block' ? blockGraph(p) : modelGraph(p);
  const optimized = optimizeForInference(graph);
  writeFileSync(file, toOnnx(optimized));
  return { macs: countMacs(optimized), input };
}

/**
 * In the child: session from the file (so no weights sit in the JS heap), one warm-up run, then
 * timed runs. The child's peak RSS right before the session is its baseline.
 */
async function measure(job: { file: string; input: number[]; threads: number; rounds: number }): Promise<Omit<Measured, 'macs'>> {
  const { input } = job;
  const pixels: FloatTensor = { dtype: 'float32', shape: input, data: Float32Array.from({ length: numel(input) }, (_, i) => Math.sin(i * 0.1)) };
  const base = Math.max(process.resourceUsage().maxRSS, process.memoryUsage().rss / 1024);
  const session = await getBackend().createSession(job.file, { threads: job.threads });
  const afterSession = process.resourceUsage().maxRSS;
  await session.run({ pixel_values: pixels });
  const times: number[] = [];
  const start = performance.now();
  // At least 3 timed runs, at most `rounds`, and no more than ~20 s of them.
  while (times.length < job.rounds && (times.length < 3 || performance.now() - start < 20_000)) {
    const t0 = performance.now();
    await session.run({ pixel_values: pixels });
    times.push(performance.now() - t0);
  }
  const peak = process.resourceUsage().maxRSS;
  await session.release();
  times.sort((a, b) => a - b);
  return {
    ms: times[times.length >> 1]!, msMin: times[0]!, runs: times.length,
    peakMB: Math.max(0, peak - base) / 1024, sessionMB: Math.max(0, afterSession - base) / 1024,
  };
}

// ---------------------------------------------------------------- child / parent

const self = fileURLToPath(import.meta.url);

if (process.argv[2] === '--child') {
  process.stdout.write(JSON.stringify(await measure(JSON.parse(process.argv[3]!))));
  process.exit(0);
}

const { values } = benchArgs(import.meta.url, {
  options: {
    quick: { type: 'boolean', default: false },
    modes: { type: 'string', default: 'block,model' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string' },
    dim: { type: 'string', default: '64' },
    heads: { type: 'string', default: '1' },
    sides: { type: 'string' },
    sizes: { type: 'string' },
    models: { type: 'string' },
    'max-gb': { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results/attention' },
  },
});
const quick = values.quick!;
const list = (s: string) => s.split(',').map((v) => v.trim()).filter(Boolean);
const threads = Number(values.threads);
const rounds = Number(values.rounds ?? (quick ? 3 : 10));
const dim = Number(values.dim);
const heads = Number(values.heads);
const sides = list(values.sides ?? (quick ? '8,16,32' : '14,28,56,80,112,128')).map(Number);
const sizes = list(values.sizes ?? (quick ? '224,320' : '224,320,448,512,640,768,1024')).map(Number);
const models = list(values.models ?? (quick ? 'xs' : 'xs,vit-b16'));
const maxBytes = Number(values['max-gb']) * 2 ** 30;
const modes = list(values.modes!);
const scratch = mkdtempSync(join(tmpdir(), 'swiftformer-attention-bench-'));

async function child(p: Point): Promise<Measured> {
  const file = join(scratch, 'point.onnx');
  const { macs, input } = prepare(p, file);
  const job = { file, input, threads: p.threads, rounds: p.rounds };
  try {
    const measured = await new Promise<Omit<Measured, 'macs'>>((res, rej) => {
      execFile(process.execPath, [...process.execArgv, self, '--child', JSON.stringify(job)], { maxBuffer: 1 << 20, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
        if (err) rej(new Error(stderr || err.message));
        else res(JSON.parse(stdout) as Omit<Measured, 'macs'>);
      });
    });
    return { ...measured, macs };
  } finally {
    rmSync(file, { force: true });
  }
}

/** Bytes of the (T, T) attention weights an MHSA point holds at once (scores and their softmax). */
function mhsaBytes(tokens: number, headCount: number): number {
  return 2 * headCount * tokens * tokens * 4;
}

interface Row extends Partial<Measured> {
  kind: 'block' | 'model';
  model?: string;
  attention: AttentionType;
  size: number;
  /** Tokens of the largest attention: block T; SwiftFormer stage 1 (size/4)^2; ViT patches + 1. */
  tokens: number;
  skipped?: string;
}

const rows: Row[] = [];
const log = (r: Row) => {
  const what = r.kind === 'block' ? `block D=${dim} ${r.attention.padEnd(10)} T=${String(r.tokens).padStart(6)}` : `${r.model} ${r.attention.padEnd(10)} ${r.size}px (T=${r.tokens})`;
  console.log(r.skipped ? `${what}: skipped (${r.skipped})` : `${what}: ${r.ms!.toFixed(2)} ms (min ${r.msMin!.toFixed(2)}, ${r.runs} runs), +${r.peakMB!.toFixed(1)} MB peak, ${(r.macs! / 1e9).toFixed(3)} GMACs`);
};

async function run(point: Point, row: Row): Promise<void> {
  const attentionHeads = row.model?.includes('vit') ? 12 : point.heads;
  if (point.attention === 'mhsa' && mhsaBytes(row.tokens, attentionHeads) > maxBytes) {
    row.skipped = `MHSA attention matrices need ~${(mhsaBytes(row.tokens, attentionHeads) / 2 ** 30).toFixed(1)} GB > --max-gb ${values['max-gb']}`;
  } else {
    try {
      Object.assign(row, await child(point));
    } catch (err) {
      row.skipped = `failed: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  rows.push(row);
  log(row);
}

if (modes.includes('block')) {
  for (const side of sides) {
    for (const attention of ATTENTIONS) {
      await run({ kind: 'block', attention, dim, heads, size: side, threads, rounds }, { kind: 'block', attention, size: side, tokens: side * side });
    }
  }
}
if (modes.includes('model')) {
  for (const model of models) {
    const vit = model.includes('vit');
    const patch = vit ? vitConfig(model).patchSize : 32;
    for (const size of sizes.filter((s) => s % patch === 0)) {
      for (const attention of vit ? (['fastformer', 'mhsa'] as const) : ATTENTIONS) {
        const tokens = vit ? (size / patch) ** 2 + 1 : (size / 4) ** 2;
        await run({ kind: 'model', model, attention, dim, heads, size, threads, rounds }, { kind: 'model', model, attention, size, tokens });
      }
    }
  }
}

// ---------------------------------------------------------------- output

const settings = { threads, rounds, dim, heads, sides, sizes, models, maxGB: Number(values['max-gb']), quick };
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: process.platform };
const out = resolve(values.out!);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.json`, `${JSON.stringify({ date: new Date().toISOString(), machine, settings, rows }, null, 2)}\n`);
writeFileSync(`${out}.svg`, chart(rows));
rmSync(scratch, { recursive: true, force: true });
console.log(`wrote ${out}.json and ${out}.svg`);

// ---------------------------------------------------------------- chart

function chart(all: Row[]): string {
  const measured = all.filter((r) => r.ms !== undefined);
  const series = (rowsOf: Row[], key: (r: Row) => string, x: (r: Row) => number, y: (r: Row) => number): Series[] => {
    const groups = new Map<string, Row[]>();
    for (const r of rowsOf) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
    return [...groups].map(([name, rs]) => ({
      name, color: ATTENTION_COLORS[rs[0]!.attention]!, ...(rs[0]!.model?.includes('vit') ? { dash: '6 3' } : {}),
      points: rs.map((r) => [x(r), y(r)] as [number, number]).sort((a, b) => a[0] - b[0]),
    }));
  };
  const block = measured.filter((r) => r.kind === 'block');
  const model = measured.filter((r) => r.kind === 'model');
  const blockKey = (r: Row) => r.attention;
  const modelKey = (r: Row) => `${r.model === 'xs' ? 'SwiftFormer-XS' : r.model} ${r.attention}`;
  const skipped = all.filter((r) => r.skipped).map((r) => `skipped: ${r.kind === 'block' ? 'block' : r.model} ${r.attention} ${r.kind === 'block' ? `T=${r.tokens}` : `${r.size}px`}: ${r.skipped}`);
  const logLog = { logX: true, logY: true };
  return lineChart([
    { title: `one attention module, D=${dim}, ${heads} head(s): latency`, xLabel: 'tokens T', yLabel: 'ms (median)', series: series(block, blockKey, (r) => r.tokens, (r) => r.ms!), ...logLog },
    { title: 'one attention module: memory', xLabel: 'tokens T', yLabel: 'MB (peak RSS growth)', series: series(block, blockKey, (r) => r.tokens, (r) => Math.max(r.peakMB!, 0.1)), ...logLog },
    { title: 'whole models: latency', xLabel: 'input size (px)', yLabel: 'ms (median)', series: series(model, modelKey, (r) => r.size, (r) => r.ms!), ...logLog },
    { title: 'whole models: memory', xLabel: 'input size (px)', yLabel: 'MB (peak RSS growth)', series: series(model, modelKey, (r) => r.size, (r) => Math.max(r.peakMB!, 0.1)), ...logLog },
  ], {
    title: `Attention cost against tokens (${machine.cpu}, ${threads} threads; log-log: slope 1 linear, slope 2 quadratic)`,
    columns: 2, notes: skipped.slice(0, 4),
  });
}
