/**
 * The torch.nn modules every model here is made of, emitted by state_dict key: convolutions,
 * BatchNorm, GELU, LayerNorm. What differs between an inference and a training graph (BatchNorm on
 * running or batch statistics, GELU and LayerNorm as primitives or as composites with closed-form
 * gradients) is decided by the explicit `Emit` context, never by hidden builder state.
 */
import { GraphBuilder } from '../graph/graph.js';
import { channelAxis, pointwise, sameAs, spatialConv, type Maps } from '../graph/layout.js';

/** One emission: the builder, and whether it builds a training graph. */
export interface Emit {
  readonly b: GraphBuilder;
  readonly train: boolean;
}

export function emitContext(train: boolean, b: GraphBuilder = new GraphBuilder()): Emit {
  return { b, train };
}

/**
 * BatchNorm2d by key over the maps' channels: running statistics in inference graphs, batch
 * statistics in training graphs (the builder records them for the running-statistics update).
 */
export function batchNorm(e: Emit, x: Maps, key: string, channels: number): Maps {
  const { b } = e;
  const weight = b.param(`${key}.weight`, [channels]);
  const bias = b.param(`${key}.bias`, [channels]);
  // Running statistics are state, not inputs of the train graph, but they stay declared in both
  // modes so that the model's key set does not depend on the mode.
  const mean = b.param(`${key}.running_mean`, [channels]);
  const variance = b.param(`${key}.running_var`, [channels]);
  if (e.train) return sameAs(x, b.batchNormTrain(x.value, key, weight, bias, { channelAxis: channelAxis(x) }));
  return sameAs(x, b.batchNorm(x.value, weight, bias, mean, variance));
}

export interface ConvOptions {
  stride?: number;
  groups?: number;
  /** Padding (default k / 2, rounded down: 'same' for odd kernels). */
  pad?: number;
  /** false: no bias parameter (a conv followed by BatchNorm). Default true. */
  bias?: boolean;
  /** Per-output-channel factor (a layer scale) on a 1x1 conv's output. */
  scale?: string;
}

/** Conv2d by key (`<key>.weight`, `<key>.bias`): 1x1 convs as GEMMs in 'cnhw', spatial ones as convolutions. */
export function conv(e: Emit, x: Maps, key: string, inC: number, outC: number, k: number, opts: ConvOptions = {}): Maps {
  const { b } = e;
  const groups = opts.groups ?? 1;
  const w = b.param(`${key}.weight`, [outC, inC / groups, k, k]);
  const bias = opts.bias === false ? undefined : b.param(`${key}.bias`, [outC]);
  if (k === 1 && groups === 1 && (opts.stride ?? 1) === 1 && !opts.pad) return pointwise(b, x, w, bias, inC, outC, opts.scale);
  return spatialConv(b, x, w, bias, { stride: opts.stride ?? 1, pad: opts.pad ?? Math.floor(k / 2), groups });
}

/** GELU with erf: fused primitives for inference, a composite with a closed-form gradient for training. */
export function gelu(e: Emit, x: Maps): Maps {
  return sameAs(x, e.b.gelu(x.value, { composite: e.train }));
}

export function relu(e: Emit, x: Maps): Maps {
  return sameAs(x, e.b.unary('Relu', x.value));
}

/** LayerNorm by key over every token's features (the maps' channel axis). */
export function layerNorm(e: Emit, x: Maps, key: string, dim: number, epsilon = 1e-6): Maps {
  const { b } = e;
  const y = b.layerNorm(x.value, b.param(`${key}.weight`, [dim]), b.param(`${key}.bias`, [dim]), { axis: channelAxis(x), epsilon, composite: e.train });
  return sameAs(x, y);
}
