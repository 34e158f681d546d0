import { basename, extname, join } from 'node:path';
import { SwiftFormerError } from '../core/errors.js';
import { decodeImage, MAX_IMAGE_PIXELS } from '../node/decode.js';
import { makeDirectory, writeFileAtomic } from '../node/files.js';
import { encodeRgbPng, maskPng } from '../node/png.js';
import { loadLabels } from '../models/labels.js';
import { classAreas, SegmentationModel, type Segmentation } from '../models/segmentation.js';
import { overlay } from '../draw/overlay.js';
import { intOption, parse, usageError } from './args.js';
import { finishPerImage, perImage, type Failed } from './outcomes.js';
import { localWeights } from './progress.js';

export const usage = `Usage: swiftformer segment <images...> --weights <src> [options]

Semantic segmentation with a Semantic FPN model, following mmsegmentation's test pipeline
(keep-ratio resize into the test scale, normalize, pad to a multiple of 32, logits resized back
to the image's own size). Per image it writes into --out:
  <name>_mask.png      class index per pixel, a palette PNG with the model's colors
                       (16-bit grayscale above 256 classes)
  <name>_overlay.png   the image with the mask blended in, and a legend of the classes present
  --weights   an mmsegmentation checkpoint ({'meta', 'state_dict'}) or Semantic FPN state dict,
              .pth or .safetensors, a path, https:// URL or hf:ORG/NAME. Required: the package
              bundles no segmentation model yet.
  --out       output directory (default: the current directory)
  --json      print [{ file, width, height, mask, overlay, classes: [{ index, label, fraction }] }]
  --size      test scale: S for mmseg's (4S, S) (default 512, i.e. (2048, 512)), LONG,SHORT, or 0
              to run images at their own size (padded to a multiple of 32)
  --labels    class names: JSON array or one per line (default: the checkpoint's CLASSES)
  --opacity   of the mask in the overlay, 0..1 (default 0.5)
  --no-overlay  write masks only
  --max-pixels  refuse larger images, as decompression bombs (default ${MAX_IMAGE_PIXELS}; 0: no limit)

A file that cannot be read is reported at the end; the others are still segmented (exit code 1).`;

/** --size: S -> (4S, S); 'LONG,SHORT'; 0 -> null (no resize). */
export function parseScale(value: string | undefined): [number, number] | null | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((p) => Number(p.trim()));
  const bad = () => new SwiftFormerError('BAD_ARGUMENT', `--size must be S, LONG,SHORT or 0, with sides in [32, 8192], got '${value}'`);
  if (parts.length === 1 && parts[0] === 0) return null;
  if (parts.some((p) => !Number.isInteger(p) || p < 32 || p > 8192) || parts.length > 2) throw bad();
  if (parts.length === 1) return [Math.min(4 * parts[0]!, 8192), parts[0]!];
  return [parts[0]!, parts[1]!];
}

export async function loadSegmenter(values: Record<string, string | undefined>, scale: [number, number] | null | undefined): Promise<SegmentationModel> {
  if (values.weights === undefined) {
    throw new SwiftFormerError('BAD_ARGUMENT', 'segment needs --weights: the package bundles no segmentation model yet (pass an mmsegmentation Semantic FPN checkpoint, .pth or .safetensors)');
  }
  const weights = (await localWeights(values.weights)).path;
  const labels = values.labels ? await loadLabels(values.labels) : undefined;
  const model = await SegmentationModel.load({ weights, ...(scale !== undefined ? { scale } : {}), ...(labels ? { labels } : {}) });
  if (model.report?.missing.some((k) => k.startsWith('decode_head.'))) {
    await model.release();
    throw new SwiftFormerError('BAD_ARGUMENT', `${values.weights} holds no segmentation head (a classification checkpoint?): pass Semantic FPN weights`);
  }
  return model;
}

type Outcome = { file: string; width: number; height: number; mask: string; overlay?: string; classes: ReturnType<typeof classAreas> } | Failed;

export async function segmentCommand(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, {
    weights: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, size: { type: 'string' },
    labels: { type: 'string' }, opacity: { type: 'string' }, 'no-overlay': { type: 'boolean' }, 'max-pixels': { type: 'string' },
  }, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length === 0) throw usageError(usage, 'no images given');
  const scale = parseScale(values.size);
  const opacity = values.opacity === undefined ? 0.5 : Number(values.opacity);
  if (!(opacity >= 0 && opacity <= 1)) throw new SwiftFormerError('BAD_ARGUMENT', `--opacity must be in [0, 1], got '${values.opacity}'`);
  const maxPixels = intOption(values['max-pixels'], 'max-pixels', 0) ?? MAX_IMAGE_PIXELS;
  const outDir = values.out ?? '.';
  const json = flags.has('json');
  const model = await loadSegmenter(values, scale);
  const outcomes: Outcome[] = [];
  try {
    await makeDirectory(outDir, 'output directory');
    const used = new Set<string>();
    for (const file of positionals) {
      outcomes.push(await perImage(file, async () => {
        const image = await decodeImage(file, { maxPixels });
        const result = await model.segment(image);
        const name = uniqueName(file, used);
        const maskPath = join(outDir, `${name}_mask.png`);
        await writeFileAtomic(maskPath, maskPng(result));
        let overlayPath: string | undefined;
        if (!flags.has('no-overlay')) {
          const picture = overlay(image, result, { opacity });
          overlayPath = join(outDir, `${name}_overlay.png`);
          await writeFileAtomic(overlayPath, encodeRgbPng(picture.data, picture.width, picture.height));
        }
        const classes = classAreas(result);
        if (!json) printClasses(file, result, classes, maskPath, overlayPath);
        return { file, width: result.width, height: result.height, mask: maskPath, ...(overlayPath ? { overlay: overlayPath } : {}), classes };
      }));
    }
  } finally {
    await model.release();
  }
  finishPerImage('segment', usage, outcomes, json, 'segmented');
}

/** The file's stem, made unique among the outputs of this run (a/x.jpg and b/x.jpg -> x, x-2). */
export function uniqueName(file: string, used: Set<string>): string {
  const stem = basename(file, extname(file)) || 'image';
  let name = stem;
  for (let i = 2; used.has(name); i++) name = `${stem}-${i}`;
  used.add(name);
  return name;
}

function printClasses(file: string, result: Segmentation, classes: ReturnType<typeof classAreas>, mask: string, overlayPath: string | undefined): void {
  console.log(`${file} (${result.width}x${result.height}) -> ${mask}${overlayPath ? `, ${overlayPath}` : ''}`);
  for (const c of classes.slice(0, 10)) console.log(`  ${(c.fraction * 100).toFixed(2).padStart(6)}%  ${c.label} (${c.index})`);
  if (classes.length > 10) console.log(`  ... ${classes.length - 10} more classes`);
}
