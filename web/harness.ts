/**
 * Node-side tools for running the demo page in a real browser (test/browser.test.ts,
 * bench/browser.ts): build it with Vite, serve it on 127.0.0.1 with cross-origin isolation headers,
 * and drive Debian's Chromium with playwright-core.
 */
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';

export const WEB_DIR = fileURLToPath(new URL('.', import.meta.url));
export const REPO_DIR = join(WEB_DIR, '..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that keep Chromium off the network (this machine has none) and out of the GPU. */
export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export interface BuildResult {
  outDir: string;
  /** Every module that went into the JavaScript output. */
  moduleIds: string[];
  /** Output file names, relative to outDir. */
  files: string[];
}

/**
 * Builds web/ into `outDir` (vite build with web/vite.config.ts). `defaultModelDir` replaces
 * assets/default as the page's built-in model.
 */
export async function buildPage(outDir: string, options: { defaultModelDir?: string } = {}): Promise<BuildResult> {
  const { build } = await import('vite');
  const saved = process.env.SWIFTFORMER_DEFAULT_MODEL_DIR;
  if (options.defaultModelDir) process.env.SWIFTFORMER_DEFAULT_MODEL_DIR = options.defaultModelDir;
  let result: Awaited<ReturnType<typeof build>>;
  try {
    result = await build({
      configFile: join(WEB_DIR, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir, emptyOutDir: true },
    });
  } finally {
    if (saved === undefined) delete process.env.SWIFTFORMER_DEFAULT_MODEL_DIR;
    else process.env.SWIFTFORMER_DEFAULT_MODEL_DIR = saved;
  }
  const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) => ('output' in r ? r.output : []));
  const moduleIds = new Set<string>();
  for (const o of outputs) if (o.type === 'chunk') for (const id of o.moduleIds) moduleIds.add(id);
  return { outDir, moduleIds: [...moduleIds], files: outputs.map((o) => o.fileName) };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.jpg': 'image/jpeg',
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
  /** Requests seen, as 'METHOD /path'. */
  requests: string[];
}

/**
 * A static file server on 127.0.0.1 (random port). `mounts` maps URL prefixes ('/', '/fixtures/')
 * to folders. Every response carries COOP/COEP, so the page is cross-origin isolated.
 */
export async function serveStatic(mounts: Record<string, string>): Promise<StaticServer> {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.push(`${req.method} ${path}`);
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
      res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
      res.setHeader('Cache-Control', 'no-cache');
      const prefix = prefixes.find((p) => path.startsWith(p));
      if (!prefix || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(prefix ? 405 : 404).end();
        return;
      }
      const root = mounts[prefix]!;
      let file = normalize(join(root, path.slice(prefix.length)));
      if (!file.startsWith(normalize(root + sep)) && file !== normalize(root)) {
        res.writeHead(403).end();
        return;
      }
      try {
        if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
        const info = await stat(file);
        res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': info.size });
        if (req.method === 'HEAD') res.end();
        else createReadStream(file).pipe(res);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Debian's Chromium with a fresh profile and no network besides the page's. `fakeCamera`: a
 * generated video stands in for a webcam. `webgpu`: WebGPU on SwiftShader (Chromium's CPU
 * implementation of the GPU), instead of no GPU at all.
 */
export async function launchChromium(options: { fakeCamera?: boolean; webgpu?: boolean } = {}): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(join(tmpdir(), 'swiftformer-chromium-'));
  const args = options.webgpu
    ? [...CHROMIUM_FLAGS.filter((f) => f !== '--disable-gpu'), '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader']
    : [...CHROMIUM_FLAGS];
  if (options.fakeCamera) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 1200, height: 720 },
    ...(options.fakeCamera ? { permissions: ['camera'] } : {}),
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
