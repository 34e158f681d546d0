/** The machine a benchmark ran on, recorded with every result: CPU model, cores, SIMD flags, load average. */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

export interface Machine { cpu: string | undefined; cores: number; loadavg: number[]; flags: string[] }

export function machine(): Machine {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const flags = /^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.split(' ') ?? [];
  return {
    cpu: cpus()[0]?.model, cores: cpus().length, loadavg: loadavg(),
    flags: flags.filter((f) => /^(avx|avx2|avx512\w*|fma|sse4_2|f16c|amx\w*|avx_vnni)$/.test(f)),
  };
}
