/**
 * `swiftformer serve` under load: autocannon at 1, 8, 32 and 128 concurrent clients against
 * SwiftFormer-XS classification at 224, with dynamic batching on (--max-batch 16) and off
 * (--max-batch 1), each mode in its own server process, both running, taking turns: each level
 * runs --rounds times against each server (on, off, on, off, ...), and the round of median
 * throughput is reported. Per level: throughput, p50 / p99 latency, errors (connection errors,
 * timeouts, non-2xx; all rounds), and the server's RSS; per mode: RSS at start,
 * right after warm-up, idle (warm-up plus SETTLE_MS without traffic), peak during the run, at
 * its end and after it (the end plus the same SETTLE_MS), with the V8 heap, external and
 * ArrayBuffer memory the server's /metrics reports at idle, end and after. SETTLE_MS is longer
 * than the server's default --idle-trim-ms (2000), so idle and after are both the server as it
 * stands once it has had time to give back what its runs held.
 *
 *   node --import tsx bench/serve.ts [--clients 1,8,32,128] [--requests 600] [--seconds 120]
 *       [--rounds 3] [--endpoint v2|v1] [--weights xs.pth] [--max-delay-ms 5] [--threads N]
 *       [--json out.json]
 *
 * --endpoint v2 (default) sends a [1,3,224,224] FP32 tensor with Triton's binary extension, so
 * the server's time is inference; v1 posts a 640x480 JPEG to /v1/models/xs/classify (decode and
 * preprocessing included). Every level is bounded: --requests requests or --seconds, whichever
 * comes first (each round). Traffic goes to 127.0.0.1 only.
 *
 * First, the model alone (no server, the server's session settings) at batch 1, 4, 8 and 16: the
 * gain batching can give at most on this machine (on 2 cores it is bounded by batch-16 efficiency);
 * and again at batch 1 and 16 before each round at 32 clients, so that each of the servers'
 * ratios there has the model's own from the same minute beside it.
 *
 * Targets (issue 16): no errors below the queue bound (--max-queue 256 > 128 clients), throughput
 * with batching at 32 clients >= 1.3x without, RSS after the run within 10% of idle.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import '../src/node/platform.js';
import { loadSwiftFormer } from '../src/models/model.js';
import { writeFileAtomic } from '../src/node/files.js';
import { benchArgs } from './args.js';
import { machine } from './machine.js';

interface CannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number; average: number };
}
interface CannonInstance { stop(): void; on(event: 'response', listener: () => void): void }
type Cannon = (opts: Record<string, unknown>, done: (err: Error | null, result: CannonResult) => void) => CannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;

const { values } = benchArgs(import.meta.url, {
  options: {
    clients: { type: 'string', default: '1,8,32,128' },
    requests: { type: 'string', default: '600' },
    seconds: { type: 'string', default: '120' },
    endpoint: { type: 'string', default: 'v2' },
    weights: { type: 'string', default: fileURLToPath(new URL('../../shared/fixtures/xs/checkpoint_model_only.pth', import.meta.url)) },
    'max-delay-ms': { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string' },
    json: { type: 'string' },
  },
});
const levels = values.clients!.split(',').map(Number);
const requests = Number(values.requests);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Quiet time after the warm-up and after the run before RSS is read as idle / after. */
const SETTLE_MS = 5000;
const MB = 2 ** 20;

/**
 * The server's process: on glibc `serve` relaunches itself with its allocator settings
 * (src/serve/allocator.ts), and the launcher (a bare Node process, its RSS reported apart) waits.
 */
function serverPid(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children[0] ?? pid;
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The request every client sends, over and over. */
async function requestFor(endpoint: string): Promise<{ path: string; headers: Record<string, string>; body: Buffer }> {
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
  if (endpoint === 'v1') {
    const pixels = Buffer.alloc(640 * 480 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (((i / 3) % 640) / 3 + random() * 64) & 0xff;
    const jpeg = await sharp(pixels, { raw: { width: 640, height: 480, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    return { path: '/v1/models/xs/classify', headers: { 'Content-Type': 'image/jpeg' }, body: jpeg };
  }
  const data = Buffer.alloc(3 * 224 * 224 * 4);
  for (let i = 0; i < data.length; i += 4) data.writeFloatLE(random() * 4 - 2, i);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'pixel_values', shape: [1, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: data.length } }],
    outputs: [{ name: 'logits', parameters: { binary_data: true } }],
  }));
  return {
    path: '/v2/models/xs/infer',
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
    body: Buffer.concat([header, data]),
  };
}

/** The server's own memory figures (bytes in /metrics) in MB. */
async function serverMemory(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  return {
    heapUsedMB: read('nodejs_heap_size_used_bytes') / MB, externalMB: read('nodejs_external_memory_bytes') / MB,
    arrayBuffersMB: read('nodejs_array_buffers_bytes') / MB, trims: read('swiftformer_idle_trims_total'),
    runs: read('swiftformer_batch_size_count\\{model="xs"\\}'), rows: read('swiftformer_batch_size_sum\\{model="xs"\\}'),
  };
}

async function startServer(maxBatch: number): Promise<{ child: ChildProcess; url: string }> {
  const args = ['--import', 'tsx', MAIN, 'serve', '--model', `xs=${values.weights}`, '--port', '0', '--max-batch', String(maxBatch), '--max-delay-ms', values['max-delay-ms']!];
  if (values.threads) args.push('--threads', values.threads);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(line.replace('listening on ', '')));
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening`)));
  });
  return { child, url };
}

/**
 * One level. `seconds` runs from the start to the last response: autocannon notices that the
 * amount is done only at its next sampling tick (every second by default, so its `duration` moved
 * in steps of 10% at 600 requests).
 */
function cannon(url: string, req: Awaited<ReturnType<typeof requestFor>>, connections: number, amount: number): Promise<CannonResult & { seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let last = started;
    const instance = autocannon({
      url: url + req.path, method: 'POST', headers: req.headers, body: req.body, connections, amount: Math.max(amount, connections), timeout: 120, sampleInt: 100,
    }, (err, result) => (err ? reject(err) : resolve({ ...result, seconds: (last - started) / 1000 })));
    instance.on('response', () => (last = performance.now()));
    // Bounded in time as well as in count.
    const timer = setTimeout(() => instance.stop(), seconds * 1000);
    timer.unref();
  });
}

interface Level { clients: number; requests: number; seconds: number; throughput: number; p50ms: number; p99ms: number; errors: number; rssDuringMB: number; meanBatch: number }

/** One server: batching on (max batch 16) or off (1). */
interface Mode { maxBatch: number; label: string; child: ChildProcess; url: string; pid: number; startMB: number; launcherMB: number; warmMB: number; idleMB: number; idle: Record<string, number>; peakMB: number }

async function startMode(maxBatch: number, req: Awaited<ReturnType<typeof requestFor>>): Promise<Mode> {
  const { child, url } = await startServer(maxBatch);
  const pid = serverPid(child.pid!);
  const startMB = rssMB(pid);
  const launcherMB = pid === child.pid ? 0 : rssMB(child.pid!);
  await warmUp(url, maxBatch, req);
  return { maxBatch, label: maxBatch > 1 ? 'on ' : 'off', child, url, pid, startMB, launcherMB, warmMB: rssMB(pid), idleMB: 0, idle: {}, peakMB: 0 };
}

/**
 * A few full batches, untimed. Before each round too: the server trims while the other one has its
 * turn (longer than its --idle-trim-ms), and the first run of a reopened session is slow.
 */
function warmUp(url: string, maxBatch: number, req: Awaited<ReturnType<typeof requestFor>>) {
  return cannon(url, req, Math.max(1, maxBatch), 3 * Math.max(1, maxBatch));
}

/** One round of one level against one server. */
async function runLevel(mode: Mode, req: Awaited<ReturnType<typeof requestFor>>, clients: number): Promise<Level> {
  await warmUp(mode.url, mode.maxBatch, req);
  let during = 0;
  const poll = setInterval(() => {
    during = Math.max(during, rssMB(mode.pid));
  }, 100);
  const before = await serverMemory(mode.url);
  const r = await cannon(mode.url, req, clients, requests);
  clearInterval(poll);
  const batches = await serverMemory(mode.url);
  mode.peakMB = Math.max(mode.peakMB, during);
  return {
    clients, requests: r['2xx'], seconds: r.seconds, throughput: r['2xx'] / r.seconds,
    p50ms: r.latency.p50, p99ms: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx, rssDuringMB: during,
    meanBatch: (batches.rows! - before.rows!) / (batches.runs! - before.runs!),
  };
}

/** The round of median throughput, with every round's throughput and the errors of all of them. */
function medianRound(runs: Level[]): Level & { rounds: number[] } {
  const sorted = [...runs].sort((a, b) => a.throughput - b.throughput);
  const errors = runs.reduce((n, r) => n + r.errors, 0);
  return { ...sorted[Math.floor(sorted.length / 2)]!, errors, rssDuringMB: Math.max(...runs.map((r) => r.rssDuringMB)), rounds: runs.map((r) => r.throughput) };
}

async function finishMode(mode: Mode, levelsOut: ReturnType<typeof medianRound>[]) {
  const endMB = rssMB(mode.pid);
  const end = await serverMemory(mode.url);
  await sleep(SETTLE_MS);
  const afterMB = rssMB(mode.pid);
  const afterMemory = await serverMemory(mode.url);
  const { startMB, warmMB, idleMB, peakMB, launcherMB, label } = mode;
  console.log(`  batching ${label} RSS (server process${launcherMB ? `; its launcher ${launcherMB.toFixed(0)} MB` : ''}): start ${startMB.toFixed(0)} MB, warm ${warmMB.toFixed(0)} MB, idle ${idleMB.toFixed(0)} MB, peak ${peakMB.toFixed(0)} MB, end ${endMB.toFixed(0)} MB, after ${afterMB.toFixed(0)} MB (${(((afterMB - idleMB) / idleMB) * 100).toFixed(1)}% over idle)`);
  for (const [when, m] of [['idle', mode.idle], ['end', end], ['after', afterMemory]] as const) {
    console.log(`  batching ${label} ${when.padEnd(5)}: heap used ${m.heapUsedMB!.toFixed(0)} MB, external ${m.externalMB!.toFixed(0)} MB (array buffers ${m.arrayBuffersMB!.toFixed(0)} MB), idle trims so far ${m.trims}`);
  }
  return { maxBatch: mode.maxBatch, levels: levelsOut, rss: { startMB, warmMB, idleMB, peakMB, endMB, afterMB, launcherMB }, memory: { idle: mode.idle, end, after: afterMemory } };
}

async function stopMode(mode: Mode): Promise<void> {
  if (mode.child.exitCode !== null) return;
  mode.child.kill('SIGTERM');
  await new Promise((r) => mode.child.once('exit', r));
}

/**
 * Both servers at once, taking turns: every level runs `rounds` times against each, alternating
 * on, off, on, off, ..., and reports the round of median throughput. Why: this machine's speed
 * drifts by more than the effect measured (the same code gave 1.06x to 1.29x when one mode ran
 * all its levels after the other), and turns side by side see the same drift.
 */
async function runBoth(req: Awaited<ReturnType<typeof requestFor>>, beforeRound: (clients: number) => Promise<void>) {
  const modes: Mode[] = [];
  try {
    for (const maxBatch of [16, 1]) modes.push(await startMode(maxBatch, req));
    await sleep(SETTLE_MS);
    for (const mode of modes) {
      mode.idleMB = rssMB(mode.pid);
      mode.idle = await serverMemory(mode.url);
      mode.peakMB = mode.idleMB;
    }
    const levelsOut = modes.map(() => [] as ReturnType<typeof medianRound>[]);
    for (const clients of levels) {
      const runs = modes.map(() => [] as Level[]);
      for (let round = 0; round < rounds; round++) {
        await beforeRound(clients);
        for (const [i, mode] of modes.entries()) runs[i]!.push(await runLevel(mode, req, clients));
      }
      for (const [i, mode] of modes.entries()) {
        const level = medianRound(runs[i]!);
        levelsOut[i]!.push(level);
        console.log(`  batching ${mode.label} ${String(clients).padStart(4)} clients: ${level.throughput.toFixed(1).padStart(6)} req/s (rounds ${level.rounds.map((t) => t.toFixed(1)).join(' / ')}), p50 ${level.p50ms.toFixed(0).padStart(5)} ms, p99 ${level.p99ms.toFixed(0).padStart(5)} ms, ${level.errors} errors, ${level.meanBatch.toFixed(1)} rows per run, RSS ${level.rssDuringMB.toFixed(0)} MB`);
      }
    }
    const [on, off] = await Promise.all(modes.map((mode, i) => finishMode(mode, levelsOut[i]!)));
    return { on: on!, off: off! };
  } finally {
    await Promise.all(modes.map(stopMode));
  }
}

type Engine = Awaited<ReturnType<typeof loadSwiftFormer>>;

/** Images per second of the model alone at one batch size: one warm-up run, then 32 images or more. */
async function imagesPerSecond(model: Engine, batch: number): Promise<number> {
  const pixels = { dtype: 'float32' as const, shape: [batch, 3, 224, 224], data: new Float32Array(batch * 3 * 224 * 224).fill(0.5) };
  await model.logits(pixels);
  const runs = Math.max(2, Math.ceil(32 / batch));
  const start = performance.now();
  for (let i = 0; i < runs; i++) await model.logits(pixels);
  return (runs * batch) / ((performance.now() - start) / 1000);
}

/**
 * The model alone (no server, the server's session settings) at batch sizes 1 to 16: three rounds
 * over the sizes, the median of each size, so that one disturbance does not decide the ratio.
 */
async function modelAlone(model: Engine): Promise<Record<string, number>> {
  const batches = [1, 4, 8, 16];
  const rates = new Map<number, number[]>(batches.map((b) => [b, []]));
  for (let round = 0; round < 3; round++) {
    for (const batch of batches) rates.get(batch)!.push(await imagesPerSecond(model, batch));
  }
  return Object.fromEntries(batches.map((b) => [`batch${b}`, median(rates.get(b)!)]));
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

const req = await requestFor(values.endpoint!);
const host = { ...machine(), node: process.version };
console.log(`serve bench: XS at 224 via ${req.path}, ${requests} requests or ${seconds} s per level, on ${host.cpu} (${host.cores} cores; ${host.flags.join(' ')})`);
const engine = await loadSwiftFormer({ weights: values.weights!, ...(values.threads ? { session: { threads: Number(values.threads) } } : {}) });
const alone = await modelAlone(engine);
console.log(`model alone: ${Object.entries(alone).map(([k, v]) => `${v.toFixed(1)} img/s at ${k.replace('batch', 'batch ')}`).join(', ')} (batch 16 / 1: ${(alone.batch16! / alone.batch1!).toFixed(2)}x, the most batching can gain here)`);
// The model's own batch 16 / batch 1 gain again before each round at 32 clients, beside the servers'.
const engineRatios: number[] = [];
const { on, off } = await runBoth(req, async (clients) => {
  if (clients === 32) engineRatios.push((await imagesPerSecond(engine, 16)) / (await imagesPerSecond(engine, 1)));
});
await engine.release();
if (engineRatios.length) console.log(`model alone before each round at 32 clients, batch 16 / 1: ${engineRatios.map((r) => r.toFixed(2)).join(' / ')} (median ${median(engineRatios).toFixed(2)}x)`);
const at32 = (m: typeof on) => m.levels.find((l) => l.clients === 32);
const [on32, off32] = [at32(on), at32(off)];
const ratio = on32 && off32 ? on32.throughput / off32.throughput : undefined;
// Each round's ratio to the round of the other mode that ran right after it.
const roundRatios = on32 && off32 ? on32.rounds.map((t, i) => t / off32.rounds[i]!) : undefined;
if (ratio !== undefined) console.log(`throughput at 32 clients, batching on / off: ${ratio.toFixed(2)}x of the medians (rounds ${roundRatios!.map((r) => r.toFixed(2)).join(' / ')}; target >= 1.3x)`);
const result = { bench: 'serve', endpoint: values.endpoint, maxDelayMs: Number(values['max-delay-ms']), threads: values.threads ?? 'default', settleMs: SETTLE_MS, idleTrimMs: 'default (2000)', machine: host, rounds, modelAloneImagesPerSecond: alone, batching: on, noBatching: off, ratioAt32: ratio, roundRatiosAt32: roundRatios, modelAloneRatiosAt32: engineRatios };
if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(result, null, 2)}\n`);
