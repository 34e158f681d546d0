import { writeFileAtomic } from '../node/files.js';
import { SwiftFormerError } from '../core/errors.js';
import { inputBatches, limitDataset } from '../data/dataset.js';
import { openTrainingData } from '../node/datasets.js';
import { inputFor } from '../preprocess/transforms.js';
import { toOnnx } from '../graph/graph.js';
import { loadModel, type SwiftFormerModel } from '../models/model.js';
import { quantizeStatic } from '../graph/quantize.js';
import { describePreprocessing, inputOptions } from '../models/card.js';
import type { RGBImage } from '../preprocess/resize.js';
import { choice, intOption, parse, usageError } from './args.js';

export const usage = `Usage: swiftformer export --onnx <out.onnx> [--model <id>] [--weights <file>] [options]

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
  --int8         static INT8 quantization (QDQ: int8 per-channel weights, uint8 activations)
  --calibrate    with --int8: images to calibrate activation ranges on: fashion-mnist, an IDX
                 directory or an ImageFolder (its train split); preprocessed as the model expects
  --calibration-images  how many images, spread over the set (default 512)`;

export async function exportCommand(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    onnx: { type: 'string' }, model: { type: 'string' }, weights: { type: 'string' }, entry: { type: 'string' },
    attention: { type: 'string' }, head: { type: 'string' }, size: { type: 'string' }, 'num-classes': { type: 'string' },
    'no-strict': { type: 'boolean' }, int8: { type: 'boolean' }, calibrate: { type: 'string' }, 'calibration-images': { type: 'string' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  if (!values.onnx) throw usageError(usage, '--onnx <out.onnx> is required');
  const attention = choice(values.attention, 'attention', ['l2', 'softmax'] as const);
  const head = choice(values.head, 'head', ['classifier', 'features'] as const);
  const numClasses = intOption(values['num-classes'], 'num-classes', 0);
  const explicitSize = intOption(values.size, 'size');
  if (flags.has('int8') && !values.calibrate) throw new SwiftFormerError('BAD_ARGUMENT', '--int8 needs --calibrate <data>: activation ranges come from real images');
  if (values.calibrate && !flags.has('int8')) throw new SwiftFormerError('BAD_ARGUMENT', '--calibrate goes with --int8');
  const model = await loadModel({
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
  const bytes = flags.has('int8')
    ? await int8Onnx(model, size, values.calibrate!, intOption(values['calibration-images'], 'calibration-images') ?? 512)
    : model.toOnnx(size);
  await writeFileAtomic(values.onnx, bytes);
  const source = values.weights ? `${values.weights} (${model.report?.format} keys, ${model.config.attention} attention)` : 'random initialization';
  console.error(`wrote ${values.onnx} (${(bytes.length / 1e6).toFixed(1)} MB) from ${source}`);
}

/** Calibrates on `count` images of `data` (train split, evenly spread) and quantizes. */
async function int8Onnx(model: SwiftFormerModel, size: number, data: string, count: number): Promise<Uint8Array> {
  const { train } = await openTrainingData(data);
  const images = limitDataset(train, count);
  const input = inputOptions(model.card, size);
  const transform = (image: RGBImage) => inputFor(image, input);
  console.error(`calibrating on ${images.length} images of ${train.name}`);
  const { graph } = await quantizeStatic(model.graph(size), inputBatches(images, transform, 32));
  return toOnnx(graph, { ...model.onnxMetadata(), 'swiftformer.int8': 'qdq' });
}
