import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fullRangeWeights, int8Outlook, parseCpuInfo, type Int8Measurement } from '../src/measure/cpu.js';

const sample = (name: string) => parseCpuInfo(readFileSync(new URL(`./data/cpuinfo/${name}.txt`, import.meta.url), 'utf8'));

describe('CPU features from /proc/cpuinfo', () => {
  test('each kind of processor gets its INT8 path and integer flags', () => {
    const cases: [string, string, string, string[]][] = [
      ['amd-epyc-avx2', 'AMD EPYC', 'avx2', ['avx2', 'fma', 'sse4_1']],
      ['intel-xeon-cascadelake', 'Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz', 'avx512-vnni', ['avx512_vnni', 'avx512bw', 'avx512f', 'avx2', 'fma', 'sse4_1']],
      ['intel-core-alderlake', '12th Gen Intel(R) Core(TM) i7-12700', 'avx-vnni', ['avx_vnni', 'avx2', 'fma', 'sse4_1']],
      ['intel-xeon-sapphirerapids', 'Intel(R) Xeon(R) Platinum 8488C', 'amx-int8', ['amx_int8', 'amx_tile', 'avx512_vnni', 'avx_vnni', 'avx512bw', 'avx512f', 'avx2', 'fma', 'sse4_1']],
      ['arm-neoverse-n1', 'ARM (implementer 0x41, part 0xd0c)', 'arm-dotprod', ['asimddp', 'asimd']],
      ['arm-neoverse-v1', 'ARM (implementer 0x41, part 0xd40)', 'arm-i8mm', ['i8mm', 'asimddp', 'sve', 'asimd']],
    ];
    for (const [file, model, path, integer] of cases) {
      const cpu = sample(file);
      assert.equal(cpu.model, model, file);
      assert.equal(cpu.int8Path, path, file);
      assert.deepEqual(cpu.integer, integer, file);
    }
  });

  test('only the first processor block is read, and an empty or foreign text gives no flags', () => {
    const epyc = sample('amd-epyc-avx2');
    assert.equal(epyc.flags.filter((f) => f === 'avx2').length, 1);
    assert.ok(epyc.flags.includes('sse4_2') && epyc.flags.length > 50);
    for (const text of ['', 'garbage\nwithout: colons that matter\n']) {
      const cpu = parseCpuInfo(text);
      assert.deepEqual([cpu.flags, cpu.integer, cpu.int8Path], [[], [], 'unknown']);
    }
  });

  test('full-range int8 weights only where products accumulate in 32 bits (VNNI, AMX, ARM dot products)', () => {
    assert.deepEqual(
      ['amd-epyc-avx2', 'intel-xeon-cascadelake', 'intel-core-alderlake', 'intel-xeon-sapphirerapids', 'arm-neoverse-n1'].map((f) => fullRangeWeights(sample(f).int8Path)),
      [false, true, true, true, true],
    );
  });
});

describe('the INT8 outlook export --int8 prints', () => {
  const measured: Int8Measurement[] = [
    { path: 'avx2', machine: 'AMD EPYC', model: 'XS', size: 224, ratios: { 1: 0.8, 16: 0.6 }, source: 'bench/results/a.json' },
    { path: 'avx2', machine: 'AMD EPYC', model: 'XS', size: 32, ratios: { 1: 1.2, 64: 0.9 }, source: 'bench/results/b.json' },
  ];
  test('picks the measurement of the same INT8 path nearest in input size, and says what it is based on', () => {
    const big = int8Outlook(sample('amd-epyc-avx2'), 256, measured);
    assert.equal(big.faster, true);
    assert.equal(big.message, "INT8 is expected to be faster than fp32 here (AMD EPYC, INT8 path avx2); measured on AMD EPYC with avx2, XS at 224x224: INT8 latency 0.80x at batch 1, 0.60x at batch 16 of fp32's (bench/results/a.json)");
    const small = int8Outlook(sample('amd-epyc-avx2'), 28, measured);
    assert.equal(small.faster, false);
    assert.match(small.message, /^INT8 is not expected to be faster than fp32 here \(AMD EPYC, INT8 path avx2\) at batch 1; measured on AMD EPYC with avx2, XS at 32x32: INT8 latency 1\.20x at batch 1, 0\.90x at batch 64/);
  });

  test('the bundled measurements: INT8 expected faster on this project\'s AVX2 machine, unknown on VNNI', () => {
    assert.equal(int8Outlook(sample('amd-epyc-avx2'), 224).faster, true);
    assert.equal(int8Outlook(sample('intel-xeon-sapphirerapids'), 224).faster, undefined);
  });

  test('a processor whose INT8 path was never measured is told so, with the command that measures it', () => {
    const outlook = int8Outlook(sample('intel-xeon-cascadelake'), 224, measured);
    assert.equal(outlook.faster, undefined);
    assert.equal(outlook.message, 'INT8 has not been measured against fp32 on a processor with INT8 path avx512-vnni (this one: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz): time it with `swiftformer bench --int8 <file>`');
  });
});
