/**
 * Peak memory of `swiftformer classify` with SwiftFormer-XS on one image, in a child process
 * running the built CLI (dist/, rebuilt when src/ is newer). The child's own peak RSS
 * (`process.resourceUsage().maxRSS`, i.e. getrusage's ru_maxrss) is written on exit by a
 * module preloaded through NODE_OPTIONS, so no external `time -v` is needed.
 *
 *   node --import tsx bench/memory.ts [--runs 3] [--size 224] [--json]
 *
 * Target: under 300 MB.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { benchArgs } from './args.js';

const TARGET_MB = 300;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const WEIGHTS = fileURLToPath(new URL('../../shared/fixtures/xs/checkpoint_model_only.pth', import.meta.url));

const { values } = benchArgs(import.meta.url, {
  options: { runs: { type: 'string', default: '3' }, size: { type: 'string', default: '224' }, json: { type: 'boolean', default: false } },
});
const runs = Number(values.runs);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ts')) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

if (!existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(join(ROOT, 'src'))) {
  console.error('building dist/ (src is newer) ...');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
}

const dir = mkdtempSync(join(tmpdir(), 'swiftformer-membench-'));
const image = join(dir, 'photo.jpg');
// A 640x480 photo-like JPEG: noise over gradients (decoding and resizing have real work to do).
const pixels = Buffer.alloc(640 * 480 * 3);
let seed = 12345;
for (let i = 0; i < pixels.length; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  pixels[i] = (((i / 3) % 640) / 3 + (seed >>> 24) / 4) & 0xff;
}
await sharp(pixels, { raw: { width: 640, height: 480, channels: 3 } }).jpeg({ quality: 90 }).toFile(image);

/** The preloaded module: records the peak RSS (kB) into the file named by SWIFTFORMER_MAXRSS_FILE. */
const HOOK = `data:text/javascript,${encodeURIComponent(
  "import { writeFileSync } from 'node:fs'; process.on('exit', () => { if (process.env.SWIFTFORMER_MAXRSS_FILE) writeFileSync(process.env.SWIFTFORMER_MAXRSS_FILE, String(process.resourceUsage().maxRSS)); });",
)}`;

/** One child run; returns peak RSS in MB (and the /proc VmHWM seen while polling, as a cross-check). */
function run(i: number): Promise<{ maxRssMB: number; vmHwmMB: number | undefined; ms: number }> {
  const out = join(dir, `maxrss-${i}`);
  const start = Date.now();
  const child = spawn(process.execPath, [CLI, 'classify', image, '--weights', WEIGHTS, '--size', values.size!, '--json'], {
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim(), SWIFTFORMER_MAXRSS_FILE: out },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let vmHwm: number | undefined;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) vmHwm = Math.max(vmHwm ?? 0, Number(m[1]));
    } catch {
      // gone already, or no /proc
    }
  }, 20);
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`classify exited ${code}: ${stderr}`));
      JSON.parse(stdout); // the run did classify
      resolve({ maxRssMB: Number(readFileSync(out, 'utf8')) / 1024, vmHwmMB: vmHwm === undefined ? undefined : vmHwm / 1024, ms: Date.now() - start });
    });
  });
}

const results = [];
for (let i = 0; i < runs; i++) results.push(await run(i));
rmSync(dir, { recursive: true, force: true });
const peak = Math.max(...results.map((r) => r.maxRssMB));
if (values.json) {
  console.log(JSON.stringify({ model: 'xs', size: Number(values.size), runs: results, peakRssMB: peak, targetMB: TARGET_MB }, null, 2));
} else {
  for (const r of results) console.log(`run: peak RSS ${r.maxRssMB.toFixed(1)} MB (VmHWM polled ${r.vmHwmMB?.toFixed(1) ?? 'n/a'} MB), ${r.ms} ms`);
  console.log(`peak RSS of 'swiftformer classify' (XS, one image, ${values.size}px): ${peak.toFixed(1)} MB (target < ${TARGET_MB} MB) ${peak < TARGET_MB ? 'OK' : 'OVER'}`);
}
if (peak >= TARGET_MB) process.exitCode = 1;
