/**
 * The numbers of torchvision 0.14's two-stage detectors (GeneralizedRCNN: FasterRCNN / MaskRCNN),
 * each a setting with torchvision's default, grouped by the module that uses it. Train-time values
 * are here too, for the training path built on these modules.
 */
import { SwiftFormerError } from '../../core/errors.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../preprocess/transforms.js';

export interface TransformSettings {
  /** Short side after resizing (torchvision `min_size`, test time: its last value). */
  minSize: number;
  /** Long side limit (`max_size`). */
  maxSize: number;
  /** Per-channel normalization of the [0, 1] RGB input. */
  mean: number[];
  std: number[];
  /** The batch is zero-padded to a multiple of this (`size_divisible`). */
  sizeDivisible: number;
}

export interface AnchorSettings {
  /** Anchor sizes per FPN level ('0', '1', '2', '3', 'pool'). */
  sizes: number[][];
  /** Aspect ratios (height / width) per level. */
  aspectRatios: number[][];
}

export interface RpnSettings {
  preNmsTopNTest: number;
  postNmsTopNTest: number;
  preNmsTopNTrain: number;
  postNmsTopNTrain: number;
  nmsThresh: number;
  /** Proposals whose objectness probability is below this are dropped (`score_thresh`). */
  scoreThresh: number;
  /** Proposals narrower or shorter than this are dropped (RegionProposalNetwork.min_size). */
  minSize: number;
  fgIouThresh: number;
  bgIouThresh: number;
  batchSizePerImage: number;
  positiveFraction: number;
}

export interface RoiSettings {
  /** MultiScaleRoIAlign output of the box head (7) and the mask head (14). */
  boxOutputSize: number;
  maskOutputSize: number;
  samplingRatio: number;
  /** LevelMapper: a box of canonicalScale² pixels is pooled from level canonicalLevel (FPN paper, eq. 1). */
  canonicalScale: number;
  canonicalLevel: number;
  /** BoxCoder weights of the box head (wx, wy, ww, wh). */
  boxCoderWeights: [number, number, number, number];
  /** Detections at or below this class probability are dropped before NMS (`box_score_thresh`). */
  scoreThresh: number;
  nmsThresh: number;
  detectionsPerImage: number;
  /** Detections narrower or shorter than this are dropped (postprocess_detections' min_size). */
  minSize: number;
  fgIouThresh: number;
  bgIouThresh: number;
  batchSizePerImage: number;
  positiveFraction: number;
}

export interface DetectionSettings {
  transform: TransformSettings;
  anchors: AnchorSettings;
  rpn: RpnSettings;
  roi: RoiSettings;
}

/** BoxCoder's clamp of dw, dh before exp: log(1000 / 16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

const LEVEL_RATIOS = [0.5, 1.0, 2.0];

/** torchvision 0.14's defaults (FasterRCNN.__init__, _default_anchorgen, RoIHeads, MultiScaleRoIAlign). */
export function defaultSettings(): DetectionSettings {
  return {
    transform: { minSize: 800, maxSize: 1333, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], sizeDivisible: 32 },
    anchors: { sizes: [[32], [64], [128], [256], [512]], aspectRatios: [0, 1, 2, 3, 4].map(() => [...LEVEL_RATIOS]) },
    rpn: {
      preNmsTopNTest: 1000, postNmsTopNTest: 1000, preNmsTopNTrain: 2000, postNmsTopNTrain: 2000,
      nmsThresh: 0.7, scoreThresh: 0.0, minSize: 1e-3, fgIouThresh: 0.7, bgIouThresh: 0.3, batchSizePerImage: 256, positiveFraction: 0.5,
    },
    roi: {
      boxOutputSize: 7, maskOutputSize: 14, samplingRatio: 2, canonicalScale: 224, canonicalLevel: 4,
      boxCoderWeights: [10, 10, 5, 5], scoreThresh: 0.05, nmsThresh: 0.5, detectionsPerImage: 100, minSize: 1e-2,
      fgIouThresh: 0.5, bgIouThresh: 0.5, batchSizePerImage: 512, positiveFraction: 0.25,
    },
  };
}

/** Deep partial settings, as users pass them. */
export type SettingsOverrides = { [G in keyof DetectionSettings]?: Partial<DetectionSettings[G]> };

/** The defaults with `overrides` applied and every value checked. */
export function resolveSettings(overrides: SettingsOverrides = {}): DetectionSettings {
  const d = defaultSettings();
  const s: DetectionSettings = {
    transform: { ...d.transform, ...overrides.transform },
    anchors: { ...d.anchors, ...overrides.anchors },
    rpn: { ...d.rpn, ...overrides.rpn },
    roi: { ...d.roi, ...overrides.roi },
  };
  validateSettings(s);
  return s;
}

/** Largest min_size / max_size accepted: the padded batch must stay within the backbone's 8192. */
export const MAX_DETECTION_SIZE = 4096;

function bad(message: string): never {
  throw new SwiftFormerError('BAD_ARGUMENT', message);
}

function checkInt(value: number, name: string, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) bad(`${name} must be an integer in [${min}, ${max}], got ${value}`);
}

function checkFraction(value: number, name: string): void {
  if (!(typeof value === 'number' && value >= 0 && value <= 1)) bad(`${name} must be in [0, 1], got ${value}`);
}

export function validateSettings(s: DetectionSettings): void {
  const t = s.transform;
  checkInt(t.minSize, 'min size', 1, MAX_DETECTION_SIZE);
  checkInt(t.maxSize, 'max size', 1, MAX_DETECTION_SIZE);
  checkInt(t.sizeDivisible, 'size divisible', 32, 1024);
  if (t.sizeDivisible % 32 !== 0) bad(`size divisible must be a multiple of 32 (the backbone's stride), got ${t.sizeDivisible}`);
  for (const [name, v] of [['mean', t.mean], ['std', t.std]] as const) {
    if (!Array.isArray(v) || v.length !== 3 || !v.every(Number.isFinite)) bad(`${name} must be three numbers, got ${String(v)}`);
  }
  if (!t.std.every((v) => v > 0)) bad(`std must be positive, got ${t.std}`);
  const a = s.anchors;
  if (a.sizes.length !== a.aspectRatios.length) bad(`anchor sizes (${a.sizes.length} levels) and aspect ratios (${a.aspectRatios.length}) differ in length`);
  const perLevel = new Set(a.sizes.map((sz, i) => sz.length * a.aspectRatios[i]!.length));
  if (perLevel.size !== 1) bad('every level must have the same number of anchors (the RPN head is shared)');
  if (![...a.sizes.flat(), ...a.aspectRatios.flat()].every((v) => v > 0 && Number.isFinite(v))) bad('anchor sizes and aspect ratios must be positive');
  const r = s.rpn;
  for (const key of ['preNmsTopNTest', 'postNmsTopNTest', 'preNmsTopNTrain', 'postNmsTopNTrain', 'batchSizePerImage'] as const) checkInt(r[key], `rpn ${key}`, 1, 1_000_000);
  for (const key of ['nmsThresh', 'scoreThresh', 'fgIouThresh', 'bgIouThresh', 'positiveFraction'] as const) checkFraction(r[key], `rpn ${key}`);
  if (!(r.minSize >= 0)) bad(`rpn minSize must be >= 0, got ${r.minSize}`);
  const o = s.roi;
  for (const key of ['boxOutputSize', 'maskOutputSize', 'samplingRatio', 'canonicalScale', 'canonicalLevel', 'detectionsPerImage', 'batchSizePerImage'] as const) {
    checkInt(o[key], `roi ${key}`, key === 'samplingRatio' ? 0 : 1, 100_000);
  }
  for (const key of ['scoreThresh', 'nmsThresh', 'fgIouThresh', 'bgIouThresh', 'positiveFraction'] as const) checkFraction(o[key], `roi ${key}`);
  if (!(o.minSize >= 0)) bad(`roi minSize must be >= 0, got ${o.minSize}`);
  if (o.boxCoderWeights.length !== 4 || !o.boxCoderWeights.every((w) => w > 0)) bad(`box coder weights must be four positive numbers, got ${o.boxCoderWeights}`);
}
