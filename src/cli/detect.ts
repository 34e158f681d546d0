import { join } from 'node:path';
import { SwiftFormerError } from '../core/errors.js';
import { decodeImage, MAX_IMAGE_PIXELS } from '../node/decode.js';
import { makeDirectory, writeFileAtomic } from '../node/files.js';
import { encodeGrayPng, encodeRgbPng } from '../node/png.js';
import { DetectionModel, isMaskRcnnState, type Detection } from '../models/detector.js';
import { denseTaskOf, describeFamily } from '../models/families.js';
import { readModelSource, type ModelSource } from '../models/source.js';
import { drawDetections } from '../draw/detections.js';
import { intOption, parse, usageError } from './args.js';
import { finishPerImage, perImage, type Failed } from './outcomes.js';
import { localWeights } from './progress.js';
import { uniqueName } from './segment.js';
import { checkImageSize } from '../models/detection/transform.js';

export const usage = `Usage: swiftformer detect <images...> --weights <src> [options]

Objects in each image, with a Mask R-CNN (or Faster R-CNN) detector in torchvision's layout on a
SwiftFormer backbone, as torchvision runs it (resize to --min-size / --max-size, normalize, pad;
boxes in the image's own pixels). Prints each image's detections scoring above --threshold.
  --weights    a torchvision detector checkpoint: a state dict or references/detection's
               checkpoint.pth, .pth or .safetensors, a path, https:// URL or hf:ORG/NAME. Required.
  --threshold  keep detections scoring above this, 0..1 (default 0.5)
  --min-size   short side images are resized to (default 800)
  --max-size   long side limit (default 1333)
  --labels     class names: JSON array or one per line, the background first or left out
               (default: the checkpoint's, else COCO's for 91 or 81 classes)
  --json       print [{ file, width, height, detections: [{ index, label, score, box, mask }] }]
               (unrounded floats; mask: the PNG written under --masks)
  --masks      directory for each detection's mask: <name>_<k>_<label>.png, 0/255, the image's size
  --overlay    directory for <name>_detections.png: the image with boxes, labels, scores and masks
  --max-pixels refuse larger images, as decompression bombs (default ${MAX_IMAGE_PIXELS}; 0: no limit)

A file that cannot be read is reported at the end; the others are still processed (exit code 1).`;

/** --threshold: a number in [0, 1], or an error naming the option. */
function threshold(value: string | undefined): number {
  if (value === undefined) return 0.5;
  const t = Number(value);
  if (value.trim() === '' || !(t >= 0 && t <= 1)) throw new SwiftFormerError('BAD_ARGUMENT', `--threshold must be a number in [0, 1], got '${value}'`);
  return t;
}

/** --min-size / --max-size as the detector's transform settings (those given). */
export function resizeOptions(values: Record<string, string | undefined>): { minSize?: number; maxSize?: number } {
  const minSize = intOption(values['min-size'], 'min-size');
  const maxSize = intOption(values['max-size'], 'max-size');
  return { ...(minSize !== undefined ? { minSize } : {}), ...(maxSize !== undefined ? { maxSize } : {}) };
}

/** The weights --weights names, downloaded if remote, with their repository's labels. */
export async function readWeightsOption(weights: string): Promise<ModelSource> {
  const { path, labels } = await localWeights(weights);
  return { ...(await readModelSource(path)), name: weights, ...(labels ? { labels } : {}) };
}

/** A detector from --weights (or weights already read), --min-size, --max-size and --labels; other weights are an error naming what they hold. */
export async function loadDetector(values: Record<string, string | undefined>, command = 'detect', read?: ModelSource): Promise<DetectionModel> {
  if (values.weights === undefined) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${command} needs --weights: the package bundles no detector yet (pass a torchvision Mask R-CNN checkpoint, .pth or .safetensors)`);
  }
  const transform = resizeOptions(values);
  const source = read ?? await readWeightsOption(values.weights);
  if (!isMaskRcnnState(source.state.keys())) {
    const task = denseTaskOf(source.state.keys());
    const what = task ? describeFamily(task) : 'SwiftFormer classification / backbone weights';
    throw new SwiftFormerError('BAD_ARGUMENT', `${values.weights} holds ${what}, not a detector: ${command} needs Mask R-CNN weights (torchvision keys backbone.body, rpn.head, roi_heads)`);
  }
  return DetectionModel.fromSource(source, { settings: { transform }, ...(values.labels ? { labels: values.labels } : {}) });
}

/** A file-name-safe form of a label. */
function slug(label: string): string {
  return label.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'object';
}

interface JsonDetection extends Omit<Detection, 'mask'> { mask?: string }
type Outcome = { file: string; width: number; height: number; detections: JsonDetection[]; overlay?: string } | Failed;

export async function detectCommand(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, {
    weights: { type: 'string' }, threshold: { type: 'string' }, 'min-size': { type: 'string' }, 'max-size': { type: 'string' },
    labels: { type: 'string' }, json: { type: 'boolean' }, masks: { type: 'string' }, overlay: { type: 'string' }, 'max-pixels': { type: 'string' },
  }, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length === 0) throw usageError(usage, 'no images given');
  const minScore = threshold(values.threshold);
  const maxPixels = intOption(values['max-pixels'], 'max-pixels', 0) ?? MAX_IMAGE_PIXELS;
  const json = flags.has('json');
  const model = await loadDetector(values);
  const outcomes: Outcome[] = [];
  try {
    if (values.masks) await makeDirectory(values.masks, 'masks directory');
    if (values.overlay) await makeDirectory(values.overlay, 'overlay directory');
    const used = new Set<string>();
    for (const file of positionals) {
      outcomes.push(await perImage(file, async () => {
        const image = await decodeImage(file, { maxPixels });
        checkImageSize(image.height, image.width, model.config.settings.transform, file);
        const found = await model.detect(image, { threshold: minScore, masks: model.hasMasks && (values.masks !== undefined || values.overlay !== undefined) });
        const name = uniqueName(file, used);
        const detections: JsonDetection[] = [];
        for (const [k, d] of found.entries()) {
          const { mask, ...rest } = d;
          const entry: JsonDetection = rest;
          if (mask && values.masks) {
            entry.mask = join(values.masks, `${name}_${k}_${slug(d.label)}.png`);
            await writeFileAtomic(entry.mask, encodeGrayPng(mask.data, mask.width, mask.height));
          }
          detections.push(entry);
        }
        let overlayPath: string | undefined;
        if (values.overlay) {
          const picture = drawDetections(image, found);
          overlayPath = join(values.overlay, `${name}_detections.png`);
          await writeFileAtomic(overlayPath, encodeRgbPng(picture.data, picture.width, picture.height));
        }
        if (!json) printDetections(file, image.width, image.height, detections, minScore, overlayPath);
        return { file, width: image.width, height: image.height, detections, ...(overlayPath ? { overlay: overlayPath } : {}) };
      }));
    }
  } finally {
    await model.release();
  }
  finishPerImage('detect', usage, outcomes, json, 'processed');
}

function printDetections(file: string, width: number, height: number, detections: JsonDetection[], minScore: number, overlayPath: string | undefined): void {
  const count = `${detections.length} detection${detections.length === 1 ? '' : 's'} above ${minScore}`;
  console.log(`${file} (${width}x${height}): ${count}${overlayPath ? ` -> ${overlayPath}` : ''}`);
  for (const d of detections) {
    const { xmin, ymin, xmax, ymax } = d.box;
    const box = [xmin, ymin, xmax, ymax].map((v) => v.toFixed(1)).join(', ');
    console.log(`  ${(d.score * 100).toFixed(2).padStart(6)}%  ${d.label} (${d.index})  [${box}]${d.mask ? `  ${d.mask}` : ''}`);
  }
}
