/**
 * Where onnxruntime-web's WebAssembly engine spends its time on SwiftFormer-XS at 224x224 (batch 1):
 * the same .wasm build the browser page loads, run here in Node (onnxruntime-web's node entry) with
 * ONNX Runtime's profiler. Prints the median latency (unprofiled), the per-operator breakdown and
 * the multiply-accumulate rate of the convolutions, for 1 and 2 threads, and what perfect
 * 2-thread scaling of the 1-thread time would give.
 *
 *   node --import tsx bench/wasm-ops.ts [--threads 1,2] [--rounds 30] [--json]
 *
 * Each thread count runs in its own child process, because onnxruntime-web fixes its thread pool
 * when it starts and prints the profile on stdout. Needs ../shared/fixtures/xs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const PROFILE_MARK = '--- profile ---';

interface ProfileEvent { cat?: string; name: string; dur: number; args: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] } }
interface Category { ms: number; macs: number }

if (values.child !== undefined) await child(values.child, Number(values.threads));
else await parent();

/** Times the model unprofiled, then profiles `rounds` more runs and prints the profile after a mark. */
async function child(modelPath: string, threads: number): Promise<void> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  const bytes = await readFile(modelPath);
  const input = new ort.Tensor('float32', new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i * 12.9898) * 2), [1, 3, 224, 224]);
  const times: number[] = [];
  for (const profiled of [false, true]) {
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], enableProfiling: profiled });
    const feeds = { [session.inputNames[0]!]: input };
    for (let i = 0; i < 5; i++) await session.run(feeds);
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      if (!profiled) times.push(performance.now() - t0);
    }
    if (profiled) {
      console.log(JSON.stringify({ times }));
      console.log(PROFILE_MARK);
      session.endProfiling();
    }
    await session.release();
  }
}

/** Operator class of a profiled node: convolutions by kernel, the rest by operator. */
function category(event: ProfileEvent): { name: string; macs: number } {
  const op = event.args.op_name ?? '?';
  if (op !== 'Conv' && op !== 'FusedConv') return { name: op, macs: 0 };
  const weight = Object.values(event.args.input_type_shape?.[1] ?? {})[0] ?? [];
  const output = Object.values(event.args.output_type_shape?.[0] ?? {})[0] ?? [];
  const [, perGroup = 0, kh = 0, kw = 0] = weight;
  const macs = output.reduce((a, b) => a * b, 1) * perGroup * kh * kw;
  const kind = perGroup === 1 && kh === 3 ? 'depthwise 3x3' : kh === 1 ? '1x1' : `${kh}x${kw}`;
  return { name: `Conv ${kind}`, macs };
}

/** Median per node over the profiled runs, summed per category. */
function breakdown(events: ProfileEvent[]): Map<string, Category> {
  const perNode = new Map<string, { times: number[]; event: ProfileEvent }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const entry = perNode.get(e.name) ?? { times: [], event: e };
    entry.times.push(e.dur);
    perNode.set(e.name, entry);
  }
  const out = new Map<string, Category>();
  for (const { times, event } of perNode.values()) {
    const { name, macs } = category(event);
    const c = out.get(name) ?? { ms: 0, macs: 0 };
    c.ms += median(times) / 1000;
    c.macs += macs;
    out.set(name, c);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

async function parent(): Promise<void> {
  const { loadModel } = await import('../src/index.js');
  const { FIXTURES } = await import('../test/fixtures.js');
  const load = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-wasm-ops-'));
  const modelPath = join(dir, 'xs224.onnx');
  const model = await loadModel({ weights: `${FIXTURES}xs/checkpoint_model_only.pth` });
  await writeFile(modelPath, model.toOnnx(224));
  await model.release();
  const rows: { threads: number; medianMs: number; categories: Record<string, Category> }[] = [];
  try {
    for (const threads of values.threads.split(',').map(Number)) {
      const result = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', modelPath, '--threads', String(threads), '--rounds', String(rounds)], { encoding: 'utf8', maxBuffer: 1 << 30 });
      const mark = result.stdout.indexOf(PROFILE_MARK);
      if (result.status !== 0 || mark < 0) throw new Error(`the ${threads}-thread run failed: ${result.stderr.slice(-2000)}`);
      const { times } = JSON.parse(result.stdout.slice(0, mark).trim().split('\n').at(-1)!) as { times: number[] };
      const profile = JSON.parse(result.stdout.slice(result.stdout.indexOf('[', mark))) as ProfileEvent[];
      rows.push({ threads, medianMs: median(times), categories: Object.fromEntries(breakdown(profile)) });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (values.json) {
    console.log(JSON.stringify({ model: 'xs', size: 224, batch: 1, engine: 'onnxruntime-web wasm (node)', loadavg: load, rounds, rows }, null, 2));
    return;
  }
  report(rows, load);
}

function report(rows: { threads: number; medianMs: number; categories: Record<string, Category> }[], load: number[]): void {
  console.log(`SwiftFormer-XS, 224x224, batch 1, onnxruntime-web WebAssembly in Node; ${rounds} runs; load average ${load.map((l) => l.toFixed(2)).join(' ')}`);
  for (const row of rows) {
    const cats = Object.entries(row.categories).sort((a, b) => b[1].ms - a[1].ms);
    const total = cats.reduce((a, [, c]) => a + c.ms, 0);
    console.log(`\n${row.threads} thread${row.threads > 1 ? 's' : ''}: median ${row.medianMs.toFixed(1)} ms unprofiled; profiled operator time ${total.toFixed(1)} ms`);
    console.log('| operators | ms | share | GMAC/s |');
    console.log('| --- | --- | --- | --- |');
    for (const [name, c] of cats) {
      if (c.ms / total < 0.005) continue;
      console.log(`| ${name} | ${c.ms.toFixed(2)} | ${((100 * c.ms) / total).toFixed(1)}% | ${c.macs ? (c.macs / c.ms / 1e6).toFixed(1) : ''} |`);
    }
  }
  const one = rows.find((r) => r.threads === 1);
  if (one) console.log(`\nperfect scaling of the 1-thread median to 2 threads: ${(one.medianMs / 2).toFixed(1)} ms`);
}
