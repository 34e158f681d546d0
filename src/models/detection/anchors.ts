/**
 * torchvision's AnchorGenerator: per level, a few cell anchors centred on 0 (one per size and
 * aspect ratio), shifted to every position of the level's grid. The cell anchors are constants
 * computed here with torchvision's float32 arithmetic; the shifts depend on the padded batch size
 * and are built in the graph.
 */
import type { GraphBuilder } from '../../graph/graph.js';
import {
  arith, cast, concat, dimOf, expand, range, reshapeTo, shapeOf, symbolic, unsqueeze,
} from '../../graph/ops.js';
import { roundHalfEven } from '../../preprocess/transforms.js';

/**
 * AnchorGenerator.generate_anchors: for each aspect ratio r (height / width) and size s,
 * w = s / sqrt(r), h = s * sqrt(r) (float32), anchor (-w, -h, w, h) / 2 rounded half to even.
 * Order: ratios outer, sizes inner. Returns A x 4 values.
 */
export function cellAnchors(sizes: readonly number[], aspectRatios: readonly number[]): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(sizes.length * aspectRatios.length * 4);
  let i = 0;
  for (const ratio of aspectRatios) {
    const hRatio = f(Math.sqrt(f(ratio)));
    const wRatio = f(1 / hRatio);
    for (const size of sizes) {
      const w = f(wRatio * f(size));
      const h = f(hRatio * f(size));
      out.set([-w, -h, w, h].map((v) => roundHalfEven(v / 2)), i);
      i += 4;
    }
  }
  return out;
}

/**
 * The anchors of one level: `features` (N, C, h, w), `stride` (2 int64 scalars: padded size //
 * grid size, per axis), cell anchors A x 4. Returns (h*w*A, 4) float, positions row-major and the
 * cell anchors innermost, as the RPN head's outputs are flattened.
 */
export function gridAnchors(b: GraphBuilder, features: string, stride: [string, string], cell: Float32Array): string {
  const a = cell.length / 4;
  const h = dimOf(b, features, 2);
  const w = dimOf(b, features, 3);
  // int64 shifts (arange * stride), then float32: exact below 2^24.
  const shiftsX = cast(b, arith(b, 'Mul', range(b, 0, w, 1, 'w'), stride[1]), 'float32');
  const shiftsY = cast(b, arith(b, 'Mul', range(b, 0, h, 1, 'h'), stride[0]), 'float32');
  const grid = concat(b, [unsqueeze(b, h, [0]), unsqueeze(b, w, [0])], 0);
  const hw = symbolic('hw');
  const x = reshapeTo(b, expand(b, reshapeTo(b, shiftsX, [1, -1], [1, 'w']), grid, ['h', 'w']), [-1, 1], [hw, 1]);
  const y = reshapeTo(b, expand(b, reshapeTo(b, shiftsY, [-1, 1], ['h', 1]), grid, ['h', 'w']), [-1, 1], [hw, 1]);
  const shifts = unsqueeze(b, concat(b, [x, y, x, y], 1), [1]);
  const anchors = arith(b, 'Add', shifts, b.constant(cell, [1, a, 4]));
  return reshapeTo(b, anchors, [-1, 4], [symbolic('anchors'), 4]);
}

/** Stride of a level: (padded height // grid height, padded width // grid width), int64 scalars. */
export function levelStride(b: GraphBuilder, images: string, features: string): [string, string] {
  return [
    arith(b, 'Div', dimOf(b, images, 2), dimOf(b, features, 2)),
    arith(b, 'Div', dimOf(b, images, 3), dimOf(b, features, 3)),
  ];
}

/** Number of anchors of a level as an int64 vector [h*w*A] (for TopK's k). */
export function anchorCount(b: GraphBuilder, anchors: string): string {
  return shapeOf(b, anchors, 0, 1);
}
