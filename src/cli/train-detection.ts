/** `swiftformer train` on a COCO dataset: Mask R-CNN with torchvision's training path (train/detection-trainer.ts). */
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { SwiftFormerError } from '../core/errors.js';
import { isCocoDataset, openCocoData } from '../node/coco-data.js';
import { readSidecar } from '../train/checkpoint.js';
import { DETECTION_DEFAULTS } from '../train/config.js';
import { trainDetection, type DetectionTrainOptions } from '../train/detection-trainer.js';
import { choice, intOption, parse } from './args.js';
import { numberOption, pct, progressReporter, resumeOrStart, runInterruptibly } from './train-progress.js';

const D = DETECTION_DEFAULTS;

export const usage = `Usage: swiftformer train --task detection --data <COCO dataset> [options]
       swiftformer train --resume <out dir>
       swiftformer train --task detection --data <COCO dataset> --resume <references checkpoint.pth> [--out <dir>]

Trains a Mask R-CNN detector on SwiftFormer along torchvision 0.14's training path: images
flipped (p ${D.flipProb}) and resized with their boxes and masks to a short side drawn from --min-size,
batches padded to a multiple of 32; RPN anchors matched at IoU 0.7 / 0.3 (low-quality matches
kept), 256 sampled per image at half positives; proposals (2000 per image) with the gt boxes
appended matched at 0.5, 512 sampled at a quarter positives; the five losses (objectness BCE,
RPN smooth-L1 beta 1/9, classifier CE, box smooth-L1 beta 1/9, mask BCE on RoI-aligned gt masks).
Each epoch evaluates COCO box and mask AP on the val split. Writes to --out:
checkpoint.safetensors (torchvision keys; + checkpoint.json to resume), checkpoint.pth with --save-pth,
metrics.jsonl (with the
five losses), chart.svg, labels.json, config.json. \`swiftformer detect\` and \`eval\` take the weights.
  --data           annotations/instances_{train,val}2017.json with {train,val}2017/ (COCO), or
                   annotations/instances_{train,val}.json with img_dir/{train,val}/ (the scenes)
  --task detection (needed when the directory is a segmentation dataset too, as the scenes are)
  --finetune       weights to start from: a classifier or backbone (the paper's recipe: ImageNet
                   weights) starts the backbone of a new detector; Mask R-CNN weights are fine-tuned
  --model          xs | s | l1 | l3 (default xs; with --finetune: read off the weights)
  --optimizer      adamw (EfficientFormer's recipe: lr ${D.adamwLr}) or sgd (torchvision's references:
                   momentum 0.9, lr ${D.sgdLr} = 0.02 x batch / 16); weight decay ${D.weightDecay} on every parameter
  --epochs         default ${D.epochs}      --batch-size  images per step (default ${D.batchSize})
  --lr, --weight-decay
  --milestones     epochs where the lr drops 10x (default ${D.milestones.join(',')}, scaled to the run's length)
  --warmup-steps   linear warm-up from 0.001 x lr (default ${D.warmupIterations.adamw} for adamw, ${D.warmupIterations.sgd} for sgd, at most an epoch)
  --min-size       short side, or a list to draw from per image (multi-scale), e.g. 640,672,704,736,768,800
                   (default ${D.minSize})      --max-size  default ${D.maxSize}
  --flip-prob      default ${D.flipProb}
  --out            output directory (default swiftformer-train)
  --resume         continue the run in this directory where it stopped, with its settings; or a
                   checkpoint.pth of torchvision references/detection's train.py: its model,
                   optimizer state, MultiStepLR and epoch (its args: the defaults of --epochs,
                   --batch-size); written to --out (default: the .pth's directory)
  --save-pth       also write checkpoint.pth each epoch in torchvision references/detection's
                   layout ({model, optimizer, lr_scheduler, args, epoch}): train.py --resume continues it
  --limit          use at most N images of each split (quick runs)
  --seed           default 0      --threads  ONNX Runtime threads`;

const OPTIONS = {
  task: { type: 'string' }, data: { type: 'string' }, finetune: { type: 'string' }, model: { type: 'string' }, optimizer: { type: 'string' },
  epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' }, 'weight-decay': { type: 'string' },
  milestones: { type: 'string' }, 'warmup-steps': { type: 'string' }, 'min-size': { type: 'string' }, 'max-size': { type: 'string' },
  'flip-prob': { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, limit: { type: 'string' }, seed: { type: 'string' },
  threads: { type: 'string' }, 'save-pth': { type: 'boolean' },
} as const;

/** Whether `train` with these arguments trains a detector: --task says so, the run resumed is one, or --data is COCO and nothing else. */
export async function isDetectionRun(argv: string[], segmentation: (dir: string) => Promise<boolean>): Promise<boolean> {
  const { values } = parseArgs({ args: argv, options: { task: { type: 'string' }, data: { type: 'string' }, resume: { type: 'string' } }, strict: false, allowPositionals: true });
  if (values.task !== undefined) return values.task === 'detection';
  if (typeof values.resume === 'string' && isPth(values.resume)) return true;
  if (typeof values.resume === 'string') return (await readSidecar(values.resume))?.train.task === 'detection';
  const data = values.data;
  return typeof data === 'string' && data !== 'fashion-mnist' && (await isCocoDataset(data)) && !(await segmentation(data));
}

/** `--resume` names a references/detection checkpoint.pth rather than a run directory of ours. */
const isPth = (path: string) => /\.pth$/i.test(path);

function integers(value: string | undefined, name: string): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length === 0 || parts.some((p) => !Number.isInteger(p) || p < 1)) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} must be positive integers separated by commas, got '${value}'`);
  return parts;
}

export async function trainDetectionCommand(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, OPTIONS, usage);
  if (flags.has('help')) return void console.log(usage);
  const pth = values.resume !== undefined && isPth(values.resume) ? values.resume : undefined;
  const { saved, source, out } = await resumeOrStart(pth ? { ...values, resume: undefined, out: values.out ?? dirname(pth) } : values, 'COCO dataset', usage);
  const limit = intOption(values.limit, 'limit') ?? saved?.data?.limit;
  const given: Omit<DetectionTrainOptions, 'train'> = {
    epochs: intOption(values.epochs, 'epochs'),
    batchSize: intOption(values['batch-size'], 'batch-size'),
    optimizer: choice(values.optimizer, 'optimizer', ['adamw', 'sgd'] as const),
    lr: numberOption(values.lr, 'lr', (n) => n > 0, 'a number > 0'),
    weightDecay: numberOption(values['weight-decay'], 'weight-decay', (n) => n >= 0, 'a number >= 0'),
    milestones: integers(values.milestones, 'milestones'),
    warmupSteps: intOption(values['warmup-steps'], 'warmup-steps', 0),
    minSizes: integers(values['min-size'], 'min-size'),
    maxSize: intOption(values['max-size'], 'max-size'),
    flipProb: numberOption(values['flip-prob'], 'flip-prob', (n) => n >= 0 && n <= 1, 'in [0, 1]'),
    seed: intOption(values.seed, 'seed', 0),
    threads: intOption(values.threads, 'threads'),
    model: values.model,
    weights: values.finetune,
  };
  const numClasses = saved?.train.dataset.numClasses;
  const open = { ...(numClasses !== undefined ? { numClasses } : {}) };
  const limited = <T extends { length: number; subset(i: number[]): T }>(d: T) => (limit === undefined || limit >= d.length ? d : d.subset([...Array(limit).keys()]));
  const train = limited(await openCocoData(source, 'train', open));
  let val;
  try {
    val = limited(await openCocoData(source, 'val', { ...open, numClasses: train.labels.numClasses, masks: false }));
  } catch (err) {
    if (!(err instanceof SwiftFormerError && err.code === 'IO')) throw err;
    process.stderr.write(`note: ${source} has no val split: no evaluation\n`);
  }
  const options: DetectionTrainOptions = {
    ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
    train, ...(val ? { val } : {}), out, ...(flags.has('save-pth') ? { savePth: true } : {}), ...(pth ? { resumeFrom: pth } : {}), dataSource: { source, ...(limit !== undefined ? { limit } : {}) }, ...(saved ? { resume: true } : {}),
  };
  const result = await runInterruptibly(out, saved?.epoch ?? 0, progressReporter(process.stderr), (signal, onProgress) => trainDetection({ ...options, signal, onProgress }));
  const last = result.history.at(-1);
  const ap = last?.test_bbox_AP !== undefined ? `, box AP ${pct(last.test_bbox_AP)}${last.test_segm_AP !== undefined ? `, mask AP ${pct(last.test_segm_AP)}` : ''}` : '';
  process.stderr.write(`done: ${out} (epoch ${last?.epoch ?? 0}${ap})\n`);
}
