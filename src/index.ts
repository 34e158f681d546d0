/**
 * swiftformer for Node: SwiftFormer models on ONNX Runtime.
 *
 *   import { loadModel } from 'swiftformer';
 *   const model = await loadModel({ model: 'xs', weights: 'SwiftFormer_XS_ckpt.pth' });
 *   const logits = await model.logits(pixels); // pixels: { dtype: 'float32', shape: [1,3,224,224], data }
 */
import './node/platform.js';

export * from './api.js';
export { decodeImage, preprocess, imageFormat, MAX_IMAGE_PIXELS } from './node/decode.js';
export type { DecodeOptions, ImageFormat, PreprocessOptions } from './node/decode.js';
export { decodeLabelPng, readLabelPng, encodePalettePng, encodeGrayPng, writePalettePng, writeGrayPng } from './node/png.js';
export type { LabelPng, ReadPngOptions } from './node/png.js';
export {
  download, resolveWeights, cacheDir, cachedPath, parseHfSource, hfUrl, defaultWeights, isRemoteSource, HttpStatusError,
  HF_WEIGHT_FILES, DEFAULT_MODEL_DIR,
} from './node/hub.js';
export type { BundledModel, DownloadOptions, DownloadProgress, HfSource, ResolvedWeights } from './node/hub.js';
export { train, evaluate, modelTeacher, onnxTeacher, checkTeacher, defaultPreprocessing, idxStatistics } from './train/trainer.js';
export { planRun, runEpochs } from './train/run.js';
export type { TaskRun, StepOutput, EvalOutput, RunPlan, PlanOptions } from './train/run.js';
export { DEFAULTS, freshConfig, resumedConfig } from './train/config.js';
export type { TrainConfig, TrainTask, ClipConfig, ClassificationSettings, RequestedConfig } from './train/config.js';
export type { TrainOptions, TrainProgress, TrainResult, Teacher, DistillOptions } from './train/trainer.js';
export { TrainStep, updateRunningStats, buildVitStepGraph } from './train/step.js';
export type { StepGraphOptions, StepResult } from './train/step.js';
export { SegmentationTrainStep, buildSegmentationStepGraph, dropoutMask } from './train/segmentation-step.js';
export type { SegmentationStepOptions } from './train/segmentation-step.js';
export {
  AdamW, Sgd, createOptimizer, ModelEma, weightDecayGroups, noWeightDecay, timmNoDecay, clipGradNorm, globalGradNorm, adaptiveClipGrad, cloneState,
} from './train/optim.js';
export { smoothTargets, hardDistillTargets, softDistillTargets } from './train/targets.js';
export type { AdamWOptions, SgdOptions, Optimizer, OptimizerConfig, ParamGroups } from './train/optim.js';
export { CosineSchedule, cosineLr, lrAt, planSchedule } from './train/schedule.js';
export type { CosineScheduleOptions, LrSchedule, ScheduleConfig } from './train/schedule.js';
export { IdxDataset, limitDataset, subset, FASHION_MNIST_CLASSES, FASHION_MNIST_NORMALIZATION } from './data/dataset.js';
export { Loader } from './train/loader.js';
export { ImageFolderDataset, parseIdx, readIdx, loadIdxDataset, loadImageFolder, openTrainingData, fashionMnistDir, FASHION_MNIST_DIR } from './node/datasets.js';
export type { ImageDataset, IdxArray } from './data/dataset.js';
export type { Batch, LoaderOptions } from './train/loader.js';
export type { TrainingData, DecodeFn } from './node/datasets.js';
export {
  sampleTransform, mixBatch, randomResizedCropBox, colorJitter, drawColorJitter, applyColorJitter, randomErase, flipHorizontal, DEFAULT_AUGMENT,
  DEFAULT_COLOR_JITTER, augmentFor, smallImageAugment, withRandAugment, checkAugment, SMALL_IMAGE_SIZE,
} from './train/augment.js';
export { randAugment, parseRandAugment, OFFICIAL_RAND_AUGMENT } from './train/randaugment.js';
export { padImage, cropImage } from './preprocess/transforms.js';
export type { AugmentOptions, MixupOptions, RandomErasing, ColorJitter, SampleTransform, TransformOptions } from './train/augment.js';
export { readCheckpoint, readSidecar, writeCheckpoint, officialPth, moduleOrder } from './train/checkpoint.js';
export type { EpochMetrics, Sidecar, DataSource } from './train/checkpoint.js';
export { trainingChart } from './train/chart.js';
export { compareLatency, gemmProbe, syntheticPixels } from './measure/bench.js';
export type { Contender, Timing, BenchOptions } from './measure/bench.js';
