/**
 * The Fashion-MNIST scene dataset: a deterministic generator of segmentation and detection scenes
 * composed from Fashion-MNIST garments, for training Semantic FPN and Mask R-CNN on this machine.
 *
 *   node --import tsx scripts/make-scenes.ts --out data/scenes [--train 2000] [--val 500]
 *        [--size 128] [--seed 0] [--min-objects 1] [--max-objects 5] [--min-area 32] [--data DIR]
 *
 * A scene is a textured background (a linear gradient, smooth value noise, stripes or checkers,
 * sometimes two of them blended, plus sensor noise) with 1-5 garments pasted on it at random scales
 * (25-65% of the side) and positions (up to a fifth of a garment may leave the image), each tinted
 * with a random color; later garments occlude earlier ones. Train scenes draw garments from
 * Fashion-MNIST's train split, val scenes from t10k. Scene i of a split depends only on (seed,
 * split, i): the same seed and arguments give byte-identical files, and a longer run extends a
 * shorter one.
 *
 * Garment masks: the 28x28 image is resized bilinearly (half-pixel centers, edge clamp) to the
 * garment's size and thresholded at intensity >= 32 (of 255); holes not connected to the edge of
 * the garment's square are filled. A Fashion-MNIST image whose 28x28 mask at that threshold has
 * fewer than 80 pixels (a faint garment) is replaced by another draw.
 *
 * Output (mmsegmentation's generic layout plus COCO):
 *   img_dir/{train,val}/<stem>.png       RGB scenes
 *   ann_dir/{train,val}/<stem>.png       8-bit grayscale label maps: 0 background, 1..10 = class + 1,
 *                                        255 = ignore: a band around every region boundary (a pixel
 *                                        whose 8-neighbourhood reaches another garment or the
 *                                        background: 1 px each side, 2 px across), and the pixels of
 *                                        garments left out of the COCO file (visible area < min-area)
 *   annotations/instances_{train,val}.json   COCO instances: visible masks after occlusion as
 *                                        uncompressed RLE (column-major), bbox of the visible mask,
 *                                        area = visible pixels, iscrowd 0
 *   dataset.json                         the arguments, seed, class names, palette and these rules
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { SwiftFormerError } from '../src/core/errors.js';
import { Random } from '../src/core/random.js';
import { FASHION_MNIST_CLASSES } from '../src/data/dataset.js';
import { intOption, parse } from '../src/cli/args.js';
import { FASHION_MNIST_DIR, loadIdxDataset } from '../src/node/datasets.js';
import { makeDirectory, writeFileAtomic } from '../src/node/files.js';

export interface SceneOptions {
  out: string;
  train: number;
  val: number;
  size: number;
  seed: number;
  minObjects: number;
  maxObjects: number;
  /** Instances with fewer visible pixels are left out of the COCO file and ignored (255) in the label map. */
  minArea: number;
  /** Directory of the Fashion-MNIST IDX files. */
  data: string;
}

export const SCENE_DEFAULTS: Omit<SceneOptions, 'out'> = {
  train: 2000, val: 500, size: 128, seed: 0, minObjects: 1, maxObjects: 5, minArea: 32, data: FASHION_MNIST_DIR,
};

export const IGNORE_INDEX = 255;
/** Mask rule: resized intensity at or above this (of 255) is garment. */
export const MASK_THRESHOLD = 32;
/** A Fashion-MNIST image with fewer mask pixels at 28x28 is too faint to be a garment here. */
const MIN_SOURCE_PIXELS = 80;
const SCALE_RANGE = [0.25, 0.65] as const;
/** At most this fraction of a garment's square may lie outside the image. */
const MAX_OUTSIDE = 0.2;

/** Label palette (index = label value): background, then one color per Fashion-MNIST class. */
export const PALETTE: readonly (readonly [number, number, number])[] = [
  [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
];

type RGB = [number, number, number];
type Split = 'train' | 'val';

// ---------------------------------------------------------------- randomness

/** A 32-bit seed for scene `index` of `split`: a murmur3-style mix so that neighbouring scenes are unrelated. */
function sceneSeed(seed: number, split: Split, index: number): number {
  let h = (seed ^ (split === 'train' ? 0x9e3779b9 : 0x85ebca6b)) >>> 0;
  for (const k of [index, index >>> 16, 0x27d4eb2f]) {
    h = Math.imul(h ^ k, 0xcc9e2d51) >>> 0;
    h = ((h << 15) | (h >>> 17)) >>> 0;
    h = (Math.imul(h, 0x1b873593) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

const randInt = (rng: Random, lo: number, hi: number) => lo + Math.floor(rng.next() * (hi - lo + 1));

/** A color from HSV with the given saturation and value ranges. */
function randomColor(rng: Random, sat: readonly [number, number], val: readonly [number, number]): RGB {
  const h = rng.next() * 6;
  const s = rng.uniform(sat[0], sat[1]);
  const v = rng.uniform(val[0], val[1]) * 255;
  const f = h - Math.floor(h);
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  const table: RGB[] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]];
  return table[Math.floor(h) % 6]!;
}

// ---------------------------------------------------------------- backgrounds

/** A scalar field in [0, 1] over the S x S image, one of four procedural textures. */
function textureField(rng: Random, size: number): Float32Array {
  const field = new Float32Array(size * size);
  const kind = randInt(rng, 0, 3);
  const angle = rng.uniform(0, Math.PI);
  const [c, s] = [Math.cos(angle), Math.sin(angle)];
  if (kind === 0) { // linear gradient along a random direction
    const span = size * (Math.abs(c) + Math.abs(s));
    const o = Math.min(0, c * size) + Math.min(0, s * size);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) field[y * size + x] = (c * x + s * y - o) / span;
  } else if (kind === 1) { // value noise: a coarse random grid, smoothly interpolated, two octaves
    const octave = (cells: number, weight: number) => {
      const grid = Float32Array.from({ length: (cells + 1) * (cells + 1) }, () => rng.next());
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const gx = (x / size) * cells;
          const gy = (y / size) * cells;
          const [ix, iy] = [Math.floor(gx), Math.floor(gy)];
          const smooth = (t: number) => t * t * (3 - 2 * t);
          const [fx, fy] = [smooth(gx - ix), smooth(gy - iy)];
          const at = (i: number, j: number) => grid[j * (cells + 1) + i]!;
          const top = at(ix, iy) * (1 - fx) + at(ix + 1, iy) * fx;
          const bottom = at(ix, iy + 1) * (1 - fx) + at(ix + 1, iy + 1) * fx;
          field[y * size + x] = field[y * size + x]! + weight * (top * (1 - fy) + bottom * fy);
        }
      }
    };
    const cells = randInt(rng, 2, 8);
    octave(cells, 0.7);
    octave(cells * 4, 0.3);
  } else if (kind === 2) { // stripes at a random angle, period 4-24 px, soft or hard edges
    const period = rng.uniform(4, 24);
    const hard = rng.next() < 0.5;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const w = 0.5 + 0.5 * Math.sin((2 * Math.PI * (c * x + s * y)) / period);
        field[y * size + x] = hard ? (w > 0.5 ? 1 : 0) : w;
      }
    }
  } else { // checkers, rotated, cells 4-24 px
    const cell = rng.uniform(4, 24);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const u = Math.floor((c * x + s * y) / cell);
        const v = Math.floor((-s * x + c * y) / cell);
        field[y * size + x] = (u + v) & 1;
      }
    }
  }
  return field;
}

/** A background: one texture between two colors, sometimes blended with a second one. */
function paintBackground(rng: Random, size: number, rgb: Float32Array): void {
  const layers = rng.next() < 0.4 ? 2 : 1;
  for (let layer = 0; layer < layers; layer++) {
    const field = textureField(rng, size);
    const a = randomColor(rng, [0, 0.9], [0.15, 1]);
    const b = randomColor(rng, [0, 0.9], [0.15, 1]);
    const alpha = layer === 0 ? 1 : rng.uniform(0.25, 0.5);
    for (let p = 0; p < size * size; p++) {
      const t = field[p]!;
      for (let ch = 0; ch < 3; ch++) {
        const v = a[ch]! + (b[ch]! - a[ch]!) * t;
        rgb[p * 3 + ch] = alpha === 1 ? v : rgb[p * 3 + ch]! * (1 - alpha) + v * alpha;
      }
    }
  }
}

// ---------------------------------------------------------------- garments

/** Bilinear resize (half-pixel centers, edge clamp) of a 28x28 image to s x s, optionally mirrored. */
function resizeGarment(src: Uint8Array, n: number, s: number, mirror: boolean): Float32Array {
  const out = new Float32Array(s * s);
  const at = (x: number, y: number) => src[Math.min(n - 1, Math.max(0, y)) * n + Math.min(n - 1, Math.max(0, x))]!;
  for (let ty = 0; ty < s; ty++) {
    const sy = Math.max(0, ((ty + 0.5) * n) / s - 0.5);
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let tx = 0; tx < s; tx++) {
      const sx = Math.max(0, ((tx + 0.5) * n) / s - 0.5);
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
      const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
      out[ty * s + (mirror ? s - 1 - tx : tx)] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** Threshold, then fill the holes: non-garment pixels not 4-connected to the square's edge. */
function garmentMask(intensity: Float32Array, s: number): Uint8Array {
  const mask = Uint8Array.from(intensity, (v) => (v >= MASK_THRESHOLD ? 1 : 0));
  const outside = new Uint8Array(s * s);
  const stack: number[] = [];
  const push = (p: number) => {
    if (!mask[p] && !outside[p]) {
      outside[p] = 1;
      stack.push(p);
    }
  };
  for (let i = 0; i < s; i++) {
    push(i);
    push((s - 1) * s + i);
    push(i * s);
    push(i * s + s - 1);
  }
  while (stack.length > 0) {
    const p = stack.pop()!;
    const [x, y] = [p % s, Math.floor(p / s)];
    if (x > 0) push(p - 1);
    if (x < s - 1) push(p + 1);
    if (y > 0) push(p - s);
    if (y < s - 1) push(p + s);
  }
  for (let p = 0; p < s * s; p++) if (!outside[p]) mask[p] = 1;
  return mask;
}

interface Source {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  side: number;
}

/** A random Fashion-MNIST image of the split that is not too faint. */
function drawSource(rng: Random, source: Source): number {
  const plane = source.side * source.side;
  for (;;) {
    const i = Math.floor(rng.next() * source.count);
    let pixels = 0;
    for (let p = i * plane; p < (i + 1) * plane; p++) if (source.images[p]! >= MASK_THRESHOLD) pixels++;
    if (pixels >= MIN_SOURCE_PIXELS) return i;
  }
}

interface Garment {
  /** Fashion-MNIST class 0..9. */
  cls: number;
  sourceIndex: number;
}

/**
 * Pastes garment `id` (1-based) onto the scene: its color shaded by the garment's own intensity,
 * its pixels claimed in the region map (a later garment overwrites earlier ones).
 */
function pasteGarment(rng: Random, source: Source, size: number, id: number, rgb: Float32Array, region: Uint8Array): Garment {
  const sourceIndex = drawSource(rng, source);
  const plane = source.side * source.side;
  const s = Math.round(rng.uniform(SCALE_RANGE[0], SCALE_RANGE[1]) * size);
  const mirror = rng.next() < 0.5;
  const ox = randInt(rng, -Math.floor(MAX_OUTSIDE * s), size - Math.ceil((1 - MAX_OUTSIDE) * s));
  const oy = randInt(rng, -Math.floor(MAX_OUTSIDE * s), size - Math.ceil((1 - MAX_OUTSIDE) * s));
  const tint = randomColor(rng, [0.3, 1], [0.45, 1]);
  const intensity = resizeGarment(source.images.subarray(sourceIndex * plane, (sourceIndex + 1) * plane), source.side, s, mirror);
  const mask = garmentMask(intensity, s);
  for (let gy = 0; gy < s; gy++) {
    const y = oy + gy;
    if (y < 0 || y >= size) continue;
    for (let gx = 0; gx < s; gx++) {
      const x = ox + gx;
      if (x < 0 || x >= size || !mask[gy * s + gx]) continue;
      const p = y * size + x;
      const shade = 0.3 + (0.7 * intensity[gy * s + gx]!) / 255;
      for (let ch = 0; ch < 3; ch++) rgb[p * 3 + ch] = tint[ch]! * shade;
      region[p] = id;
    }
  }
  return { cls: source.labels[sourceIndex]!, sourceIndex };
}

// ---------------------------------------------------------------- labels and COCO masks

/** Pixels whose 8-neighbourhood (inside the image) holds another region: the ignore band. */
function boundaryBand(region: Uint8Array, size: number): Uint8Array {
  const band = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = region[y * size + x];
      search: for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= size) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= size) continue;
          if (region[yy * size + xx] !== r) {
            band[y * size + x] = 1;
            break search;
          }
        }
      }
    }
  }
  return band;
}

/** COCO's uncompressed RLE of a binary mask: run lengths in column-major order, starting with a run of zeros. */
export function encodeRle(mask: (p: number) => boolean, height: number, width: number): { counts: number[]; size: [number, number] } {
  const counts: number[] = [];
  let current = false;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = mask(y * width + x);
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { counts, size: [height, width] };
}

interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: { counts: number[]; size: [number, number] };
  area: number;
  bbox: [number, number, number, number];
  iscrowd: 0;
}

/** The visible extent of region `id` as [x, y, w, h] and its pixel count. */
function extent(region: Uint8Array, size: number, id: number): { bbox: [number, number, number, number]; area: number } {
  let [x0, y0, x1, y1, area] = [size, size, -1, -1, 0];
  for (let p = 0; p < size * size; p++) {
    if (region[p] !== id) continue;
    const [x, y] = [p % size, Math.floor(p / size)];
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
    area++;
  }
  return { bbox: area === 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1], area };
}

// ---------------------------------------------------------------- scenes

interface Scene {
  rgb: Uint8Array;
  label: Uint8Array;
  annotations: Omit<CocoAnnotation, 'id' | 'image_id'>[];
}

export function makeScene(options: Omit<SceneOptions, 'out' | 'data' | 'train' | 'val'>, source: Source, split: Split, index: number): Scene {
  const { size } = options;
  const rng = new Random(sceneSeed(options.seed, split, index));
  const color = new Float32Array(size * size * 3);
  const region = new Uint8Array(size * size);
  paintBackground(rng, size, color);
  const count = randInt(rng, options.minObjects, options.maxObjects);
  const garments: Garment[] = [];
  for (let id = 1; id <= count; id++) garments.push(pasteGarment(rng, source, size, id, color, region));
  const sigma = rng.uniform(0, 10);
  const rgb = Uint8Array.from(color, (v) => Math.round(Math.min(255, Math.max(0, v + sigma * rng.normal()))));

  const band = boundaryBand(region, size);
  const labelOf = new Uint8Array(count + 1); // region id -> label value
  const annotations: Scene['annotations'] = [];
  for (const [i, g] of garments.entries()) {
    const id = i + 1;
    const { bbox, area } = extent(region, size, id);
    if (area < options.minArea) {
      labelOf[id] = IGNORE_INDEX;
      continue;
    }
    labelOf[id] = g.cls + 1;
    const segmentation = encodeRle((p) => region[p] === id, size, size);
    annotations.push({ category_id: g.cls + 1, segmentation, area, bbox, iscrowd: 0 });
  }
  const label = Uint8Array.from(region, (r, p) => (band[p] ? IGNORE_INDEX : labelOf[r]!));
  return { rgb, label, annotations };
}

async function loadSource(dir: string, split: Split): Promise<Source> {
  const set = await loadIdxDataset(dir, split === 'train' ? 'train' : 'test', { classes: FASHION_MNIST_CLASSES });
  if (set.width !== set.height) throw new SwiftFormerError('BAD_DATA', `${set.name}: images are ${set.width}x${set.height}, expected square`);
  return { images: set.images.data, labels: set.labels.data, count: set.length, side: set.width };
}

const stemOf = (index: number) => String(index).padStart(6, '0');

async function writePng(path: string, data: Uint8Array, size: number, channels: 1 | 3): Promise<void> {
  const image = sharp(data, { raw: { width: size, height: size, channels } });
  // Without 'b-w' sharp writes one raw channel as RGB.
  const png = await (channels === 1 ? image.toColourspace('b-w') : image).png({ compressionLevel: 6 }).toBuffer();
  await writeFileAtomic(path, png);
}

async function writeSplit(options: SceneOptions, split: Split, onProgress: (line: string) => void): Promise<{ images: number; instances: number }> {
  const count = split === 'train' ? options.train : options.val;
  const source = await loadSource(options.data, split);
  const imgDir = join(options.out, 'img_dir', split);
  const annDir = join(options.out, 'ann_dir', split);
  await makeDirectory(imgDir);
  await makeDirectory(annDir);
  const images: object[] = [];
  const annotations: CocoAnnotation[] = [];
  for (let i = 0; i < count; i++) {
    const scene = makeScene(options, source, split, i);
    const stem = stemOf(i);
    await writePng(join(imgDir, `${stem}.png`), scene.rgb, options.size, 3);
    await writePng(join(annDir, `${stem}.png`), scene.label, options.size, 1);
    images.push({ id: i + 1, file_name: `${stem}.png`, width: options.size, height: options.size });
    for (const a of scene.annotations) annotations.push({ id: annotations.length + 1, image_id: i + 1, ...a });
    if ((i + 1) % 250 === 0 || i + 1 === count) onProgress(`${split}: ${i + 1}/${count} scenes, ${annotations.length} instances`);
  }
  const coco = {
    info: { description: `Fashion-MNIST scenes (${split}), scripts/make-scenes.ts`, version: '1', seed: options.seed },
    licenses: [],
    images,
    annotations,
    categories: FASHION_MNIST_CLASSES.map((name, k) => ({ id: k + 1, name, supercategory: 'garment' })),
  };
  await makeDirectory(join(options.out, 'annotations'));
  await writeFileAtomic(join(options.out, 'annotations', `instances_${split}.json`), JSON.stringify(coco));
  return { images: count, instances: annotations.length };
}

function checkOptions(o: SceneOptions): void {
  const bad = (why: string) => new SwiftFormerError('BAD_ARGUMENT', why);
  if (o.size < 32 || o.size > 4096) throw bad(`--size must be between 32 and 4096, got ${o.size}`);
  if (o.maxObjects < o.minObjects) throw bad(`--max-objects (${o.maxObjects}) is below --min-objects (${o.minObjects})`);
  if (o.maxObjects > 250) throw bad(`--max-objects must be at most 250, got ${o.maxObjects}`);
  if (o.train + o.val === 0) throw bad('--train and --val are both 0: nothing to generate');
}

/** Generates the dataset under `options.out`; returns what dataset.json records. */
export async function makeScenes(options: SceneOptions, onProgress: (line: string) => void = () => {}): Promise<Record<string, unknown>> {
  checkOptions(options);
  const splits: Record<string, { images: number; instances: number }> = {};
  for (const split of ['train', 'val'] as const) splits[split] = await writeSplit(options, split, onProgress);
  const { out: _out, data: _data, ...args } = options;
  const description = {
    name: 'fashion-mnist-scenes',
    generator: 'scripts/make-scenes.ts',
    args,
    seed: options.seed,
    sources: { train: 'Fashion-MNIST train (60000)', val: 'Fashion-MNIST t10k (10000)' },
    classes: ['background', ...FASHION_MNIST_CLASSES],
    palette: PALETTE,
    ignore_index: IGNORE_INDEX,
    layout: {
      images: 'img_dir/{train,val}/<stem>.png (RGB)',
      labels: 'ann_dir/{train,val}/<stem>.png (8-bit grayscale, value = label)',
      coco: 'annotations/instances_{train,val}.json (file_name relative to img_dir/<split>)',
    },
    rules: {
      mask: `28x28 garment resized bilinearly (half-pixel centers) to its size, intensity >= ${MASK_THRESHOLD} of 255, holes not connected to the square's edge filled; sources with < ${MIN_SOURCE_PIXELS} such pixels at 28x28 are redrawn`,
      occlusion: 'garments are pasted in order; later ones cover earlier ones; COCO masks are the visible pixels',
      label: '0 background, class + 1 for garments, 255 where a pixel\'s 8-neighbourhood holds another region (garment or background) and on garments left out of the COCO file',
      min_area: `instances with fewer than ${options.minArea} visible pixels are left out of the COCO file`,
    },
    splits,
  };
  await writeFileAtomic(join(options.out, 'dataset.json'), `${JSON.stringify(description, null, 2)}\n`);
  return description;
}

// ---------------------------------------------------------------- command line

const USAGE = `usage: node --import tsx scripts/make-scenes.ts --out DIR [--train 2000] [--val 500] [--size 128] [--seed 0]
       [--min-objects 1] [--max-objects 5] [--min-area 32] [--data ${FASHION_MNIST_DIR}]`;

async function main(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    out: { type: 'string' }, train: { type: 'string' }, val: { type: 'string' }, size: { type: 'string' }, seed: { type: 'string' },
    'min-objects': { type: 'string' }, 'max-objects': { type: 'string' }, 'min-area': { type: 'string' }, data: { type: 'string' },
  }, USAGE);
  if (flags.has('help')) {
    console.log(USAGE);
    return;
  }
  if (values.out === undefined) throw new SwiftFormerError('BAD_ARGUMENT', `--out is required\n\n${USAGE}`);
  const d = SCENE_DEFAULTS;
  const options: SceneOptions = {
    out: values.out,
    train: intOption(values.train, 'train', 0) ?? d.train,
    val: intOption(values.val, 'val', 0) ?? d.val,
    size: intOption(values.size, 'size') ?? d.size,
    seed: intOption(values.seed, 'seed', 0) ?? d.seed,
    minObjects: intOption(values['min-objects'], 'min-objects', 0) ?? d.minObjects,
    maxObjects: intOption(values['max-objects'], 'max-objects', 0) ?? d.maxObjects,
    minArea: intOption(values['min-area'], 'min-area', 0) ?? d.minArea,
    data: values.data ?? d.data,
  };
  const t0 = Date.now();
  const summary = await makeScenes(options, (line) => console.log(line));
  console.log(`wrote ${options.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(summary.splits)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof SwiftFormerError ? `make-scenes: ${err.message}` : err);
    process.exitCode = 1;
  });
}
