/**
 * The browser build in a real browser: web/ is built with Vite, served from 127.0.0.1 with
 * COOP/COEP (so WebAssembly threads are on), and driven in Debian's Chromium with playwright-core.
 * The page's logits must equal the Node library's for the same weights and images (max relative
 * difference <= 1e-4), with weights parsed in the page (.safetensors by URL, .pth from the file
 * picker and by URL). Skipped only when /usr/bin/chromium is missing (`apt-get install chromium`).
 *
 * Leaves a screenshot in test-artifacts/browser.png.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import {
  decodeImage, defaultWeights, evalTransform, loadLabels, loadSwiftFormer, OnnxClassifier, preprocess, readSafetensors, writeSafetensors, type Preprocessing,
  type SwiftFormerModel,
} from '../src/index.js';
import { NODE_ONLY } from '../scripts/check-boundaries.js';
import { buildPage, chromiumAvailable, CHROMIUM, launchChromium, REPO_DIR, serveStatic, type Browser, type BuildResult, type StaticServer } from '../web/harness.js';
import { FIXTURES, fixturePath, relativeError } from './fixtures.js';

const TOLERANCE = 1e-4;
const SCREENSHOT = join(REPO_DIR, 'test-artifacts/browser.png');

interface PageResult { seq: number; logits: number[]; top5: { index: number; label: string; score: number }[]; latencyMs: number; source: string }

/**
 * Deterministic test images: gradients, a checkerboard and a disc, at several sizes. PNG is
 * lossless, so the browser's pixels are the Node decoder's; the 4:2:0 JPEG checks that Chromium's
 * JPEG decoder agrees with libvips' closely enough too.
 */
const IMAGES: { name: string; width: number; height: number; seed: number }[] = [
  { name: 'landscape.png', width: 320, height: 240, seed: 1 },
  { name: 'portrait.png', width: 181, height: 263, seed: 2 },
  { name: 'small.png', width: 64, height: 48, seed: 3 },
  { name: 'photo.jpg', width: 300, height: 200, seed: 4 },
];

function pattern(width: number, height: number, seed: number): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inCircle = (x - width / 2) ** 2 + (y - height / 3) ** 2 < (Math.min(width, height) / 4) ** 2;
      buf[i] = inCircle ? 200 : (x * 255 * seed) / width;
      buf[i + 1] = (y * 255) / height;
      buf[i + 2] = ((x >> (seed + 1)) + (y >> 3)) % 2 ? 220 - seed * 20 : 30 + seed * 10;
    }
  }
  return buf;
}

// Without Chromium the whole file is one skipped test (counted as skipped, not passed).
if (!chromiumAvailable()) test('browser (Chromium)', { skip: `${CHROMIUM} is missing: apt-get install -y chromium to run the browser tests` }, () => {});
else describe('browser (Chromium)', () => {
  let dir = '';
  let site: BuildResult;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const nodeModels = new Map<string, Promise<SwiftFormerModel>>();

  function nodeModel(weights: string, attention?: 'l2' | 'softmax'): Promise<SwiftFormerModel> {
    let model = nodeModels.get(weights);
    if (!model) {
      model = loadSwiftFormer({ weights, ...(attention ? { attention } : {}) });
      nodeModels.set(weights, model);
    }
    return model;
  }

  /**
   * The Node library's logits for an image file and weights file: the official eval transform at
   * `size`, or a trained model's recorded preprocessing, as the CLI does.
   */
  async function nodeLogits(weights: string, image: string, options: { attention?: 'l2' | 'softmax'; size?: number } = {}): Promise<Float32Array> {
    const model = await nodeModel(weights, options.attention);
    const recorded = model.card.preprocessing;
    const pixels = recorded
      ? await preprocess(image, { preprocessing: recorded })
      : evalTransform(await decodeImage(image), options.size ? { size: options.size } : {});
    return (await model.logits(pixels)).data;
  }

  function assertClose(t: TestContext, actual: number[], expected: Float32Array, what: string): void {
    assert.equal(actual.length, expected.length, `${what}: logit count`);
    const rel = relativeError(actual, expected);
    assert.ok(rel <= TOLERANCE, `${what}: browser vs Node logits differ by ${rel.toExponential(2)} relative (limit ${TOLERANCE})`);
    t.diagnostic(`${what}: browser vs Node max relative difference ${rel.toExponential(2)}`);
  }

  const status = (p: Page) => p.evaluate(() => ({ status: document.body.dataset.status, text: document.getElementById('model-status')?.textContent ?? '' }));

  /** Waits until the page has finished loading a model, and fails with its message if that failed. */
  async function modelReady(p: Page, name?: string): Promise<void> {
    await p.waitForFunction(
      (n) => {
        const d = (window as unknown as { demo?: { model?: { name: string } } }).demo;
        const s = document.body.dataset.status;
        return s === 'error' || (s === 'ready' && (n === undefined || d?.model?.name === n));
      },
      name,
      { timeout: 120_000 },
    );
    const s = await status(p);
    assert.equal(s.status, 'ready', s.text);
  }

  const classifyUrl = (p: Page, url: string): Promise<PageResult> =>
    p.evaluate((u) => (window as unknown as { demo: { classifyUrl(u: string): Promise<PageResult> } }).demo.classifyUrl(u), url);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swiftformer-browser-'));
    await mkdir(join(dir, 'images'));
    for (const im of IMAGES) {
      const image = sharp(pattern(im.width, im.height, im.seed), { raw: { width: im.width, height: im.height, channels: 3 } });
      await (im.name.endsWith('.jpg') ? image.jpeg({ quality: 85, chromaSubsampling: '4:2:0' }) : image.png()).toFile(join(dir, 'images', im.name));
    }
    site = await buildPage(join(dir, 'site'));
    server = await serveStatic({ '/': site.outDir, '/fixtures/': FIXTURES, '/images/': join(dir, 'images') });
    browser = await launchChromium({ fakeCamera: true });
    page = await browser.context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await Promise.all([...nodeModels.values()].map(async (m) => (await m).release()));
    await browser?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the page bundle holds no Node-only module', async () => {
    // The import rules (scripts/check-boundaries.ts, run by npm test) name the Node-only folders; the bundle is checked against the same list.
    const folders = [...NODE_ONLY].join('|');
    const nodeOnly = new RegExp(`^node:|[\\\\/]node_modules[\\\\/](sharp|@img|onnxruntime-node)[\\\\/]|[\\\\/]src[\\\\/]((${folders})[\\\\/].*|index)\\.ts$`);
    assert.ok(site.moduleIds.some((id) => id.endsWith('/src/browser.ts')), 'src/browser.ts is in the bundle');
    assert.deepEqual(site.moduleIds.filter((id) => nodeOnly.test(id)), []);
    for (const file of site.files.filter((f) => /\.(m?js)$/.test(f))) {
      const code = await readFile(join(site.outDir, file), 'utf8');
      assert.doesNotMatch(code, /(from\s*|import\s*\(\s*)["'`]node:/, `${file} imports a node: module`);
      assert.doesNotMatch(code, /onnxruntime-node|["'`]sharp["'`]/, `${file} refers to a Node-only package`);
    }
    for (const f of ['ort/ort-wasm-simd-threaded.wasm', 'ort/ort-wasm-simd-threaded.mjs', 'sw.js', 'index.html']) {
      assert.ok(site.files.includes(f), `${f} is in the build`);
    }
  });

  test('the package\'s "browser" condition gives dist/browser.js, which bundles for the web', { timeout: 120_000 }, async () => {
    const entry = join(REPO_DIR, 'dist/browser.js');
    assert.ok(existsSync(entry), 'dist/browser.js is missing: run `npm run build` (npm test builds first)');
    const app = join(dir, 'consumer');
    await mkdir(join(app, 'node_modules'), { recursive: true });
    await symlink(REPO_DIR, join(app, 'node_modules/swiftformer'), 'dir');
    await writeFile(join(app, 'main.js'), "import { imagenetLabels, loadModel, preprocess, runtimeInfo } from 'swiftformer';\nconsole.log(imagenetLabels, loadModel, preprocess, runtimeInfo);\n");
    const { build } = await import('vite');
    const result = await build({
      root: app, configFile: false, logLevel: 'silent',
      resolve: { preserveSymlinks: false },
      build: { outDir: join(app, 'dist'), rollupOptions: { input: join(app, 'main.js') }, target: 'es2022' },
    });
    const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) => ('output' in r ? r.output : []));
    const ids = outputs.flatMap((o) => (o.type === 'chunk' ? o.moduleIds : []));
    assert.ok(ids.some((id) => id.endsWith('/dist/browser.js')), 'resolved to dist/browser.js');
    const nodeOnly = new RegExp(`[\\\\/]dist[\\\\/]((${[...NODE_ONLY].join('|')})[\\\\/].*|index)\\.js$|^node:|onnxruntime-node|[\\\\/]sharp[\\\\/]`);
    assert.deepEqual(ids.filter((id) => nodeOnly.test(id)), [], 'Node-only modules in the bundle');
    // onnxruntime-web's WebAssembly comes along as a same-origin asset of the consumer's build.
    assert.ok(outputs.some((o) => o.type === 'asset' && /ort-wasm-simd-threaded.*\.wasm$/.test(o.fileName)), 'the .wasm is emitted as an asset');
    assert.ok(outputs.some((o) => o.type === 'asset' && /imagenet-1k.*\.json$/.test(o.fileName)), 'the ImageNet label list is emitted as an asset');
  });

  test('web/ typechecks', { timeout: 120_000 }, async () => {
    await promisify(execFile)(process.execPath, [join(REPO_DIR, 'node_modules/typescript/bin/tsc'), '-p', join(REPO_DIR, 'web/tsconfig.json')]);
  });

  test('safetensors weights by URL: logits equal the Node library\'s', { timeout: 180_000 }, async (t) => {
    await page.goto(`${server.url}?model=/fixtures/tiny/weights.safetensors`);
    await modelReady(page, 'weights.safetensors');
    const engine = await page.evaluate(() => (window as unknown as { demo: { engine: { engine: string; threads: number; crossOriginIsolated: boolean } } }).demo.engine);
    assert.equal(engine.crossOriginIsolated, true, 'the page is cross-origin isolated');
    assert.equal(engine.engine, 'wasm-simd-threads', 'headless Chromium without a GPU runs multi-threaded WebAssembly');
    assert.equal(await page.textContent('#engine'), `wasm-simd-threads · ${engine.threads} threads`);
    for (const im of IMAGES) {
      const result = await classifyUrl(page, `/images/${im.name}`);
      assertClose(t, result.logits, await nodeLogits(fixturePath('tiny/weights.safetensors'), join(dir, 'images', im.name)), im.name);
      assert.equal(result.top5.length, 5);
      assert.equal(result.top5[0]!.index, result.logits.indexOf(Math.max(...result.logits)));
    }
  });

  test('a full .pth checkpoint from the file picker is parsed in the page (zip + pickle)', { timeout: 180_000 }, async (t) => {
    const before = await page.evaluate(() => (window as unknown as { demo: { last?: PageResult } }).demo.last?.seq ?? 0);
    await page.setInputFiles('#weights-file', fixturePath('tiny/checkpoint.pth'));
    await modelReady(page, 'checkpoint.pth');
    assert.ok(!server.requests.some((r) => r.includes('checkpoint.pth')), 'the checkpoint came from the file, not the server');
    // The model change reclassifies the last image; then a new one through the image picker.
    await page.setInputFiles('#image-file', join(dir, 'images', 'portrait.png'));
    await page.waitForFunction(
      (n) => (window as unknown as { demo: { last?: PageResult } }).demo.last?.source === 'portrait.png' && (window as unknown as { demo: { last: PageResult } }).demo.last.seq > n,
      before,
      { timeout: 60_000 },
    );
    const result = await page.evaluate(() => (window as unknown as { demo: { last: PageResult } }).demo.last);
    // checkpoint.pth holds 'model' and a deliberately different 'model_ema': the page must take 'model'.
    assertClose(t, result.logits, await nodeLogits(fixturePath('tiny/checkpoint.pth'), join(dir, 'images', 'portrait.png')), 'checkpoint.pth');
    const format = await page.evaluate(() => (window as unknown as { demo: { model: { format: string } } }).demo.model.format);
    assert.equal(format, 'official');
  });

  test('SwiftFormer-XS .pth by URL: logits equal the Node library\'s', { timeout: 300_000 }, async (t) => {
    await page.fill('#weights-url', '/fixtures/xs/checkpoint_model_only.pth');
    await page.click('#url-form button');
    await modelReady(page, 'checkpoint_model_only.pth');
    const result = await classifyUrl(page, '/images/landscape.png');
    assertClose(t, result.logits, await nodeLogits(fixturePath('xs/checkpoint_model_only.pth'), join(dir, 'images', 'landscape.png')), 'xs');
    // The page shows the top 5 with ImageNet names (1000 classes), the latency and the backend.
    const shown = await page.$$eval('#top5 li .label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(shown, result.top5.map((p) => p.label));
    assert.match(shown[0] ?? '', /^[a-z]/i);
    assert.match((await page.textContent('#latency')) ?? '', /^\d+(\.\d)? ms$/);
  });

  test('the built-in default model: its weights, labels and input size are used; screenshot', { timeout: 300_000 }, async (t) => {
    let bundled = await defaultWeights();
    let url = server.url;
    let extra: StaticServer | undefined;
    if (!bundled) {
      // assets/default is not there yet: build the page with the tiny fixture as its default model,
      // dressed as a model trained here (recorded preprocessing and labels in its metadata).
      const modelDir = join(dir, 'default-model');
      await mkdir(modelDir);
      const preprocessing: Preprocessing = { inputSize: [64, 64], normalization: { mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35] }, pad: 2, cropPct: 1, grayscale: true };
      const metadata = {
        'swiftformer.preprocessing': JSON.stringify(preprocessing),
        'swiftformer.labels': JSON.stringify(Array.from({ length: 1000 }, (_, i) => `synthetic class ${i}`)),
      };
      await writeFile(join(modelDir, 'model.safetensors'), writeSafetensors(readSafetensors(await readFile(fixturePath('tiny/weights.safetensors'))).tensors, metadata));
      await writeFile(join(modelDir, 'config.json'), JSON.stringify({ attention: 'l2' }));
      const built = await buildPage(join(dir, 'site-default'), { defaultModelDir: modelDir });
      assert.ok(built.files.includes('models/default/model.safetensors'));
      extra = await serveStatic({ '/': built.outDir, '/images/': join(dir, 'images') });
      url = extra.url;
      bundled = (await defaultWeights(modelDir))!;
      t.diagnostic('assets/default has no model yet: checked with the tiny fixture as the default model');
    }
    const p = await browser.context.newPage();
    try {
      await p.goto(`${url}?nosw`);
      await modelReady(p, 'default');
      assert.equal(await p.evaluate(() => (window as unknown as { demo: { hasDefaultModel: boolean } }).demo.hasDefaultModel), true);
      const config = bundled.config ? (JSON.parse(await readFile(bundled.config, 'utf8')) as { size?: number; attention?: 'l2' | 'softmax' }) : {};
      // The package's example images come as thumbnails: a click classifies one. Else a test image.
      const example = await p.$('#examples button');
      let result: PageResult;
      let image = join(dir, 'images', 'portrait.png');
      if (example) {
        const name = (await example.getAttribute('title'))!;
        const seq = await p.evaluate(() => (window as unknown as { demo: { last?: PageResult } }).demo.last?.seq ?? 0);
        await example.click();
        await p.waitForFunction(
          ([n, s]) => { const last = (window as unknown as { demo: { last?: PageResult } }).demo.last; return last?.source === n && last.seq > (s as number); },
          [name, seq] as const,
          { timeout: 60_000 },
        );
        result = await p.evaluate(() => (window as unknown as { demo: { last: PageResult } }).demo.last);
        image = join(REPO_DIR, 'assets/examples', name);
        t.diagnostic(`example ${name}: top class ${result.top5[0]!.label}`);
      } else {
        result = await classifyUrl(p, '/images/portrait.png');
      }
      const expected = await nodeLogits(bundled.weights, image, { ...(config.attention ? { attention: config.attention } : {}), ...(config.size ? { size: config.size } : {}) });
      assertClose(t, result.logits, expected, 'default model');
      const recorded = (await nodeModel(bundled.weights, config.attention)).card.labels;
      const labels = bundled.labels ? await loadLabels(bundled.labels) : recorded;
      if (labels) assert.deepEqual(result.top5.map((r) => r.label), result.top5.map((r) => labels[r.index]));
      const recordedSize = (await nodeModel(bundled.weights, config.attention)).card.preprocessing;
      const [h, w] = recordedSize ? recordedSize.inputSize : [config.size ?? 224, config.size ?? 224];
      assert.match((await p.textContent('#input-size')) ?? '', new RegExp(`→ ${w}×${h}$`));
      await mkdir(join(REPO_DIR, 'test-artifacts'), { recursive: true });
      await p.screenshot({ path: SCREENSHOT });
    } finally {
      await p.close();
      await extra?.close();
    }
  });

  test('the built-in model\'s INT8 export is offered, a quarter of the download, and runs as in Node; an .onnx URL loads too', { timeout: 180_000 }, async (t) => {
    if (!site.files.includes('models/default/model.int8.onnx')) return t.skip('this build has no default model (assets/default)');
    const int8File = join(site.outDir, 'models/default/model.int8.onnx');
    const int8 = await OnnxClassifier.load(int8File);
    const p = await browser.context.newPage();
    try {
      await p.goto(`${server.url}?nosw&model=default-int8`);
      await modelReady(p, 'default (INT8)');
      const options = await p.$$eval('#model-select option', (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent ?? '']));
      const size = (key: string) => Number(/([\d.]+) MB\)$/.exec(options.find(([v]) => v === key)?.[1] ?? '')?.[1]);
      assert.ok(size('default-int8') < size('default') / 3, `picker: ${JSON.stringify(options)}`);
      assert.equal(await p.evaluate(() => (window as unknown as { demo: { model: { int8: boolean } } }).demo.model.int8), true);
      const example = (await p.$eval('#examples button', (b) => b.getAttribute('title')))!;
      const preprocessing = int8.card.preprocessing!;
      const expected = (await int8.logits(await preprocess(join(REPO_DIR, 'assets/examples', example), { preprocessing }))).data;
      assertClose(t, (await classifyUrl(p, `models/default/examples/${example}`)).logits, expected, 'INT8 default model');
      // Any exported .onnx by URL (here the same file): loaded as an ONNX classifier.
      await p.goto(`${server.url}?nosw&model=models/default/model.int8.onnx`);
      await modelReady(p, 'model.int8.onnx');
      assert.match((await p.textContent('#model-badge')) ?? '', /INT8/);
      assertClose(t, (await classifyUrl(p, `models/default/examples/${example}`)).logits, expected, '.onnx by URL');
    } finally {
      await p.close();
      await int8.release();
    }
  });

  test('the webcam (a fake camera) is classified live with FPS and latency shown', { timeout: 120_000 }, async () => {
    await page.click('#camera');
    await page.waitForFunction(() => /^\d+(\.\d)?$/.test(document.getElementById('fps')?.textContent ?? ''), null, { timeout: 60_000 });
    const last = await page.evaluate(() => (window as unknown as { demo: { last: PageResult } }).demo.last);
    assert.equal(last.source, 'camera');
    assert.equal(last.top5.length, 5);
    await page.click('#camera');
    assert.equal(await page.textContent('#camera'), 'Start camera');
  });

  test('the WebGPU engine (on SwiftShader) gives the same logits', { timeout: 180_000 }, async (t) => {
    const gpu = await launchChromium({ webgpu: true });
    try {
      const p = await gpu.context.newPage();
      await p.goto(`${server.url}?nosw&model=/fixtures/tiny/weights.safetensors`);
      await modelReady(p, 'weights.safetensors');
      const engine = await p.evaluate(() => (window as unknown as { demo: { engine: { engine: string; note?: string } } }).demo.engine);
      if (engine.engine !== 'webgpu') {
        t.skip(`this Chromium offers no WebGPU adapter on SwiftShader (${engine.note ?? engine.engine})`);
        return;
      }
      const result = await classifyUrl(p, '/images/small.png');
      assert.equal((await p.evaluate(() => (window as unknown as { demo: { engine: { engine: string } } }).demo.engine)).engine, 'webgpu', 'no fallback to WebAssembly');
      assert.equal(await p.textContent('#engine'), 'webgpu');
      assertClose(t, result.logits, await nodeLogits(fixturePath('tiny/weights.safetensors'), join(dir, 'images', 'small.png')), 'webgpu');
    } finally {
      await gpu.close();
    }
  });

  test('works offline once loaded (service worker + cached weights)', { timeout: 180_000 }, async (t) => {
    await page.goto(`${server.url}?model=/fixtures/tiny/weights.safetensors`);
    await modelReady(page, 'weights.safetensors');
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
    });
    // Fetched under the service worker's control, the image is cached for later.
    const online = await classifyUrl(page, '/images/small.png');
    await server.close();
    await page.reload();
    await modelReady(page, 'weights.safetensors');
    const offline = await classifyUrl(page, '/images/small.png');
    assert.deepEqual(offline.logits, online.logits);
    assertClose(t, offline.logits, await nodeLogits(fixturePath('tiny/weights.safetensors'), join(dir, 'images', 'small.png')), 'offline');
    assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'still cross-origin isolated from the cache');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});
