/**
 * Side-by-side latency measurement: several sessions, the same inputs, interleaved rounds (so that
 * machine noise hits every contender alike), medians and ratios. Also a GEMM probe that measures
 * the machine's attainable multiply-add rate through the same runtime.
 */
import { GraphBuilder, toOnnx } from '../graph/graph.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import type { FloatTensor } from '../core/tensor.js';

export interface Contender {
  name: string;
  /** ONNX bytes or a file path. */
  model: Uint8Array | string;
  /** Name of the graph's pixel input. */
  input: string;
}

export interface Timing {
  name: string;
  medianMs: number;
  p90Ms: number;
  /** Images per second at the median. */
  throughput: number;
  /** The fastest round: noise on a shared machine only ever adds time. */
  minMs: number;
  /** Every timed round, in round order (round r of every contender ran back to back). */
  samples: number[];
}

export interface BenchOptions {
  batch: number;
  size: number;
  rounds?: number;
  warmup?: number;
  session?: SessionOptions;
  backend?: string;
}

/** The q-quantile of `xs`, interpolated between neighbours (numpy's default). */
export function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo]! + (s[Math.ceil(i)]! - s[lo]!) * (i - lo);
}

/** A deterministic pixel batch in the usual normalized range. */
export function syntheticPixels(batch: number, size: number): FloatTensor {
  const data = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.7071) * 2;
  return { dtype: 'float32', shape: [batch, 3, size, size], data };
}

async function timeRun(session: Session, feeds: Record<string, FloatTensor>): Promise<number> {
  const start = performance.now();
  await session.run(feeds);
  return performance.now() - start;
}

/** A timing from the rounds of one contender (milliseconds, in round order). */
export function timingOf(name: string, samples: number[], batch = 1): Timing {
  const medianMs = percentile(samples, 0.5);
  return { name, medianMs, p90Ms: percentile(samples, 0.9), throughput: (batch * 1000) / medianMs, minMs: Math.min(...samples), samples };
}

/**
 * Interleaved rounds: `warmup` untimed rounds, then `rounds` rounds in which every run is timed
 * once, round r starting with run r mod n (so that machine noise hits every contender alike).
 * Returns each run's times in round order.
 */
export async function interleavedTimes(runs: (() => Promise<unknown>)[], rounds: number, warmup: number): Promise<number[][]> {
  const timed = async (run: () => Promise<unknown>) => {
    const start = performance.now();
    await run();
    return performance.now() - start;
  };
  for (let i = 0; i < warmup; i++) for (const run of runs) await timed(run);
  const times: number[][] = runs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < runs.length; k++) {
      const j = (k + r) % runs.length;
      times[j]!.push(await timed(runs[j]!));
    }
  }
  return times;
}

/** Times every contender on the same batch, round-robin, starting with a different one each round. */
export async function compareLatency(contenders: Contender[], options: BenchOptions): Promise<Timing[]> {
  const backend = getBackend(options.backend);
  const sessions = await Promise.all(contenders.map((c) => backend.createSession(c.model, { optimization: 'all', ...options.session })));
  try {
    const pixels = syntheticPixels(options.batch, options.size);
    const rounds = options.rounds ?? 30;
    const warmup = options.warmup ?? Math.max(3, Math.round(rounds / 10));
    const times = await interleavedTimes(contenders.map((c, j) => () => sessions[j]!.run({ [c.input]: pixels })), rounds, warmup);
    return contenders.map((c, j) => timingOf(c.name, times[j]!, options.batch));
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
}

/**
 * a / b as the median of the per-round ratios: the two ran back to back in every round, so a burst
 * of load from elsewhere that spans a round scales both, and one that hits only one run is an outlier.
 */
export function pairedRatio(a: Timing, b: Timing): number {
  return percentile(a.samples.map((t, r) => t / b.samples[r]!), 0.5);
}

/**
 * Attainable multiply-accumulate rate: a chain of square GEMMs (n x n x n) run through the
 * runtime, reduced to a scalar so that output copies do not count. Returns MACs per second.
 */
export async function gemmProbe(options: { n?: number; chain?: number; session?: SessionOptions; backend?: string } = {}): Promise<number> {
  const n = options.n ?? 1024;
  const chain = options.chain ?? 4;
  const b = new GraphBuilder();
  const a = b.input('a', [n, n]);
  let x = b.input('x', [n, n]);
  for (let i = 0; i < chain; i++) x = b.node('Gemm', [a, x], [n, n]);
  b.node('ReduceSum', [x, b.ints([0, 1])], [], { keepdims: { kind: 'int', value: 0 } }, 'out');
  b.output('out');
  const session = await getBackend(options.backend).createSession(toOnnx(b.graph), { optimization: 'all', ...options.session });
  try {
    const value = new Float32Array(n * n).fill(1 / n);
    const feeds = { a: { dtype: 'float32' as const, shape: [n, n], data: value }, x: { dtype: 'float32' as const, shape: [n, n], data: value } };
    await timeRun(session, feeds);
    const times: number[] = [];
    for (let i = 0; i < 7; i++) times.push(await timeRun(session, feeds));
    return (chain * n ** 3) / (Math.min(...times) / 1000);
  } finally {
    await session.release();
  }
}
