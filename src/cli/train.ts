import { readSidecar } from '../train/checkpoint.js';
import { DEFAULTS } from '../train/config.js';
import { openTrainingData } from '../node/datasets.js';
import { SwiftFormerError } from '../core/errors.js';
import { loadSwiftFormer } from '../models/model.js';
import { variantConfig } from '../models/swiftformer.js';
import { defaultPreprocessing, modelTeacher, onnxTeacher, train, type Teacher, type TrainOptions } from '../train/trainer.js';
import { augmentFor, withRandAugment } from '../train/augment.js';
import { OFFICIAL_RAND_AUGMENT, parseRandAugment } from '../train/randaugment.js';
import { choice, intOption, parse } from './args.js';
import { numberOption, pct, progressReporter, runInterruptibly } from './train-progress.js';
import { isSegmentationRun, trainSegmentationCommand } from './train-segmentation.js';
import { isDetectionRun, trainDetectionCommand } from './train-detection.js';
import { segmentationLayout } from '../node/segmentation-data.js';

export const usage = `Usage: swiftformer train --data <dir|fashion-mnist> [options]
       swiftformer train --resume <out dir>

Trains a SwiftFormer classifier from scratch, or fine-tunes one (--finetune), evaluating top-1
accuracy each epoch. Writes to --out: checkpoint.safetensors (+ checkpoint.json to resume),
metrics.jsonl, chart.svg, labels.json, config.json; checkpoint.pth with --save-pth.
A segmentation dataset as --data (mmseg's img_dir/ + ann_dir/, or ADE20K's images/ + annotations/)
trains a Semantic FPN segmenter instead: swiftformer train --task segmentation --help; a COCO
dataset (annotations/instances_<split>[2017].json) a Mask R-CNN detector: --task detection --help.
  --task             classification | segmentation | detection (default: what --data holds)
  --data             fashion-mnist (Debian's dataset-fashion-mnist), a directory of IDX files
                     (train-images-idx3-ubyte[.gz], t10k-...), or image folders: <dir>/train/<class>/*
                     and <dir>/val/<class>/* (a directory of class folders alone: no evaluation)
  --model            xs | s | l1 | l3 (default xs; with --finetune: read off the weights)
  --finetune         weights to start from (.pth/.safetensors); the head is re-initialized
                     when the class count differs
  --epochs           default ${DEFAULTS.epochs}; with --resume: a new length for the run (a finished
                     run is extended; the schedule is planned again for it)
  --batch-size       default ${DEFAULTS.batchSize} (the last incomplete batch of an epoch is dropped)
  --lr               peak learning rate, AdamW (default ${DEFAULTS.lr})
  --weight-decay     default ${DEFAULTS.weightDecay} (not on biases, norms, layer scales)
  --warmup-epochs    linear warm-up before the cosine (default ${DEFAULTS.warmupEpochs}, from ${DEFAULTS.warmupLr})
  --min-lr           floor of the cosine (default ${DEFAULTS.minLr})
  --label-smoothing  default ${DEFAULTS.labelSmoothing}
  --input-size       default: IDX images zero-padded to a multiple of 32 (28 -> 32), else 224
  --augment          the official recipe's augmentation (timm 0.5.4): random resized crop (bicubic),
                     flip, RandAugment ${OFFICIAL_RAND_AUGMENT}, random erasing 0.25; inputs up
                     to 64 px: shifts of up to 1/16 of the size, flip, random erasing
  --rand-augment     a timm RandAugment policy in place of the preset's (implies --augment), e.g.
                     rand-m7-n2-mstd0.5; none: no RandAugment (photos: color jitter 0.4 instead,
                     main.py's --aa '' as the official XS run used)
  --mixup, --cutmix  mixup / cutmix alphas (official recipe: 0.8 and 1.0; default off)
  --clip-mode        none | norm | agc (default none)   --clip-grad  max norm (${DEFAULTS.clipNorm}), or AGC factor (${DEFAULTS.clipAgc})
  --ema              also keep and evaluate an EMA of the weights (--ema-decay, default ${DEFAULTS.emaDecay})
  --teacher          distill from this model (weights file, or .onnx); --distill hard | soft,
                     --temperature (soft, default ${DEFAULTS.distillTemperature})
  --out              output directory (default swiftformer-train)
  --resume           continue the run in this directory where it stopped, with its settings (flags
                     given again must agree, --epochs aside)
  --save-pth         also write checkpoint.pth in the official training-checkpoint layout
  --limit            use at most N images of each split (quick runs)
  --seed             default ${DEFAULTS.seed}      --threads  ONNX Runtime threads`;

export async function trainCommand(argv: string[]): Promise<void> {
  if (await isDetectionRun(argv, async (dir) => (await segmentationLayout(dir)) !== undefined)) return trainDetectionCommand(argv);
  if (await isSegmentationRun(argv)) return trainSegmentationCommand(argv);
  const { values, flags } = parse(argv, {
    task: { type: 'string' }, data: { type: 'string' }, model: { type: 'string' }, finetune: { type: 'string' }, epochs: { type: 'string' },
    'batch-size': { type: 'string' }, lr: { type: 'string' }, 'weight-decay': { type: 'string' }, 'warmup-epochs': { type: 'string' },
    'min-lr': { type: 'string' }, 'label-smoothing': { type: 'string' }, 'input-size': { type: 'string' }, augment: { type: 'boolean' },
    'rand-augment': { type: 'string' },
    mixup: { type: 'string' }, cutmix: { type: 'string' }, 'clip-mode': { type: 'string' }, 'clip-grad': { type: 'string' },
    ema: { type: 'boolean' }, 'ema-decay': { type: 'string' }, teacher: { type: 'string' }, distill: { type: 'string' },
    temperature: { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, 'save-pth': { type: 'boolean' },
    limit: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);

  // A resumed run is its stored configuration plus what the flags change (the trainer checks that
  // they may): only flags given are passed on, the rest comes from the checkpoint or the defaults.
  const saved = values.resume ? await readSidecar(values.resume) : undefined;
  if (values.resume && !saved) throw new SwiftFormerError('BAD_ARGUMENT', `nothing to resume: ${values.resume} has no checkpoint.json`);
  const source = values.data ?? saved?.data?.source;
  if (!source) throw new SwiftFormerError('BAD_ARGUMENT', `--data <dir|fashion-mnist> is required\n\n${usage}`);
  if (values.resume && values.out && values.out !== values.resume) throw new SwiftFormerError('BAD_ARGUMENT', '--resume continues in its own directory; drop --out or give the same directory');
  if (saved && (values.model || values.finetune)) throw new SwiftFormerError('BAD_ARGUMENT', `the model of a resumed run is the one in ${values.resume}: drop --${values.model ? 'model' : 'finetune'}`);
  const out = values.resume ?? values.out ?? 'swiftformer-train';

  const positive = (n: number) => n > 0;
  const nonNegative = (n: number) => n >= 0;
  const limit = intOption(values.limit, 'limit') ?? saved?.data?.limit;
  const mixupAlpha = numberOption(values.mixup, 'mixup', nonNegative, 'a number >= 0');
  const cutmixAlpha = numberOption(values.cutmix, 'cutmix', nonNegative, 'a number >= 0');
  const clipMode = choice(values['clip-mode'], 'clip-mode', ['none', 'norm', 'agc'] as const);
  const clipValue = numberOption(values['clip-grad'], 'clip-grad', positive, 'a number > 0');
  const emaDecay = numberOption(values['ema-decay'], 'ema-decay', (n) => n > 0 && n < 1, 'in (0, 1)');
  const distillType = choice(values.distill, 'distill', ['hard', 'soft'] as const);
  const temperature = numberOption(values.temperature, 'temperature', positive, 'a number > 0');
  const threads = intOption(values.threads, 'threads');
  const inputSize = intOption(values['input-size'], 'input-size', 32);
  const given = {
    epochs: intOption(values.epochs, 'epochs'),
    batchSize: intOption(values['batch-size'], 'batch-size'),
    lr: numberOption(values.lr, 'lr', positive, 'a number > 0'),
    weightDecay: numberOption(values['weight-decay'], 'weight-decay', nonNegative, 'a number >= 0'),
    warmupEpochs: numberOption(values['warmup-epochs'], 'warmup-epochs', nonNegative, 'a number >= 0'),
    minLr: numberOption(values['min-lr'], 'min-lr', nonNegative, 'a number >= 0'),
    labelSmoothing: numberOption(values['label-smoothing'], 'label-smoothing', (n) => n >= 0 && n < 1, 'in [0, 1)'),
    seed: intOption(values.seed, 'seed', 0),
    inputSize,
    threads,
    mixup: mixupAlpha !== undefined || cutmixAlpha !== undefined ? { mixupAlpha: mixupAlpha ?? 0, cutmixAlpha: cutmixAlpha ?? 0 } : undefined,
    clip: clipMode !== undefined ? { mode: clipMode, ...(clipValue !== undefined ? { value: clipValue } : {}) }
      : clipValue !== undefined ? { mode: 'norm' as const, value: clipValue } : undefined,
    ema: emaDecay !== undefined ? { decay: emaDecay } : flags.has('ema') ? true : undefined,
  };
  if (distillType && !values.teacher) throw new SwiftFormerError('BAD_ARGUMENT', '--distill needs --teacher <weights or .onnx>');
  if (saved?.train.classification?.distill && !values.teacher) throw new SwiftFormerError('BAD_ARGUMENT', `the run in ${values.resume} distills from a teacher: pass --teacher again to resume it`);

  const randAugmentPolicy = values['rand-augment'];
  if (randAugmentPolicy !== undefined && randAugmentPolicy !== 'none') parseRandAugment(randAugmentPolicy); // fails before any data is read
  if (values.model) variantConfig(values.model); // an unknown id fails before any data is read
  const data = await openTrainingData(source, limit === undefined ? {} : { limit });
  // --augment alone is resolved by the trainer (augmentFor at the run's input size); a policy is laid over that preset here.
  const augment = randAugmentPolicy !== undefined
    ? withRandAugment(augmentFor(inputSize ? [inputSize, inputSize] : saved?.train.preprocessing.inputSize ?? defaultPreprocessing(data.train).inputSize), randAugmentPolicy)
    : flags.has('augment') || undefined;
  if (!data.test) process.stderr.write(`note: ${source} has no test split (val/ or test/ beside train/, or t10k-* IDX files): no evaluation\n`);

  let teacher: Teacher | undefined;
  let release: (() => Promise<void>) | undefined;
  if (values.teacher) {
    const session = threads === undefined ? {} : { threads };
    if (values.teacher.toLowerCase().endsWith('.onnx')) {
      teacher = await onnxTeacher(values.teacher, { session });
      release = teacher.release;
    } else {
      const model = await loadSwiftFormer({ weights: values.teacher, session });
      teacher = modelTeacher(model);
      release = () => model.release();
    }
  }

  const options: TrainOptions = {
    ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
    ...(augment ? { augment } : {}),
    train: data.train,
    out,
    dataSource: { source, ...(limit !== undefined ? { limit } : {}) },
    onProgress: progressReporter(process.stderr),
  };
  if (data.test) options.test = data.test;
  if (saved) options.resume = true;
  if (values.model) options.model = values.model;
  if (values.finetune) options.weights = values.finetune;
  if (flags.has('save-pth')) options.savePth = true;
  if (teacher) options.distill = { teacher, ...(distillType ? { type: distillType } : {}), ...(temperature !== undefined ? { temperature } : {}) };

  const result = await runInterruptibly(out, saved?.epoch ?? 0, options.onProgress!, async (signal, onProgress) => {
    try {
      return await train({ ...options, signal, onProgress });
    } finally {
      await release?.();
    }
  });
  const last = result.history.at(-1);
  process.stderr.write(`done: ${out} (epoch ${last?.epoch ?? 0}${last?.test_acc !== undefined ? `, test accuracy ${pct(last.test_acc)}` : ''})\n`);
}
