/**
 * The SwiftFormer demo page: webcam and image classification in the browser (segmentation and
 * detection modes for Semantic FPN and Mask R-CNN weights: web/segmentation.ts, web/detection.ts).
 *
 * Query parameters: `backend=auto|webgpu|wasm`, `threads=N` (WebAssembly threads; needs a
 * cross-origin isolated page), `model=<url>` (weights or an exported .onnx file, INT8 or float, to
 * load instead of the default; `model=default-int8`: the build's INT8 export of the default).
 * `window.demo` exposes the state for tests and benchmarks (test/browser.test.ts, bench/browser.ts).
 */
import defaultModel from 'virtual:default-model';
import {
  configureRuntime, imagenetLabels, imageToRGB, decodeImage, inputFor, inputOptions, labelsFromHfConfig, loadLabels, loadSwiftFormer,
  OnnxClassifier, predictions, resolveLabels, runtimeInfo, type BrowserImageSource, type FloatTensor, type InputOptions, type RGBImage,
  type RuntimeInfo, type SwiftFormerModel,
} from 'swiftformer';
import { listCached, readCached, saveCached, saveCachedOnnx, sha256Hex, type CachedWeights } from './weights-cache.js';
import { leaveSegmentation, segmentationActive, segmentationDemo, segmentImage, trySegmentation, usePainter } from './segmentation.js';
import { detectImage, detectionActive, detectionDemo, leaveDetection, tryDetection, useDetectionPainter } from './detection.js';

/** What the page runs: weights made into the library's graph, or an exported ONNX file (INT8 or float). */
type PageModel = SwiftFormerModel | OnnxClassifier;

interface Loaded {
  model: PageModel;
  /** 'default', or the weights cache key. */
  key: string;
  name: string;
  labels: string[] | undefined;
  /** A trained model's recorded preprocessing, else the official eval transform at a size (inputOptions). */
  input: InputOptions;
}

/** Model input height and width. */
const inputSize = (m: Loaded): [number, number] => m.input.preprocessing?.inputSize ?? [m.input.size ?? 224, m.input.size ?? 224];
const pixelsOf = (m: Loaded, image: RGBImage): FloatTensor => inputFor(image, m.input);

export interface Result {
  seq: number;
  logits: number[];
  top5: { index: number; label: string; score: number }[];
  /** Preprocessing + inference, ms. */
  latencyMs: number;
  inferenceMs: number;
  source: string;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const ui = {
  engine: $('engine'), modelBadge: $('model-badge'), select: $<HTMLSelectElement>('model-select'),
  urlForm: $<HTMLFormElement>('url-form'), url: $<HTMLInputElement>('weights-url'), weightsFile: $<HTMLInputElement>('weights-file'),
  status: $('model-status'), camera: $<HTMLButtonElement>('camera'), imageFile: $<HTMLInputElement>('image-file'),
  drop: $('drop'), video: $<HTMLVideoElement>('video'), preview: $<HTMLCanvasElement>('preview'),
  examples: $('examples'), top5: $<HTMLOListElement>('top5'), latency: $('latency'), fps: $('fps'), inputSize: $('input-size'),
};

const params = new URLSearchParams(location.search);
let current: Loaded | undefined;
let engine: RuntimeInfo | undefined;
let seq = 0;
let last: Result | undefined;
let lastImage: RGBImage | undefined;
let loading: Promise<void> = Promise.resolve();

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', kind === 'error');
  if (kind === 'error') document.body.dataset.status = 'error';
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

// ---------------------------------------------------------------- models

const VARIANT_DIMS: Record<string, string> = { '48/56/112/220': 'XS', '48/64/168/224': 'S', '48/96/192/384': 'L1', '64/128/320/512': 'L3' };

const isInt8 = (model: PageModel): boolean => model instanceof OnnxClassifier && model.metadata['swiftformer.int8'] !== undefined;

function describe(model: PageModel): string {
  const dims = model.config.embedDims?.join('/');
  const variant = dims ? VARIANT_DIMS[dims] ?? `dims ${dims}` : 'ONNX';
  return `${variant}, ${model.config.numClasses} classes${isInt8(model) ? ', INT8' : ''}`;
}

const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const isOnnx = (name: string): boolean => /\.onnx([?#]|$)/i.test(name);


/** As the CLI picks them (resolveLabels): a label file, a config's id2label, the names the weights recorded, the defaults. */
async function labelsFor(model: PageModel, labelsUrl?: string, configJson?: Record<string, unknown>): Promise<string[] | undefined> {
  const fromConfig = configJson ? labelsFromHfConfig(configJson) : undefined;
  return resolveLabels({
    ...(labelsUrl ? { explicit: { labels: await loadLabels(labelsUrl), name: labelsUrl } } : {}),
    ...(fromConfig ? { repository: { labels: fromConfig, name: 'config.json' } } : {}),
    ...(model.card.labels ? { recorded: model.card.labels } : {}),
  }, model.config.numClasses);
}

/** Everything a model needs besides its weights, from its weights and (for the default) its config.json. */
async function prepare(model: PageModel, key: string, name: string, labelsUrl?: string, config: Record<string, unknown> = {}): Promise<Loaded> {
  const configSize = config.size ?? config.image_size;
  // An exported ONNX file may fix its input size; a trained model's card records its pipeline.
  const fixed = model instanceof OnnxClassifier ? model.inputSize?.[0] : undefined;
  const input = inputOptions(model.card, typeof configSize === 'number' ? configSize : fixed);
  return { model, key, name, labels: await labelsFor(model, labelsUrl, config), input };
}

/** Model runs and releases, one at a time (the camera loop, image drops and model changes interleave). */
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(job: () => Promise<T>): Promise<T> {
  const result = queue.then(job);
  queue = result.catch(() => undefined);
  return result;
}

/** Installs a loaded model: creates its session (a first run), swaps it in, classifies the last image again. */
async function install(next: Loaded): Promise<void> {
  leaveSegmentation();
  leaveDetection();
  const [h, w] = inputSize(next);
  await serial(() => next.model.logits({ dtype: 'float32', shape: [1, 3, h, w], data: new Float32Array(3 * h * w) }));
  const previous = current;
  current = next;
  if (previous && previous.model !== next.model) void serial(() => previous.model.release());
  ui.modelBadge.textContent = `${next.name} · ${describe(next.model)}`;
  ui.modelBadge.classList.remove('muted');
  engine = await runtimeInfo();
  renderEngine();
  if (lastImage) await classifyImage(lastImage, 'reclassify');
}

function run<T>(what: string, task: () => Promise<T>): Promise<T | undefined> {
  document.body.dataset.status = 'loading';
  setStatus(`${what}…`);
  const started = performance.now();
  const done = loading.then(task).then(
    (value) => {
      document.body.dataset.status = 'ready';
      setStatus(`${what}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return value;
    },
    (err: unknown) => {
      setStatus(`${what} failed: ${message(err)}`, 'error');
      console.error(err);
      return undefined;
    },
  );
  loading = done.then(() => undefined);
  return done;
}

async function defaultConfig(): Promise<Record<string, unknown>> {
  return defaultModel?.config ? (await (await fetch(defaultModel.config)).json()) as Record<string, unknown> : {};
}

async function loadDefault(): Promise<void> {
  if (!defaultModel) throw new Error('this build has no default model');
  const config = await defaultConfig();
  const attention = config.attention === 'softmax' || config.attention === 'l2' ? config.attention : undefined;
  const model = await loadSwiftFormer({ weights: defaultModel.weights, ...(attention ? { attention } : {}) });
  await install(await prepare(model, 'default', 'default', defaultModel.labels, config));
}

/** The build's INT8 export of the default model: a quarter of the download, integer kernels. */
async function loadDefaultInt8(): Promise<void> {
  if (!defaultModel?.int8) throw new Error('this build has no INT8 default model');
  const model = await OnnxClassifier.load(defaultModel.int8);
  await install(await prepare(model, 'default-int8', 'default (INT8)', defaultModel.labels, await defaultConfig()));
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Weights from a URL (or hf:), or an exported .onnx file (INT8 or float): from the cache when
 * they were loaded before, else fetched and parsed here.
 */
async function loadFromUrl(url: string): Promise<void> {
  const key = `url:${url}`;
  if (await loadCachedEntry(key)) return;
  const name = url.split(/[/?#]/).filter(Boolean).at(-1) ?? url;
  if (isOnnx(url)) return loadOnnx(await fetchBytes(url), key, name);
  // Fetched once: Semantic FPN weights switch the page to segmentation, anything else loads as a classifier.
  const bytes = url.startsWith('hf:') ? undefined : await fetchBytes(url);
  if (bytes && await denseModel(bytes, name)) return;
  const model = await loadSwiftFormer({ weights: bytes ?? url });
  await install(await prepare(model, key, name));
  await remember(key, name, model);
}

async function loadFromFile(file: File): Promise<void> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (await denseModel(bytes, file.name)) return;
  const key = `file:${await sha256Hex(bytes)}`;
  if (await loadCachedEntry(key)) return;
  if (isOnnx(file.name)) return loadOnnx(bytes, key, file.name);
  const model = await loadSwiftFormer({ weights: bytes });
  await install(await prepare(model, key, file.name));
  await remember(key, file.name, model);
}

/** Semantic FPN or Mask R-CNN weights switch the page to segmentation or detection (one mode at a time). */
async function denseModel(bytes: Uint8Array, name: string): Promise<boolean> {
  if (await trySegmentation(bytes, name)) {
    leaveDetection();
    return true;
  }
  if (await tryDetection(bytes, name)) {
    leaveSegmentation();
    if (lastImage) await serial(() => detectImage(lastImage!, 'redetect'));
    return true;
  }
  return false;
}

/** An exported ONNX classifier, kept in the cache as it is. */
async function loadOnnx(bytes: Uint8Array, key: string, name: string): Promise<void> {
  await install(await prepare(await OnnxClassifier.load(bytes), key, name));
  if (await saveCachedOnnx(key, name, bytes)) await refreshPicker();
}

async function remember(key: string, name: string, model: SwiftFormerModel): Promise<void> {
  const saved = await saveCached(key, name, model);
  if (saved) await refreshPicker();
}

async function loadCachedEntry(key: string): Promise<boolean> {
  const hit = await readCached(key);
  if (!hit) return false;
  const { meta, bytes } = hit;
  const model = meta.kind === 'onnx'
    ? await OnnxClassifier.load(bytes)
    : await loadSwiftFormer({ weights: bytes, model: meta.config, attention: meta.config!.attention, head: meta.head });
  await install(await prepare(model, key, meta.name));
  await refreshPicker();
  return true;
}

async function refreshPicker(): Promise<void> {
  const options: [string, string][] = [];
  if (defaultModel) options.push(['default', `Built-in model (fp32, ${megabytes(defaultModel.bytes.weights)})`]);
  if (defaultModel?.int8) options.push(['default-int8', `Built-in model (INT8, ${megabytes(defaultModel.bytes.int8!)})`]);
  const cached: CachedWeights[] = await listCached();
  for (const c of cached) options.push([c.key, `${c.name} (cached)`]);
  if (options.length === 0) options.push(['', 'No model yet: load weights below']);
  ui.select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  ui.select.value = current && options.some(([value]) => value === current!.key) ? current.key : options[0]![0];
}

// ---------------------------------------------------------------- classification

function render(result: Result): void {
  ui.top5.replaceChildren(...result.top5.map((p) => {
    const li = document.createElement('li');
    const label = Object.assign(document.createElement('span'), { className: 'label', textContent: p.label, title: p.label });
    const score = Object.assign(document.createElement('span'), { className: 'score', textContent: `${(p.score * 100).toFixed(1)}%` });
    const bar = Object.assign(document.createElement('span'), { className: 'bar' });
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0.5, p.score * 100)}%`;
    bar.append(fill);
    li.append(label, score, bar);
    return li;
  }));
  ui.latency.textContent = `${result.latencyMs.toFixed(1)} ms`;
}

async function classifyImage(image: RGBImage, source: string, started = performance.now()): Promise<Result | undefined> {
  if (segmentationActive()) {
    await serial(() => segmentImage(image, source, started));
    return undefined;
  }
  if (detectionActive()) {
    await serial(() => detectImage(image, source, started));
    return undefined;
  }
  if (!current) {
    setStatus('Load a model first', 'error');
    return undefined;
  }
  const loaded = current;
  const { model, labels } = loaded;
  const pixels = pixelsOf(loaded, image);
  const t0 = performance.now();
  const logits = (await serial(() => model.logits(pixels))).data;
  const inferenceMs = performance.now() - t0;
  last = {
    seq: ++seq,
    logits: Array.from(logits),
    top5: predictions(logits, labels, 5, source),
    latencyMs: performance.now() - started,
    inferenceMs,
    source,
  };
  const [h, w] = inputSize(loaded);
  ui.inputSize.textContent = `${image.width}×${image.height} → ${w}×${h}`;
  render(last);
  return last;
}

function showPreview(image: ImageBitmap | RGBImage): void {
  const canvas = ui.preview;
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext('2d')!;
  if ('data' in image) {
    const rgba = new ImageData(image.width, image.height);
    for (let i = 0, j = 0; j < image.data.length; i += 4, j += 3) {
      rgba.data[i] = image.data[j]!;
      rgba.data[i + 1] = image.data[j + 1]!;
      rgba.data[i + 2] = image.data[j + 2]!;
      rgba.data[i + 3] = 255;
    }
    ctx.putImageData(rgba, 0, 0);
  } else {
    ctx.drawImage(image, 0, 0);
  }
  canvas.classList.toggle('small', Math.max(image.width, image.height) < 128); // shown enlarged
  canvas.hidden = false;
  ui.drop.classList.add('has-media');
}

async function classifyBlob(blob: Blob, name: string): Promise<Result | undefined> {
  const started = performance.now();
  stopCamera();
  const image = await decodeImage(blob);
  lastImage = image;
  showPreview(image);
  await loading;
  return classifyImage(image, name, started);
}

// ---------------------------------------------------------------- camera

let stream: MediaStream | undefined;
let cameraLoop = 0;

async function startCamera(): Promise<void> {
  stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  ui.video.srcObject = stream;
  ui.video.hidden = false;
  ui.preview.hidden = true;
  ui.drop.classList.add('has-media');
  await ui.video.play();
  ui.camera.textContent = 'Stop camera';
  const loop = ++cameraLoop;
  const times: number[] = [];
  while (loop === cameraLoop) {
    if ((!current && !segmentationActive() && !detectionActive()) || ui.video.readyState < 2) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const started = performance.now();
    const frame = imageToRGB(ui.video as BrowserImageSource);
    lastImage = frame;
    await classifyImage(frame, 'camera', started);
    times.push(performance.now());
    while (times.length > 0 && times[0]! < performance.now() - 2000) times.shift();
    if (times.length > 1) ui.fps.textContent = ((times.length - 1) / ((times.at(-1)! - times[0]!) / 1000)).toFixed(1);
    await new Promise((r) => requestAnimationFrame(r));
  }
}

function stopCamera(): void {
  if (!stream) return;
  cameraLoop++;
  for (const track of stream.getTracks()) track.stop();
  stream = undefined;
  ui.video.srcObject = null;
  ui.video.hidden = true;
  ui.camera.textContent = 'Start camera';
  ui.fps.textContent = '–';
}

// ---------------------------------------------------------------- wiring

function renderEngine(): void {
  if (!engine) return;
  ui.engine.textContent = engine.engine === 'webgpu' ? 'webgpu' : `${engine.engine} · ${engine.threads} thread${engine.threads > 1 ? 's' : ''}`;
  ui.engine.className = `badge ${engine.engine === 'webgpu' ? 'webgpu' : ''}`;
  ui.engine.title = engine.note ?? '';
}

const isWeightsFile = (name: string): boolean => /\.(pth|pt|bin|safetensors|onnx)$/i.test(name);

/** Thumbnails of the default model's example images: a click classifies one. */
function showExamples(): void {
  const urls = defaultModel?.examples ?? [];
  if (urls.length === 0) return;
  ui.examples.replaceChildren('Examples:', ...urls.map((url) => {
    const button = document.createElement('button');
    button.type = 'button';
    const name = url.split('/').at(-1)!;
    button.title = name;
    button.append(Object.assign(new Image(), { src: url, alt: name }));
    button.addEventListener('click', () => {
      fetch(url).then((r) => r.blob()).then((blob) => classifyBlob(blob, name)).catch((err: unknown) => setStatus(message(err), 'error'));
    });
    return button;
  }));
  ui.examples.hidden = false;
}

function wire(): void {
  ui.urlForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const url = ui.url.value.trim();
    if (url) void run(`Loading ${url}`, () => loadFromUrl(url));
  });
  ui.weightsFile.addEventListener('change', () => {
    const file = ui.weightsFile.files?.[0];
    if (file) void run(`Loading ${file.name}`, () => loadFromFile(file));
    ui.weightsFile.value = '';
  });
  ui.select.addEventListener('change', () => {
    const key = ui.select.value;
    if (key === 'default') void run('Loading the built-in model', loadDefault);
    else if (key === 'default-int8') void run('Loading the built-in INT8 model', loadDefaultInt8);
    else if (key) void run('Loading cached weights', async () => void (await loadCachedEntry(key)));
  });
  ui.imageFile.addEventListener('change', () => {
    const file = ui.imageFile.files?.[0];
    if (file) classifyBlob(file, file.name).catch((err: unknown) => setStatus(message(err), 'error'));
    ui.imageFile.value = '';
  });
  ui.camera.addEventListener('click', () => {
    if (stream) stopCamera();
    else startCamera().catch((err: unknown) => {
      stopCamera();
      setStatus(`Camera: ${message(err)}`, 'error');
    });
  });
  ui.drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    ui.drop.classList.add('over');
  });
  ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
  ui.drop.addEventListener('drop', (event) => {
    event.preventDefault();
    ui.drop.classList.remove('over');
    const file = event.dataTransfer?.files[0];
    if (!file) return;
    if (isWeightsFile(file.name)) void run(`Loading ${file.name}`, () => loadFromFile(file));
    else classifyBlob(file, file.name).catch((err: unknown) => setStatus(message(err), 'error'));
  });
}

/** For tests and benchmarks. */
const demo = {
  get engine() { return engine; },
  get last() { return last; },
  get model() {
    if (!current) return undefined;
    const { model } = current;
    return { name: current.name, config: model.config, format: model instanceof OnnxClassifier ? 'onnx' : model.report?.format, int8: isInt8(model) };
  },
  hasDefaultModel: defaultModel !== null,
  /** Waits for the model loads started so far. */
  idle: () => loading,
  /** Fetches an image and classifies it as the file picker would. */
  async classifyUrl(url: string): Promise<Result | undefined> {
    const blob = await (await fetch(url)).blob();
    return classifyBlob(blob, url);
  },
  /** Median-free raw timings of `rounds` runs of the current model on one input of its size (ms each). */
  async benchmark(rounds: number, warmup = 5): Promise<number[]> {
    if (!current) throw new Error('no model');
    const [h, w] = inputSize(current);
    const data = new Float32Array(3 * h * w).map((_, i) => Math.sin(i * 12.9898) * 2);
    const pixels: FloatTensor = { dtype: 'float32', shape: [1, 3, h, w], data };
    for (let i = 0; i < warmup; i++) await current.model.logits(pixels);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await current.model.logits(pixels);
      times.push(performance.now() - t0);
    }
    return times;
  },
};
Object.defineProperties(demo, Object.getOwnPropertyDescriptors(segmentationDemo));
Object.defineProperties(demo, Object.getOwnPropertyDescriptors(detectionDemo));
usePainter(showPreview);
useDetectionPainter(showPreview);
(window as unknown as { demo: typeof demo }).demo = demo;

async function main(): Promise<void> {
  const backend = params.get('backend');
  const threads = params.get('threads');
  configureRuntime({
    wasmPaths: new URL('ort/', document.baseURI).href,
    ...(backend === 'wasm' || backend === 'webgpu' || backend === 'auto' ? { backend } : {}),
    ...(threads ? { threads: Number(threads) } : {}),
  });
  if (import.meta.env.PROD && 'serviceWorker' in navigator && !params.has('nosw')) {
    navigator.serviceWorker.register('./sw.js').catch((err: unknown) => console.warn('service worker:', err));
  }
  wire();
  showExamples();
  engine = await runtimeInfo();
  renderEngine();
  await imagenetLabels().catch(() => undefined); // warm the label list (and the offline cache)
  const wanted = params.get('model');
  await refreshPicker();
  if (wanted === 'default-int8') await run('Loading the built-in INT8 model', loadDefaultInt8);
  else if (wanted) await run(`Loading ${wanted}`, () => loadFromUrl(wanted));
  else if (defaultModel) await run('Loading the built-in model', loadDefault);
  else {
    const cached = (await listCached())[0];
    if (cached) await run(`Loading ${cached.name}`, () => loadCachedEntry(cached.key).then(() => undefined));
    else {
      document.body.dataset.status = 'ready';
      setStatus('No model loaded yet: give a weights URL or open a .pth / .safetensors / .onnx file.');
    }
  }
}

main().catch((err: unknown) => setStatus(message(err), 'error'));
