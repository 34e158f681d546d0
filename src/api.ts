/**
 * The platform-neutral API: everything both entries (index.ts for Node, browser.ts) export.
 * Nothing here imports a node: module or a particular ONNX Runtime build.
 */
export { loadModel, modelInfo, SwiftFormerModel } from './model.js';
export type { ModelInfo, ModelOptions, StageInfo, SwiftFormerId, VitId } from './model.js';
export {
  VARIANTS, variantConfig, emitSwiftFormer, initialWeights, remapKeys, detectKeyFormat, stageNetworkIndices,
} from './swiftformer.js';
export type { EmitOptions, Head, KeyFormat, SwiftFormerConfig } from './swiftformer.js';
export { fastformerAttention, multiHeadSelfAttention, ATTENTION_TYPES } from './attention.js';
export type { AttentionType, TokenNorm } from './attention.js';
export { emitVit, vitInfo, vitConfig, VIT_VARIANTS, initialVitWeights, buildVitStepGraph } from './vit.js';
export type { VitConfig, VitInfo, VitAttention } from './vit.js';
export { readStateDict, readWeights, fitWeights, inferConfig } from './weights.js';
export type { FitOptions, FitReport, ReadOptions } from './weights.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
export { readPth, stateDictFromPth, writePth } from './pth.js';
export { toOnnx, bindParams } from './graph.js';
export type { Graph } from './graph.js';
export { optimizeForInference, countMacs } from './passes.js';
export { calibrate, quantizeGraph, quantizeStatic } from './quantize.js';
export type { QuantizeOptions, Range } from './quantize.js';
export { OnnxClassifier } from './exported.js';
export type { ImageClassifier } from './exported.js';
export { evalTransform } from './transforms.js';
export type { EvalTransformOptions } from './transforms.js';
export { inputFor, modelTransform } from './augment.js';
export type { InputOptions, Normalization, Preprocessing } from './augment.js';
export { recordedLabels, recordedPreprocessing } from './recorded.js';
export type { RGBImage } from './resize.js';
export { loadLabels, parseLabels, labelsFromHfConfig, imagenetLabels, defaultLabels, labelOf } from './labels.js';
export { getBackend, registerBackend } from './runtime.js';
export type { Backend, Session, SessionOptions } from './runtime.js';
export { SwiftFormerError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { FloatTensor, StateDict, Tensor } from './tensor.js';
