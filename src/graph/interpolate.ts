/**
 * torch.nn.functional.interpolate's index rules on one axis, as sparse rows of weights: which
 * input samples an output sample reads, and with what weight. The ONNX Resize attributes that
 * reproduce them are GraphBuilder.resize's; the same rows give Resize's gradient (their transpose) and
 * the post-processing of segmentation logits (two resizes composed into one).
 *
 * - 'nearest' (torch's legacy nearest, not 'nearest-exact'): src = min(floor(dst * in / out), in - 1).
 *   ONNX: coordinate_transformation_mode 'asymmetric', nearest_mode 'floor'.
 * - 'bilinear' with align_corners=False: src = (dst + 0.5) * in / out - 0.5, and torch clamps a
 *   negative src to 0 (aten's area_pixel_compute_source_index); the right neighbour is clamped to
 *   in - 1. ONNX 'half_pixel' leaves src negative, but ONNX Runtime's linear Resize clamps the
 *   coordinate into [0, in - 1] before taking neighbours, which is the same thing; 'pytorch_half_pixel'
 *   differs from it only when out = 1. Checked against PyTorch on the Semantic FPN fixtures.
 */
import type { Attr } from './graph.js';

export type InterpolationMode = 'nearest' | 'bilinear';

/** One output sample: the input indices it reads and their weights (summing to 1). */
export interface Taps { index: number[]; weight: number[] }

/** The taps of every output sample of an axis resized from `inSize` to `outSize`. */
export function axisTaps(inSize: number, outSize: number, mode: InterpolationMode): Taps[] {
  const scale = inSize / outSize;
  return Array.from({ length: outSize }, (_, dst) => {
    if (mode === 'nearest') return { index: [Math.min(Math.floor(dst * scale), inSize - 1)], weight: [1] };
    const src = Math.max(0, (dst + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = src - i0;
    return i0 === i1 ? { index: [i0], weight: [1] } : { index: [i0, i1], weight: [1 - l1, l1] };
  });
}

/** The taps of `outer` applied after `inner` (the first resize's output is the second's input). */
export function composeTaps(inner: Taps[], outer: Taps[]): Taps[] {
  return outer.map((o) => {
    const acc = new Map<number, number>();
    o.index.forEach((mid, k) => {
      const t = inner[mid]!;
      t.index.forEach((i, j) => acc.set(i, (acc.get(i) ?? 0) + o.weight[k]! * t.weight[j]!));
    });
    const index = [...acc.keys()].sort((a, b) => a - b);
    return { index, weight: index.map((i) => acc.get(i)!) };
  });
}

/** The dense (out x in) matrix of an axis resize, row-major. */
export function interpolationMatrix(inSize: number, outSize: number, mode: InterpolationMode): Float32Array {
  const m = new Float32Array(outSize * inSize);
  axisTaps(inSize, outSize, mode).forEach((t, dst) => t.index.forEach((i, k) => { m[dst * inSize + i]! += t.weight[k]!; }));
  return m;
}

/** Its transpose, (in x out). */
export function transposedInterpolationMatrix(inSize: number, outSize: number, mode: InterpolationMode): Float32Array {
  const m = new Float32Array(inSize * outSize);
  axisTaps(inSize, outSize, mode).forEach((t, dst) => t.index.forEach((i, k) => { m[i * outSize + dst]! += t.weight[k]!; }));
  return m;
}

/** The mode a Resize node was emitted with (see resizeAttrs). */
export function resizeModeOf(attrs: Record<string, Attr>): InterpolationMode {
  const mode = attrs.mode;
  return mode?.kind === 'string' && mode.value === 'linear' ? 'bilinear' : 'nearest';
}
