/**
 * Semantic FPN latency at 512x512, batch 1: our ONNX graph against the same model exported from
 * PyTorch (bench/semfpn-torch.py --export-onnx, the PyTorch reference, torch.onnx.export opset 17)
 * with the same weights, on the same onnxruntime-node with identical options, interleaved
 * (src/measure/bench.ts compareLatency). Both output the logits at the input resolution; the run
 * checks they agree. Then the demo page's latency on onnxruntime-web (WebAssembly, 2 threads) for XS.
 * Target: ours / PyTorch's <= 0.9.
 *
 *   node --import tsx bench/segmentation.ts [--variants xs,l1] [--size 512] [--rounds 30] [--threads 2]
 *        [--page-rounds 20] [--no-page] [--torch-script bench/semfpn-torch.py] [--json out.json]
 *
 * Weights: a fresh Semantic FPN per variant (150 classes, FPN 256, head 128; mmseg's
 * initialization, seed 0), written as mmseg-layout safetensors that the PyTorch side loads.
 * Needs Debian's /usr/bin/python3 with python3-torch and python3-onnx, and /usr/bin/chromium for the page.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  compareLatency, getBackend, loadSemanticFpn, semanticFpnConfig, initialSemanticFpnWeights, syntheticPixels, variantConfig, writeSafetensors,
} from '../src/index.js';
import { percentile } from '../src/measure/bench.js';
import { writeFileAtomic } from '../src/node/files.js';
import { buildPage, chromiumAvailable, launchChromium, serveStatic } from '../web/harness.js';
import { relativeError } from '../test/fixtures.js';
import { machine } from './machine.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    variants: { type: 'string', default: 'xs,l1' },
    size: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '30' },
    threads: { type: 'string', default: '2' },
    'page-rounds': { type: 'string', default: '20' },
    'no-page': { type: 'boolean', default: false },
    'torch-script': { type: 'string', default: fileURLToPath(new URL('semfpn-torch.py', import.meta.url)) },
    json: { type: 'string' },
  },
});
const size = Number(values.size);
const rounds = Number(values.rounds);
const threads = Number(values.threads);
const session = { threads };
const script = values['torch-script'];
if (!existsSync(script)) {
  console.error(`${script} is missing: the PyTorch reference (bench/semfpn-torch.py) exports the other side; pass --torch-script <path>`);
  process.exit(1);
}

const dir = await mkdtemp(join(tmpdir(), 'swiftformer-bench-seg-'));
const started = machine();
const rows: Record<string, unknown>[] = [];
let page: Record<string, unknown> | undefined;
try {
  for (const variant of values.variants.split(',')) {
    const config = semanticFpnConfig(variantConfig(variant));
    const state = initialSemanticFpnWeights(config, 0);
    const weights = join(dir, `${variant}.safetensors`);
    await writeFile(weights, writeSafetensors(state));
    const model = loadSemanticFpn(state, {}, {});
    const ours = model.toOnnx(size);
    const theirs = join(dir, `${variant}-torch.onnx`);
    await promisify(execFile)('/usr/bin/python3', [script, '--export-onnx', theirs, '--weights', weights, '--export-size', String(size), '--threads', String(threads)], { maxBuffer: 1 << 24 });
    // The two graphs compute the same logits.
    const backend = getBackend();
    const [a, b] = await Promise.all([backend.createSession(ours, session), backend.createSession(theirs, session)]);
    const pixels = syntheticPixels(1, size);
    const agreement = relativeError((await a.run({ pixel_values: pixels })).logits!.data, (await b.run({ pixel_values: pixels })).logits!.data);
    await Promise.all([a.release(), b.release()]);
    const [t, o] = await compareLatency(
      [{ name: 'ours', model: ours, input: 'pixel_values' }, { name: 'pytorch', model: theirs, input: 'pixel_values' }],
      { batch: 1, size, rounds, session },
    );
    const row = { variant, size, batch: 1, threads, oursMs: t!.medianMs, pytorchMs: o!.medianMs, ratio: t!.medianMs / o!.medianMs, oursP90Ms: t!.p90Ms, pytorchP90Ms: o!.p90Ms, maxRelDiff: agreement };
    rows.push(row);
    console.log(`${variant} ${size}x${size}: ours ${row.oursMs.toFixed(1)} ms, PyTorch export ${row.pytorchMs.toFixed(1)} ms, ours/PyTorch ${row.ratio.toFixed(3)} (logits agree to ${agreement.toExponential(1)} rel)`);
  }

  if (!values['no-page'] && chromiumAvailable()) {
    const variant = 'xs';
    const config = semanticFpnConfig(variantConfig(variant));
    await writeFile(join(dir, 'page-xs.safetensors'), writeSafetensors(initialSemanticFpnWeights(config, 0)));
    const site = await buildPage(join(dir, 'site'));
    const server = await serveStatic({ '/': site.outDir, '/weights/': dir });
    const browser = await launchChromium();
    try {
      const p = await browser.context.newPage();
      await p.goto(`${server.url}?backend=wasm&threads=2&nosw&model=/weights/page-xs.safetensors`);
      await p.waitForFunction(() => document.body.dataset.status === 'ready' || document.body.dataset.status === 'error', null, { timeout: 300_000 });
      type Demo = { demo: { benchmarkSegmentation(rounds: number, size: number, warmup?: number): Promise<number[]>; engine: { engine: string; threads: number } } };
      const times = await p.evaluate(([n, s]) => (window as unknown as Demo).demo.benchmarkSegmentation(n!, s!), [Number(values['page-rounds']), size]);
      const engine = await p.evaluate(() => (window as unknown as Demo).demo.engine);
      page = { variant, size, engine: engine.engine, threads: engine.threads, medianMs: percentile(times, 0.5), p90Ms: percentile(times, 0.9), runs: times.length, what: 'decode-head logits (what segment() runs), inference only' };
      console.log(`page (onnxruntime-web ${engine.engine}, ${engine.threads} threads) ${variant} ${size}x${size}: median ${(page.medianMs as number).toFixed(1)} ms`);
    } finally {
      await browser.close();
      await server.close();
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const record = { machine: started, loadavgAfter: loadavg(), rounds, rows, page };
if (values.json) {
  await writeFileAtomic(values.json, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`wrote ${values.json}`);
}
