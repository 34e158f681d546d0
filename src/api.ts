/**
 * The platform-neutral API: everything both entries (index.ts for Node, browser.ts) export.
 * Nothing here imports a node: module or a particular ONNX Runtime build.
 */
export { loadSwiftFormer, modelInfo, SwiftFormerModel, checkModelOptions } from './models/model.js';
export { loadModel } from './models/load.js';
export type { Model, LoadOptions } from './models/load.js';
export { denseTaskOf } from './models/families.js';
export { readModelSource } from './models/source.js';
export type { ModelSource } from './models/source.js';
export type { ModelInfo, ModelOptions, StageInfo, SwiftFormerId, VitId } from './models/model.js';
export {
  VARIANTS, variantConfig, emitSwiftFormer, initialWeights, remapKeys, detectKeyFormat, stageNetworkIndices,
} from './models/swiftformer.js';
export type { EmitOptions, Head, KeyFormat, SwiftFormerConfig } from './models/swiftformer.js';
export {
  SegmentationModel, loadSemanticFpn, isSemanticFpnState, mmsegMeta, readSegmentationWeights, defaultPalette, classAreas,
} from './models/segmentation.js';
export type { Segmentation, SegmentationMeta, SegmentationOptions, SegmentationOutput, ClassArea, ClassMask } from './models/segmentation.js';
export {
  emitSemanticFpn, semanticFpnConfig, inferSemanticFpnConfig, initialSemanticFpnWeights, remapSemanticFpnKeys, DEFAULT_SCALE, IGNORE_INDEX,
} from './models/semfpn.js';
export type { SemanticFpnConfig, SemanticFpnEmitOptions } from './models/semfpn.js';
export { segmentationInput, MMSEG_NORMALIZATION } from './preprocess/segmentation.js';
export type { SegmentationInput } from './preprocess/segmentation.js';
export { cvResizeLinear, rescaleSize } from './preprocess/cv-resize.js';
export { overlay, colorize } from './draw/overlay.js';
export { drawDetections, classColor } from './draw/detections.js';
export type { DrawnDetection, DetectionPictureOptions } from './draw/detections.js';
export type { OverlayOptions } from './draw/overlay.js';
export { fastformerAttention, multiHeadSelfAttention, ATTENTION_TYPES } from './models/attention.js';
export type { AttentionType, TokenNorm } from './models/attention.js';
export { emitVit, vitInfo, vitConfig, VIT_VARIANTS, initialVitWeights } from './models/vit.js';
export type { VitConfig, VitInfo, VitAttention } from './models/vit.js';
export { fitWeights, inferConfig } from './models/fit.js';
export type { FitOptions, FitReport } from './models/fit.js';
export { DetectionModel, binaryMask } from './models/detector.js';
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
export { readCard, cardMetadata, describePreprocessing, inputOptions, CARD_KEYS } from './models/card.js';
export type { ModelCard, Task, RGB } from './models/card.js';
export { softmax, topK, predictions, checkFiniteLogits } from './models/classify.js';
export type { Prediction } from './models/classify.js';
export type { RGBImage } from './preprocess/resize.js';
export { loadLabels, parseLabels, labelsFromHfConfig, imagenetLabels, cocoLabels, defaultLabels, labelOf, resolveLabels } from './models/labels.js';
export type { LabelSources } from './models/labels.js';
export { getBackend, registerBackend } from './runtime/runtime.js';
export type { Backend, Session, SessionOptions } from './runtime/runtime.js';
export { SwiftFormerError } from './core/errors.js';
export type { ErrorCode } from './core/errors.js';
export type { FloatTensor, StateDict, Tensor } from './core/tensor.js';
export * from './metrics/index.js';
