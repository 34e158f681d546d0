/**
 * Where INT8 and fp32 time goes, per operator, in onnxruntime-node: SwiftFormer-XS at 224 (the
 * official-layout fixture weights), the INT8 graph calibrated on the example photos, both
 * sessions profiled side by side (alternating runs) with ONNX Runtime's profiler. Reports, per
 * batch size, the time of each operator class (integer kernels, QuantizeLinear/DequantizeLinear,
 * layout changes: Transpose and NCHWc ReorderInput/ReorderOutput, float ops) and which QDQ node
 * units were fused into integer kernels and which were not.
 *
 *   node --import tsx bench/int8-profile.ts [--batches 1,16] [--runs 12] [--threads 2]
 *        [--variants default,main] [--out bench/results/int8-profile]   (writes .json and .md)
 *
 * Variants: `default` (the INT8 export's settings), `main` (the settings of the first INT8 export:
 * every conv and Gemm, no GELU fusion, residual adds in float), or any of bench/int8-variants.ts.
 */
import { loadavg } from 'node:os';
import { writeFileAtomic } from '../src/node/files.js';
import { toOnnx, type Graph } from '../src/graph/graph.js';
import { quantizeStatic } from '../src/graph/quantize.js';
import { syntheticPixels } from '../src/measure/bench.js';
import { fusionReport, groupTotals, markdownTable, operatorTable, type FusionReport, type OpClass } from '../src/measure/profile.js';
import { describeCpu } from '../src/measure/cpu.js';
import { localCpu } from '../src/cli/machine.js';
import { examplePhotos, machineRecord, profileRuns, VARIANTS, xsFixture } from './int8-common.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    batches: { type: 'string', default: '1,16' },
    runs: { type: 'string', default: '12' },
    threads: { type: 'string', default: '2' },
    variants: { type: 'string', default: 'default,main' },
    out: { type: 'string' },
  },
});
const session = { threads: Number(values.threads) };
const runs = Number(values.runs);
const loadBefore = loadavg();

const { model } = await xsFixture();
const fp32 = model.graph(224);
const calibration = await examplePhotos(224);
const contenders: { name: string; graph: Graph }[] = [{ name: 'fp32', graph: fp32 }];
for (const name of values.variants.split(',')) {
  const options = VARIANTS[name];
  if (!options) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`);
  contenders.push({ name: `int8 ${name}`, graph: (await quantizeStatic(fp32, [calibration], { ...options, session })).graph });
}
await model.release();

interface Result { name: string; batch: number; kernelMs: number; groups: Record<string, number>; table: OpClass[]; fusion?: FusionReport }
const results: Result[] = [];
console.log(`CPU: ${describeCpu(localCpu())}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
for (const batch of values.batches.split(',').map(Number)) {
  const pixels = { pixel_values: syntheticPixels(batch, 224) };
  const traces = await profileRuns(contenders.map((c) => toOnnx(c.graph)), contenders.map(() => pixels), runs, session);
  for (const [i, c] of contenders.entries()) {
    const table = operatorTable(traces[i]!, c.graph, batch);
    const result: Result = { name: c.name, batch, kernelMs: table.reduce((a, x) => a + x.ms, 0), groups: groupTotals(table), table };
    if (c.name !== 'fp32') result.fusion = fusionReport(traces[i]!, c.graph);
    results.push(result);
  }
}

const markdown = report(results);
console.log(markdown);
if (values.out) {
  const record = { model: 'xs (fixture weights)', size: 224, runs, threads: session.threads, calibration: 'assets/examples (10 images)', machine: { ...machineRecord(), loadavgBefore: loadBefore }, results };
  await writeFileAtomic(`${values.out}.json`, `${JSON.stringify(record, null, 2)}\n`);
  await writeFileAtomic(`${values.out}.md`, `# INT8 and fp32 per operator (bench/int8-profile.ts)\n\n${describeCpu(localCpu())}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after.\n\n${markdown}\n`);
}

function report(rows: Result[]): string {
  const parts: string[] = [];
  for (const r of rows) {
    const groups = Object.entries(r.groups).map(([g, ms]) => `${g} ${ms.toFixed(1)} ms (${((100 * ms) / r.kernelMs).toFixed(0)}%)`).join(', ');
    parts.push(`## ${r.name}, batch ${r.batch}: ${r.kernelMs.toFixed(1)} ms of kernels per run\n\n${groups}\n`);
    if (r.fusion) {
      const fused = Object.entries(r.fusion.fused).map(([k, n]) => `${n} ${k}`).join(', ');
      parts.push(`QDQ node units: ${r.fusion.expected}; fused into integer kernels: ${fused || 'none'}; not fused: ${notFused(r.fusion.notFused)}\n`);
    }
    parts.push(`${markdownTable(r.table)}\n`);
  }
  return parts.join('\n');
}

/** 'Gelu_24 (Gelu) ran as Gelu', ... -> '20 Gelu ran as Gelu (Gelu_24, ...)'. */
function notFused(list: string[]): string {
  if (list.length === 0) return 'none';
  const groups = new Map<string, string[]>();
  for (const item of list) {
    const [, name, rest] = /^(\S+) \((.*)$/.exec(item) ?? [item, item, ''];
    groups.set(rest!, [...(groups.get(rest!) ?? []), name!]);
  }
  return [...groups].map(([what, names]) => `${names.length} ${what.replace(')', '')} (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`).join('; ');
}
