import { loadSwiftFormer, modelInfo } from '../models/model.js';
import { formatShape } from '../core/tensor.js';
import { formatCount, intOption, parse } from './args.js';

export const usage = `Usage: swiftformer info [--model <id>] [--weights <file>] [--size N] [--json]

Prints parameters, MACs and per-stage output shapes (from the graph the model emits).
  --model     xs, s, l1, l3 (SwiftFormer), vit-b16, vit-b32 (ViT), fvit-b16, fvit-b32
              (ViT with Fastformer attention); default: read off --weights, else xs
  --weights   checkpoint (.pth or .safetensors) to describe instead of a variant
  --size      input height and width, a multiple of 32 (ViT: of the patch size; default 224)
  --json      one JSON object: { model, params, macs, inputSize, stages, config }
              (ViT: { model, params, macs, attentionMacs, inputSize, tokens, config })`;

export async function info(argv: string[]): Promise<void> {
  const { values, flags } = parse(argv, {
    model: { type: 'string' }, weights: { type: 'string' }, size: { type: 'string' }, json: { type: 'boolean' },
  }, usage);
  if (flags.has('help')) return void console.log(usage);
  const size = intOption(values.size, 'size') ?? 224;
  const config = values.weights
    ? (await loadSwiftFormer({ weights: values.weights, ...(values.model ? { model: values.model } : {}) })).config
    : values.model ?? 'xs';
  const result = modelInfo(config, size);
  const name = values.model ?? (values.weights ? 'custom' : 'xs');
  if ('tokens' in result) {
    if (flags.has('json')) return void console.log(JSON.stringify({ model: name, ...result }, null, 2));
    const { embedDim, patchSize, attention } = result.config;
    console.log(`${name} (${attention === 'fastformer' ? 'Fastformer attention' : 'multi-head self-attention'}, patch ${patchSize}) at ${size}x${size}`);
    console.log(`  params  ${formatCount(result.params, 'M')} (${result.params.toLocaleString('en-US')})`);
    console.log(`  MACs    ${formatCount(result.macs, 'G')} (${result.macs.toLocaleString('en-US')})`);
    console.log(`          ${formatCount(result.macs - result.attentionMacs, 'G')} in Conv/Linear layers, ${formatCount(result.attentionMacs, 'G')} in attention products`);
    console.log(`  tokens  ${result.tokens} x ${embedDim}`);
    return;
  }
  if (flags.has('json')) return void console.log(JSON.stringify({ model: name, ...result }, null, 2));
  console.log(`SwiftFormer ${name} at ${size}x${size}`);
  console.log(`  params  ${formatCount(result.params, 'M')} (${result.params.toLocaleString('en-US')}, distillation head included)`);
  console.log(`  MACs    ${formatCount(result.macs, 'G')} (${result.macs.toLocaleString('en-US')})`);
  for (const s of result.stages) console.log(`  ${s.name}  ${formatShape(s.shape)}`);
}
