/**
 * Training-time image transforms on 8-bit RGB images (HWC) and normalized float CHW tensors,
 * following torchvision's and timm's definitions: random resized crop, horizontal flip, color
 * jitter, RandAugment (randaugment.ts), random erasing ('pixel' mode), mixup / cutmix. Every random choice comes from a
 * `Random` the caller seeds, so a batch is a pure function of (seed, epoch, index).
 */
import { SwiftFormerError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { resizeRGB8, type RGBImage } from '../preprocess/resize.js';
import type { FloatTensor } from '../core/tensor.js';
import {
  cropImage, fitToInput, padImage, roundHalfEven, writeNormalizedCHW,
} from '../preprocess/transforms.js';
import {
  enhanceBrightness, enhanceColor, enhanceContrast, OFFICIAL_RAND_AUGMENT, parseRandAugment, randAugment, type Interpolation,
} from './randaugment.js';

// ---------------------------------------------------------------- random helpers

/** Python's random.randint(lo, hi): an integer in [lo, hi], both inclusive. */
export function randInt(rng: Random, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/** A 32-bit seed derived from several integers (splitmix32-style mixing): independent streams per (seed, epoch, index). */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
    h = (h + 0x9e3779b9 + (Math.floor(p / 4294967296) | 0)) >>> 0;
  }
  return h >>> 0;
}

/** Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 boosted by U^(1/shape)). */
export function sampleGamma(rng: Random, shape: number): number {
  if (shape < 1) return sampleGamma(rng, shape + 1) * Math.pow(1 - rng.next(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next();
    if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Random, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x / (x + y);
}

// ---------------------------------------------------------------- geometry on RGB8 images

export interface CropBox { x: number; y: number; width: number; height: number }

/**
 * torchvision RandomResizedCrop.get_params: up to 10 draws of an area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio`; the first box that fits wins, else a center crop clamped
 * to the ratio range.
 */
export function randomResizedCropBox(
  rng: Random, width: number, height: number, scale: [number, number] = [0.08, 1], ratio: [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const y = randInt(rng, 0, height - h);
      const x = randInt(rng, 0, width - w);
      return { x, y, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), width: w, height: h };
}

/** Mirrors the image left-right, in place. */
export function flipHorizontal(image: RGBImage): RGBImage {
  const { width, height, data } = image;
  for (let y = 0; y < height; y++) {
    let a = y * width * 3;
    let b = a + (width - 1) * 3;
    for (; a < b; a += 3, b -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = data[a + c]!;
        data[a + c] = data[b + c]!;
        data[b + c] = t;
      }
    }
  }
  return image;
}

// ---------------------------------------------------------------- color

export interface ColorJitter {
  brightness?: number;
  contrast?: number;
  saturation?: number;
}

/** One step of a color jitter: which ImageEnhance and its factor. */
export interface JitterStep { kind: 'brightness' | 'contrast' | 'saturation'; factor: number }

const ENHANCE = { brightness: enhanceBrightness, contrast: enhanceContrast, saturation: enhanceColor } as const;

/**
 * torchvision ColorJitter's draws (hue aside): a random order of the three adjustments, then a
 * factor for each that is on, uniform in [max(0, 1 - x), 1 + x].
 */
export function drawColorJitter(rng: Random, jitter: ColorJitter): JitterStep[] {
  const order: JitterStep['kind'][] = ['brightness', 'contrast', 'saturation'];
  for (let i = order.length - 1; i > 0; i--) {
    const j = randInt(rng, 0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const factors = Object.fromEntries(Object.keys(ENHANCE).map((kind) => {
    const x = jitter[kind as JitterStep['kind']] ?? 0;
    return [kind, x > 0 ? rng.uniform(Math.max(0, 1 - x), 1 + x) : undefined];
  }));
  return order.filter((kind) => factors[kind] !== undefined).map((kind) => ({ kind, factor: factors[kind]! }));
}

/**
 * The steps applied as torchvision applies them to a PIL image: ImageEnhance.Brightness (blend
 * with black), Contrast (with the mean gray level) and Color (with each pixel's gray), each with
 * Pillow's float32 blend. Returns a new image.
 */
export function applyColorJitter(image: RGBImage, steps: readonly JitterStep[]): RGBImage {
  let out = image;
  for (const { kind, factor } of steps) out = ENHANCE[kind](out, factor);
  return out === image ? { ...image, data: image.data.slice() } : out;
}

/** torchvision ColorJitter without hue, in place: the draws, then the adjustments. */
export function colorJitter(image: RGBImage, rng: Random, jitter: ColorJitter): RGBImage {
  image.data.set(applyColorJitter(image, drawColorJitter(rng, jitter)).data);
  return image;
}

export interface RandomErasing {
  /** Probability of erasing a rectangle (timm's reprob; official recipe 0.25). */
  probability: number;
  /** Area fraction range (timm: 0.02 .. 1/3). */
  minArea?: number;
  maxArea?: number;
  /** Aspect range (timm: 0.3 .. 1/0.3, log-uniform). */
  minAspect?: number;
  maxAspect?: number;
}

/**
 * timm RandomErasing, mode 'pixel', one rectangle: with the given probability, up to 10 draws of
 * a box; the first that fits strictly inside is filled with standard normal noise, per pixel and
 * channel. Operates on a normalized (C,H,W) image at `offset` of `data`.
 */
export function randomErase(data: Float32Array, offset: number, channels: number, height: number, width: number, rng: Random, options: RandomErasing): void {
  if (rng.next() > options.probability) return;
  const area = height * width;
  const minArea = options.minArea ?? 0.02;
  const maxArea = options.maxArea ?? 1 / 3;
  const minAspect = options.minAspect ?? 0.3;
  const maxAspect = options.maxAspect ?? 1 / minAspect;
  const logAspect = [Math.log(minAspect), Math.log(maxAspect)] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = rng.uniform(minArea, maxArea) * area;
    const aspect = Math.exp(rng.uniform(logAspect[0], logAspect[1]));
    const h = roundHalfEven(Math.sqrt(target * aspect));
    const w = roundHalfEven(Math.sqrt(target / aspect));
    if (w < width && h < height) {
      const top = randInt(rng, 0, height - h);
      const left = randInt(rng, 0, width - w);
      for (let c = 0; c < channels; c++) {
        for (let y = top; y < top + h; y++) {
          const row = offset + (c * height + y) * width;
          for (let x = left; x < left + w; x++) data[row + x] = rng.normal();
        }
      }
      return;
    }
  }
}

// ---------------------------------------------------------------- mixup / cutmix

export interface MixupOptions {
  /** Beta(alpha, alpha) for mixup; 0 disables mixup (timm default 0.8 in the official recipe). */
  mixupAlpha?: number;
  /** Beta(alpha, alpha) for cutmix; 0 disables cutmix (official recipe 1.0). */
  cutmixAlpha?: number;
  /** Probability of mixing a batch at all (timm mixup_prob, default 1). */
  prob?: number;
  /** Probability of cutmix rather than mixup when both are on (timm switch_prob, default 0.5). */
  switchProb?: number;
}

/**
 * timm Mixup in 'batch' mode: one lambda per batch, image i is mixed with image N-1-i. Cutmix
 * pastes a box (its area corrects lambda, timm's correct_lam); mixup blends the whole images.
 * Targets: lam * smooth(y) + (1 - lam) * smooth(flip(y)), each row summing to 1.
 * `pixels` (N,C,H,W) is modified in place; returns the (N,K) targets and the lambda used.
 */
export function mixBatch(
  pixels: FloatTensor, labels: ArrayLike<number>, numClasses: number, smoothing: number, rng: Random, options: MixupOptions,
): { targets: FloatTensor; lam: number; mode: 'none' | 'mixup' | 'cutmix' } {
  const [n, c, h, w] = pixels.shape as [number, number, number, number];
  const mixupAlpha = options.mixupAlpha ?? 0;
  const cutmixAlpha = options.cutmixAlpha ?? 0;
  let lam = 1;
  let mode: 'none' | 'mixup' | 'cutmix' = 'none';
  if ((mixupAlpha > 0 || cutmixAlpha > 0) && rng.next() < (options.prob ?? 1)) {
    const useCutmix = mixupAlpha > 0 && cutmixAlpha > 0 ? rng.next() < (options.switchProb ?? 0.5) : cutmixAlpha > 0;
    mode = useCutmix ? 'cutmix' : 'mixup';
    lam = sampleBeta(rng, useCutmix ? cutmixAlpha : mixupAlpha, useCutmix ? cutmixAlpha : mixupAlpha);
  }
  const x = pixels.data;
  const size = c * h * w;
  if (mode === 'mixup') {
    // Pairs (i, n-1-i) are updated together from their originals; the middle image of an odd batch mixes with itself.
    for (let i = 0; i < Math.floor(n / 2); i++) {
      const a = i * size;
      const b = (n - 1 - i) * size;
      for (let k = 0; k < size; k++) {
        const va = x[a + k]!;
        const vb = x[b + k]!;
        x[a + k] = va * lam + vb * (1 - lam);
        x[b + k] = vb * lam + va * (1 - lam);
      }
    }
  } else if (mode === 'cutmix') {
    const cut = Math.sqrt(1 - lam);
    const cutH = Math.trunc(h * cut);
    const cutW = Math.trunc(w * cut);
    const cy = randInt(rng, 0, h - 1);
    const cx = randInt(rng, 0, w - 1);
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    const y0 = clip(cy - Math.floor(cutH / 2), h);
    const y1 = clip(cy + Math.floor(cutH / 2), h);
    const x0 = clip(cx - Math.floor(cutW / 2), w);
    const x1 = clip(cx + Math.floor(cutW / 2), w);
    lam = 1 - ((y1 - y0) * (x1 - x0)) / (h * w);
    for (let i = 0; i < Math.floor(n / 2); i++) {
      const a = i * size;
      const b = (n - 1 - i) * size;
      for (let ch = 0; ch < c; ch++) {
        for (let y = y0; y < y1; y++) {
          const row = (ch * h + y) * w;
          for (let xx = x0; xx < x1; xx++) {
            const t = x[a + row + xx]!;
            x[a + row + xx] = x[b + row + xx]!;
            x[b + row + xx] = t;
          }
        }
      }
    }
  }
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const data = new Float32Array(n * numClasses);
  for (let i = 0; i < n; i++) {
    const row = i * numClasses;
    for (let k = 0; k < numClasses; k++) data[row + k] = off;
    data[row + labels[i]!] = data[row + labels[i]!]! + lam * (on - off);
    data[row + labels[n - 1 - i]!] = data[row + labels[n - 1 - i]!]! + (1 - lam) * (on - off);
  }
  return { targets: { dtype: 'float32', shape: [n, numClasses], data }, lam, mode };
}

// ---------------------------------------------------------------- sample transforms

export interface AugmentOptions {
  /** RandomResizedCrop scale and ratio (torchvision defaults (0.08, 1), (3/4, 4/3)); false: no crop. */
  randomResizedCrop?: { scale?: [number, number]; ratio?: [number, number] } | false;
  /**
   * torchvision's RandomCrop(size, padding): zero padding on each side, then a random window of the
   * input size, i.e. a shift of up to `padding` pixels. Images of another size are first resized
   * as without augmentation. The usual augmentation for small images (CIFAR, Fashion-MNIST); an
   * alternative to randomResizedCrop, not combined with it.
   */
  randomCrop?: { padding: number } | false;
  /** Probability of a horizontal flip (default 0.5 when augmenting). */
  hflip?: number;
  /** torchvision's ColorJitter; timm applies it only without an auto-augment policy, so it excludes randAugment. */
  colorJitter?: ColorJitter | false;
  /**
   * timm's RandAugment policy string (the official recipe's 'rand-m9-mstd0.5-inc1'), applied after
   * the crop and the flip; its geometric operations fill with the normalization mean.
   */
  randAugment?: string | false;
  /**
   * timm's training interpolation: the filter of the random resized crop and of RandAugment's
   * geometric operations ('random': bilinear or bicubic, drawn each time). Default 'bilinear'
   * (timm's create_transform); the official main.py trains with 'bicubic'.
   */
  interpolation?: Interpolation;
  randomErasing?: RandomErasing | false;
}

/**
 * The official SwiftFormer ImageNet training augmentation (main.py's defaults on timm 0.5.4's
 * transforms_imagenet_train): RandomResizedCrop (bicubic), flip, RandAugment
 * 'rand-m9-mstd0.5-inc1' (bicubic, which is why there is no color jitter: timm applies it only
 * without an auto-augment policy), ToTensor, Normalize, RandomErasing(0.25, 'pixel').
 */
export const DEFAULT_AUGMENT: Required<AugmentOptions> = {
  randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
  randomCrop: false,
  hflip: 0.5,
  colorJitter: false,
  randAugment: OFFICIAL_RAND_AUGMENT,
  interpolation: 'bicubic',
  randomErasing: { probability: 0.25 },
};

/** timm's color jitter when no auto-augment policy is given (main.py's --color-jitter 0.4, as with --aa ''). */
export const DEFAULT_COLOR_JITTER: ColorJitter = { brightness: 0.4, contrast: 0.4, saturation: 0.4 };

/** Inputs up to this size (both sides) are "small images" for `augmentFor`. */
export const SMALL_IMAGE_SIZE = 64;

/**
 * Augmentation for small images (Fashion-MNIST, CIFAR-sized): shifts of up to 1/16 of the size
 * (RandomCrop with padding; 2 pixels at 32x32), flips and random erasing. timm's ImageNet crops,
 * down to 8% of the area, leave too little of a 32x32 image, and zoom crops down to 60% underfit
 * (measured on Fashion-MNIST: README "Numbers").
 */
export function smallImageAugment(inputSize: [number, number]): AugmentOptions {
  return {
    randomResizedCrop: false,
    randomCrop: { padding: Math.max(1, Math.round(Math.min(...inputSize) / 16)) },
    hflip: 0.5,
    colorJitter: false,
    randomErasing: { probability: 0.25 },
  };
}

/** The augmentation `augment: true` means for an input size: small-image or the official ImageNet recipe. */
export function augmentFor(inputSize: [number, number]): AugmentOptions {
  return Math.max(...inputSize) <= SMALL_IMAGE_SIZE ? smallImageAugment(inputSize) : DEFAULT_AUGMENT;
}

/**
 * A preset with its RandAugment policy replaced: a policy string (in place of color jitter; the
 * interpolation bicubic, main.py's, unless the preset has one), or 'none', which for a preset
 * with a policy means timm without an auto-augment policy: color jitter 0.4 (as main.py with
 * --aa '', the official XS run's setting).
 */
export function withRandAugment(preset: AugmentOptions, policy: string): AugmentOptions {
  if (policy === 'none') {
    if (!preset.randAugment) return preset;
    return { ...preset, colorJitter: { ...DEFAULT_COLOR_JITTER }, randAugment: false };
  }
  parseRandAugment(policy);
  return { ...preset, colorJitter: false, randAugment: policy, interpolation: preset.interpolation ?? 'bicubic' };
}

const INTERPOLATIONS: readonly Interpolation[] = ['bilinear', 'bicubic', 'random'];

/** Throws a BAD_ARGUMENT naming the first augmentation setting that cannot work. */
export function checkAugment(augment: AugmentOptions): void {
  const bad = (msg: string) => new SwiftFormerError('BAD_ARGUMENT', `augment: ${msg}`);
  const unit = (x: unknown) => typeof x === 'number' && x >= 0 && x <= 1;
  if (augment.randomCrop && augment.randomResizedCrop) throw bad('randomCrop and randomResizedCrop are alternatives; set one of them to false');
  const shift = augment.randomCrop ? augment.randomCrop.padding : 0;
  if (!Number.isInteger(shift) || shift < 0) throw bad(`randomCrop padding must be a non-negative integer, got ${shift}`);
  if (augment.hflip !== undefined && !unit(augment.hflip)) throw bad(`hflip is a probability in [0, 1], got ${augment.hflip}`);
  if (augment.randomErasing && !unit(augment.randomErasing.probability)) throw bad(`randomErasing probability must be in [0, 1], got ${augment.randomErasing.probability}`);
  if (augment.interpolation !== undefined && !INTERPOLATIONS.includes(augment.interpolation)) {
    throw bad(`interpolation is one of ${INTERPOLATIONS.join(', ')}, got ${JSON.stringify(augment.interpolation)}`);
  }
  if (augment.colorJitter) {
    for (const [k, v] of Object.entries(augment.colorJitter)) {
      if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw bad(`colorJitter ${k} must be a finite number >= 0, got ${v}`);
    }
  }
  if (augment.randAugment) {
    if (augment.colorJitter) throw bad('colorJitter and randAugment are alternatives (timm applies color jitter only without an auto-augment policy); set one of them to false');
    parseRandAugment(augment.randAugment);
  }
}

export interface TransformOptions {
  /** Model input height and width. */
  inputSize: [number, number];
  mean: readonly number[];
  std: readonly number[];
  /** Zero padding on each side before anything else (Fashion-MNIST: 2, making 28x28 into 32x32). */
  pad?: number;
  /** Training augmentation; undefined: none. */
  augment?: AugmentOptions;
  /**
   * Without augmentation, images not already at the input size are resized so that the shorter
   * side is size / cropPct (bicubic) and center-cropped: 0.875 is the official evaluation, 1 a
   * plain resize-and-crop. Default 1.
   */
  cropPct?: number;
}

/** Writes one sample, as the model sees it, into a batch buffer. */
export interface SampleTransform {
  readonly options: TransformOptions;
  apply(image: RGBImage, rng: Random, out: Float32Array, offset: number): void;
}

export function sampleTransform(options: TransformOptions): SampleTransform {
  const [h, w] = options.inputSize;
  const augment = options.augment;
  if (augment) checkAugment(augment);
  const shift = augment?.randomCrop ? augment.randomCrop.padding : 0;
  const interpolation = augment?.interpolation ?? 'bilinear';
  const policy = augment?.randAugment ? randAugment(augment.randAugment, { mean: options.mean, interpolation }) : undefined;
  return {
    options,
    apply(input, rng, out, offset) {
      let image = options.pad ? padImage(input, options.pad, options.pad) : input;
      const crop = augment?.randomResizedCrop;
      if (crop) {
        const box = randomResizedCropBox(rng, image.width, image.height, crop.scale, crop.ratio);
        // timm's RandomResizedCropAndInterpolation: the box first, then the filter when it is random.
        const filter = interpolation === 'random' ? (rng.next() < 0.5 ? 'bilinear' : 'bicubic') : interpolation;
        image = resizeRGB8(cropImage(image, box.x, box.y, box.width, box.height), w, h, filter);
      } else {
        image = fitToInput(image, options.inputSize, options.cropPct ?? 1);
        if (shift > 0) image = randomShiftCrop(image, w, h, shift, rng);
      }
      if (augment) {
        if (augment.hflip && rng.next() < augment.hflip) image = flipHorizontal(image === input ? { ...image, data: image.data.slice() } : image);
        if (augment.colorJitter) image = applyColorJitter(image, drawColorJitter(rng, augment.colorJitter));
        if (policy) image = policy.apply(image, rng);
      }
      writeNormalizedCHW(image, out, offset, options.mean, options.std);
      if (augment?.randomErasing) randomErase(out, offset, 3, h, w, rng, augment.randomErasing);
    },
  };
}

/** RandomCrop(size, padding) of a w x h image: pad by `padding`, then a uniformly placed w x h window. */
function randomShiftCrop(image: RGBImage, w: number, h: number, padding: number, rng: Random): RGBImage {
  const padded = padImage(image, padding, padding);
  const x = Math.floor(rng.next() * (padded.width - w + 1));
  const y = Math.floor(rng.next() * (padded.height - h + 1));
  return cropImage(padded, x, y, w, h);
}
