/** `swiftformer export` of Semantic FPN weights (export.ts hands them here, detected by their keys). */
import { SwiftFormerError } from '../core/errors.js';
import { readWeightsSource } from '../core/io.js';
import { writeFileAtomic } from '../node/files.js';
import { isSemanticFpnState, loadSemanticFpn, readSegmentationWeights } from '../models/segmentation.js';
import { inputHW } from '../models/swiftformer.js';
import { choice, intOption } from './args.js';

export const segmentationUsage = `Semantic FPN weights (mmsegmentation checkpoints, detected by their keys) export the
segmentation graph: input 'pixel_values' (N,3,H,W) float32, normalized as mmseg does (mean
123.675/116.28/103.53, std 58.395/57.12/57.375 on 0..255 RGB); output 'logits' (N,K,H,W) at the
input resolution, or with --output mask the argmax 'mask' (N,H,W) uint8 (uint16 above 256 classes).
  --size         input height and width: S or H,W, multiples of 32 (default 512)
  --output       logits | mask`;

/**
 * The ONNX bytes of `values.weights` if they are Semantic FPN weights (written to --onnx when
 * given); undefined (nothing done) otherwise.
 */
export async function trySegmentationExport(values: Record<string, string | undefined>, flags: ReadonlySet<string>): Promise<Uint8Array | undefined> {
  if (!values.weights) return undefined;
  const { bytes } = await readWeightsSource(values.weights);
  const { state, meta } = await readSegmentationWeights(bytes, values.weights);
  if (!isSemanticFpnState(state.keys())) return undefined;
  for (const option of ['int8', 'head', 'entry', 'calibrate'] as const) {
    if (values[option] !== undefined || flags.has(option)) throw new SwiftFormerError('BAD_ARGUMENT', `--${option} does not apply to Semantic FPN weights`);
  }
  const output = choice(values.output, 'output', ['logits', 'mask'] as const) ?? 'logits';
  const numClasses = intOption(values['num-classes'], 'num-classes');
  const model = loadSemanticFpn(state, meta, {
    ...(values.model ? { model: values.model } : {}),
    ...(values.attention ? { attention: choice(values.attention, 'attention', ['l2', 'softmax'] as const)! } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    strict: !flags.has('no-strict'),
  }, values.weights);
  const size = parseSize(values.size);
  const onnx = model.toOnnx(size, output);
  if (values.onnx) {
    await writeFileAtomic(values.onnx, onnx);
    const what = output === 'mask' ? `mask (N,${size[0]},${size[1]}) ${model.numClasses <= 256 ? 'uint8' : 'uint16'}` : `logits (N,${model.numClasses},${size[0]},${size[1]})`;
    console.error(`wrote ${values.onnx} (${(onnx.length / 1e6).toFixed(1)} MB): Semantic FPN, ${model.numClasses} classes, ${what} from ${values.weights}`);
  }
  return onnx;
}

function parseSize(value: string | undefined): [number, number] {
  if (value === undefined) return [512, 512];
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length > 2 || parts.some((p) => !Number.isInteger(p))) throw new SwiftFormerError('BAD_ARGUMENT', `--size must be S or H,W, got '${value}'`);
  return inputHW(parts.length === 1 ? parts[0]! : [parts[0]!, parts[1]!]);
}
