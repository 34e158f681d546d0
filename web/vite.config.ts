/**
 * The demo page's build: `npx vite build web` (or `npm run build:web`) writes web/dist/.
 *
 * - `swiftformer` resolves to src/browser.ts, so the page always runs the library's current source.
 * - onnxruntime-web is taken in its "extern wasm" form and its runtime files are copied to `ort/`
 *   (unhashed), which the page passes to `configureRuntime({ wasmPaths })`: everything is served
 *   from the page's own origin.
 * - The bundled default model (assets/default/: model.safetensors, labels.json, config.json) is
 *   copied to `models/default/` when it exists, with its example images (assets/examples/), and
 *   described by the module `virtual:default-model`.
 * - `sw.js` is generated last, with the list of files to precache for offline use.
 * - The dev and preview servers send COOP/COEP, so that WebAssembly threads are available.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig, type Connect, type Plugin } from 'vite';

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
/** Files only the WebGPU engine needs: cached when first used rather than precached (27 MB). */
const LAZY = /\.asyncify\.(mjs|wasm)$/;
const DEFAULT_FILES = ['model.safetensors', 'labels.json', 'config.json'];

export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.safetensors': 'application/octet-stream',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp',
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

/** Copies onnxruntime-web's runtime and the default model into the build; describes the latter. */
function runtimeFiles(): Plugin {
  const id = 'virtual:default-model';
  return {
    name: 'swiftformer-runtime-files',
    resolveId: (source) => (source === id ? `\0${id}` : undefined),
    load(resolved) {
      if (resolved !== `\0${id}`) return undefined;
      const files = defaultModelFiles();
      const manifest = files.length === 0 ? null : {
        ...Object.fromEntries(files.map((f) => [f.replace(/\.\w+$/, '').replace('model', 'weights'), `models/default/${f}`])),
        examples: exampleFiles().map((f) => `models/default/examples/${f}`),
      };
      return `export default ${JSON.stringify(manifest)};`;
    },
    configureServer(server) {
      server.middlewares.use(serveDir('/ort/', ORT_DIST, ORT_FILES));
      server.middlewares.use(serveDir('/models/default/examples/', EXAMPLES_DIR, exampleFiles()));
      server.middlewares.use(serveDir('/models/default/', DEFAULT_DIR, DEFAULT_FILES));
    },
    generateBundle() {
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
