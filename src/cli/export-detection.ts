/** `swiftformer export` of torchvision Mask R-CNN / Faster R-CNN weights (export.ts hands them here, detected by their keys). */
import { SwiftFormerError } from '../core/errors.js';
import { writeFileAtomic } from '../node/files.js';
import { DetectionModel, isMaskRcnnState } from '../models/detector.js';
import { readModelSource } from '../models/source.js';
import { intOption } from './args.js';

export const detectionUsage = `Mask R-CNN / Faster R-CNN weights (torchvision keys backbone.body, rpn.head, roi_heads; a
bare state dict or references/detection's checkpoint) export ONE graph from pixels to masks:
input 'pixel_values' (N,3,H,W) float32 RGB in [0,1], any H and W, every image of a batch the same
size (resizing to --min-size / --max-size, normalization and padding happen inside); outputs
'boxes' (D,4) x1,y1,x2,y2 in input pixels, 'scores' (D), 'labels' (D) int64, 'masks' (D,1,H,W)
probabilities (Mask R-CNN), 'batch_index' (D) int64: the detections of all images, flattened,
by image and then by descending score (torchvision's up to 100 per image above 0.05).
  --min-size     short side images are resized to (default 800)
  --max-size     long side limit (default 1333)
  With --triton the repository entry has max_batch_size 0 (the outputs are not per image).`;

/**
 * The ONNX bytes of `values.weights` if they are torchvision detector weights (written to --onnx
 * when given); undefined (nothing done) otherwise.
 */
export async function tryDetectionExport(values: Record<string, string | undefined>, flags: ReadonlySet<string>): Promise<Uint8Array | undefined> {
  const sizes = ['min-size', 'max-size'] as const;
  if (!values.weights) {
    for (const option of sizes) if (values[option] !== undefined) throw new SwiftFormerError('BAD_ARGUMENT', `--${option} goes with Mask R-CNN (detection) weights`);
    return undefined;
  }
  const source = await readModelSource(values.weights, values.entry);
  if (!isMaskRcnnState(source.state.keys())) {
    for (const option of sizes) if (values[option] !== undefined) throw new SwiftFormerError('BAD_ARGUMENT', `--${option} goes with Mask R-CNN (detection) weights`);
    return undefined;
  }
  for (const option of ['int8', 'head', 'calibrate', 'size', 'output', 'num-classes', 'no-strict'] as const) {
    if (values[option] !== undefined || flags.has(option)) throw new SwiftFormerError('BAD_ARGUMENT', `--${option} does not apply to Mask R-CNN weights`);
  }
  if (values.triton) {
    if (values['max-batch'] !== undefined && values['max-batch'] !== '0') {
      throw new SwiftFormerError('BAD_ARGUMENT', `the detection graph's outputs are flattened over the batch: --max-batch must be 0, got '${values['max-batch']}'`);
    }
    values['max-batch'] = '0';
  }
  const minSize = intOption(values['min-size'], 'min-size');
  const maxSize = intOption(values['max-size'], 'max-size');
  const model = await DetectionModel.fromSource(source, {
    ...(values.attention ? { attention: values.attention as 'l2' | 'softmax' } : {}),
    settings: { transform: { ...(minSize !== undefined ? { minSize } : {}), ...(maxSize !== undefined ? { maxSize } : {}) } },
  });
  const onnx = model.toOnnx();
  await model.release();
  if (values.onnx) {
    await writeFileAtomic(values.onnx, onnx);
    const t = model.config.settings.transform;
    const what = model.hasMasks ? 'Mask R-CNN' : 'Faster R-CNN';
    console.error(`wrote ${values.onnx} (${(onnx.length / 1e6).toFixed(1)} MB): ${what}, ${model.numClasses} classes, images resized to ${t.minSize} / ${t.maxSize} inside the graph`);
  }
  return onnx;
}
