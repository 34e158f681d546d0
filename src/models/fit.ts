/**
 * From a state dict (weights/read.ts) to one that fits a SwiftFormer: key remapping, config
 * inference, and the strict check that reports missing, unexpected and mis-shaped keys.
 */
import { SwiftFormerError } from '../core/errors.js';
import {
  attentionFor, emitSwiftFormer, remapKeys, validateConfig,
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
}

/** Shapes equal up to size-1 axes ((C,1,1) vs (C)), as torch's layouts differ only there. */
function shapesFit(a: readonly number[], b: readonly number[]): boolean {
  const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1).join();
  return squeeze(a) === squeeze(b);
}

/** num_batches_tracked is bookkeeping: accepted beside a known BatchNorm, never required. */
function isOptionalKey(key: string, params: Map<string, number[]>): boolean {
  const m = /^(.*)\.num_batches_tracked$/.exec(key);
  return !!m && params.has(`${m[1]}.running_mean`);
}

/** What `matchState` found: the tensors that fit, and what did not. */
export interface StateMatch {
  state: StateDict;
  missing: string[];
  unexpected: string[];
  mismatched: FitReport['mismatched'];
}

/**
 * Checks renamed weights against a model's parameters (`params`, key -> shape): `renamed` pairs
 * each source key with its model key. Shapes may differ in size-1 axes only; num_batches_tracked
 * beside a known BatchNorm is accepted and dropped.
 */
export function matchState(source: StateDict, renamed: Iterable<[string, string]>, params: Map<string, number[]>): StateMatch {
  const state: StateDict = new Map();
  const match: StateMatch = { state, missing: [], unexpected: [], mismatched: [] };
  for (const [from, to] of renamed) {
    const t = source.get(from)!;
    const expected = params.get(to);
    if (!expected) {
      if (!isOptionalKey(to, params)) match.unexpected.push(to);
      continue;
    }
    if (!shapesFit(t.shape, expected)) match.mismatched.push({ key: to, checkpoint: t.shape, model: expected });
    else state.set(to, { ...t, shape: expected } as Tensor);
  }
  for (const key of params.keys()) if (!state.has(key) && !match.mismatched.some((m) => m.key === key)) match.missing.push(key);
  return match;
}

/**
 * Renames a state dict to official keys and checks it against the model `cfg` describes.
 * Strict (default): any missing, unexpected or mis-shaped key is one error listing them by name.
 */
export function fitWeights(source: StateDict, cfg: SwiftFormerConfig, options: FitOptions = {}): { state: StateDict; config: SwiftFormerConfig; report: FitReport } {
  const remap = remapKeys(source.keys(), cfg);
  const config = { ...cfg, attention: options.attention ?? attentionFor(remap.format) };
  const params = emitSwiftFormer(config, { head: options.head ?? 'classifier' }).params;
  const { state, missing, unexpected, mismatched } = matchState(source, remap.mapped, params);
  const report: FitReport = { format: remap.format, attention: config.attention, missing, unexpected: [...remap.unmatched, ...unexpected], mismatched };
  if (options.strict !== false) throwIfUnfit(report, options.name ?? 'weights');
  return { state, config, report };
}

function listKeys(keys: string[], limit = 6): string {
  const shown = keys.slice(0, limit).join(', ');
  return keys.length > limit ? `${shown}, ... (${keys.length - limit} more)` : shown;
}

/** The problems of a fit, one phrase per kind (mis-shaped, missing, unexpected); empty when everything fits. */
export function unfitProblems(report: Pick<FitReport, 'missing' | 'unexpected' | 'mismatched'>): string[] {
  const parts: string[] = [];
  if (report.mismatched.length > 0) {
    const items = report.mismatched.map((m) => `${m.key}: checkpoint ${formatShape(m.checkpoint)} vs model ${formatShape(m.model)}`);
    parts.push(`${report.mismatched.length} mis-shaped (${listKeys(items, 4)})`);
  }
  if (report.missing.length > 0) parts.push(`${report.missing.length} missing (${listKeys(report.missing)})`);
  if (report.unexpected.length > 0) parts.push(`${report.unexpected.length} unexpected (${listKeys(report.unexpected)})`);
  return parts;
}

function throwIfUnfit(report: FitReport, name: string): void {
  const parts = unfitProblems(report);
  if (parts.length === 0) return;
  throw new SwiftFormerError('KEY_MISMATCH', `${name} do not fit the model (${report.format} keys): ${parts.join('; ')}. Is it another variant? Pass the matching --model, or strict: false to load what fits.`);
}
