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
import { parseArgs } from 'node:util';
import '../src/node.js';
import { efficientAdditiveAttention, fastformerAttention, multiHeadSelfAttention, type AttentionType } from '../src/attention.js';
import { bindParams, GraphBuilder, toOnnx, type Graph } from '../src/graph.js';
import { countMacs, optimizeForInference } from '../src/passes.js';
import { Random } from '../src/random.js';
import { getBackend } from '../src/runtime.js';
import { emitSwiftFormer, initialWeights, variantConfig } from '../src/swiftformer.js';
import { float32, numel, type FloatTensor, type StateDict } from '../src/tensor.js';
import { emitVit, initialVitWeights, vitConfig } from '../src/vit.js';

const ATTENTIONS: AttentionType[] = ['additive', 'fastformer', 'mhsa'];
const COLORS: Record<string, string> = { additive: '#1f77b4', fastformer: '#2ca02c', mhsa: '#d62728' };

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
  const x = b.input('pixel_values', input);
  const y = p.attention === 'additive'
    ? efficientAdditiveAttention(b, x, 'attn', p.dim, 'l2')
    : (p.attention === 'fastformer' ? fastformerAttention : multiHeadSelfAttention)(b, x, 'attn', p.dim, { heads: p.heads });
  b.node('Identity', [y], input, {}, 'logits');
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

const { values } = parseArgs({
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
    row.skipped = `MHSA weights need ~${(mhsaBytes(row.tokens, attentionHeads) / 2 ** 30).toFixed(1)} GB > --max-gb ${values['max-gb']}`;
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

interface Series { name: string; color: string; dash?: string; points: [number, number][] }

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** Tick values 1, 2, 5 x 10^k inside [lo, hi] (log axes); finer when that gives fewer than 3. */
function logTicks(lo: number, hi: number, mantissas = [1, 2, 5]): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out.length < 3 && mantissas.length === 3 ? logTicks(lo, hi, [1, 1.5, 2, 3, 4, 5, 6, 8]) : out;
}

function label(v: number): string {
  if (v >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (v >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

/** A log-log panel at (left, top), 360 x 230. */
function panel(title: string, xName: string, yName: string, series: Series[], left: number, top: number): string {
  const width = 360;
  const height = 230;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  if (pts.length === 0) return `<text x="${left}" y="${top}">${escape(title)}: no data</text>`;
  const pad = (lo: number, hi: number): [number, number] => (lo === hi ? [lo / 2, hi * 2] : [lo / 1.15, hi * 1.15]);
  const [x0, x1] = pad(Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0])));
  const [y0, y1] = pad(Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1])));
  const sx = (x: number) => left + (Math.log(x / x0) / Math.log(x1 / x0)) * width;
  const sy = (y: number) => top + height - (Math.log(y / y0) / Math.log(y1 / y0)) * height;
  const parts = [
    `<text x="${left + width / 2}" y="${top - 12}" text-anchor="middle" font-weight="bold">${escape(title)}</text>`,
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`,
  ];
  let yt = logTicks(y0, y1);
  if (yt.length > 8) yt = yt.filter((v) => /^1/.test(v.toExponential()));
  for (const v of yt) {
    parts.push(`<line x1="${left}" x2="${left + width}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 5}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${label(v)}</text>`);
  }
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  for (const v of xs) {
    parts.push(`<line x1="${sx(v).toFixed(1)}" x2="${sx(v).toFixed(1)}" y1="${top}" y2="${top + height}" stroke="#f2f2f2"/>`);
    parts.push(`<text x="${sx(v).toFixed(1)}" y="${top + height + 14}" text-anchor="middle" font-size="10">${label(v)}</text>`);
  }
  parts.push(`<text x="${left + width / 2}" y="${top + height + 30}" text-anchor="middle">${escape(xName)}</text>`);
  parts.push(`<text transform="translate(${left - 42},${top + height / 2}) rotate(-90)" text-anchor="middle">${escape(yName)}</text>`);
  series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => x > 0 && y > 0);
    if (p.length === 0) return;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<polyline points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const [x, y] of p) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    const ly = top + 14 + i * 15;
    parts.push(`<line x1="${left + 8}" x2="${left + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${left + 32}" y="${ly}" font-size="11">${escape(s.name)}</text>`);
  });
  return parts.join('\n');
}

function chart(all: Row[]): string {
  const measured = all.filter((r) => r.ms !== undefined);
  const series = (rowsOf: Row[], key: (r: Row) => string, x: (r: Row) => number, y: (r: Row) => number): Series[] => {
    const groups = new Map<string, Row[]>();
    for (const r of rowsOf) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
    return [...groups].map(([name, rs]) => ({
      name, color: COLORS[rs[0]!.attention]!, ...(rs[0]!.model?.includes('vit') ? { dash: '6 3' } : {}),
      points: rs.map((r) => [x(r), y(r)] as [number, number]).sort((a, b) => a[0] - b[0]),
    }));
  };
  const block = measured.filter((r) => r.kind === 'block');
  const model = measured.filter((r) => r.kind === 'model');
  const blockKey = (r: Row) => r.attention;
  const modelKey = (r: Row) => `${r.model === 'xs' ? 'SwiftFormer-XS' : r.model} ${r.attention}`;
  const width = 900;
  const height = 690;
  const skipped = all.filter((r) => r.skipped).map((r) => `${r.kind === 'block' ? 'block' : r.model} ${r.attention} ${r.kind === 'block' ? `T=${r.tokens}` : `${r.size}px`}: ${r.skipped}`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">Attention cost against tokens (${escape(machine.cpu)}, ${threads} threads; log-log: slope 1 linear, slope 2 quadratic)</text>`,
    panel(`one attention module, D=${dim}, ${heads} head(s): latency`, 'tokens T', 'ms (median)', series(block, blockKey, (r) => r.tokens, (r) => r.ms!), 80, 60),
    panel('one attention module: memory', 'tokens T', 'MB (peak RSS growth)', series(block, blockKey, (r) => r.tokens, (r) => Math.max(r.peakMB!, 0.1)), 520, 60),
    panel('whole models: latency', 'input size (px)', 'ms (median)', series(model, modelKey, (r) => r.size, (r) => r.ms!), 80, 380),
    panel('whole models: memory', 'input size (px)', 'MB (peak RSS growth)', series(model, modelKey, (r) => r.size, (r) => Math.max(r.peakMB!, 0.1)), 520, 380),
    ...skipped.slice(0, 4).map((s, i) => `<text x="20" y="${height - 44 + i * 12}" font-size="10" fill="#666">skipped: ${escape(s)}</text>`),
    '</svg>',
    '',
  ].join('\n');
}
