/**
 * `swiftformer eval` on a COCO dataset with a detector: torchvision's references/detection
 * evaluation (every image of the split through the model, results in COCO's format, pycocotools'
 * COCOeval for bbox and, with masks, segm), the results saved on request.
 */
import { SwiftFormerError } from '../core/errors.js';
import { statsJson, summaryLines } from '../metrics/cocoeval.js';
import type { ModelSource } from '../models/source.js';
import { openCocoData, openCocoSplit } from '../node/coco-data.js';
import { MAX_IMAGE_PIXELS } from '../node/decode.js';
import { writeFileAtomic } from '../node/files.js';
import { evaluateDetection } from '../train/detection-eval.js';
import { choice, intOption, parse, type Options } from './args.js';
import { loadDetector } from './detect.js';
import { ProgressBar } from './progress.js';

export const usage = `Usage: swiftformer eval <COCO dataset> --weights <detector> [options]

COCO box AP (and mask AP for Mask R-CNN) of a detector on a split, as torchvision's
references/detection evaluates: each image through the model (all of its detections), the
results in COCO's format (category ids, boxes x, y, w, h, masks as compressed RLE), and
pycocotools' COCOeval summary for bbox and segm.
  <dataset>       annotations/instances_{train,val}2017.json with {train,val}2017/ (COCO), or
                  annotations/instances_{train,val}.json with img_dir/{train,val}/ (the scene
                  generator's layout)
  --weights       a torchvision Mask R-CNN / Faster R-CNN checkpoint (.pth or .safetensors, path,
                  https:// URL or hf:ORG/NAME). Required.
  --split         val (default) or train (every image; no training filter)
  --annotations   an instances file, with --images, instead of a dataset directory
  --images        the images directory of --annotations
  --save-results  write the bbox results to FILE and, with masks, the segm results to FILE with
                  .segm before its extension (results.json -> results.segm.json); each is what
                  swiftformer score detection --gt <instances> --pred <file> reads
  --limit         evaluate the first N images (in id order) only; the summary covers just them
  --min-size, --max-size  torchvision's resize (default 800, 1333)
  --json          { bbox: { AP, AP50, ... }, segm: { ... }, images, detections } (-1: undefined)
  --max-pixels    refuse larger images (default ${MAX_IMAGE_PIXELS}; 0: no limit)

Category ids map to model labels as torchvision's COCO models use them (label = category id)
when the model has (largest id + 1) classes, else contiguously (1..K by ascending id).`;

export const OPTIONS: Options = {
  weights: { type: 'string' }, split: { type: 'string' }, annotations: { type: 'string' }, images: { type: 'string' },
  'save-results': { type: 'string' }, limit: { type: 'string' }, 'min-size': { type: 'string' }, 'max-size': { type: 'string' },
  json: { type: 'boolean' }, 'max-pixels': { type: 'string' },
};

/** results.json -> results.segm.json; a name without extension gets .segm.json. */
export function segmResultsPath(file: string): string {
  const dot = file.lastIndexOf('.');
  const slash = file.lastIndexOf('/');
  return dot > slash + 1 ? `${file.slice(0, dot)}.segm${file.slice(dot)}` : `${file}.segm.json`;
}

export async function evalDetectionCommand(argv: string[], source?: ModelSource): Promise<void> {
  const { values, flags, positionals } = parse(argv, OPTIONS, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  const direct = values.annotations !== undefined || values.images !== undefined;
  if (direct ? positionals.length !== 0 : positionals.length !== 1) {
    throw new SwiftFormerError('BAD_ARGUMENT', `eval takes one COCO dataset directory, or --annotations with --images\n\n${usage}`);
  }
  if (direct && (values.annotations === undefined || values.images === undefined)) throw new SwiftFormerError('BAD_ARGUMENT', `--annotations and --images go together`);
  const split = choice(values.split, 'split', ['val', 'train'] as const) ?? 'val';
  const limit = intOption(values.limit, 'limit');
  const maxPixels = intOption(values['max-pixels'], 'max-pixels', 0) ?? MAX_IMAGE_PIXELS;
  const model = await loadDetector(values, 'eval on a COCO dataset', source);
  try {
    const open = { training: false, numClasses: model.numClasses, masks: false, maxPixels };
    const full = direct ? await openCocoSplit(values.annotations!, values.images!, open) : await openCocoData(positionals[0]!, split, open);
    const data = limit === undefined || limit >= full.length ? full : full.subset([...Array(limit).keys()]);
    const bar = new ProgressBar('evaluating');
    let evaluation;
    try {
      evaluation = await evaluateDetection(model, data, (done, total, found) => bar.update(done, total, `${done}/${total} images  ${found} detections`));
    } catch (err) {
      bar.clear();
      throw err;
    }
    const seconds = bar.elapsed();
    const where = direct ? values.annotations! : `${positionals[0]} (${split})`;
    bar.done(`evaluated ${data.length} images of ${where} in ${seconds.toFixed(1)} s (${(data.length / Math.max(seconds, 1e-3)).toFixed(2)} images/s), ${evaluation.results.bbox.length} detections`);
    const save = values['save-results'];
    if (save) {
      await writeFileAtomic(save, JSON.stringify(evaluation.results.bbox));
      if (evaluation.results.segm) await writeFileAtomic(segmResultsPath(save), JSON.stringify(evaluation.results.segm));
      console.error(`wrote ${save}${evaluation.results.segm ? ` and ${segmResultsPath(save)}` : ''}`);
    }
    if (flags.has('json')) {
      console.log(JSON.stringify({
        dataset: where, images: data.length, detections: evaluation.results.bbox.length,
        bbox: statsJson(evaluation.bbox.stats), ...(evaluation.segm ? { segm: statsJson(evaluation.segm.stats) } : {}),
      }, null, 2));
    } else {
      for (const r of [evaluation.bbox, evaluation.segm]) {
        if (!r) continue;
        console.log(`IoU metric: ${r.iouType}`);
        console.log(summaryLines(r).join('\n'));
      }
    }
  } finally {
    await model.release();
  }
}
