/**
 * The platform-neutral API: everything both entries (index.ts for Node, browser.ts) export.
 * Nothing here imports a node: module or a particular ONNX Runtime build.
 */
export { loadModel, modelInfo, SwiftFormerModel } from './models/model.js';
export type { ModelInfo, ModelOptions, StageInfo, SwiftFormerId, VitId } from './models/model.js';
export {
  VARIANTS, variantConfig, emitSwiftFormer, initialWeights, remapKeys, detectKeyFormat, stageNetworkIndices,
} from './models/swiftformer.js';
export type { EmitOptions, Head, KeyFormat, SwiftFormerConfig } from './models/swiftformer.js';
export { fastformerAttention, multiHeadSelfAttention, ATTENTION_TYPES } from './models/attention.js';
export type { AttentionType, TokenNorm } from './models/attention.js';
export { emitVit, vitInfo, vitConfig, VIT_VARIANTS, initialVitWeights } from './models/vit.js';
export type { VitConfig, VitInfo, VitAttention } from './models/vit.js';
export { fitWeights, inferConfig } from './models/fit.js';
export type { FitOptions, FitReport } from './models/fit.js';
export { DetectionModel, loadDetectionModel, binaryMask } from './models/detector.js';
export type { Detection, DetectionMask, DetectOptions, DetectionModelOptions, RawDetections } from './models/detector.js';
export {
  isMaskRcnnState, emitMaskRcnn, maskRcnnConfig, inferMaskRcnnConfig, remapDetectionKeys, fitMaskRcnnWeights, initialMaskRcnnWeights,
} from './models/maskrcnn.js';
export type { MaskRcnnConfig, MaskRcnnEmitOptions } from './models/maskrcnn.js';
export { defaultSettings as defaultDetectionSettings, resolveSettings as resolveDetectionSettings } from './models/detection/settings.js';
export type { DetectionSettings, SettingsOverrides as DetectionSettingsOverrides } from './models/detection/settings.js';
export { resizedSize as detectionInputSize } from './models/detection/transform.js';
export { readStateDict, readWeights } from './weights/read.js';
export type { ReadOptions } from './weights/read.js';
export { readSafetensors, writeSafetensors } from './weights/safetensors.js';
export { readPth, stateDictFromPth, writePth } from './weights/pth.js';
export { toOnnx, bindParams } from './graph/graph.js';
export type { Graph } from './graph/graph.js';
export { optimizeForInference, countMacs } from './graph/passes.js';
export { calibrate, quantizeGraph, quantizeStatic } from './graph/quantize.js';
export type { QuantizeOptions, Range } from './graph/quantize.js';
export { OnnxClassifier } from './models/exported.js';
export type { ImageClassifier } from './models/exported.js';
export { evalTransform } from './preprocess/transforms.js';
export type { EvalTransformOptions } from './preprocess/transforms.js';
export { inputFor, modelTransform } from './preprocess/transforms.js';
export type { InputOptions, Normalization, Preprocessing } from './preprocess/transforms.js';
export { recordedLabels, recordedPreprocessing } from './models/recorded.js';
export type { RGBImage } from './preprocess/resize.js';
export { loadLabels, parseLabels, labelsFromHfConfig, imagenetLabels, cocoLabels, defaultLabels, labelOf } from './models/labels.js';
export { getBackend, registerBackend } from './runtime/runtime.js';
export type { Backend, Session, SessionOptions } from './runtime/runtime.js';
export { SwiftFormerError } from './core/errors.js';
export type { ErrorCode } from './core/errors.js';
export type { FloatTensor, StateDict, Tensor } from './core/tensor.js';
