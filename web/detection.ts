/**
 * The demo page's detection mode: Mask R-CNN weights in torchvision's layout (detected by their
 * keys) turn the page into boxes, labels, scores and masks drawn over the chosen image or the
 * webcam, with the list of objects found, latency and FPS.
 *
 * `?threshold=T` (default 0.5) keeps detections scoring above T; `?min-size=S&max-size=L` change
 * torchvision's resize (default 800 / 1333; smaller is faster on a webcam).
 */
import {
  classColor, decodeImage, DetectionModel, drawDetections, isMaskRcnnState, readWeights, type Detection, type RGBImage,
} from 'swiftformer';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

export interface DetectionResult {
  seq: number;
  width: number;
  height: number;
  /** The detections without their masks, and each mask's pixel count. */
  detections: (Omit<Detection, 'mask'> & { maskPixels?: number })[];
  /** Decoding excluded: graph (resize included), masks, drawing, ms. */
  latencyMs: number;
  source: string;
}

let model: DetectionModel | undefined;
let name = '';
let seq = 0;
let last: DetectionResult | undefined;

function threshold(): number {
  const t = Number(params.get('threshold') ?? 0.5);
  return t >= 0 && t <= 1 ? t : 0.5;
}

function sizes(): { minSize?: number; maxSize?: number } {
  const int = (key: string) => (params.has(key) ? Number(params.get(key)) : undefined);
  const [minSize, maxSize] = [int('min-size'), int('max-size')];
  return { ...(minSize !== undefined ? { minSize } : {}), ...(maxSize !== undefined ? { maxSize } : {}) };
}

/** Loads `bytes` as a detector if they hold torchvision Mask R-CNN weights; false otherwise (nothing changed). */
export async function tryDetection(bytes: Uint8Array, weightsName: string): Promise<boolean> {
  const { state, metadata } = await readWeights(bytes, { name: weightsName });
  if (!isMaskRcnnState(state.keys())) return false;
  const next = await DetectionModel.fromSource({ state, metadata, name: weightsName }, { settings: { transform: sizes() } });
  const previous = model;
  model = next;
  name = weightsName;
  await previous?.release();
  show(true);
  const t = next.config.settings.transform;
  $('model-badge').textContent = `${weightsName} · ${next.hasMasks ? 'Mask' : 'Faster'} R-CNN, ${next.numClasses} classes, ${t.minSize}/${t.maxSize}`;
  $('model-badge').classList.remove('muted');
  return true;
}

/** Leaves detection mode (another model was loaded). */
export function leaveDetection(): void {
  if (!model) return;
  void model.release();
  model = undefined;
  show(false);
}

export const detectionActive = (): boolean => model !== undefined;

function show(on: boolean): void {
  if (on) document.body.dataset.mode = 'detection';
  else if (document.body.dataset.mode === 'detection') document.body.dataset.mode = 'classification';
  $('top5').hidden = on;
  $('objects').hidden = !on;
  $('legend').hidden = true;
  $('results-title').textContent = on ? 'Objects' : 'Top 5';
}

let paint: (picture: RGBImage) => void = () => undefined;

/** How the page shows a picture in its preview canvas (main.ts's showPreview). */
export function useDetectionPainter(painter: (picture: RGBImage) => void): void {
  paint = painter;
}

/** Detects objects in one image or frame and draws them into the preview canvas (the video, if any, stays hidden behind it). */
export async function detectImage(image: RGBImage, source: string, started = performance.now()): Promise<DetectionResult | undefined> {
  if (!model) return undefined;
  const found = await model.detect(image, { threshold: threshold() });
  paint(drawDetections(image, found));
  $('video').hidden = true;
  renderObjects(found);
  last = {
    seq: ++seq, width: image.width, height: image.height, latencyMs: performance.now() - started, source,
    detections: found.map(({ mask, ...d }) => ({ ...d, ...(mask ? { maskPixels: mask.data.reduce((n, v) => n + (v ? 1 : 0), 0) } : {}) })),
  };
  const t = model.config.settings.transform;
  $('latency').textContent = `${last.latencyMs.toFixed(1)} ms`;
  $('input-size').textContent = `${image.width}×${image.height} → ${t.minSize}/${t.maxSize}`;
  return last;
}

function renderObjects(found: Detection[]): void {
  const items = found.slice(0, 30).map((d) => {
    const li = document.createElement('li');
    const swatch = Object.assign(document.createElement('span'), { className: 'swatch' });
    swatch.style.background = `rgb(${classColor(d.index).join(',')})`;
    const label = Object.assign(document.createElement('span'), { className: 'label', textContent: d.label, title: d.label });
    const score = Object.assign(document.createElement('span'), { className: 'score', textContent: `${(d.score * 100).toFixed(1)}%` });
    li.append(swatch, label, score);
    return li;
  });
  if (items.length === 0) items.push(Object.assign(document.createElement('li'), { className: 'none', textContent: `nothing above ${threshold()}` }));
  $('objects').replaceChildren(...items);
}

/** What `window.demo` gains: the state and a benchmark, for tests and benchmarks. */
export const detectionDemo = {
  get detection() {
    return model && { name, numClasses: model.numClasses, threshold: threshold(), settings: model.config.settings.transform, last };
  },
  /** Fetches an image and detects objects in it as the file picker would. */
  async detectUrl(url: string): Promise<DetectionResult | undefined> {
    const started = performance.now();
    return detectImage(await decodeImage(url), url, started);
  },
  /** Raw timings (ms) of `rounds` detector runs on one height x width image, after `warmup` runs. */
  async benchmarkDetection(rounds: number, height = 480, width = 640, warmup = 2): Promise<number[]> {
    if (!model) throw new Error('no detection model');
    const data = new Float32Array(3 * height * width).map((_, i) => 0.5 + 0.5 * Math.sin(i * 12.9898));
    const pixels = { dtype: 'float32' as const, shape: [1, 3, height, width], data };
    for (let i = 0; i < warmup; i++) await model.run(pixels, { threshold: threshold() });
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await model.run(pixels, { threshold: threshold() });
      times.push(performance.now() - t0);
    }
    return times;
  },
};
