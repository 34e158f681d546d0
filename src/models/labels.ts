/**
 * Class names: the ImageNet-1k and COCO lists shipped with the package (assets/labels/, made by
 * scripts/make-imagenet-labels.mjs and make-coco-labels.py), custom label files, and a Hugging Face config's
 * `id2label`. No node: imports; files are read through the platform's source reader.
 */
import { SwiftFormerError } from '../core/errors.js';
import { readSource } from '../core/io.js';

/** The bundled label files (beside src/ and dist/ alike), by the number of names each holds. */
const BUNDLED = {
  'imagenet-1k': { url: new URL('../../assets/labels/imagenet-1k.json', import.meta.url), count: 1000 },
  'coco-91': { url: new URL('../../assets/labels/coco-91.json', import.meta.url), count: 91 },
  'coco-81': { url: new URL('../../assets/labels/coco-81.json', import.meta.url), count: 81 },
} as const;

const bundled = new Map<keyof typeof BUNDLED, Promise<string[]>>();

function bundledLabels(name: keyof typeof BUNDLED): Promise<string[]> {
  const { url, count } = BUNDLED[name];
  let labels = bundled.get(name);
  if (!labels) {
    labels = loadLabels(url.href).then((names) => {
      if (names.length !== count) throw new SwiftFormerError('BAD_ARGUMENT', `the bundled label file ${name}.json has ${names.length} entries, expected ${count}`);
      return names;
    });
    labels.catch(() => bundled.delete(name));
    bundled.set(name, labels);
  }
  return labels.then((names) => names.slice());
}

/** The 1000 ImageNet-1k class names in the standard order (0 'tench, Tinca tinca' ... 999 'toilet tissue, ...'). */
export function imagenetLabels(): Promise<string[]> {
  return bundledLabels('imagenet-1k');
}

/** Default names for a classifier with `numClasses` outputs: ImageNet's for 1000, else none. */
export async function defaultLabels(numClasses: number): Promise<string[] | undefined> {
  return numClasses === 1000 ? imagenetLabels() : undefined;
}

/**
 * COCO's names for a detector's classes (index 0 the background): torchvision's 91 category ids
 * ('N/A' for the unused ones), or the 80 used categories in id order for 81 classes; else none.
 * Made by scripts/make-coco-labels.py.
 */
export async function cocoLabels(numClasses: number): Promise<string[] | undefined> {
  if (numClasses === 91) return bundledLabels('coco-91');
  if (numClasses === 81) return bundledLabels('coco-81');
  return undefined;
}

/**
 * Reads a label file: a JSON array of names, a JSON object {"0": "cat", "1": "dog", ...}, a
 * Hugging Face config.json (its `id2label`), or plain text with one label per line.
 */
export async function loadLabels(source: string): Promise<string[]> {
  const bytes = await readSource(source);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SwiftFormerError('BAD_ARGUMENT', `label file ${source} is not UTF-8 text`);
  }
  return parseLabels(text, source);
}

/** Parses the contents of a label file (see loadLabels). */
export function parseLabels(text: string, name = 'labels'): string[] {
  const body = text.replace(/^\uFEFF/, '');
  const trimmed = body.trim();
  if (trimmed === '') throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name} is empty`);
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (err) {
      throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name} is not valid JSON: ${(err as Error).message}`);
    }
    if (Array.isArray(json)) {
      const bad = json.findIndex((l) => typeof l !== 'string');
      if (bad >= 0) throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name}: entry ${bad} is not a string`);
      if (json.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name} is an empty list`);
      return json as string[];
    }
    if (json && typeof json === 'object' && 'id2label' in json) {
      const labels = labelsFromHfConfig(json);
      if (!labels) throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name}: its id2label holds only placeholder names (LABEL_0, ...)`);
      return labels;
    }
    return fromIndexObject(json as Record<string, unknown>, name);
  }
  const lines = body.split(/\r?\n/);
  while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
  const empty = lines.findIndex((l) => l.trim() === '');
  if (empty >= 0) throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name}: line ${empty + 1} is empty (one label per line, in class order)`);
  return lines.map((l) => l.trim());
}

/**
 * The class names of a Hugging Face `config.json` (object or text), from `id2label`, in index
 * order. Undefined when there is none, or only transformers' placeholders (LABEL_0, LABEL_1, ...).
 */
export function labelsFromHfConfig(config: unknown): string[] | undefined {
  let json = config;
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch (err) {
      throw new SwiftFormerError('BAD_ARGUMENT', `config.json is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!json || typeof json !== 'object') return undefined;
  const id2label = (json as { id2label?: unknown }).id2label;
  if (id2label === undefined || id2label === null) return undefined;
  if (typeof id2label !== 'object' || Array.isArray(id2label)) throw new SwiftFormerError('BAD_ARGUMENT', 'config.json: id2label must be an object {"0": "name", ...}');
  const labels = fromIndexObject(id2label as Record<string, unknown>, 'config.json id2label');
  return labels.every((l, i) => l === `LABEL_${i}`) ? undefined : labels;
}

/** {"0": "a", "1": "b"} -> ["a", "b"]; keys must be exactly 0..n-1. */
function fromIndexObject(obj: Record<string, unknown>, name: string): string[] {
  const entries = Object.entries(obj);
  if (entries.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name} has no labels`);
  const labels: string[] = new Array<string>(entries.length);
  for (const [key, value] of entries) {
    const index = /^(0|[1-9]\d*)$/.test(key) ? Number(key) : NaN;
    if (!(index < entries.length)) {
      throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name}: key '${key}' is not a class index in 0..${entries.length - 1} (expected {"0": "name", "1": ...})`);
    }
    if (typeof value !== 'string') throw new SwiftFormerError('BAD_ARGUMENT', `label file ${name}: label ${key} is not a string`);
    labels[index] = value;
  }
  return labels;
}

/** The display name of class `index`: its label, or `class <index>` without labels. */
export function labelOf(labels: readonly string[] | undefined, index: number): string {
  return labels?.[index] ?? `class ${index}`;
}

/** Where class names can come from, strongest first (see resolveLabels). */
export interface LabelSources {
  /** Given by the user: `--labels`, the page's label URL, a bundled labels.json. */
  explicit?: { labels: readonly string[]; name: string };
  /** The weights' repository: a Hugging Face config.json `id2label`. */
  repository?: { labels: readonly string[]; name: string };
  /** Recorded in the weights themselves (a model trained here, an mmseg checkpoint's CLASSES). */
  recorded?: readonly string[];
}

/**
 * The one precedence of class names, for the CLI, the page and the server: the user's, then the
 * repository's, then the weights' own, then the default for the class count (ImageNet-1k's for
 * 1000). Names whose count differs from the model's classes are an error naming their source.
 */
export async function resolveLabels(sources: LabelSources, numClasses: number): Promise<string[] | undefined> {
  const chosen = sources.explicit ?? sources.repository ?? (sources.recorded ? { labels: sources.recorded, name: "the weights' recorded labels" } : undefined);
  if (!chosen) return defaultLabels(numClasses);
  if (chosen.labels.length !== numClasses) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${chosen.name} has ${chosen.labels.length} labels but the model has ${numClasses} classes`);
  }
  return [...chosen.labels];
}
