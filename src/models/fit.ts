/**
 * From a state dict (weights/read.ts) to one that fits a SwiftFormer: key remapping, config
 * inference, and the strict check that reports missing, unexpected and mis-shaped keys.
 */
import { SwiftFormerError } from '../core/errors.js';
import {
  attentionFor, paramShapes, remapKeys, validateConfig,
  type Head, type KeyFormat, type SwiftFormerConfig,
} from './swiftformer.js';
import type { TokenNorm } from './attention.js';
import { formatShape, type StateDict, type Tensor } from '../core/tensor.js';

// ---------------------------------------------------------------- config inference

function shapeOf(state: StateDict, key: string): number[] | undefined {
  return state.get(key)?.shape;
}

/**
 * Reads the architecture off official-key weights: widths from the depthwise convs, depths from
 * the block indices, attention blocks from `attn` keys, classes from the head.
 */
export function inferConfig(state: StateDict): SwiftFormerConfig {
  const blocks = new Map<number, Map<number, boolean>>();
  for (const key of state.keys()) {
    const m = /^network\.(\d+)\.(\d+)\./.exec(key);
    if (!m) continue;
    const stage = blocks.get(Number(m[1])) ?? new Map<number, boolean>();
    stage.set(Number(m[2]), (stage.get(Number(m[2])) ?? false) || key.includes('.attn.'));
    blocks.set(Number(m[1]), stage);
  }
  const stages = [...blocks.keys()].sort((a, b) => a - b);
  if (stages.length === 0) throw new SwiftFormerError('KEY_MISMATCH', 'cannot infer the architecture: the weights have no network.<stage>.<block> keys');
  const embedDims = stages.map((s) => {
    const dw = shapeOf(state, `network.${s}.0.dwconv.weight`) ?? shapeOf(state, `network.${s}.0.local_representation.dwconv.weight`);
    if (!dw) throw new SwiftFormerError('KEY_MISMATCH', `cannot infer the width of stage network.${s}: no dwconv weight`);
    return dw[0]!;
  });
  const depths = stages.map((s) => blocks.get(s)!.size);
  const vitNum = Math.min(...stages.map((s) => [...blocks.get(s)!.values()].filter(Boolean).length));
  const head = shapeOf(state, 'head.weight');
  const hidden = shapeOf(state, `network.${stages[0]}.0.pwconv1.weight`) ?? shapeOf(state, `network.${stages[0]}.0.linear.fc1.weight`);
  const downsamples = stages.slice(0, -1).map((s, i) => stages[i + 1]! - s === 2);
  const cfg: SwiftFormerConfig = {
    embedDims, depths, vitNum, downsamples,
    mlpRatio: hidden ? hidden[0]! / embedDims[0]! : 4,
    numClasses: head ? head[0]! : 0,
    distillation: state.has('dist_head.weight'),
    attention: 'l2',
  };
  validateConfig(cfg);
  return cfg;
}

/** Weights with `norm0`-style keys and no classifier are a `fork_feat` backbone. */
export function headOf(state: StateDict): Head {
  return !state.has('norm.weight') && [...state.keys()].some((k) => /^norm\d+\./.test(k)) ? 'features' : 'classifier';
}

// ---------------------------------------------------------------- fitting

export interface FitReport {
  format: KeyFormat;
  attention: TokenNorm;
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; checkpoint: number[]; model: number[] }[];
}

export interface FitOptions {
  /** Override the attention rule the key format implies. */
  attention?: TokenNorm;
  /** false: load what fits and skip the rest (e.g. a head of another class count). Default true. */
  strict?: boolean;
  head?: Head;
  name?: string;
  /** Load weights that hold NaN or infinity (refused by default). */
  allowNonFinite?: boolean;
}

/** Shapes equal up to size-1 axes ((C,1,1) vs (C)), as torch's layouts differ only there. */
function shapesFit(a: readonly number[], b: readonly number[]): boolean {
  const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1).join();
  return squeeze(a) === squeeze(b);
}

/** num_batches_tracked is bookkeeping: accepted beside a known BatchNorm, never required. */
function isOptionalKey(key: string, params: ReadonlyMap<string, number[]>): boolean {
  const m = /^(.*)\.num_batches_tracked$/.exec(key);
  return !!m && params.has(`${m[1]}.running_mean`);
}

/** A state dict renamed to official keys, once: what config inference and fitting both read. */
export interface Renamed {
  format: KeyFormat;
  /** The source's tensors under official keys. */
  state: StateDict;
  /** Source keys no rule of the format matched. */
  unmatched: string[];
}

/** Renames a state dict in any supported key format to the official names (see remapKeys). */
export function toOfficialKeys(source: StateDict, cfg?: SwiftFormerConfig): Renamed {
  const remap = remapKeys(source.keys(), cfg);
  const state: StateDict = new Map([...remap.mapped].map(([from, to]) => [to, source.get(from)!]));
  return { format: remap.format, state, unmatched: remap.unmatched };
}

/**
 * Renames a state dict to official keys and checks it against the model `cfg` describes.
 * Strict (default): any missing, unexpected or mis-shaped key is one error listing them by name.
 */
export function fitWeights(source: StateDict, cfg: SwiftFormerConfig, options: FitOptions = {}): { state: StateDict; config: SwiftFormerConfig; report: FitReport } {
  return fitRenamed(toOfficialKeys(source, cfg), cfg, options);
}

/** `fitWeights` for weights already renamed by `toOfficialKeys`. */
export function fitRenamed(renamed: Renamed, cfg: SwiftFormerConfig, options: FitOptions = {}): { state: StateDict; config: SwiftFormerConfig; report: FitReport } {
  const config = { ...cfg, attention: options.attention ?? attentionFor(renamed.format) };
  const { state, report } = fitToParams(renamed, paramShapes(config, options.head ?? 'classifier'), config.attention, options);
  return { state, config, report };
}

/**
 * The check behind fitRenamed, for any model: the renamed tensors that match `params` (the
 * model's keys and shapes), and a report of the missing, unexpected and mis-shaped ones. Strict
 * (default): any of those is one error listing them; non-finite values are refused unless allowed.
 */
export function fitToParams(
  renamed: Renamed, params: ReadonlyMap<string, number[]>, attention: TokenNorm,
  options: Pick<FitOptions, 'strict' | 'name' | 'allowNonFinite'> = {},
): { state: StateDict; report: FitReport } {
  const state: StateDict = new Map();
  const report: FitReport = { format: renamed.format, attention, missing: [], unexpected: [...renamed.unmatched], mismatched: [] };
  for (const [key, t] of renamed.state) {
    const expected = params.get(key);
    if (!expected) {
      if (!isOptionalKey(key, params)) report.unexpected.push(key);
      continue;
    }
    if (!shapesFit(t.shape, expected)) report.mismatched.push({ key, checkpoint: t.shape, model: expected });
    else state.set(key, { ...t, shape: expected } as Tensor);
  }
  for (const key of params.keys()) if (!state.has(key) && !report.mismatched.some((m) => m.key === key)) report.missing.push(key);
  if (options.strict !== false) throwIfUnfit(report, options.name ?? 'weights');
  if (!options.allowNonFinite) checkFinite(state, options.name ?? 'weights');
  return { state, report };
}

/**
 * Refuses weights holding NaN or infinity, naming the tensors: a model built on them answers
 * anything with full confidence (NaN logits compare as "correct").
 */
export function checkFinite(state: StateDict, name: string): void {
  const bad: string[] = [];
  for (const [key, t] of state) {
    if (t.dtype !== 'float32') continue;
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        bad.push(key);
        break;
      }
    }
  }
  if (bad.length > 0) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${name} holds non-finite values (NaN or infinity) in ${bad.length} tensor${bad.length === 1 ? '' : 's'}: ${listKeys(bad)}; allowNonFinite: true loads them anyway`);
  }
}

function listKeys(keys: string[], limit = 6): string {
  const shown = keys.slice(0, limit).join(', ');
  return keys.length > limit ? `${shown}, ... (${keys.length - limit} more)` : shown;
}

function throwIfUnfit(report: FitReport, name: string): void {
  const parts: string[] = [];
  if (report.mismatched.length > 0) {
    const items = report.mismatched.map((m) => `${m.key}: checkpoint ${formatShape(m.checkpoint)} vs model ${formatShape(m.model)}`);
    parts.push(`${report.mismatched.length} mis-shaped (${listKeys(items, 4)})`);
  }
  if (report.missing.length > 0) parts.push(`${report.missing.length} missing (${listKeys(report.missing)})`);
  if (report.unexpected.length > 0) parts.push(`${report.unexpected.length} unexpected (${listKeys(report.unexpected)})`);
  if (parts.length === 0) return;
  throw new SwiftFormerError('KEY_MISMATCH', `${name} do not fit the model (${report.format} keys): ${parts.join('; ')}. Is it another variant? Pass the matching --model, or strict: false to load what fits.`);
}
