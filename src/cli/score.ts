/**
 * `swiftformer score`: the reference metrics on files, without a model. Segmentation as
 * mmsegmentation 0.x computes it on PNG label maps; detection as pycocotools' COCOeval on a COCO
 * ground-truth file and a results file.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { inContext, SwiftFormerError } from '../core/errors.js';
import { parseCocoInstances, parseCocoResults } from '../data/coco.js';
import { evaluateCoco, statsJson, summaryLines } from '../metrics/cocoeval.js';
import { formatSegmentationTables, SegmentationAccumulator, segmentationJson } from '../metrics/segmentation.js';
import { loadLabels } from '../models/labels.js';
import { readLabelPng } from '../node/png.js';
import { choice, intOption, parse } from './args.js';
import { ProgressBar } from './progress.js';

export const usage = `Usage: swiftformer score segmentation --gt <dir> --pred <dir> --num-classes K [options]
       swiftformer score detection --gt <instances.json> --pred <results.json> [options]

segmentation: mIoU as mmsegmentation 0.x computes it. Ground-truth and predicted label maps are
PNGs (grayscale or palette; pixel value = class index) paired by file name stem. Intersections
and unions are summed over all images; predictions outside [0, K-1] count for no class.
Prints mmseg's per-class table (IoU, Acc) and summary (aAcc, mIoU, mAcc), in percent.
  --num-classes        K
  --ignore-index       ground-truth value left out (default 255)
  --reduce-zero-label  ADE20K's labels: ground truth 0 is ignored and k becomes class k-1
  --classes            class names: a JSON list or one name per line (default: the indices)
  --json               { aAcc, mIoU, mAcc, IoU: [...], Acc: [...] } as fractions, null where
                       undefined (IoU: class in neither map; Acc: class not in the ground truth)

detection: pycocotools' COCOeval. --gt is a COCO instances file, --pred a COCO results file
([{ image_id, category_id, score, bbox | segmentation }]). Prints the 12-line summary as
pycocotools prints it.
  --iou-type           bbox (default) or segm
  --json               { AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl },
                       -1 where a statistic is undefined`;

export async function scoreCommand(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, {
    gt: { type: 'string' }, pred: { type: 'string' }, 'num-classes': { type: 'string' }, 'ignore-index': { type: 'string' },
    'reduce-zero-label': { type: 'boolean' }, classes: { type: 'string' }, 'iou-type': { type: 'string' }, json: { type: 'boolean' },
  }, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  const [task, ...rest] = positionals;
  if (rest.length > 0 || (task !== 'segmentation' && task !== 'detection')) {
    throw new SwiftFormerError('BAD_ARGUMENT', `score takes 'segmentation' or 'detection'${task ? `, got '${positionals.join(' ')}'` : ''}\n\n${usage}`);
  }
  const gt = values.gt;
  const pred = values.pred;
  if (!gt || !pred) throw new SwiftFormerError('BAD_ARGUMENT', `score ${task} needs --gt and --pred\n\n${usage}`);
  const onlyFor = (names: string[], other: string) => {
    for (const n of names) if (values[n] !== undefined || flags.has(n)) throw new SwiftFormerError('BAD_ARGUMENT', `--${n} is for score ${other}`);
  };
  if (task === 'segmentation') {
    onlyFor(['iou-type'], 'detection');
    const numClasses = intOption(values['num-classes'], 'num-classes', 2);
    if (numClasses === undefined) throw new SwiftFormerError('BAD_ARGUMENT', `score segmentation needs --num-classes`);
    await scoreSegmentation({
      gt, pred, numClasses, ignoreIndex: intOption(values['ignore-index'], 'ignore-index', 0) ?? 255,
      reduceZeroLabel: flags.has('reduce-zero-label'), classes: values.classes, json: flags.has('json'),
    });
  } else {
    onlyFor(['num-classes', 'ignore-index', 'reduce-zero-label', 'classes'], 'segmentation');
    await scoreDetection({ gt, pred, iouType: choice(values['iou-type'], 'iou-type', ['bbox', 'segm'] as const) ?? 'bbox', json: flags.has('json') });
  }
}

/** PNG files of a directory by name stem. */
async function pngsByStem(dir: string, what: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SwiftFormerError('BAD_ARGUMENT', `${what} directory ${dir}: ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : (err as Error).message}`);
  }
  const out = new Map<string, string>();
  for (const name of names.sort()) {
    if (extname(name).toLowerCase() !== '.png') continue;
    out.set(name.slice(0, -4), join(dir, name));
  }
  return out;
}

interface SegmentationArgs {
  gt: string; pred: string; numClasses: number; ignoreIndex: number; reduceZeroLabel: boolean; classes: string | undefined; json: boolean;
}

async function scoreSegmentation(a: SegmentationArgs): Promise<void> {
  const classNames = a.classes ? await loadLabels(a.classes) : undefined;
  if (classNames && classNames.length !== a.numClasses) {
    throw new SwiftFormerError('BAD_ARGUMENT', `--classes names ${classNames.length} classes, --num-classes is ${a.numClasses}`);
  }
  const gts = await pngsByStem(a.gt, 'ground-truth');
  const preds = await pngsByStem(a.pred, 'prediction');
  if (gts.size === 0) throw new SwiftFormerError('BAD_ARGUMENT', `no PNG label maps in ${a.gt}`);
  for (const [stem, file] of gts) {
    if (!preds.has(stem)) throw new SwiftFormerError('BAD_DATA', `${file}: no prediction ${stem}.png in ${a.pred}`);
  }
  const acc = new SegmentationAccumulator(a);
  const bar = new ProgressBar('scoring');
  let done = 0;
  try {
    for (const [stem, gtFile] of gts) {
      const predFile = preds.get(stem)!;
      const [g, p] = [await readLabelPng(gtFile), await readLabelPng(predFile)];
      if (g.width !== p.width || g.height !== p.height) {
        throw new SwiftFormerError('BAD_DATA', `${predFile}: the prediction is ${p.width}x${p.height}, the ground truth ${gtFile} is ${g.width}x${g.height}`);
      }
      acc.add(p.data, g.data, predFile);
      bar.update(++done, gts.size, `${done}/${gts.size} images`);
    }
  } catch (err) {
    bar.clear();
    throw err;
  }
  const m = acc.summary();
  bar.done(`scored ${m.images} image${m.images === 1 ? '' : 's'}, ${m.pixels} pixels${a.reduceZeroLabel ? ' (reduce_zero_label)' : ''}, ignore index ${a.ignoreIndex}`);
  const extra = [...preds.keys()].filter((s) => !gts.has(s)).length;
  if (extra) console.error(`note: ${extra} prediction file${extra === 1 ? ' has' : 's have'} no ground truth and ${extra === 1 ? 'was' : 'were'} left out`);
  if (m.gtOutOfRange) console.error(`note: ${m.gtOutOfRange} ground-truth pixels are outside [0, ${a.numClasses - 1}] and not the ignore index; they count for no class (as in mmseg)`);
  if (m.predOutOfRange) console.error(`note: ${m.predOutOfRange} predicted pixels are outside [0, ${a.numClasses - 1}]; they count for no class (as in mmseg)`);
  if (a.json) console.log(JSON.stringify(segmentationJson(m), null, 2));
  else console.log(formatSegmentationTables(m, classNames));
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SwiftFormerError('BAD_ARGUMENT', `cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SwiftFormerError('BAD_DATA', `${file} is not JSON: ${(err as Error).message}`);
  }
}

/** Errors from a file's contents name the file. */
function inFile<T>(file: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw inContext(err, file);
  }
}

async function scoreDetection(a: { gt: string; pred: string; iouType: 'bbox' | 'segm'; json: boolean }): Promise<void> {
  const gtJson = await readJson(a.gt, 'ground truth');
  const gt = inFile(a.gt, () => parseCocoInstances(gtJson, a.gt));
  const resultsJson = await readJson(a.pred, 'results');
  const { detections, unknownCategories } = inFile(a.pred, () => parseCocoResults(resultsJson, gt, a.pred));
  if (detections.length === 0) console.error(`note: ${a.pred} has no results`);
  if (unknownCategories) console.error(`note: ${unknownCategories} result${unknownCategories === 1 ? ' has a category' : 's have categories'} not in ${a.gt}; COCOeval leaves them out`);
  const bar = new ProgressBar('evaluating');
  let r: ReturnType<typeof evaluateCoco>;
  try {
    r = evaluateCoco(gt, detections, a.iouType, { onProgress: (done, total) => bar.update(done, total, `${done}/${total} categories`) });
  } catch (err) {
    bar.clear();
    // Errors while evaluating name an annotation (of --gt) or a result (of --pred).
    if (!(err instanceof SwiftFormerError)) throw err;
    throw new SwiftFormerError(err.code, `${err.message.startsWith('result') ? a.pred : a.gt}: ${err.message}`, { cause: err });
  }
  bar.done(`evaluated ${detections.length} results on ${gt.images.length} images, ${gt.categories.length} categories (${a.iouType}) in ${bar.elapsed().toFixed(1)} s`);
  if (a.json) console.log(JSON.stringify(statsJson(r.stats), null, 2));
  else console.log(summaryLines(r).join('\n'));
}
