/**
 * What the training side-by-side benchmarks share (bench/segmentation-train.ts, bench/detection-train.ts):
 * the PyTorch reference as a timing server (its --serve-steps, bench/torchref/env.py serve_steps),
 * alternating windows of our iterations and of PyTorch's so that both sides see the same load, the
 * result's common fields, and the kernel time by op of an ONNX Runtime profile.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.js';

export interface TorchServer {
  /** The "ready" line: torch version, BLAS, threads and whatever the script adds. */
  ready: Record<string, unknown>;
  /** Runs k iterations there; their seconds each. */
  window(k: number): Promise<number[]>;
  end(): void;
}

/** Starts `script` (a bench/*.py reference) with --serve-steps and `args`, and waits for it to be ready. */
export async function torchServer(script: string, args: string[]): Promise<TorchServer> {
  const torch = spawn('/usr/bin/python3', [fileURLToPath(new URL(script, import.meta.url)), '--serve-steps', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: torch.stdout })[Symbol.asyncIterator]();
  const line = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const next = await lines.next();
      if (next.done) throw new Error(`the PyTorch side (${script}) ended early`);
      if (next.value.startsWith('{')) return JSON.parse(next.value);
      process.stderr.write(`torch: ${next.value}\n`);
    }
  };
  const ready = await line();
  return {
    ready,
    async window(k) {
      torch.stdin.write(`${k}\n`);
      return (await line()).seconds as number[];
    },
    end: () => torch.stdin.end(),
  };
}

export interface Interleaved {
  ours: number[][];
  theirs: number[][];
  loadavg_before: number[];
  loadavg_after: number[];
}

/**
 * One untimed warm-up window of `warmup` iterations each, then `windows` rounds of `window` of
 * ours followed by `window` of PyTorch's. `ours(k)` runs k of our iterations and returns their seconds.
 */
export async function interleave(ours: (k: number) => Promise<number[]>, torch: TorchServer, o: { window: number; windows: number; warmup: number; batch: number }): Promise<Interleaved> {
  await ours(o.warmup);
  await torch.window(o.warmup);
  const before = loadavg();
  const result: Interleaved = { ours: [], theirs: [], loadavg_before: before, loadavg_after: [] };
  for (let w = 0; w < o.windows; w++) {
    result.ours.push(await ours(o.window));
    result.theirs.push(await torch.window(o.window));
    console.error(`window ${w + 1}/${o.windows}: ours ${imgPerSec([result.ours.at(-1)!], o.batch).toFixed(3)} img/s, PyTorch ${imgPerSec([result.theirs.at(-1)!], o.batch).toFixed(3)} img/s  (load ${loadavg()[0]!.toFixed(2)})`);
  }
  result.loadavg_after = loadavg();
  return result;
}

/** Images per second over windows of per-iteration seconds (total images / total seconds). */
export function imgPerSec(windows: number[][], batch: number): number {
  const all = windows.flat();
  return (batch * all.length) / all.reduce((a, b) => a + b, 0);
}

/** The fields every throughput result records: machine, both runtimes, rates per side and per window, the ratio. */
export function throughputRecord(bench: string, torch: TorchServer, run: Interleaved, batch: number): Record<string, unknown> {
  const ours = imgPerSec(run.ours, batch);
  const theirs = imgPerSec(run.theirs, batch);
  return {
    bench, date: new Date().toISOString(), ...machine(), loadavg_before: run.loadavg_before, loadavg_after: run.loadavg_after,
    torch: { version: torch.ready.torch, blas: torch.ready.blas, threads: torch.ready.threads },
    onnxruntime: JSON.parse(readFileSync(fileURLToPath(new URL('../node_modules/onnxruntime-node/package.json', import.meta.url)), 'utf8')).version,
    img_per_s: { ours, pytorch: theirs }, ratio_ours_over_pytorch: ours / theirs,
    per_window_img_per_s: { ours: run.ours.map((s) => imgPerSec([s], batch)), pytorch: run.theirs.map((s) => imgPerSec([s], batch)) },
  };
}

/** Kernel time by op (ms per run) of the newest ONNX Runtime profile in `dir` whose name starts with `prefix`, largest first. */
export function profileByOp(dir: string, prefix: string, runs: number): { file: string; ops: [string, number][]; total: number } {
  const file = readdirSync(dir).filter((f) => f.startsWith(prefix)).sort().at(-1)!;
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
  const byOp = new Map<string, number>();
  for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) byOp.set(e.args?.op_name ?? '?', (byOp.get(e.args?.op_name ?? '?') ?? 0) + e.dur / 1000 / runs);
  const ops = [...byOp].sort((a, b) => b[1] - a[1]);
  return { file: join(dir, file), ops, total: ops.reduce((t, [, ms]) => t + ms, 0) };
}

export function printProfile(p: ReturnType<typeof profileByOp>, what: string, top = 15): void {
  console.log(`ONNX Runtime profile (${p.file}), kernel time by op per ${what}:`);
  for (const [op, ms] of p.ops.slice(0, top)) console.log(`  ${op.padEnd(24)} ${ms.toFixed(0).padStart(7)} ms  ${((100 * ms) / p.total).toFixed(1)}%`);
}
