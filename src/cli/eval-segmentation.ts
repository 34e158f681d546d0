/** `swiftformer eval` on a segmentation dataset: mmsegmentation's mIoU of a Semantic FPN model on its val split. */
import { SwiftFormerError } from '../core/errors.js';
import { formatSegmentationTables, segmentationJson } from '../metrics/segmentation.js';
import { MAX_IMAGE_PIXELS } from '../node/decode.js';
import { openSegmentationData } from '../node/segmentation-data.js';
import { evaluateSegmentation } from '../train/segmentation-trainer.js';
import { choice, intOption, parse, type Options } from './args.js';
import { ProgressBar } from './progress.js';
import { loadSegmenter, parseScale } from './segment.js';

export const usage = `Usage: swiftformer eval <segmentation dataset> --weights <src> [options]

aAcc, mIoU, mAcc and the per-class IoU / Acc table of a Semantic FPN model on a dataset's val split,
as mmsegmentation 0.x evaluates it: each image through the model's test pipeline (keep-ratio
resize into the test scale, logits resized back to the image's size, argmax), intersections and
unions summed over the dataset, the ignore index (255) left out, ADE20K's 0 ("other") ignored.
  <dataset>   mmseg's generic layout (img_dir/val, ann_dir/val; classes from dataset.json, else
              the model's) or ADE20K's (images/validation, annotations/validation)
  --weights   an mmsegmentation checkpoint or Semantic FPN weights (.pth or .safetensors, path,
              https:// URL or hf:ORG/NAME), e.g. best_mIoU.pth of a run of swiftformer train
  --split     val (default) or train
  --size      test scale: S for (4S, S), LONG,SHORT, or 0 for the images' own size (default: the
              scale the weights record, else mmseg's (2048, 512))
  --limit     evaluate N images, spread evenly over the split
  --json      { aAcc, mIoU, mAcc, IoU: [...], Acc: [...], classes, images, ... } (fractions)
  --max-pixels  refuse larger images (default ${MAX_IMAGE_PIXELS}; 0: no limit)`;

export const OPTIONS: Options = {
  weights: { type: 'string' }, split: { type: 'string' }, size: { type: 'string' }, limit: { type: 'string' },
  json: { type: 'boolean' }, 'max-pixels': { type: 'string' },
};

export async function evalSegmentationCommand(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, OPTIONS, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length !== 1) throw new SwiftFormerError('BAD_ARGUMENT', `eval takes one dataset, got ${positionals.length}\n\n${usage}`);
  const root = positionals[0]!;
  const split = choice(values.split, 'split', ['val', 'train'] as const) ?? 'val';
  const scale = parseScale(values.size);
  const limit = intOption(values.limit, 'limit');
  const maxPixels = intOption(values['max-pixels'], 'max-pixels', 0) ?? MAX_IMAGE_PIXELS;
  if (values.weights === undefined) throw new SwiftFormerError('BAD_ARGUMENT', `eval on a segmentation dataset needs --weights (Semantic FPN weights, e.g. a training run's best_mIoU.pth)`);
  const model = await loadSegmenter(values, scale);
  try {
    const data = await openSegmentationData(root, { splits: [split], numClasses: model.numClasses, maxPixels, ...(limit !== undefined ? { limit } : {}) });
    const set = data[split]!;
    const bar = new ProgressBar('evaluating');
    let metrics;
    try {
      metrics = await evaluateSegmentation(model, set, (done, total) => bar.update(done, total, `${done}/${total} images`));
    } catch (err) {
      bar.clear();
      throw err;
    }
    const seconds = bar.elapsed();
    const at = model.scale ? `at scale ${model.scale.join('x')}` : 'at their own size';
    bar.done(`evaluated ${metrics.images} images of ${root} (${split}) ${at} in ${seconds.toFixed(1)} s (${(metrics.images / Math.max(seconds, 1e-3)).toFixed(1)} images/s)`);
    if (flags.has('json')) {
      console.log(JSON.stringify({ dataset: root, split, images: metrics.images, pixels: metrics.pixels, classes: data.classes, ...segmentationJson(metrics) }, null, 2));
    } else {
      console.log(formatSegmentationTables(metrics, data.classes));
    }
  } finally {
    await model.release();
  }
}
