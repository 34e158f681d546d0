/**
 * INT8 against fp32 in the demo page (headless Chromium, onnxruntime-web WebAssembly):
 *
 * - latency at batch 1, 2 threads (the page is served cross-origin isolated), for SwiftFormer-XS
 *   at 224 (fixture weights: the .pth parsed in the page against its INT8 export, calibrated on the
 *   example photos) and for the built-in model (model.safetensors against the build's
 *   model.int8.onnx); the two pages take turns in blocks, so that machine noise hits both;
 * - page load from a cold cache (a fresh browser profile, no service worker) until the model is
 *   ready (loaded, session made, one run), with the bandwidth limited through Chromium's DevTools
 *   protocol (Network.emulateNetworkConditions), and the bytes transferred;
 * - whether Chromium exposes WebNN (navigator.ml) here.
 *
 *   node --import tsx bench/browser-int8.ts [--rounds 40] [--block 10] [--loads 3] [--mbps 20]
 *        [--latency-ms 20] [--threads 2] [--out bench/results/browser-int8.json]
 *
 * Needs /usr/bin/chromium (apt-get install chromium) and ../shared/fixtures/xs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { percentile } from '../src/measure/bench.js';
import { writeFileAtomic } from '../src/node/files.js';
import { int8Onnx } from '../src/cli/export.js';
import { buildPage, chromiumAvailable, CHROMIUM, CHROMIUM_FLAGS, launchChromium, serveStatic } from '../web/harness.js';
import { FIXTURES } from '../test/fixtures.js';
import { examplePhotos, machineRecord, xsFixture } from './int8-common.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    rounds: { type: 'string', default: '40' },
    block: { type: 'string', default: '10' },
    loads: { type: 'string', default: '3' },
    mbps: { type: 'string', default: '20' },
    'latency-ms': { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
if (!chromiumAvailable()) {
  console.error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  process.exit(1);
}
const rounds = Number(values.rounds);
const block = Number(values.block);
const threads = Number(values.threads);
const loadBefore = loadavg();

type Demo = { demo: { benchmark(rounds: number, warmup?: number): Promise<number[]>; engine: { engine: string; threads: number }; model?: { int8: boolean } } };

const dir = await mkdtemp(join(tmpdir(), 'swiftformer-bench-browser-int8-'));
const site = await buildPage(join(dir, 'site'));
const { model } = await xsFixture();
await writeFile(join(dir, 'xs224.int8.onnx'), await int8Onnx(model, 224, [await examplePhotos(224)]));
await model.release();
const server = await serveStatic({ '/': site.outDir, '/fixtures/': FIXTURES, '/bench-models/': dir });

/** What the page loads, by `?model=`; pairs of fp32 and INT8. */
const pairs: { name: string; fp32: string; int8: string }[] = [
  { name: 'XS 224 (fixture weights)', fp32: '/fixtures/xs/checkpoint_model_only.pth', int8: '/bench-models/xs224.int8.onnx' },
];
if (site.files.includes('models/default/model.int8.onnx')) pairs.push({ name: 'built-in model', fp32: 'default', int8: 'default-int8' });

async function ready(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.status === 'ready' || document.body.dataset.status === 'error', null, { timeout: 600_000 });
  const [status, text] = await page.evaluate(() => [document.body.dataset.status, document.getElementById('model-status')?.textContent]);
  if (status !== 'ready') throw new Error(`the page did not load the model: ${text}`);
}

const pageUrl = (modelParam: string) => `${server.url}?backend=wasm&threads=${threads}&nosw${modelParam === 'default' ? '' : `&model=${modelParam}`}`;

/** Medians of the two models' timings in one page each, in alternating blocks. */
async function latency(pair: (typeof pairs)[number]) {
  const browser = await launchChromium();
  try {
    const pages = await Promise.all([pair.fp32, pair.int8].map(async (m) => {
      const page = await browser.context.newPage();
      await page.goto(pageUrl(m));
      await ready(page);
      return page;
    }));
    const run = (page: Page, n: number, warmup: number) => page.evaluate(([k, w]) => (window as unknown as Demo).demo.benchmark(k!, w), [n, warmup]);
    for (const page of pages) await run(page, 0, 5);
    const times: number[][] = [[], []];
    while (times[0]!.length < rounds) {
      const n = Math.min(block, rounds - times[0]!.length);
      for (const [i, page] of pages.entries()) times[i]!.push(...(await run(page, n, 0)));
    }
    const engine = await pages[0]!.evaluate(() => (window as unknown as Demo).demo.engine);
    const [fp32, int8] = times.map((t) => ({ medianMs: percentile(t, 0.5), p10Ms: percentile(t, 0.1), p90Ms: percentile(t, 0.9) }));
    return { engine: `onnxruntime-web ${engine.engine}`, threads: engine.threads, fp32: fp32!, int8: int8!, ratio: int8!.medianMs / fp32!.medianMs };
  } finally {
    await browser.close();
  }
}

/** Seconds from navigation to a ready model in a fresh profile, with the network throttled; bytes received. */
async function coldLoad(modelParam: string): Promise<{ seconds: number; megabytes: number }> {
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: Number(values['latency-ms']),
      downloadThroughput: (Number(values.mbps) * 1e6) / 8,
      uploadThroughput: (Number(values.mbps) * 1e6) / 8,
    });
    let bytes = 0;
    cdp.on('Network.loadingFinished', (e: { encodedDataLength: number }) => { bytes += e.encodedDataLength; });
    const start = Date.now();
    await page.goto(pageUrl(modelParam), { waitUntil: 'commit', timeout: 600_000 });
    await ready(page);
    return { seconds: (Date.now() - start) / 1000, megabytes: bytes / 1e6 };
  } finally {
    await browser.close();
  }
}

/** What navigator.ml gives in a page on 127.0.0.1, without and with Chromium's WebNN feature flag. */
async function webnn(): Promise<{ userAgent: string; plain: string; withFlag: string }> {
  const { chromium } = await import('playwright-core');
  const probe = async (args: string[]) => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, ...args] });
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}?nosw`);
      return await page.evaluate(async () => {
        const ml = (navigator as unknown as { ml?: { createContext(o?: unknown): Promise<unknown> } }).ml;
        if (!ml) return [navigator.userAgent, 'navigator.ml is undefined'];
        try {
          await ml.createContext({ deviceType: 'cpu' });
          return [navigator.userAgent, 'a CPU WebNN context was created'];
        } catch (err) {
          return [navigator.userAgent, `createContext failed: ${(err as Error).message}`];
        }
      });
    } finally {
      await browser.close();
    }
  };
  const [userAgent, plain] = await probe([]);
  const [, withFlag] = await probe(['--enable-features=WebMachineLearningNeuralNetwork']);
  return { userAgent: userAgent!, plain: plain!, withFlag: withFlag! };
}

const results: Record<string, unknown>[] = [];
try {
  const ml = await webnn();
  const version = /Chrom(e|ium)\/([\d.]+)/.exec(ml.userAgent)?.[2] ?? ml.userAgent;
  console.log(`Chromium ${version}; WebNN: ${ml.plain}; with --enable-features=WebMachineLearningNeuralNetwork: ${ml.withFlag}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  for (const pair of pairs) {
    const lat = await latency(pair);
    console.log(`${pair.name}: ${lat.engine}, ${lat.threads} threads: fp32 ${lat.fp32.medianMs.toFixed(1)} ms, INT8 ${lat.int8.medianMs.toFixed(1)} ms, INT8/fp32 ${lat.ratio.toFixed(3)}`);
    const loads: Record<string, { seconds: number; megabytes: number }[]> = { fp32: [], int8: [] };
    for (let i = 0; i < Number(values.loads); i++) for (const kind of ['fp32', 'int8'] as const) loads[kind]!.push(await coldLoad(pair[kind]));
    const cold = Object.fromEntries(Object.entries(loads).map(([k, xs]) => [k, { medianSeconds: percentile(xs.map((x) => x.seconds), 0.5), megabytes: xs[0]!.megabytes, runs: xs.map((x) => x.seconds) }]));
    console.log(`  cold load at ${values.mbps} Mbit/s: fp32 ${cold.fp32!.medianSeconds.toFixed(1)} s (${cold.fp32!.megabytes.toFixed(1)} MB), INT8 ${cold.int8!.medianSeconds.toFixed(1)} s (${cold.int8!.megabytes.toFixed(1)} MB)`);
    results.push({ name: pair.name, models: { fp32: pair.fp32, int8: pair.int8 }, latency: lat, coldLoad: cold });
  }
  if (values.out) {
    const record = {
      chromium: version, webnn: ml, rounds, block, network: { mbps: Number(values.mbps), latencyMs: Number(values['latency-ms']) },
      machine: { ...machineRecord(), loadavgBefore: loadBefore }, results,
    };
    await writeFileAtomic(values.out, `${JSON.stringify(record, null, 2)}\n`);
  }
} finally {
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
