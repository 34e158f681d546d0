/**
 * What is left between our fp32 SwiftFormer-XS graph and the machine: at each batch size, latency
 * against the official ONNX export (interleaved rounds, same onnxruntime-node; ratio = median of
 * per-round ratios), the share of the GEMM probe's multiply-accumulate rate that each reaches, and
 * a per-operator profile of both (ONNX Runtime's profiler, the two sessions alternating), with the
 * time each operator class spends beyond what its MACs would take at the probe's rate.
 *
 *   node --import tsx bench/fp32-gap.ts [--batches 1,16] [--rounds 40] [--runs 12] [--threads 2]
 *        [--out bench/results/fp32-gap]   (writes .json and .md)
 *
 * Needs ../shared/fixtures/xs and ../shared/fixtures/official-onnx.
 */
import { loadavg } from 'node:os';
import { emptyGraph } from '../src/graph/graph.js';
import { compareLatency, gemmProbe, pairedRatio, syntheticPixels } from '../src/measure/bench.js';
import { describeCpu } from '../src/measure/cpu.js';
import { markdownTable, operatorTable, type OpClass } from '../src/measure/profile.js';
import { writeFileAtomic } from '../src/node/files.js';
import { localCpu } from '../src/cli/machine.js';
import { FIXTURES } from '../test/fixtures.js';
import { machineRecord, profileRuns, xsFixture } from './int8-common.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    batches: { type: 'string', default: '1,16' },
    rounds: { type: 'string', default: '40' },
    runs: { type: 'string', default: '12' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
const session = { threads: Number(values.threads) };
const loadBefore = loadavg();
const official = `${FIXTURES}official-onnx/swiftformer_xs.onnx`;
const { model } = await xsFixture();
const graph = model.graph(224);
const ours = model.toOnnx(224);
const macs = model.info(224).macs;
await model.release();
const probe = await gemmProbe({ session });
console.log(`CPU: ${describeCpu(localCpu())}; GEMM probe ${(probe / 1e9).toFixed(1)} GMAC/s; XS ${(macs / 1e9).toFixed(3)} GMAC per image; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);

/** Each class's time beyond its MACs at the probe's rate (all of it for ops without MACs). */
const beyondProbe = (table: OpClass[]) => table.map((c) => ({ name: c.name, ms: c.ms, excessMs: c.ms - (c.macs / probe) * 1000 }));

const rows = [];
const sections: string[] = [];
for (const batch of values.batches.split(',').map(Number)) {
  const [o, f] = await compareLatency(
    [{ name: 'ours', model: ours, input: 'pixel_values' }, { name: 'official', model: official, input: 'input' }],
    { batch, size: 224, rounds: Number(values.rounds), session },
  );
  const ratio = pairedRatio(o!, f!);
  const share = (ms: number) => (macs * batch) / (ms / 1000) / probe;
  const pixels = syntheticPixels(batch, 224);
  const [oursTrace, officialTrace] = await profileRuns([ours, official], [{ pixel_values: pixels }, { input: pixels }], Number(values.runs), session);
  const oursTable = operatorTable(oursTrace!, graph, batch);
  const officialTable = operatorTable(officialTrace!, emptyGraph(), batch);
  const row = {
    batch, oursMs: o!.medianMs, officialMs: f!.medianMs, ratio, probeShareOurs: share(o!.medianMs), probeShareOfficial: share(f!.medianMs),
    loadavg: loadavg(), ours: beyondProbe(oursTable), official: beyondProbe(officialTable),
  };
  rows.push(row);
  const line = `batch ${batch}: ours ${row.oursMs.toFixed(2)} ms, official ${row.officialMs.toFixed(2)} ms, ours/official ${ratio.toFixed(3)}; GEMM probe share ours ${(100 * row.probeShareOurs).toFixed(0)}%, official ${(100 * row.probeShareOfficial).toFixed(0)}%`;
  console.log(line);
  const excess = row.ours.filter((c) => c.excessMs > 0).sort((a, b) => b.excessMs - a.excessMs).slice(0, 8)
    .map((c) => `${c.name} ${c.excessMs.toFixed(2)} ms`).join(', ');
  sections.push(`## Batch ${batch}\n\n${line}\n\nOurs, beyond the probe's rate: ${excess}\n\n### Ours\n\n${markdownTable(oursTable)}\n\n### Official export\n\n${markdownTable(officialTable)}\n`);
}
const markdown = sections.join('\n');
console.log(markdown);
if (values.out) {
  const record = { model: 'xs (fixture weights)', size: 224, threads: session.threads, gemmProbeMacsPerSecond: probe, macsPerImage: macs, machine: { ...machineRecord(), loadavgBefore: loadBefore }, rows };
  await writeFileAtomic(`${values.out}.json`, `${JSON.stringify(record, null, 2)}\n`);
  await writeFileAtomic(`${values.out}.md`, `# fp32 XS against the official export and the GEMM probe (bench/fp32-gap.ts)\n\n${describeCpu(localCpu())}; GEMM probe ${(probe / 1e9).toFixed(1)} GMAC/s; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before.\n\n${markdown}`);
}
