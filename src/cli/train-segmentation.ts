/** `swiftformer train` on a segmentation dataset: Semantic FPN with mmsegmentation's recipe (train/segmentation-trainer.ts). */
import { parseArgs } from 'node:util';
import { SwiftFormerError } from '../core/errors.js';
import { openSegmentationData, segmentationLayout } from '../node/segmentation-data.js';
import { readSidecar } from '../train/checkpoint.js';
import { SEGMENTATION_DEFAULTS } from '../train/config.js';
import { trainSegmentation, type SegmentationTrainOptions } from '../train/segmentation-trainer.js';
import { intOption, parse } from './args.js';
import { numberOption, pct, progressReporter, resumeOrStart, runInterruptibly } from './train-progress.js';

const D = SEGMENTATION_DEFAULTS;

export const usage = `Usage: swiftformer train --data <segmentation dataset> [options]
       swiftformer train --resume <out dir>

Trains a Semantic FPN segmenter on SwiftFormer as mmsegmentation trains EfficientFormer's and
SwiftFormer's ADE20K model: AdamW (lr ${D.lr}, weight decay ${D.weightDecay} on every parameter), poly
schedule (power 0.9) by iteration, per-pixel cross-entropy (ignore index 255) on logits resized to
the label size, and mmseg's training pipeline: random rescale of img_scale by 0.5-2.0, random
crop with cat_max_ratio 0.75, flip, photometric distortion, padding (label: 255). Each round
evaluates mIoU, aAcc and mAcc on the val split (mmseg's test pipeline at img_scale) and writes to
--out: checkpoint.safetensors (mmseg keys, class names and palette; + checkpoint.json to resume),
latest.pth and best_mIoU.pth (mmseg's {'meta', 'state_dict'}), best.safetensors, metrics.jsonl,
chart.svg, labels.json, config.json. \`swiftformer segment\` and \`eval\` take these weights.
  --data             mmseg's generic layout: img_dir/{train,val}/<stem>.<jpg|png|...> with
                     ann_dir/{train,val}/<stem>.png (label PNGs: palette indices or gray values are
                     class indices, 255 ignored; class names from a dataset.json { "classes",
                     "palette" } beside them, else --num-classes); or ADE20K's images/{training,
                     validation}/*.jpg with annotations/{training,validation}/*.png (150 classes,
                     0 = "other" is ignored)
  --task segmentation  (the default for such a dataset)
  --num-classes      K, for a generic dataset without dataset.json
  --finetune         weights to start from: a classifier or fork_feat backbone (official, Hugging
                     Face, timm, trained here) becomes the backbone, with mmseg's neck and head
                     initialization (the paper's recipe); Semantic FPN weights are re-headed when
                     the class count differs
  --model            xs | s | l1 | l3 (default xs; with --finetune: read off the weights)
  --epochs           rounds of training, each one pass over the training set followed by the
                     evaluation and the checkpoints (default ${D.epochs}); with --resume: a new length
  --iterations       mmseg's run length in iterations instead (the paper's: 40000), split into rounds
                     of --eval-interval iterations (default: one pass over the training set)
  --batch-size       default ${D.batchSize} (the last incomplete batch of each pass is dropped)
  --lr               default ${D.lr}      --weight-decay  default ${D.weightDecay}
  --min-lr           floor of the poly schedule (default 0)      --power  default 0.9
  --crop-size        S or H,W: the training crop, multiples of 32 (default ${D.cropSize})
  --img-scale        LONG,SHORT: mmseg's img_scale, the base of the random rescale and the test
                     scale (default 4 x the crop's short side, its long side: 2048,512 for 512)
  --ratio-range      LO,HI of the random rescale (default ${D.ratioRange.join(',')}); none: rescale into img_scale
  --cat-max-ratio    default ${D.catMaxRatio} (1: off)      --flip-prob  default ${D.flipProb}
  --no-photometric   leave out the photometric distortion
  --avg-non-ignore   average the loss over the pixels not ignored (mmseg's default: over all)
  --neck-channels, --head-channels, --dropout   a new model's FPN and head widths and Dropout2d
                     (default 256, 128, 0.1)
  --out              output directory (default swiftformer-train)
  --resume           continue the run in this directory where it stopped, with its settings
  --limit            use at most N images of each split (quick runs)
  --seed             default 0      --threads  ONNX Runtime threads`;

const OPTIONS = {
  task: { type: 'string' }, data: { type: 'string' }, 'num-classes': { type: 'string' }, finetune: { type: 'string' }, model: { type: 'string' },
  epochs: { type: 'string' }, iterations: { type: 'string' }, 'eval-interval': { type: 'string' }, 'batch-size': { type: 'string' },
  lr: { type: 'string' }, 'weight-decay': { type: 'string' }, 'min-lr': { type: 'string' }, power: { type: 'string' },
  'crop-size': { type: 'string' }, 'img-scale': { type: 'string' }, 'ratio-range': { type: 'string' }, 'cat-max-ratio': { type: 'string' },
  'flip-prob': { type: 'string' }, 'no-photometric': { type: 'boolean' }, 'avg-non-ignore': { type: 'boolean' },
  'neck-channels': { type: 'string' }, 'head-channels': { type: 'string' }, dropout: { type: 'string' },
  out: { type: 'string' }, resume: { type: 'string' }, limit: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' },
} as const;

/** Whether `train` with these arguments trains a segmenter: --task says so, or the run resumed is one, or --data is a segmentation dataset. */
export async function isSegmentationRun(argv: string[]): Promise<boolean> {
  const { values } = parseArgs({ args: argv, options: { task: { type: 'string' }, data: { type: 'string' }, resume: { type: 'string' } }, strict: false, allowPositionals: true });
  const task = values.task;
  if (task !== undefined && task !== 'classification' && task !== 'segmentation' && task !== 'detection') {
    throw new SwiftFormerError('BAD_ARGUMENT', `--task must be classification, segmentation or detection, got '${String(task)}'`);
  }
  if (task) return task === 'segmentation';
  if (typeof values.resume === 'string') return (await readSidecar(values.resume))?.train.task === 'segmentation';
  return typeof values.data === 'string' && values.data !== 'fashion-mnist' && (await segmentationLayout(values.data)) !== undefined;
}

/** 'N' or 'A,B' as two positive integers. */
function pair(value: string | undefined, name: string, want: string): [number, number] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length > 2 || parts.some((p) => !Number.isInteger(p) || p < 1)) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} must be ${want}, got '${value}'`);
  return parts.length === 1 ? [parts[0]!, parts[0]!] : [parts[0]!, parts[1]!];
}

function ratioRange(value: string | undefined): [number, number] | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'none') return null;
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 2 || !(parts[0]! > 0 && parts[0]! <= parts[1]!)) throw new SwiftFormerError('BAD_ARGUMENT', `--ratio-range must be LO,HI with 0 < LO <= HI, or none, got '${value}'`);
  return [parts[0]!, parts[1]!];
}

export async function trainSegmentationCommand(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, OPTIONS, usage);
  if (flags.has('help')) return void console.log(usage);
  if (values.task !== undefined && values.task !== 'segmentation') throw new SwiftFormerError('BAD_ARGUMENT', `--task must be segmentation here, got '${values.task}'`);
  const { saved, source, out } = await resumeOrStart(values, 'segmentation dataset', usage);
  const positive = (n: number) => n > 0;
  const nonNegative = (n: number) => n >= 0;
  const cropSize = pair(values['crop-size'], 'crop-size', 'S or H,W (multiples of 32)');
  if (cropSize?.some((s) => s % 32 !== 0)) throw new SwiftFormerError('BAD_ARGUMENT', `--crop-size must be multiples of 32, got '${values['crop-size']}'`);
  const limit = intOption(values.limit, 'limit') ?? saved?.data?.limit;
  const numClasses = intOption(values['num-classes'], 'num-classes', 2) ?? saved?.train.dataset.numClasses;
  const given: Omit<SegmentationTrainOptions, 'train'> = {
    epochs: intOption(values.epochs, 'epochs'),
    iterations: intOption(values.iterations, 'iterations'),
    evalInterval: intOption(values['eval-interval'], 'eval-interval'),
    batchSize: intOption(values['batch-size'], 'batch-size'),
    lr: numberOption(values.lr, 'lr', positive, 'a number > 0'),
    weightDecay: numberOption(values['weight-decay'], 'weight-decay', nonNegative, 'a number >= 0'),
    minLr: numberOption(values['min-lr'], 'min-lr', nonNegative, 'a number >= 0'),
    power: numberOption(values.power, 'power', positive, 'a number > 0'),
    cropSize,
    imgScale: pair(values['img-scale'], 'img-scale', 'LONG,SHORT'),
    ratioRange: ratioRange(values['ratio-range']),
    catMaxRatio: numberOption(values['cat-max-ratio'], 'cat-max-ratio', (n) => n > 0 && n <= 1, 'in (0, 1]'),
    flipProb: numberOption(values['flip-prob'], 'flip-prob', (n) => n >= 0 && n <= 1, 'in [0, 1]'),
    photometric: flags.has('no-photometric') ? false : undefined,
    average: flags.has('avg-non-ignore') ? 'non-ignored' : undefined,
    neckChannels: intOption(values['neck-channels'], 'neck-channels'),
    headChannels: intOption(values['head-channels'], 'head-channels'),
    dropout: numberOption(values.dropout, 'dropout', (n) => n >= 0 && n < 1, 'in [0, 1)'),
    seed: intOption(values.seed, 'seed', 0),
    threads: intOption(values.threads, 'threads'),
    model: values.model,
    weights: values.finetune,
  };
  const data = await openSegmentationData(source, { ...(numClasses !== undefined ? { numClasses } : {}), ...(limit !== undefined ? { limit } : {}) });
  if (!data.train) throw new SwiftFormerError('IO', `${source} has no training split`);
  if (!data.val) process.stderr.write(`note: ${source} has no val split: no evaluation and no best checkpoint\n`);
  const options: SegmentationTrainOptions = {
    ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
    train: data.train, ...(data.val ? { val: data.val } : {}), out,
    dataSource: { source, ...(limit !== undefined ? { limit } : {}) },
    ...(saved ? { resume: true } : {}),
  };
  const result = await runInterruptibly(out, saved?.epoch ?? 0, progressReporter(process.stderr), (signal, onProgress) => trainSegmentation({ ...options, signal, onProgress }));
  const last = result.history.at(-1);
  const best = result.history.reduce((b, m) => ((m.test_mIoU ?? -1) > (b?.test_mIoU ?? -1) ? m : b), undefined as typeof last);
  const scores = best?.test_mIoU !== undefined ? `, best mIoU ${pct(best.test_mIoU)} at epoch ${best.epoch}` : '';
  process.stderr.write(`done: ${out} (epoch ${last?.epoch ?? 0}${scores})\n`);
}
