/**
 * The demo page's segmentation mode: Semantic FPN weights (detected by their keys) turn the page
 * from top-5 classification into masks drawn over the chosen image or the webcam, with the
 * palette, a legend of the classes present, latency and FPS.
 *
 * `?scale=S` (or LONG,SHORT) sets the test scale of the keep-ratio resize (default mmseg's
 * (2048, 512)); `?scale=0` runs frames at their own size.
 */
import {
  classAreas, decodeImage, isSemanticFpnState, loadSemanticFpn, overlay, readSegmentationWeights, type RGBImage, type Segmentation, type SegmentationModel,
} from 'swiftformer';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

export interface SegmentationResult {
  seq: number;
  width: number;
  height: number;
  /** The mask's class indices, row-major. */
  mask: number[];
  classes: { index: number; label: string; fraction: number }[];
  /** Preprocessing + inference + mask, ms. */
  latencyMs: number;
  source: string;
}

function scaleParam(): [number, number] | null | undefined {
  const value = new URLSearchParams(location.search).get('scale');
  if (value === null) return undefined;
  const parts = value.split(',').map(Number);
  if (parts.length === 1 && parts[0] === 0) return null;
  return parts.length === 1 ? [4 * parts[0]!, parts[0]!] : [parts[0]!, parts[1]!];
}

let model: SegmentationModel | undefined;
let name = '';
let seq = 0;
let last: SegmentationResult | undefined;

/** Loads `bytes` as a segmentation model if they hold Semantic FPN weights; false otherwise (nothing changed). */
export async function trySegmentation(bytes: Uint8Array, weightsName: string): Promise<boolean> {
  const { state, meta } = await readSegmentationWeights(bytes, weightsName);
  if (!isSemanticFpnState(state.keys())) return false;
  const scale = scaleParam();
  const next = loadSemanticFpn(state, meta, scale === undefined ? {} : { scale }, weightsName);
  const previous = model;
  model = next;
  name = weightsName;
  await previous?.release();
  show(true);
  $('model-badge').textContent = `${weightsName} · Semantic FPN, ${next.numClasses} classes`;
  $('model-badge').classList.remove('muted');
  return true;
}

/** Leaves segmentation mode (a classifier was loaded). */
export function leaveSegmentation(): void {
  if (!model) return;
  void model.release();
  model = undefined;
  show(false);
}

export const segmentationActive = (): boolean => model !== undefined;

function show(on: boolean): void {
  document.body.dataset.mode = on ? 'segmentation' : 'classification';
  $('top5').hidden = on;
  $('legend').hidden = !on;
  $('results-title').textContent = on ? 'Classes present' : 'Top 5';
}

/** Segments one image or frame and draws the result into the preview canvas (the video, if any, stays hidden behind it). */
export async function segmentImage(image: RGBImage, source: string, started = performance.now()): Promise<SegmentationResult | undefined> {
  if (!model) return undefined;
  const result = await model.segment(image);
  draw(image, result);
  const classes = classAreas(result);
  renderLegend(result, classes);
  last = { seq: ++seq, width: result.width, height: result.height, mask: Array.from(result.mask), classes, latencyMs: performance.now() - started, source };
  $('latency').textContent = `${last.latencyMs.toFixed(1)} ms`;
  $('input-size').textContent = `${image.width}×${image.height} → ${model.scale ? `scale ${model.scale.join('×')}` : 'own size'}`;
  return last;
}

let paint: (picture: RGBImage) => void = () => undefined;

/** How the page shows a picture in its preview canvas (main.ts's showPreview). */
export function usePainter(painter: (picture: RGBImage) => void): void {
  paint = painter;
}

/** The frame with the mask blended in, in place of the video (which keeps playing, hidden). */
function draw(image: RGBImage, result: Segmentation): void {
  paint(overlay(image, result, { legend: false }));
  $('video').hidden = true;
}

function renderLegend(result: Segmentation, classes: { index: number; label: string; fraction: number }[]): void {
  $('legend').replaceChildren(...classes.slice(0, 20).map((c) => {
    const li = document.createElement('li');
    const swatch = Object.assign(document.createElement('span'), { className: 'swatch' });
    swatch.style.background = `rgb(${result.palette[c.index]!.join(',')})`;
    const label = Object.assign(document.createElement('span'), { className: 'label', textContent: c.label, title: c.label });
    const share = Object.assign(document.createElement('span'), { className: 'score', textContent: `${(c.fraction * 100).toFixed(1)}%` });
    li.append(swatch, label, share);
    return li;
  }));
}

/** What `window.demo` gains: the state and a benchmark, for tests and bench/segmentation.ts. */
export const segmentationDemo = {
  get segmentation() {
    return model && { name, numClasses: model.numClasses, scale: model.scale, last };
  },
  /** Fetches an image and segments it as the file picker would. */
  async segmentUrl(url: string): Promise<SegmentationResult | undefined> {
    const started = performance.now();
    return segmentImage(await decodeImage(url), url, started);
  },
  /** Raw timings (ms) of `rounds` decode-head runs on one size x size input, after `warmup` runs. */
  async benchmarkSegmentation(rounds: number, size = 512, warmup = 3): Promise<number[]> {
    if (!model) throw new Error('no segmentation model');
    const data = new Float32Array(3 * size * size).map((_, i) => Math.sin(i * 12.9898) * 2);
    const pixels = { dtype: 'float32' as const, shape: [1, 3, size, size], data };
    for (let i = 0; i < warmup; i++) await model.quarterLogits(pixels);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await model.quarterLogits(pixels);
      times.push(performance.now() - t0);
    }
    return times;
  },
};
