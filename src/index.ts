/**
 * swiftformer for Node: SwiftFormer models on ONNX Runtime.
 *
 *   import { loadModel } from 'swiftformer';
 *   const model = await loadModel({ model: 'xs', weights: 'SwiftFormer_XS_ckpt.pth' });
 *   const logits = await model.logits(pixels); // pixels: { dtype: 'float32', shape: [1,3,224,224], data }
 */
import './node.js';

export * from './api.js';
export { decodeImage, preprocess, imageFormat, MAX_IMAGE_PIXELS } from './decode.js';
export type { DecodeOptions, ImageFormat, PreprocessOptions } from './decode.js';
export {
  download, resolveWeights, cacheDir, cachedPath, parseHfSource, hfUrl, defaultWeights, isRemoteSource, HttpStatusError,
  HF_WEIGHT_FILES, DEFAULT_MODEL_DIR,
} from './hub.js';
export type { BundledModel, DownloadOptions, DownloadProgress, HfSource, ResolvedWeights } from './hub.js';
export { train, evaluate, modelTeacher, onnxTeacher, defaultPreprocessing, idxStatistics } from './trainer.js';
export type { TrainOptions, TrainProgress, TrainResult, Teacher, DistillOptions } from './trainer.js';
export { TrainStep, updateRunningStats } from './step.js';
export type { StepGraphOptions, StepResult } from './step.js';
export {
  AdamW, ModelEma, weightDecayGroups, noWeightDecay, clipGradNorm, globalGradNorm, adaptiveClipGrad, cloneState,
  smoothTargets, hardDistillTargets, softDistillTargets,
} from './optim.js';
export type { AdamWOptions, ParamGroups } from './optim.js';
export { CosineSchedule, cosineLr } from './schedule.js';
export type { CosineScheduleOptions } from './schedule.js';
export {
  Loader, IdxDataset, ImageFolderDataset, parseIdx, readIdx, loadIdxDataset, loadImageFolder, openTrainingData, limitDataset, subset,
  FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, FASHION_MNIST_NORMALIZATION,
} from './data.js';
export type { ImageDataset, IdxArray, Batch, LoaderOptions, TrainingData, DecodeFn } from './data.js';
export {
  sampleTransform, mixBatch, randomResizedCropBox, colorJitter, randomErase, flipHorizontal, padImage, cropImage, DEFAULT_AUGMENT,
  augmentFor, smallImageAugment, SMALL_IMAGE_SIZE,
} from './augment.js';
export type { AugmentOptions, MixupOptions, RandomErasing, ColorJitter, SampleTransform, TransformOptions } from './augment.js';
export { readCheckpoint, writeCheckpoint, officialPth, moduleOrder } from './checkpoint.js';
export type { EpochMetrics, Sidecar, DataSource } from './checkpoint.js';
export { trainingChart } from './chart.js';
export { compareLatency, gemmProbe, syntheticPixels } from './bench.js';
export type { Contender, Timing, BenchOptions } from './bench.js';
