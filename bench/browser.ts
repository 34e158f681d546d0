/**
 * SwiftFormer-XS latency at 224x224 (batch 1) in headless Chromium on onnxruntime-web's WebAssembly
 * engine (1 and 2 threads; the page is served cross-origin isolated so threads are allowed), against
 * onnxruntime-node in the same run. Browser and Node take turns in blocks so that machine noise hits
 * both; the table gives medians of the per-run times (inference only, measured inside each runtime).
 *
 *   node --import tsx bench/browser.ts [--rounds 60] [--threads 1,2] [--block 10] [--json]
 *
 * Needs /usr/bin/chromium (apt-get install chromium) and ../shared/fixtures/xs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { percentile } from '../src/measure/bench.js';
import { loadModel, type FloatTensor } from '../src/index.js';
import { buildPage, chromiumAvailable, CHROMIUM, launchChromium, serveStatic } from '../web/harness.js';
import { FIXTURES } from '../test/fixtures.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    rounds: { type: 'string', default: '60' },
    threads: { type: 'string', default: '1,2' },
    block: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const block = Number(values.block);
const threadCounts = values.threads.split(',').map(Number);
if (!chromiumAvailable()) {
  console.error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  process.exit(1);
}

/** The same input as the page's demo.benchmark(). */
function pixels(): FloatTensor {
  const data = new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i * 12.9898) * 2);
  return { dtype: 'float32', shape: [1, 3, 224, 224], data };
}

type Demo = { demo: { benchmark(rounds: number, warmup?: number): Promise<number[]>; engine: { engine: string; threads: number } } };

const load = loadavg();
const dir = await mkdtemp(join(tmpdir(), 'swiftformer-bench-browser-'));
const site = await buildPage(join(dir, 'site'));
const server = await serveStatic({ '/': site.outDir, '/fixtures/': FIXTURES });
const browser = await launchChromium();
const weights = `${FIXTURES}xs/checkpoint_model_only.pth`;
const input = pixels();
const rows: { runtime: string; engine: string; threads: number; medianMs: number; p10Ms: number; p90Ms: number; runs: number }[] = [];

try {
  for (const threads of threadCounts) {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}?backend=wasm&threads=${threads}&nosw&model=/fixtures/xs/checkpoint_model_only.pth`);
    await page.waitForFunction(() => document.body.dataset.status === 'ready' || document.body.dataset.status === 'error', null, { timeout: 180_000 });
    const status = await page.evaluate(() => [document.body.dataset.status, document.getElementById('model-status')?.textContent]);
    if (status[0] !== 'ready') throw new Error(`the page did not load the model: ${status[1]}`);
    const engine = await page.evaluate(() => (window as unknown as Demo).demo.engine);
    const model = await loadModel({ weights, task: 'classification', session: { threads } });
    const warm = Math.max(5, Math.round(rounds / 10));
    await page.evaluate((n) => (window as unknown as Demo).demo.benchmark(0, n), warm);
    for (let i = 0; i < warm; i++) await model.logits(input);

    const web: number[] = [];
    const node: number[] = [];
    while (web.length < rounds) {
      const n = Math.min(block, rounds - web.length);
      web.push(...(await page.evaluate((k) => (window as unknown as Demo).demo.benchmark(k, 0), n)));
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await model.logits(input);
        node.push(performance.now() - t0);
      }
    }
    const row = (runtime: string, name: string, times: number[]) => ({
      runtime, engine: name, threads, medianMs: percentile(times, 0.5), p10Ms: percentile(times, 0.1), p90Ms: percentile(times, 0.9), runs: times.length,
    });
    rows.push(row('chromium', `onnxruntime-web ${engine.engine}`, web), row('node', 'onnxruntime-node cpu', node));
    if (engine.threads !== threads) console.warn(`warning: the page runs ${engine.threads} threads, not ${threads}`);
    await model.release();
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}

if (values.json) {
  console.log(JSON.stringify({ model: 'xs', size: 224, batch: 1, loadavg: load, rows }, null, 2));
} else {
  console.log(`SwiftFormer-XS, 224x224, batch 1; ${rounds} runs each; load average before the run ${load.map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| runtime | engine | threads | median ms | p10 ms | p90 ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.runtime} | ${r.engine} | ${r.threads} | ${r.medianMs.toFixed(2)} | ${r.p10Ms.toFixed(2)} | ${r.p90Ms.toFixed(2)} |`);
  for (const threads of threadCounts) {
    const [web, node] = rows.filter((r) => r.threads === threads);
    if (web && node) console.log(`${threads} thread${threads > 1 ? 's' : ''}: browser / node = ${(web.medianMs / node.medianMs).toFixed(2)}`);
  }
}
