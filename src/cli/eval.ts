import { decodeImage } from '../node/decode.js';
import { FASHION_MNIST_CLASSES, limitDataset, type ImageDataset } from '../data/dataset.js';
import { fashionMnistDir, hasIdxFiles, IMAGE_EXTENSIONS, ImageFolderDataset, loadIdxDataset, loadImageFolder } from '../node/datasets.js';
import { SwiftFormerError } from '../core/errors.js';
import { labelOf } from '../models/labels.js';
import { checkFiniteLogits } from '../models/classify.js';
import { cliMessage, intOption, parse, usageError } from './args.js';
import { loadClassifier, logitRows, modelOptions, pixelsOf, type Classifier } from './classify.js';
import type { FloatTensor } from '../core/tensor.js';
import { ProgressBar } from './progress.js';
import { parseArgs } from 'node:util';
import { segmentationLayout } from '../node/segmentation-data.js';
import { evalSegmentationCommand, OPTIONS as SEGMENTATION_OPTIONS } from './eval-segmentation.js';
import { evalDetectionCommand, OPTIONS as DETECTION_OPTIONS } from './eval-detection.js';
import { isCocoDataset } from '../node/coco-data.js';
import { isMaskRcnnState } from '../models/detector.js';
import type { ModelSource } from '../models/source.js';
import { readWeightsOption } from './detect.js';

export const usage = `Usage: swiftformer eval <folder | fashion-mnist | idx-dir> [--weights <src>] [options]
       swiftformer eval <segmentation dataset> --weights <Semantic FPN weights> [options]
       swiftformer eval <COCO dataset> --weights <Mask R-CNN weights> [options]

On a COCO dataset (annotations/instances_<split>[2017].json with its images): pycocotools' box
and mask AP of a detector (swiftformer eval <dataset> --weights <detector> --help).

On a segmentation dataset (mmseg's img_dir/ + ann_dir/, or ADE20K's images/ + annotations/):
mmsegmentation's aAcc, mIoU and mAcc with the per-class table (swiftformer eval <dataset> --help).
Otherwise top-1 and top-5 accuracy, and the 5 worst classes, on
  - an ImageFolder, as torchvision's ImageFolder reads it: one subfolder per class, class index =
    position of the subfolder name in sorted order, images found recursively (${IMAGE_EXTENSIONS.join(' ')});
  - the test split of an IDX directory (MNIST format), or fashion-mnist (Debian's dataset-fashion-mnist).
  --weights     .pth, .safetensors or exported .onnx file, https:// URL, or hf:ORG/NAME[@revision]
                (default: the model bundled in the package, if any)
  --limit       evaluate N images, spread evenly over the dataset (default: all)
  --batch-size  images per forward pass (default 16)
  --json        one JSON object: { images, top1, top5, worst, errors, ... } (fractions in [0, 1])
  --model, --labels, --size, --entry, --attention, --max-pixels, --allow-non-finite: as for classify`;

/** The evaluation set a command-line source names. */
async function openEvalSet(source: string, maxPixels: number): Promise<ImageDataset> {
  if (source === 'fashion-mnist') return loadIdxDataset(await fashionMnistDir(), 'test', { classes: FASHION_MNIST_CLASSES });
  if (await hasIdxFiles(source)) return loadIdxDataset(source, 'test');
  return loadImageFolder(source, { decode: (path) => decodeImage(path, { maxPixels }) });
}

/** Where sample i came from, for error messages. */
function sampleName(data: ImageDataset, i: number): string {
  return data instanceof ImageFolderDataset ? data.files[i]! : `${data.name} image ${i}`;
}

type Prepared = { index: number; pixels: FloatTensor } | { index: number; error: string };

/** Decodes and preprocesses samples of a batch (the dataset decodes; failures become entries). */
async function prepareBatch(data: ImageDataset, indices: number[], c: Classifier): Promise<Prepared[]> {
  return Promise.all(indices.map(async (index) => {
    try {
      return { index, pixels: pixelsOf(await data.image(index), c) };
    } catch (err) {
      if (!(err instanceof SwiftFormerError)) throw err;
      return { index, error: err.message };
    }
  }));
}

interface ClassScore { index: number; name: string; label?: string; images: number; top1: number }

/** The --weights of argv when they are a detector's (read once, handed on), else undefined. */
async function detectorWeights(argv: string[]): Promise<ModelSource | undefined> {
  const { values } = parseArgs({ args: argv, options: { weights: { type: 'string' } }, strict: false, allowPositionals: true });
  if (typeof values.weights !== 'string') return undefined;
  const source = await readWeightsOption(values.weights);
  return isMaskRcnnState(source.state.keys()) ? source : undefined;
}

/** The dataset argument, read without failing on either command's options. */
function datasetArgument(argv: string[]): string | undefined {
  const strings = Object.fromEntries(Object.entries({ ...modelOptions, ...SEGMENTATION_OPTIONS, ...DETECTION_OPTIONS, limit: {}, 'batch-size': {} })
    .map(([k, o]) => [k, { type: (o as { type?: 'string' | 'boolean' }).type ?? 'string' }]));
  const { positionals } = parseArgs({ args: argv, options: strings as never, strict: false, allowPositionals: true });
  return positionals.length === 1 ? positionals[0] : undefined;
}

export async function evalCommand(argv: string[]): Promise<void> {
  const dataset = datasetArgument(argv);
  if (argv.includes('--annotations')) return evalDetectionCommand(argv);
  if (dataset !== undefined && dataset !== 'fashion-mnist') {
    const segmentation = await segmentationLayout(dataset);
    if (await isCocoDataset(dataset)) {
      // The scene generator writes both layouts: the weights decide.
      const source = segmentation ? await detectorWeights(argv) : undefined;
      if (!segmentation || source) return evalDetectionCommand(argv, source);
    }
    if (segmentation) return evalSegmentationCommand(argv);
  }
  const { values, flags, positionals } = parse(argv, { ...modelOptions, limit: { type: 'string' }, 'batch-size': { type: 'string' } }, usage, { positionals: true });
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length !== 1) throw usageError(usage, `eval takes one dataset, got ${positionals.length}`);
  const folder = positionals[0]!;
  const limit = intOption(values.limit, 'limit');
  const batchSize = intOption(values['batch-size'], 'batch-size') ?? 16;
  const json = flags.has('json');

  const c = await loadClassifier(values, 'eval', flags);
  let data: ImageDataset;
  try {
    data = await openEvalSet(folder, c.maxPixels);
  } catch (err) {
    await c.model.release();
    throw err;
  }
  const classes = data.classes;
  const samples = limit === undefined ? data : limitDataset(data, limit);
  if (classes.length > c.numClasses) {
    await c.model.release();
    throw new SwiftFormerError('BAD_ARGUMENT', `${folder} has ${classes.length} classes but the model has ${c.numClasses}`);
  }
  if (classes.length !== c.numClasses) {
    console.error(`note: ${folder} has ${classes.length} classes and the model ${c.numClasses}: dataset class i is scored as model class i`);
  }

  const k = Math.min(5, c.numClasses);
  const perClass = classes.map(() => ({ images: 0, top1: 0 }));
  let done = 0;
  let correct1 = 0;
  let correct5 = 0;
  const errors: { file: string; error: string }[] = [];
  const bar = new ProgressBar('evaluating');
  const batches: number[][] = [];
  for (let i = 0; i < samples.length; i += batchSize) batches.push(Array.from({ length: Math.min(batchSize, samples.length - i) }, (_, j) => i + j));
  const prepare = (batch: number[] | undefined) => {
    if (!batch) return undefined;
    const p = prepareBatch(samples, batch, c);
    p.catch(() => {}); // awaited below; this only keeps a failure from counting as unhandled meanwhile
    return p;
  };
  try {
    let pending = prepare(batches[0]);
    for (let b = 0; b < batches.length; b++) {
      const prepared = await pending!;
      pending = prepare(batches[b + 1]); // decode the next batch while this one runs
      const ok = prepared.filter((p): p is Extract<Prepared, { pixels: FloatTensor }> => 'pixels' in p);
      for (const p of prepared) if ('error' in p) errors.push({ file: sampleName(samples, p.index), error: p.error });
      const rows = await logitRows(c.model, ok.map((o) => o.pixels));
      rows.forEach((row, i) => {
        checkFiniteLogits(row, sampleName(samples, ok[i]!.index));
        const target = samples.label(ok[i]!.index);
        const rank = rankOf(row, target);
        perClass[target]!.images++;
        if (rank === 0) {
          correct1++;
          perClass[target]!.top1++;
        }
        if (rank < k) correct5++;
      });
      done += prepared.length;
      const evaluated = done - errors.length;
      bar.update(done, samples.length, `${done}/${samples.length} images  top-1 ${evaluated ? ((100 * correct1) / evaluated).toFixed(2) : '-'}%`);
    }
  } catch (err) {
    bar.clear();
    throw err;
  } finally {
    await c.model.release();
  }
  const evaluated = samples.length - errors.length;
  const seconds = bar.elapsed();
  bar.done(`evaluated ${evaluated} image${evaluated === 1 ? '' : 's'} in ${seconds.toFixed(1)} s (${(evaluated / Math.max(seconds, 1e-3)).toFixed(1)} images/s)${errors.length ? `, ${errors.length} failed` : ''}`);

  const scores: ClassScore[] = perClass
    .map((s, index) => ({ index, name: classes[index]!, ...(c.labels ? { label: labelOf(c.labels, index) } : {}), images: s.images, top1: s.images ? s.top1 / s.images : 0 }))
    .filter((s) => s.images > 0);
  const worst = scores.sort((a, b) => a.top1 - b.top1 || b.images - a.images || a.index - b.index).slice(0, 5);
  const top1 = evaluated ? correct1 / evaluated : 0;
  const top5 = evaluated ? correct5 / evaluated : 0;

  if (json) {
    console.log(JSON.stringify({ folder, images: evaluated, failed: errors.length, classes: classes.length, top1, top5, topK: k, worst, errors, seconds }, null, 2));
  } else {
    console.log(`top-1 ${(100 * top1).toFixed(2)}%  top-${k} ${(100 * top5).toFixed(2)}%  (${evaluated} images, ${classes.length} classes)`);
    console.log(`worst classes by top-1:`);
    for (const w of worst) {
      const label = w.label && w.label !== w.name ? `  (model class ${w.index}: ${w.label})` : '';
      console.log(`  ${(100 * w.top1).toFixed(1).padStart(5)}%  ${String(Math.round(w.top1 * w.images)).padStart(4)}/${w.images}  ${w.name}${label}`);
    }
  }
  for (const e of errors) console.error(`swiftformer eval: ${cliMessage(e.error, usage)}`);
  if (errors.length > 0) throw new SwiftFormerError('BAD_IMAGE', `${errors.length} of ${samples.length} images could not be read (left out of the accuracy)`);
}

/** The position of `target` when classes are sorted by score (0: top-1); ties go to the lower index, as in classify. */
function rankOf(row: Float32Array, target: number): number {
  const t = row[target]!;
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > t || (row[i] === t && i < target)) rank++;
  return rank;
}
