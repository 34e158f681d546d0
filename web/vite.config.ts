/**
 * The demo page's build: `npx vite build web` (or `npm run build:web`) writes web/dist/.
 *
 * - `swiftformer` resolves to src/browser.ts, so the page always runs the library's current source.
 * - onnxruntime-web is taken in its "extern wasm" form and its runtime files are copied to `ort/`
 *   (unhashed), which the page passes to `configureRuntime({ wasmPaths })`: everything is served
 *   from the page's own origin.
 * - The bundled default model (assets/default/: model.safetensors, labels.json, config.json) is
 *   copied to `models/default/` when it exists, with its example images (assets/examples/), and
 *   described by the module `virtual:default-model`. Its INT8 export, `model.int8.onnx`, is made
 *   here (calibrated on the example images, as `swiftformer export --int8` quantizes).
 * - `sw.js` is generated last, with the list of files to precache for offline use.
 * - The dev and preview servers send COOP/COEP, so that WebAssembly threads are available.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig, type Connect, type Plugin } from 'vite';
import '../src/node/platform.js';
import { int8Onnx } from '../src/cli/export.js';
import { concatBatch } from '../src/core/tensor.js';
import { loadModel } from '../src/models/model.js';
import { recordedPreprocessing } from '../src/models/recorded.js';
import { decodeImage } from '../src/node/decode.js';
import { inputFor } from '../src/preprocess/transforms.js';

const WEB = fileURLToPath(new URL('.', import.meta.url));
const REPO = join(WEB, '..');
/** The default model's folder; SWIFTFORMER_DEFAULT_MODEL_DIR builds the page with another one (tests). */
const DEFAULT_DIR = process.env.SWIFTFORMER_DEFAULT_MODEL_DIR ?? join(REPO, 'assets/default');
const ORT_DIST = join(REPO, 'node_modules/onnxruntime-web/dist');
/** Example images for the default model (one per class), shown as thumbnails to try. */
const EXAMPLES_DIR = process.env.SWIFTFORMER_DEFAULT_MODEL_DIR ? join(process.env.SWIFTFORMER_DEFAULT_MODEL_DIR, 'examples') : join(REPO, 'assets/examples');

/** onnxruntime-web files the page loads: the plain WebAssembly build and the WebGPU (asyncify) build. */
export const ORT_FILES = [
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
];
/** Files only the WebGPU engine or the INT8 model needs: cached when first used rather than precached. */
const LAZY = /\.asyncify\.(mjs|wasm)$|\.int8\.onnx$/;
const INT8_FILE = 'model.int8.onnx';
const DEFAULT_FILES = ['model.safetensors', 'labels.json', 'config.json'];

export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp',
};

/** Serves files of `dir` under `prefix` on the dev server. */
function serveDir(prefix: string, dir: string, names: readonly string[]): Connect.NextHandleFunction {
  return (req, res, next) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith(prefix)) return next();
    const name = decodeURIComponent(path.slice(prefix.length));
    if (!names.includes(name) || !existsSync(join(dir, name))) return next();
    res.setHeader('Content-Type', TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream');
    res.end(readFileSync(join(dir, name)));
  };
}

function defaultModelFiles(): string[] {
  if (!existsSync(join(DEFAULT_DIR, 'model.safetensors'))) return [];
  return DEFAULT_FILES.filter((f) => existsSync(join(DEFAULT_DIR, f)));
}

function exampleFiles(): string[] {
  if (defaultModelFiles().length === 0 || !existsSync(EXAMPLES_DIR)) return [];
  return readdirSync(EXAMPLES_DIR).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort();
}

let int8: Promise<Uint8Array | undefined> | undefined;

/** The default model in INT8, calibrated on its example images; made once per build or dev server. */
function defaultInt8(): Promise<Uint8Array | undefined> {
  int8 ??= (async () => {
    const examples = exampleFiles();
    if (examples.length === 0) return undefined;
    const configFile = join(DEFAULT_DIR, 'config.json');
    const config = (existsSync(configFile) ? JSON.parse(readFileSync(configFile, 'utf8')) : {}) as { attention?: 'l2' | 'softmax'; size?: number };
    const model = await loadModel({ weights: join(DEFAULT_DIR, 'model.safetensors'), ...(config.attention ? { attention: config.attention } : {}) });
    try {
      const preprocessing = recordedPreprocessing(model.metadata);
      const size = preprocessing?.inputSize[0] ?? config.size ?? 224;
      const images = await Promise.all(examples.map(async (f) => inputFor(await decodeImage(join(EXAMPLES_DIR, f)), { size, preprocessing })));
      return await int8Onnx(model, size, [concatBatch(images)]);
    } finally {
      await model.release();
    }
  })();
  return int8;
}

/** Copies onnxruntime-web's runtime and the default model into the build; describes the latter. */
function runtimeFiles(): Plugin {
  const id = 'virtual:default-model';
  return {
    name: 'swiftformer-runtime-files',
    resolveId: (source) => (source === id ? `\0${id}` : undefined),
    async load(resolved) {
      if (resolved !== `\0${id}`) return undefined;
      const files = defaultModelFiles();
      const quantized = files.length === 0 ? undefined : await defaultInt8();
      const manifest = files.length === 0 ? null : {
        ...Object.fromEntries(files.map((f) => [f.replace(/\.\w+$/, '').replace('model', 'weights'), `models/default/${f}`])),
        examples: exampleFiles().map((f) => `models/default/examples/${f}`),
        bytes: { weights: statSync(join(DEFAULT_DIR, 'model.safetensors')).size, ...(quantized ? { int8: quantized.length } : {}) },
        ...(quantized ? { int8: `models/default/${INT8_FILE}` } : {}),
      };
      return `export default ${JSON.stringify(manifest)};`;
    },
    configureServer(server) {
      server.middlewares.use(serveDir('/ort/', ORT_DIST, ORT_FILES));
      server.middlewares.use(serveDir('/models/default/examples/', EXAMPLES_DIR, exampleFiles()));
      server.middlewares.use(serveDir('/models/default/', DEFAULT_DIR, DEFAULT_FILES));
      server.middlewares.use((req, res, next) => {
        if ((req.url ?? '').split('?')[0] !== `/models/default/${INT8_FILE}`) return next();
        defaultInt8().then((bytes) => (bytes ? res.setHeader('Content-Type', 'application/octet-stream').end(bytes) : next()), next);
      });
    },
    async generateBundle() {
      const quantized = defaultModelFiles().length > 0 ? await defaultInt8() : undefined;
      if (quantized) this.emitFile({ type: 'asset', fileName: `models/default/${INT8_FILE}`, source: quantized });
      for (const f of ORT_FILES) this.emitFile({ type: 'asset', fileName: `ort/${f}`, source: readFileSync(join(ORT_DIST, f)) });
      for (const f of defaultModelFiles()) this.emitFile({ type: 'asset', fileName: `models/default/${f}`, source: readFileSync(join(DEFAULT_DIR, f)) });
      for (const f of exampleFiles()) this.emitFile({ type: 'asset', fileName: `models/default/examples/${f}`, source: readFileSync(join(EXAMPLES_DIR, f)) });
    },
  };
}

/** Writes sw.js: web/sw.js with the precache list and a version that changes with any file. */
function serviceWorker(): Plugin {
  return {
    name: 'swiftformer-service-worker',
    enforce: 'post',
    apply: 'build',
    generateBundle(_options, bundle) {
      const hash = createHash('sha256');
      const files = new Set(['./', 'index.html']);
      for (const [name, item] of Object.entries(bundle)) {
        if (name.endsWith('.map')) continue;
        hash.update(name).update(item.type === 'asset' ? item.source : item.code);
        if (!LAZY.test(name)) files.add(name);
      }
      const template = readFileSync(join(WEB, 'sw.js'), 'utf8');
      const source = template
        .replace('__VERSION__', hash.digest('hex').slice(0, 16))
        .replace('[/* __PRECACHE__ */]', JSON.stringify([...files], null, 2));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

export default defineConfig({
  root: WEB,
  base: './',
  publicDir: false,
  resolve: {
    alias: { swiftformer: join(REPO, 'src/browser.ts') },
    // onnxruntime-web without its embedded loader: the wasm files come from ort/ (see above).
    conditions: [...defaultClientConditions, 'onnxruntime-web-use-extern-wasm'],
  },
  plugins: [runtimeFiles(), serviceWorker()],
  build: {
    outDir: join(WEB, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 2048,
  },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  server: { headers: ISOLATION_HEADERS, fs: { allow: [REPO] } },
  preview: { headers: ISOLATION_HEADERS },
});
