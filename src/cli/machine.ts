/** This machine's processor, for benchmark records and INT8 advice (measure/cpu.ts parses the text). */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseCpuInfo, type CpuFeatures } from '../measure/cpu.js';

/** /proc/cpuinfo where there is one (Linux); elsewhere the model name alone, flags unknown. */
export function localCpu(): CpuFeatures {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: no flags to read.
  }
  const cpu = parseCpuInfo(text);
  return cpu.model ? cpu : { ...cpu, model: cpus()[0]?.model ?? '' };
}

/** What every file in bench/results records about the machine it was measured on. */
export function machineRecord(): { cpu: string; cores: number; int8Path: string; integerFlags: string[]; flags: string[]; loadavg: number[] } {
  const cpu = localCpu();
  return { cpu: cpu.model, cores: cpus().length, int8Path: cpu.int8Path, integerFlags: cpu.integer, flags: cpu.flags, loadavg: loadavg() };
}
