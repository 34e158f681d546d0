import { loadModel, modelInfo } from '../model.js';
import { formatShape } from '../tensor.js';
import { formatCount, intOption, parse } from './args.js';

export const usage = `Usage: swiftformer info [--model <xs|s|l1|l3>] [--weights <file>] [--size N] [--json]

Prints parameters, MACs and per-stage output shapes (from the graph the model emits).
  --model     variant id (default: read off --weights, else xs)
  --weights   checkpoint (.pth or .safetensors) to describe instead of a variant
  --size      input height and width, a multiple of 32 (default 224)
  --json      one JSON object: { model, params, macs, inputSize, stages, config }`;

export async function info(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    model: { type: 'string' }, weights: { type: 'string' }, size: { type: 'string' }, json: { type: 'boolean' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  const size = intOption(values.size, 'size') ?? 224;
  const config = values.weights
    ? (await loadModel({ weights: values.weights, ...(values.model ? { model: values.model } : {}) })).config
    : values.model ?? 'xs';
  const result = modelInfo(config, size);
  const name = values.model ?? (values.weights ? 'custom' : 'xs');
  if (flags.has('json')) return void console.log(JSON.stringify({ model: name, ...result }, null, 2));
  console.log(`SwiftFormer ${name} at ${size}x${size}`);
  console.log(`  params  ${formatCount(result.params, 'M')} (${result.params.toLocaleString('en-US')}, distillation head included)`);
  console.log(`  MACs    ${formatCount(result.macs, 'G')} (${result.macs.toLocaleString('en-US')})`);
  for (const s of result.stages) console.log(`  ${s.name}  ${formatShape(s.shape)}`);
}
