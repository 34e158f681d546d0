import { writeFileAtomic } from '../files.js';
import { SwiftFormerError } from '../errors.js';
import { loadModel } from '../model.js';
import { choice, intOption, parse } from './args.js';

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
  --no-strict    load the weights that fit, initialize the rest`;

export async function exportCommand(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    onnx: { type: 'string' }, model: { type: 'string' }, weights: { type: 'string' }, entry: { type: 'string' },
    attention: { type: 'string' }, head: { type: 'string' }, size: { type: 'string' }, 'num-classes': { type: 'string' },
    'no-strict': { type: 'boolean' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  if (!values.onnx) throw new SwiftFormerError('BAD_ARGUMENT', `--onnx <out.onnx> is required\n\n${usage}`);
  const attention = choice(values.attention, 'attention', ['l2', 'softmax'] as const);
  const head = choice(values.head, 'head', ['classifier', 'features'] as const);
  const numClasses = intOption(values['num-classes'], 'num-classes', 0);
  const size = intOption(values.size, 'size') ?? 224;
  const model = await loadModel({
    ...(values.model ? { model: values.model } : {}),
    ...(values.weights ? { weights: values.weights } : {}),
    ...(values.entry ? { entry: values.entry } : {}),
    ...(attention ? { attention } : {}),
    ...(head ? { head } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    strict: !flags.has('no-strict'),
  });
  const bytes = model.toOnnx(size);
  await writeFileAtomic(values.onnx, bytes);
  const source = values.weights ? `${values.weights} (${model.report?.format} keys, ${model.config.attention} attention)` : 'random initialization';
  console.error(`wrote ${values.onnx} (${(bytes.length / 1e6).toFixed(1)} MB) from ${source}`);
}
