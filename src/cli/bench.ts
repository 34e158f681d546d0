import { compareLatency, gemmProbe, pairedRatio, syntheticPixels, type Contender } from '../measure/bench.js';
import { describeCpu } from '../measure/cpu.js';
import { localCpu, machineRecord } from './machine.js';
import { readSource } from '../core/io.js';
import { getBackend, type SessionOptions } from '../runtime/runtime.js';
import { SwiftFormerError } from '../core/errors.js';
import { writeFileAtomic } from '../node/files.js';
import { loadSwiftFormer } from '../models/model.js';
import { variantConfig } from '../models/swiftformer.js';
import { lineChart } from '../draw/svg.js';
import { intOption, parse } from './args.js';

export const usage = `Usage: swiftformer bench [options]

Latency and throughput of our eval graphs, side by side in one process (interleaved rounds;
ratios are medians of the per-round ratios). Prints the processor and its integer instructions.
  --model        comma-separated ids (default xs,s,l1,l3)
  --weights      weights to time (architecture read off them unless --model is given;
                 default: random init, latency does not depend on the values)
  --batch        comma-separated batch sizes (default 1,16,64)
  --size         input size (default 224)
  --threads      intra-op threads (default 2)
  --rounds       timed rounds per contender (default 30)
  --official     an ONNX export of XS to compare against at 224 (one image input), e.g. the official one
  --int8         an INT8 ONNX file of the first --model to compare too (one image input)
  --resolutions  comma-separated sizes for a latency-vs-resolution sweep at batch 1
  --chart        write the sweep as an SVG chart
  --probe        also measure the machine's GEMM rate and report MACs against it
  --json         print one JSON object
  --out          also write that JSON object (with the machine's CPU model and flags) to a file`;

function list(value: string | undefined, fallback: string, name: string): string[] {
  const items = (value ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} needs at least one value`);
  return items;
}

function numbers(value: string | undefined, fallback: string, name: string): number[] {
  return list(value, fallback, name).map((s) => intOption(s, name)!);
}

/** ONNX Runtime's message on one line. */
function oneLine(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).replace(/\s+/g, ' ').trim();
}

/**
 * A user's ONNX file to time beside ours, run once on one image of `size` before anything is
 * timed, so that a file that is not a model, or takes other inputs, fails with one line.
 */
async function userContender(name: string, flag: string, path: string, size: number, session: SessionOptions): Promise<Contender> {
  const bytes = await readSource(path);
  const what = `--${flag} ${path}`;
  let trial;
  try {
    trial = await getBackend().createSession(bytes, session);
  } catch (err) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${what} is not an ONNX model ONNX Runtime can load (${oneLine(err)})`);
  }
  try {
    const [input, ...others] = trial.inputNames;
    if (input === undefined || others.length > 0) throw new SwiftFormerError('BAD_ARGUMENT', `${what} has inputs [${trial.inputNames.join(', ')}]: one image input is needed`);
    try {
      await trial.run({ [input]: syntheticPixels(1, size) });
    } catch (err) {
      throw new SwiftFormerError('BAD_ARGUMENT', `${what} does not run on (1,3,${size},${size}) images: ${oneLine(err)}`);
    }
    return { name, model: bytes, input };
  } finally {
    await trial.release();
  }
}

interface Row {
  model: string; batch: number; size: number; macsPerImage: number;
  oursMs: number; imagesPerSecond: number; officialMs?: number; ratio?: number; int8Ms?: number; int8Ratio?: number;
  gmacPerSecond: number; rssMB: number;
  /** Share of the GEMM probe's rate (with --probe). */
  probeShare?: number;
}

export async function bench(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    model: { type: 'string' }, weights: { type: 'string' }, batch: { type: 'string' }, size: { type: 'string' },
    threads: { type: 'string' }, rounds: { type: 'string' }, official: { type: 'string' }, int8: { type: 'string' },
    resolutions: { type: 'string' }, chart: { type: 'string' }, probe: { type: 'boolean' }, json: { type: 'boolean' }, out: { type: 'string' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  // With --weights alone the architecture is read off the weights.
  const models = list(values.model, values.weights ? 'weights' : 'xs,s,l1,l3', 'model');
  if (values.weights && models.length > 1) throw new SwiftFormerError('BAD_ARGUMENT', '--weights needs a single --model');
  if (values.model) for (const id of models) variantConfig(id); // every id is known before anything is timed
  const batches = numbers(values.batch, '1,16,64', 'batch');
  const size = intOption(values.size, 'size') ?? 224;
  const session = { threads: intOption(values.threads, 'threads') ?? 2 };
  const rounds = intOption(values.rounds, 'rounds') ?? 30;
  const log = (line: string) => { if (!flags.has('json')) console.log(line); };
  log(`CPU: ${describeCpu(localCpu())}`);
  const loadBefore = machineRecord().loadavg;
  const officialUsed = values.official !== undefined && size === 224 && models.some((id) => id.toLowerCase().endsWith('xs'));
  if (values.official && !officialUsed) console.error('note: --official is timed beside xs at --size 224 only');
  const official = officialUsed ? await userContender('official', 'official', values.official!, size, session) : undefined;
  const int8 = values.int8 ? await userContender('int8', 'int8', values.int8, size, session) : undefined;

  const rows: Row[] = [];
  const sweep: Record<string, [number, number][]> = {};
  for (const [index, id] of models.entries()) {
    const model = await loadSwiftFormer({ ...(values.model || !values.weights ? { model: id } : {}), ...(values.weights ? { weights: values.weights } : {}) });
    const macs = model.info(size).macs;
    for (const batch of batches) {
      const contenders: Contender[] = [{ name: 'ours', model: model.toOnnx(size), input: 'pixel_values' }];
      if (official && id.toLowerCase().endsWith('xs')) contenders.push(official);
      if (int8 && index === 0) contenders.push(int8);
      const timings = await compareLatency(contenders, { batch, size, rounds, session });
      const by = (name: string) => timings.find((t) => t.name === name);
      const ours = by('ours')!;
      const row: Row = {
        model: id, batch, size, macsPerImage: macs, oursMs: ours.medianMs, imagesPerSecond: ours.throughput,
        gmacPerSecond: (macs * batch) / ours.medianMs / 1e6, rssMB: process.resourceUsage().maxRSS / 1024,
      };
      const officialTime = by('official');
      if (officialTime) Object.assign(row, { officialMs: officialTime.medianMs, ratio: pairedRatio(ours, officialTime) });
      const int8Time = by('int8');
      if (int8Time) Object.assign(row, { int8Ms: int8Time.medianMs, int8Ratio: pairedRatio(int8Time, ours) });
      rows.push(row);
      log(formatRow(row));
    }
    if (values.resolutions) {
      sweep[id] = [];
      for (const res of numbers(values.resolutions, '', 'resolutions')) {
        const [t] = await compareLatency([{ name: 'ours', model: model.toOnnx(res), input: 'pixel_values' }], { batch: 1, size: res, rounds: Math.max(5, Math.round(rounds / 3)), session });
        sweep[id]!.push([res, t!.medianMs]);
        log(`  ${id} @${res}: ${t!.medianMs.toFixed(2)} ms`);
      }
    }
    await model.release();
  }
  const probe = flags.has('probe') ? await gemmProbe({ session }) : undefined;
  for (const r of rows) if (probe) r.probeShare = (r.gmacPerSecond * 1e9) / probe;
  if (probe) log(`GEMM probe: ${(probe / 1e9).toFixed(1)} GMAC/s attainable; models reach ${rows.map((r) => `${r.model}/b${r.batch} ${(100 * r.gmacPerSecond * 1e9 / probe).toFixed(0)}%`).join(', ')}`);
  if (values.chart && Object.keys(sweep).length > 0) {
    await writeFileAtomic(values.chart, lineChart([{
      title: `Latency vs input resolution (batch 1, ${session.threads} threads)`, xLabel: 'input size (pixels per side)', yLabel: 'median latency (ms)',
      series: Object.entries(sweep).map(([name, points]) => ({ name, points })),
    }]));
    log(`wrote ${values.chart}`);
  }
  const result = { threads: session.threads, rounds, rows, sweep, gemmProbeMacsPerSecond: probe, machine: { ...machineRecord(), loadavgBefore: loadBefore } };
  if (flags.has('json')) console.log(JSON.stringify(result, null, 2));
  if (values.out) await writeFileAtomic(values.out, `${JSON.stringify(result, null, 2)}\n`);
}

function formatRow(r: Row): string {
  const parts = [
    `${r.model.padEnd(4)} batch ${String(r.batch).padStart(3)}: ${r.oursMs.toFixed(2)} ms (${r.imagesPerSecond.toFixed(0)} img/s, ${r.gmacPerSecond.toFixed(1)} GMAC/s)`,
  ];
  if (r.ratio !== undefined) parts.push(`official ${r.officialMs!.toFixed(2)} ms, ours/official ${r.ratio.toFixed(3)}`);
  if (r.int8Ratio !== undefined) parts.push(`int8 ${r.int8Ms!.toFixed(2)} ms, int8/fp32 ${r.int8Ratio.toFixed(3)}`);
  return parts.join('; ');
}
