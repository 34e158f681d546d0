/**
 * The training-time input pipeline of torchvision's detection references and
 * GeneralizedRCNNTransform, per image: RandomHorizontalFlip (image, boxes x -> w - x, masks), then
 * the model's transform with a short side drawn from the min-size choices (torch_choice):
 * normalize and bilinear-resize in the graph (transform.ts, torch's interpolate), boxes scaled by
 * float32 size ratios (resize_boxes), masks resized nearest (interpolate's default: source index
 * floor(dst x float32(in / out))).
 */
import type { FloatTensor } from '../core/tensor.js';
import { GraphBuilder, toOnnx } from '../graph/graph.js';
import { transformImages } from '../models/detection/transform.js';
import type { TransformSettings } from '../models/detection/settings.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';
import type { ResizedImage } from './detection-targets.js';

/** An image with its targets in its own pixels: pixels (3, height, width) RGB in [0, 1], before the transform. */
export type TrainingImage = ResizedImage;

/** RandomHorizontalFlip's flipped image: pixels and masks mirrored, boxes (w - x2, y1, w - x1, y2). */
export function flipImage(img: TrainingImage): TrainingImage {
  const { width: w, height: h } = img;
  const mirror = <T extends Float32Array | Uint8Array>(data: T, planes: number): T => {
    const out = data.slice() as T;
    for (let p = 0; p < planes; p++) {
      for (let y = 0; y < h; y++) {
        const row = (p * h + y) * w;
        for (let x = 0; x < w; x++) out[row + x] = data[row + w - 1 - x]!;
      }
    }
    return out;
  };
  const boxes = img.boxes.slice();
  for (let i = 0; i < boxes.length; i += 4) {
    boxes[i] = Math.fround(w - img.boxes[i + 2]!);
    boxes[i + 2] = Math.fround(w - img.boxes[i]!);
  }
  return { ...img, pixels: mirror(img.pixels, 3), boxes, ...(img.masks ? { masks: mirror(img.masks, img.labels.length) } : {}) };
}

/** interpolate(mode='nearest') of K masks to (outH, outW), sizes given (recompute_scale_factor). */
export function resizeMasksNearest(masks: Uint8Array, k: number, h: number, w: number, outH: number, outW: number): Uint8Array {
  const f = Math.fround;
  const index = (out: number, size: number) => {
    if (out === size) return (i: number) => i;
    const scale = f(size / out);
    return (i: number) => Math.min(Math.floor(f(i * scale)), size - 1);
  };
  const ys = Array.from({ length: outH }, (_, i) => index(outH, h)(i));
  const xs = Array.from({ length: outW }, (_, i) => index(outW, w)(i));
  const out = new Uint8Array(k * outH * outW);
  for (let j = 0; j < k; j++) {
    for (let y = 0; y < outH; y++) {
      const src = (j * h + ys[y]!) * w;
      const dst = (j * outH + y) * outW;
      for (let x = 0; x < outW; x++) out[dst + x] = masks[src + xs[x]!]!;
    }
  }
  return out;
}

/** resize_boxes: x times float32(new w / old w), y times float32(new h / old h). */
export function resizeBoxes(boxes: Float32Array, from: [number, number], to: [number, number]): Float32Array {
  const f = Math.fround;
  const ry = f(f(to[0]) / f(from[0]));
  const rx = f(f(to[1]) / f(from[1]));
  return Float32Array.from(boxes, (v, i) => f(v * (i % 2 === 0 ? rx : ry)));
}

/** The graph part of the transform, one session per short side. */
export class TrainTransform {
  private readonly sessions = new Map<number, Promise<Session>>();

  constructor(private readonly settings: TransformSettings, private readonly session: SessionOptions = {}, private readonly backend?: string) {}

  private sessionFor(minSize: number): Promise<Session> {
    let s = this.sessions.get(minSize);
    if (!s) {
      const b = new GraphBuilder();
      const batch = transformImages(b, b.input('pixel_values', [1, 3, 'height', 'width']), { ...this.settings, minSize });
      b.node('Identity', [batch.images], b.shape(batch.images), {}, 'images');
      b.output('images');
      b.node('Identity', [batch.imageSizes], b.shape(batch.imageSizes), {}, 'sizes');
      b.output('sizes', 'int64');
      s = getBackend(this.backend).createSession(toOnnx(b.graph), this.session);
      this.sessions.set(minSize, s);
    }
    return s;
  }

  /** The image normalized and resized for short side `minSize`, targets with it. */
  async apply(img: TrainingImage, minSize: number): Promise<ResizedImage> {
    const session = await this.sessionFor(minSize);
    const input: FloatTensor = { dtype: 'float32', shape: [1, 3, img.height, img.width], data: img.pixels };
    const out = await session.runTyped({ pixel_values: input });
    const sizes = out.sizes!.data as BigInt64Array;
    const [h, w] = [Number(sizes[0]), Number(sizes[1])];
    const padded = out.images!;
    const [, , ph, pw] = padded.shape as number[];
    const pixels = new Float32Array(3 * h * w);
    for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) pixels.set((padded.data as Float32Array).subarray((c * ph! + y) * pw!, (c * ph! + y) * pw! + w), (c * h + y) * w);
    const k = img.labels.length;
    return {
      pixels, height: h, width: w, boxes: resizeBoxes(img.boxes, [img.height, img.width], [h, w]), labels: img.labels,
      ...(img.masks ? { masks: resizeMasksNearest(img.masks, k, img.height, img.width, h, w) } : {}),
    };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}
