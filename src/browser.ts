/**
 * swiftformer for browsers: the same models on onnxruntime-web.
 *
 *   import { loadModel, preprocess, runtimeInfo } from 'swiftformer'; // the "browser" export condition
 *   const model = await loadModel({ weights: 'https://example.org/SwiftFormer_XS_ckpt.pth' });
 *   const logits = await model.logits(await preprocess(imageElement));
 *
 * The engine is WebGPU when the browser offers an adapter, else WebAssembly (SIMD; multi-threaded
 * when the page is cross-origin isolated). Weights are read with the library's own .pth and
 * safetensors readers, so checkpoints are parsed in the page. Nothing here imports a node: module.
 */
export * from './api.js';

import { inputFor, type InputOptions } from './preprocess/transforms.js';
import { SwiftFormerError } from './core/errors.js';
import { HF_WEIGHT_FILES, hfFileUrl, parseHfSource } from './weights/hf.js';
import { readSource, registerImageDecoder, registerSourceReader, registerWeightsReader } from './core/io.js';
import { labelsFromHfConfig } from './models/labels.js';
import { ortBackend, type OrtModule } from './runtime/ort.js';
import { MAX_IMAGE_DIMENSION, type RGBImage } from './preprocess/resize.js';
import { registerBackend, type Backend } from './runtime/runtime.js';
import type { FloatTensor } from './core/tensor.js';

// ---------------------------------------------------------------- runtime

/** What runs the model: WebGPU, or WebAssembly with SIMD and threads, or single-threaded WebAssembly. */
export type BrowserEngine = 'webgpu' | 'wasm-simd-threads' | 'wasm';

export interface BrowserRuntimeOptions {
  /** 'auto' (default): WebGPU when an adapter is available, else WebAssembly. */
  backend?: 'auto' | 'webgpu' | 'wasm';
  /**
   * WebAssembly threads. Default: min(4, hardwareConcurrency) when the page is cross-origin
   * isolated (COOP + COEP headers), else 1. Browsers allow threads only in isolated pages.
   */
  threads?: number;
  /**
   * Where onnxruntime-web's .wasm files are served. Default: beside the onnxruntime-web module as
   * the bundler emitted it (same origin). A prefix ending in '/', or `{ wasm: url }`.
   */
  wasmPaths?: string | { wasm?: string; mjs?: string };
}

export interface RuntimeInfo {
  engine: BrowserEngine;
  /** WebAssembly threads (with WebGPU: for the operators that fall back to the CPU). */
  threads: number;
  crossOriginIsolated: boolean;
  /** Why WebGPU is not used, when it is not. */
  note?: string;
}

/** The part of onnxruntime-web's module this file touches, beyond what ort.ts uses. */
interface OrtWebModule extends OrtModule {
  env: { wasm: { numThreads?: number; wasmPaths?: string | { wasm?: string | URL; mjs?: string | URL }; proxy?: boolean } };
}

interface Engine {
  info: RuntimeInfo;
  backend: Backend;
  /** WebAssembly backend of the same module, used when a WebGPU session cannot be created. */
  fallback?: Backend;
}

let options: BrowserRuntimeOptions = {};
let engine: Promise<Engine> | undefined;

/**
 * Chooses the engine. Call before the first model runs; later calls throw, because
 * onnxruntime-web fixes its thread pool and wasm files when it starts.
 */
export function configureRuntime(next: BrowserRuntimeOptions): void {
  if (engine) throw new SwiftFormerError('UNSUPPORTED', 'configureRuntime() must be called before the first model session is created');
  if (next.threads !== undefined && !(Number.isInteger(next.threads) && next.threads >= 1)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `threads must be a positive integer, got ${next.threads}`);
  }
  options = { ...next };
}

/** Starts the runtime (if it has not started) and tells which engine runs the models. */
export async function runtimeInfo(): Promise<RuntimeInfo> {
  return { ...(await startEngine()).info };
}

function isolated(): boolean {
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

async function webgpuAdapter(): Promise<string | undefined> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (!gpu) return 'navigator.gpu is not available';
  try {
    return (await gpu.requestAdapter()) ? undefined : 'no WebGPU adapter';
  } catch (err) {
    return `WebGPU adapter request failed: ${(err as Error).message}`;
  }
}

function setUp(ort: OrtWebModule, threads: number): void {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
}

function startEngine(): Promise<Engine> {
  engine ??= (async (): Promise<Engine> => {
    const coi = isolated();
    const wanted = options.threads ?? (coi ? Math.min(4, globalThis.navigator?.hardwareConcurrency || 1) : 1);
    const threads = coi ? wanted : 1;
    const choice = options.backend ?? 'auto';
    const gpuProblem = choice === 'wasm' ? 'WebAssembly was requested' : await webgpuAdapter();
    if (gpuProblem === undefined) {
      // onnxruntime-web's WebGPU build (native WebGPU execution provider, CPU fallback in wasm).
      const ort = (await import('onnxruntime-web/webgpu')) as unknown as OrtWebModule;
      setUp(ort, threads);
      return {
        info: { engine: 'webgpu', threads, crossOriginIsolated: coi },
        backend: ortBackend(ort, 'onnxruntime-web', ['webgpu']),
        fallback: ortBackend(ort, 'onnxruntime-web', ['wasm']),
      };
    }
    if (choice === 'webgpu') throw new SwiftFormerError('UNSUPPORTED', `WebGPU was requested but ${gpuProblem}`);
    const ort = (await import('onnxruntime-web/wasm')) as unknown as OrtWebModule;
    setUp(ort, threads);
    const note = threads < wanted ? `${gpuProblem}; threads need a cross-origin isolated page (COOP/COEP headers)` : gpuProblem;
    return {
      info: { engine: threads > 1 ? 'wasm-simd-threads' : 'wasm', threads, crossOriginIsolated: coi, note },
      backend: ortBackend(ort, 'onnxruntime-web', ['wasm']),
    };
  })();
  engine.catch(() => {
    engine = undefined;
  });
  return engine;
}

registerBackend(
  {
    name: 'onnxruntime-web',
    async createSession(model, sessionOptions) {
      const e = await startEngine();
      try {
        return await e.backend.createSession(model, sessionOptions);
      } catch (err) {
        if (!e.fallback || options.backend === 'webgpu') throw err;
        // A WebGPU device that cannot run the graph: the same module's WebAssembly engine can.
        e.info = { ...e.info, engine: e.info.threads > 1 ? 'wasm-simd-threads' : 'wasm', note: `WebGPU session failed: ${(err as Error).message}` };
        e.backend = e.fallback;
        delete e.fallback;
        return e.backend.createSession(model, sessionOptions);
      }
    },
  },
  { preferred: true },
);

// ---------------------------------------------------------------- sources

/** `hf:ORG/NAME[@revision]` to the URLs of its weight files, in order of preference. */
function hfWeightUrls(source: string): string[] {
  const { repo, revision } = parseHfSource(source);
  return HF_WEIGHT_FILES.map((f) => hfFileUrl(repo, f, revision));
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new SwiftFormerError('IO', `cannot fetch ${url}: ${(err as Error).message}`, { cause: err });
  }
  if (!response.ok) throw new SwiftFormerError('IO', `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''} from ${url}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Sources are URLs (absolute, or relative to the page) and `hf:` repositories. */
registerSourceReader(async (source) => {
  if (!source.startsWith('hf:')) return fetchBytes(source);
  const urls = hfWeightUrls(source);
  try {
    return await fetchBytes(urls[0]!);
  } catch (err) {
    if (!(err instanceof SwiftFormerError && /^HTTP 404/.test(err.message))) throw err;
    return fetchBytes(urls[1]!);
  }
});

/** An hf: repository's config.json names the classes (id2label); a repository without one still loads. */
registerWeightsReader(async (source) => {
  const bytes = await readSource(source);
  if (!source.startsWith('hf:')) return { bytes };
  const { repo, revision } = parseHfSource(source);
  const config = await fetchBytes(hfFileUrl(repo, 'config.json', revision)).catch(() => undefined);
  const labels = config ? labelsFromHfConfig(new TextDecoder().decode(config)) : undefined;
  return { bytes, ...(labels ? { labels } : {}) };
});

// ---------------------------------------------------------------- images

/** Anything a canvas can draw, plus raw ImageData. */
export type BrowserImageSource =
  | ImageBitmap
  | HTMLImageElement
  | HTMLCanvasElement
  | HTMLVideoElement
  | OffscreenCanvas
  | ImageData
  | VideoFrame;

const has = (name: string): boolean => typeof (globalThis as Record<string, unknown>)[name] === 'function';

function sizeOf(source: Exclude<BrowserImageSource, ImageData>): [number, number] {
  if (has('HTMLImageElement') && source instanceof HTMLImageElement) return [source.naturalWidth, source.naturalHeight];
  if (has('HTMLVideoElement') && source instanceof HTMLVideoElement) return [source.videoWidth, source.videoHeight];
  if (has('VideoFrame') && source instanceof VideoFrame) return [source.displayWidth, source.displayHeight];
  const s = source as { width: number; height: number };
  return [s.width, s.height];
}

type Context2D = CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D;
let scratch: { canvas: OffscreenCanvas | HTMLCanvasElement; context: Context2D } | undefined;

function scratchContext(width: number, height: number): Context2D {
  if (!scratch) {
    const canvas = has('OffscreenCanvas') ? new OffscreenCanvas(width, height) : document.createElement('canvas');
    const context = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' }) as Context2D | null;
    if (!context) throw new SwiftFormerError('UNSUPPORTED', 'this browser gives no 2D canvas context');
    scratch = { canvas, context };
  }
  if (scratch.canvas.width !== width || scratch.canvas.height !== height) {
    scratch.canvas.width = width;
    scratch.canvas.height = height;
  } else {
    scratch.context.clearRect(0, 0, width, height);
  }
  return scratch.context;
}

function rgbaToRGB(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): RGBImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { width, height, data };
}

/**
 * An image, video frame or canvas -> 8-bit RGB pixels (width x height x 3), at its natural size.
 * Alpha is dropped as PIL's convert('RGB') drops it. ImageData is taken as it is; other sources
 * are drawn onto a canvas first, which stores premultiplied alpha, so pixels that are not fully
 * opaque can differ from PIL's by rounding (fully transparent ones read as black).
 */
export function imageToRGB(source: BrowserImageSource): RGBImage {
  if (has('ImageData') && source instanceof ImageData) return checked(rgbaToRGB(source.data, source.width, source.height));
  const [width, height] = sizeOf(source as Exclude<BrowserImageSource, ImageData>);
  if (!(width > 0 && height > 0)) throw new SwiftFormerError('BAD_IMAGE', 'the image has no pixels yet (not loaded, or a video without a frame)');
  if (width > MAX_IMAGE_DIMENSION || height > MAX_IMAGE_DIMENSION) {
    throw new SwiftFormerError('BAD_IMAGE', `image is ${width}x${height}; at most ${MAX_IMAGE_DIMENSION} pixels a side`);
  }
  const context = scratchContext(width, height);
  context.drawImage(source as CanvasImageSource, 0, 0, width, height);
  return rgbaToRGB(context.getImageData(0, 0, width, height).data, width, height);
}

function checked(image: RGBImage): RGBImage {
  if (!(image.width > 0 && image.height > 0)) throw new SwiftFormerError('BAD_IMAGE', 'the image has no pixels');
  return image;
}

/**
 * Decodes image bytes (a Blob or File, bytes, or a URL to fetch) with the browser's decoders, the
 * way the official evaluation sees them: embedded color profiles ignored, EXIF orientation applied
 * (as the Node decoder does).
 */
export async function decodeImage(input: Blob | Uint8Array | string): Promise<RGBImage> {
  const blob = typeof input === 'string' ? new Blob([await fetchBytes(input) as Uint8Array<ArrayBuffer>]) : input instanceof Blob ? input : new Blob([input as Uint8Array<ArrayBuffer>]);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (err) {
    const name = typeof input === 'string' ? input : input instanceof File ? input.name : 'image';
    throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: not an image this browser can read`, { cause: err });
  }
  try {
    return imageToRGB(bitmap);
  } finally {
    bitmap.close();
  }
}

export type PreprocessOptions = InputOptions;

/**
 * Any browser image (element, bitmap, frame, canvas, ImageData, or encoded bytes / Blob / URL) ->
 * the model input [1, 3, size, size]: the official eval transform (or a trained model's recorded
 * preprocessing), bit-exact with the Node path for the same pixels.
 */
export async function preprocess(
  input: BrowserImageSource | Blob | Uint8Array | string,
  options: PreprocessOptions = {},
): Promise<FloatTensor> {
  return inputFor(await browserImage(input), options);
}

/** Any browser image source as RGB8 pixels: encoded sources decoded, drawable ones read through a canvas. */
function browserImage(input: BrowserImageSource | Blob | Uint8Array | string): Promise<RGBImage> {
  return typeof input === 'string' || input instanceof Blob || input instanceof Uint8Array ? decodeImage(input) : Promise.resolve(imageToRGB(input));
}

// `model.preprocess(image)`, `model.classify(image)` take the same sources.
registerImageDecoder((input) => browserImage(input as BrowserImageSource | Blob | Uint8Array | string));
