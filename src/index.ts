/**
 * swiftformer for Node: SwiftFormer models on ONNX Runtime.
 *
 *   import { loadModel } from 'swiftformer';
 *   const model = await loadModel({ model: 'xs', weights: 'SwiftFormer_XS_ckpt.pth' });
 *   const logits = await model.logits(pixels); // pixels: { dtype: 'float32', shape: [1,3,224,224], data }
 */
import './node.js';

export { loadModel, modelInfo, SwiftFormerModel } from './model.js';
export type { ModelInfo, ModelOptions, StageInfo } from './model.js';
export {
  VARIANTS, variantConfig, emitSwiftFormer, initialWeights, remapKeys, detectKeyFormat, stageNetworkIndices,
} from './swiftformer.js';
export type { EmitOptions, Head, KeyFormat, SwiftFormerConfig } from './swiftformer.js';
export type { TokenNorm } from './attention.js';
export { readStateDict, fitWeights, inferConfig } from './weights.js';
export type { FitOptions, FitReport, ReadOptions } from './weights.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
export { readPth, stateDictFromPth, writePth } from './pth.js';
export { toOnnx, bindParams } from './graph.js';
export type { Graph } from './graph.js';
export { optimizeForInference, countMacs } from './passes.js';
export { evalTransform } from './transforms.js';
export { decodeImage, preprocess, imageFormat, MAX_IMAGE_PIXELS } from './decode.js';
export type { DecodeOptions, ImageFormat, PreprocessOptions } from './decode.js';
export type { RGBImage } from './resize.js';
export { loadLabels, parseLabels, labelsFromHfConfig, imagenetLabels, defaultLabels, labelOf } from './labels.js';
export {
  download, resolveWeights, cacheDir, cachedPath, parseHfSource, hfUrl, defaultWeights, isRemoteSource, HttpStatusError,
  HF_WEIGHT_FILES, DEFAULT_MODEL_DIR,
} from './hub.js';
export type { BundledModel, DownloadOptions, DownloadProgress, HfSource, ResolvedWeights } from './hub.js';
export { getBackend, registerBackend } from './runtime.js';
export type { Backend, Session, SessionOptions } from './runtime.js';
export { SwiftFormerError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { FloatTensor, StateDict, Tensor } from './tensor.js';
