import { basename } from 'node:path';
import { writeFileAtomic } from '../node/files.js';
import { SwiftFormerError } from '../core/errors.js';
import { inputBatches, limitDataset } from '../data/dataset.js';
import { openTrainingData } from '../node/datasets.js';
import { inputFor } from '../preprocess/transforms.js';
import { toOnnx } from '../graph/graph.js';
import { loadSwiftFormer, type SwiftFormerModel } from '../models/model.js';
import { quantizeStatic, type QuantizeOptions } from '../graph/quantize.js';
import type { FloatTensor } from '../core/tensor.js';
import { describeCpu, fullRangeWeights, int8Outlook } from '../measure/cpu.js';
import { localCpu } from './machine.js';
import { describePreprocessing, inputOptions } from '../models/card.js';
import type { RGBImage } from '../preprocess/resize.js';
import { readSource } from '../core/io.js';
import { onnxSignature } from '../serve/onnx.js';
import { writeTritonModel } from '../serve/triton.js';
import { choice, intOption, parse, usageError } from './args.js';
import { segmentationUsage, trySegmentationExport } from './export-segmentation.js';
import { detectionUsage, tryDetectionExport } from './export-detection.js';

export const usage = `Usage: swiftformer export --onnx <out.onnx> | --triton <dir> [--model <id>] [--weights <file>] [options]

Writes the eval graph (BatchNorm and layer scales folded, dynamic batch) as ONNX.
Input 'pixel_values' (N,3,H,W) float32; output 'logits' (head and dist_head averaged),
or 'features0'..'features3' with --head features.
  --model        xs | s | l1 | l3 (default: read off --weights, else xs)
  --weights      .pth or .safetensors; official, Hugging Face or timm keys (default: random init)
  --entry        model | model_ema, for full training checkpoints (default model)
  --attention    l2 | softmax (default: follows the weights' origin)
  --head         classifier | features
  --size         input height and width, a multiple of 32 (default 224)
  --num-classes  class count (random init, or with --no-strict to drop a mismatched head)
  --no-strict    load the weights that fit, initialize the rest
  --int8         static INT8 quantization (QDQ: int8 per-channel weights, uint8 activations);
                 says at the end whether INT8 was measured faster than fp32 on a processor like this one
  --calibrate    with --int8: images to calibrate activation ranges on: fashion-mnist, an IDX
                 directory or an ImageFolder (its train split); preprocessed as the model expects
  --calibration-images  how many images, spread over the set (default 512)
  --full-range-weights  with --int8: weights in +-127 instead of +-63, for processors with VNNI, AMX
                 or ARM dot products only (AVX2 kernels saturate on them)

Triton / KServe model repository (both --onnx and --triton may be given):
  --triton       write DIR/NAME/config.pbtxt (platform onnxruntime_onnx, inputs and outputs read
                 off the ONNX graph) and DIR/NAME/1/model.onnx; with --weights file.onnx, that
                 exported file as it is (e.g. an INT8 export)
  --name         the model's name in the repository (default: the weights' file name, else the model id)
  --max-batch    max_batch_size (default 16; 0: no batch axis)
  --max-delay-ms dynamic_batching's max_queue_delay_microseconds, in ms (default 5)

${segmentationUsage}

${detectionUsage}`;

export async function exportCommand(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    onnx: { type: 'string' }, model: { type: 'string' }, weights: { type: 'string' }, entry: { type: 'string' },
    attention: { type: 'string' }, head: { type: 'string' }, size: { type: 'string' }, 'num-classes': { type: 'string' },
    'no-strict': { type: 'boolean' }, int8: { type: 'boolean' }, calibrate: { type: 'string' }, 'calibration-images': { type: 'string' },
    triton: { type: 'string' }, name: { type: 'string' }, 'max-batch': { type: 'string' }, 'max-delay-ms': { type: 'string' },
    output: { type: 'string' },
    'full-range-weights': { type: 'boolean' }, 'min-size': { type: 'string' }, 'max-size': { type: 'string' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  if (!values.onnx && !values.triton) throw usageError(usage, '--onnx <out.onnx> is required (or --triton <dir>)');
  if (values.triton && values.weights?.toLowerCase().endsWith('.onnx')) return tritonRepository(values, await readSource(values.weights));
  const segmentation = await trySegmentationExport(values, flags);
  if (segmentation) return values.triton ? tritonRepository(values, segmentation) : undefined;
  const detection = await tryDetectionExport(values, flags);
  if (detection) return values.triton ? tritonRepository(values, detection) : undefined;
  if (values.output !== undefined) throw new SwiftFormerError('BAD_ARGUMENT', '--output goes with Semantic FPN (segmentation) weights');
  const attention = choice(values.attention, 'attention', ['l2', 'softmax'] as const);
  const head = choice(values.head, 'head', ['classifier', 'features'] as const);
  const numClasses = intOption(values['num-classes'], 'num-classes', 0);
  const explicitSize = intOption(values.size, 'size');
  if (flags.has('int8') && !values.calibrate) throw new SwiftFormerError('BAD_ARGUMENT', '--int8 needs --calibrate <data>: activation ranges come from real images');
  if (values.calibrate && !flags.has('int8')) throw new SwiftFormerError('BAD_ARGUMENT', '--calibrate goes with --int8');
  if (flags.has('full-range-weights') && !flags.has('int8')) throw new SwiftFormerError('BAD_ARGUMENT', '--full-range-weights goes with --int8');
  const model = await loadSwiftFormer({
    ...(values.model ? { model: values.model } : {}),
    ...(values.weights ? { weights: values.weights } : {}),
    ...(values.entry ? { entry: values.entry } : {}),
    ...(attention ? { attention } : {}),
    ...(head ? { head } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    strict: !flags.has('no-strict'),
  });
  const recorded = model.card.preprocessing;
  const size = explicitSize ?? model.inputSize[0];
  if (recorded && explicitSize !== undefined && explicitSize !== recorded.inputSize[0]) {
    if (flags.has('int8')) throw new SwiftFormerError('BAD_ARGUMENT', `the model records its input pipeline (${describePreprocessing(recorded)}): --int8 calibrates with it, so leave out --size`);
    console.error(`note: the model records ${describePreprocessing(recorded)} inputs; this export takes ${size}x${size}`);
  }
  const weightMax: 63 | 127 = flags.has('full-range-weights') ? 127 : 63;
  const bytes = flags.has('int8')
    ? await int8Onnx(model, size, await calibrationBatches(model, size, values.calibrate!, intOption(values['calibration-images'], 'calibration-images') ?? 512), { weightMax })
    : model.toOnnx(size);
  const source = values.weights ? `${values.weights} (${model.report?.format} keys, ${model.config.attention} attention)` : 'random initialization';
  if (values.onnx) {
    await writeFileAtomic(values.onnx, bytes);
    console.error(`wrote ${values.onnx} (${(bytes.length / 1e6).toFixed(1)} MB) from ${source}`);
  }
  if (flags.has('int8')) int8Advice(size, weightMax);
  if (values.triton) await tritonRepository(values, bytes);
}

/** export --triton: the model as a Triton repository entry, its config derived from the ONNX graph. */
async function tritonRepository(values: Record<string, string | undefined>, onnx: Uint8Array): Promise<void> {
  const stem = values.weights ? basename(values.weights).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[_.-]+/, '') : '';
  const name = values.name ?? (stem || values.model || 'xs');
  const maxBatch = intOption(values['max-batch'], 'max-batch', 0) ?? 16;
  const maxDelayMicroseconds = Math.round((intOption(values['max-delay-ms'], 'max-delay-ms', 0) ?? 5) * 1000);
  const files = await writeTritonModel(values.triton!, name, onnx, onnxSignature(onnx, values.weights ?? 'the model'), { maxBatch, maxDelayMicroseconds });
  console.error(`wrote the Triton model '${name}': ${files.join(', ')}`);
}

/** What INT8 is expected to gain on this processor, and a warning when its kernels would saturate. */
function int8Advice(size: number, weightMax: number): void {
  const cpu = localCpu();
  console.error(int8Outlook(cpu, size).message);
  if (weightMax === 127 && !fullRangeWeights(cpu.int8Path)) {
    console.error(`warning: full-range weights saturate in the INT8 kernels of this processor (${describeCpu(cpu)}): run this file on a processor with VNNI, AMX or ARM dot products`);
  }
}

/** `count` images of `data` (train split, evenly spread) as model inputs, in batches of 32. */
async function calibrationBatches(model: SwiftFormerModel, size: number, data: string, count: number): Promise<AsyncIterable<FloatTensor>> {
  const { train } = await openTrainingData(data);
  const images = limitDataset(train, count);
  const input = inputOptions(model.card, size);
  const transform = (image: RGBImage) => inputFor(image, input);
  console.error(`calibrating on ${images.length} images of ${train.name}`);
  return inputBatches(images, transform, 32);
}

/** The INT8 ONNX file of `model` at `size`, calibrated on `batches` (model inputs), with the model's metadata. */
export async function int8Onnx(
  model: SwiftFormerModel, size: number, batches: Iterable<FloatTensor> | AsyncIterable<FloatTensor>, options: QuantizeOptions = {},
): Promise<Uint8Array> {
  const { graph } = await quantizeStatic(model.graph(size), batches, options);
  return toOnnx(graph, { ...model.onnxMetadata(), 'swiftformer.int8': options.format ?? 'qdq', 'swiftformer.int8.weight_max': String(options.weightMax ?? 63) });
}
