/**
 * The processor's integer (INT8) instructions, read off /proc/cpuinfo's text, and what INT8 models
 * were measured to gain on each kind of processor. ONNX Runtime's u8 x s8 kernels pick the best of
 * AMX, AVX-512 VNNI, AVX-VNNI, AVX-512BW, AVX2 (x86) or the dot-product / i8mm instructions (ARM).
 */

/** The INT8 instruction sets this library tells apart, best first. */
export type Int8Path = 'amx-int8' | 'avx512-vnni' | 'avx-vnni' | 'avx512bw' | 'avx2' | 'sse4.1' | 'arm-i8mm' | 'arm-dotprod' | 'arm-neon' | 'unknown';

export interface CpuFeatures {
  /** The processor's model name ('' when the text has none). */
  model: string;
  /** Every flag of the first processor (x86 `flags`, ARM `Features`). */
  flags: string[];
  /** The flags among them that INT8 kernels use. */
  integer: string[];
  /** The INT8 path ONNX Runtime takes on it. */
  int8Path: Int8Path;
}

/** Flags that matter for INT8 kernels, in the order printed. */
const INTEGER_FLAGS = [
  'amx_int8', 'amx_tile', 'avx512_vnni', 'avx_vnni', 'avx_vnni_int8', 'avx512bw', 'avx512f', 'avx2', 'fma', 'sse4_1',
  'i8mm', 'asimddp', 'sve', 'asimd',
];

/** Fields of the first processor block of /proc/cpuinfo (later blocks repeat them). */
function firstBlock(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) {
      if (line.trim() === '' && fields.size > 0 && (fields.has('flags') || fields.has('Features'))) break;
      continue;
    }
    const key = line.slice(0, colon).trim();
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
  }
  return fields;
}

export function parseCpuInfo(text: string): CpuFeatures {
  const fields = firstBlock(text);
  const flags = (fields.get('flags') ?? fields.get('Features') ?? '').split(/\s+/).filter(Boolean);
  const has = new Set(flags);
  const arm = fields.has('CPU implementer') ? `ARM (implementer ${fields.get('CPU implementer')}, part ${fields.get('CPU part') ?? '?'})` : '';
  const model = fields.get('model name') ?? fields.get('Model name') ?? fields.get('Hardware') ?? arm;
  return { model, flags, integer: INTEGER_FLAGS.filter((f) => has.has(f)), int8Path: int8Path(has) };
}

function int8Path(has: Set<string>): Int8Path {
  if (has.has('amx_int8') && has.has('amx_tile')) return 'amx-int8';
  if (has.has('avx512_vnni') && has.has('avx512bw')) return 'avx512-vnni';
  if (has.has('avx_vnni')) return 'avx-vnni';
  if (has.has('avx512bw')) return 'avx512bw';
  if (has.has('avx2')) return 'avx2';
  if (has.has('sse4_1')) return 'sse4.1';
  if (has.has('i8mm')) return 'arm-i8mm';
  if (has.has('asimddp')) return 'arm-dotprod';
  if (has.has('asimd')) return 'arm-neon';
  return 'unknown';
}

/**
 * Whether u8 x s8 products can use the full int8 weight range: dot-product instructions accumulate
 * in 32 bits. AVX2, AVX-512BW and SSE4.1 go through vpmaddubsw, which saturates a pair of products
 * at int16: weights must stay within +-63 there.
 */
export function fullRangeWeights(path: Int8Path): boolean {
  return path === 'amx-int8' || path === 'avx512-vnni' || path === 'avx-vnni' || path === 'arm-i8mm' || path === 'arm-dotprod';
}

/** One line for `bench` and `export --int8`: the model and the INT8 flags. */
export function describeCpu(cpu: CpuFeatures): string {
  const name = cpu.model || 'unknown processor';
  return `${name}; integer instructions: ${cpu.integer.length ? cpu.integer.join(' ') : 'none known'} (INT8 path ${cpu.int8Path})`;
}

// ---------------------------------------------------------------- what INT8 was measured to gain

/** INT8 latency over fp32 latency, side by side on one machine (bench/int8-variants.ts). */
export interface Int8Measurement {
  path: Int8Path;
  machine: string;
  /** What was timed: model and input size. */
  model: string;
  size: number;
  /** batch size -> INT8 / fp32 latency. */
  ratios: Record<number, number>;
  /** The result file it comes from (in the source repository). */
  source: string;
}

/**
 * Measurements of the current INT8 graph (src/graph/quantize.ts defaults), per INT8 path. Paths
 * not listed (AVX-512 VNNI, AVX-VNNI, AMX, ARM) have not been measured with it.
 */
export const INT8_MEASUREMENTS: readonly Int8Measurement[] = [
  {
    path: 'avx2', machine: 'AMD EPYC (2 cores, shared)', model: 'SwiftFormer-XS', size: 224,
    ratios: { 1: 0.64, 16: 0.68 }, source: 'bench/results/int8-variants.json',
  },
  {
    path: 'avx2', machine: 'AMD EPYC (2 cores, shared)', model: 'SwiftFormer-XS (the bundled Fashion-MNIST model)', size: 32,
    ratios: { 1: 0.87, 64: 0.7 }, source: 'bench/results/int8-fmnist.json',
  },
];

export interface Int8Outlook {
  /** false when INT8 was measured slower than fp32 on this INT8 path at some batch size. */
  faster: boolean | undefined;
  /** What the verdict is based on, for the user. */
  message: string;
}

/**
 * What INT8 can be expected to gain on `cpu` for an input of `size` pixels, from the measurements
 * of the same INT8 path (the one nearest in input size).
 */
export function int8Outlook(cpu: CpuFeatures, size: number, measurements: readonly Int8Measurement[] = INT8_MEASUREMENTS): Int8Outlook {
  const same = measurements.filter((m) => m.path === cpu.int8Path);
  const here = `here (${cpu.model || 'unknown processor'}, INT8 path ${cpu.int8Path})`;
  if (same.length === 0) {
    return { faster: undefined, message: `INT8 has not been measured against fp32 on a processor with INT8 path ${cpu.int8Path} (this one: ${cpu.model || 'unknown'}): time it with \`swiftformer bench --int8 <file>\`` };
  }
  const m = same.reduce((best, x) => (Math.abs(Math.log(x.size / size)) < Math.abs(Math.log(best.size / size)) ? x : best));
  const ratios = Object.entries(m.ratios).map(([batch, r]) => `${r.toFixed(2)}x at batch ${batch}`).join(', ');
  const slower = Object.entries(m.ratios).filter(([, r]) => r >= 1).map(([batch]) => batch);
  const basis = `measured on ${m.machine} with ${m.path}, ${m.model} at ${m.size}x${m.size}: INT8 latency ${ratios} of fp32's (${m.source})`;
  if (slower.length === 0) return { faster: true, message: `INT8 is expected to be faster than fp32 ${here}; ${basis}` };
  return { faster: false, message: `INT8 is not expected to be faster than fp32 ${here} at batch ${slower.join(', ')}; ${basis}` };
}
