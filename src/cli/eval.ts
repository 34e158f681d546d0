import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SwiftFormerError } from '../errors.js';
import { labelOf } from '../labels.js';
import { intOption, parse } from './args.js';
import { loadClassifier, logitRows, modelOptions, prepareImages, type Prepared } from './classify.js';
import { ProgressBar } from './progress.js';

/** torchvision's IMG_EXTENSIONS: the files ImageFolder takes (.ppm, .bmp and .pgm then fail to decode here). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'] as const;

export const usage = `Usage: swiftformer eval <folder> [--weights <src>] [options]

Top-1 and top-5 accuracy on an ImageFolder layout, as torchvision's ImageFolder reads it: one
subfolder per class, class index = position of the subfolder name in sorted order, images found
recursively (${IMAGE_EXTENSIONS.join(' ')}). Prints the accuracies and the 5 worst classes.
  --weights     .pth or .safetensors file, https:// URL, or hf:ORG/NAME[@revision]
                (default: the model bundled in the package, if any)
  --limit       evaluate N images, spread evenly over the dataset (default: all)
  --batch-size  images per forward pass (default 16)
  --json        one JSON object: { images, top1, top5, worst, errors, ... } (fractions in [0, 1])
  --model, --labels, --size, --entry, --attention, --max-pixels: as for classify`;

export interface Sample { file: string; target: number }

/** Python's string order (by code point), which sorted() uses and UTF-16 order is not. */
function codePointCompare(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** torchvision's find_classes + make_dataset: sorted class folders, files from a sorted os.walk (links followed). */
export async function scanImageFolder(root: string): Promise<{ classes: string[]; samples: Sample[] }> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such folder' : code === 'ENOTDIR' ? 'not a folder' : (err as Error).message;
    throw new SwiftFormerError('BAD_ARGUMENT', `cannot read ${root}: ${why}`);
  }
  const classes: string[] = [];
  for (const e of entries) if (e.isDirectory() || (e.isSymbolicLink() && (await isDir(join(root, e.name))))) classes.push(e.name);
  classes.sort(codePointCompare);
  if (classes.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `no class folders in ${root} (expected ${root}/<class>/<image>)`);
  const samples: Sample[] = [];
  for (const [target, name] of classes.entries()) {
    const walked: { dir: string; files: string[] }[] = [];
    await walk(join(root, name), walked, new Set());
    walked.sort((a, b) => codePointCompare(a.dir, b.dir));
    for (const { dir, files } of walked) {
      for (const f of files.sort(codePointCompare)) {
        const lower = f.toLowerCase();
        if (IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext))) samples.push({ file: join(dir, f), target });
      }
    }
  }
  return { classes, samples };
}

async function walk(dir: string, out: { dir: string; files: string[] }[], seen: Set<string>): Promise<void> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return;
  }
  if (seen.has(real)) return; // a symlink cycle
  seen.add(real);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // os.walk skips unreadable folders too
  }
  const files: string[] = [];
  const subdirs: string[] = [];
  for (const e of entries) {
    if (e.isDirectory() || (e.isSymbolicLink() && (await isDir(join(dir, e.name))))) subdirs.push(e.name);
    else files.push(e.name);
  }
  out.push({ dir, files });
  for (const s of subdirs) await walk(join(dir, s), out, seen);
}

/** `limit` samples spread evenly over the list (deterministic). */
function spread<T>(items: T[], limit: number | undefined): T[] {
  if (limit === undefined || limit >= items.length) return items;
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]!);
}

interface ClassScore { index: number; name: string; label?: string; images: number; top1: number }

export async function evalCommand(argv: string[]): Promise<void> {
  const { values, flags, positionals } = parse(argv, { ...modelOptions, limit: { type: 'string' }, 'batch-size': { type: 'string' } }, usage);
  if (flags.has('help')) return void console.log(usage);
  if (positionals.length !== 1) throw new SwiftFormerError('BAD_ARGUMENT', `eval takes one folder, got ${positionals.length}\n\n${usage}`);
  const folder = positionals[0]!;
  const limit = intOption(values.limit, 'limit');
  const batchSize = intOption(values['batch-size'], 'batch-size') ?? 16;
  const json = flags.has('json');

  const { classes, samples: all } = await scanImageFolder(folder);
  if (all.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `no images in ${folder} (extensions: ${IMAGE_EXTENSIONS.join(' ')})`);
  const samples = spread(all, limit);
  const c = await loadClassifier(values, 'eval');
  if (classes.length > c.numClasses) {
    await c.model.release();
    throw new SwiftFormerError('BAD_ARGUMENT', `${folder} has ${classes.length} class folders but the model has ${c.numClasses} classes`);
  }
  if (classes.length !== c.numClasses) {
    console.error(`note: ${folder} has ${classes.length} class folders and the model ${c.numClasses} classes: folder class i is scored as model class i`);
  }

  const k = Math.min(5, c.numClasses);
  const perClass = classes.map(() => ({ images: 0, top1: 0 }));
  let done = 0;
  let correct1 = 0;
  let correct5 = 0;
  const errors: { file: string; error: string }[] = [];
  const bar = new ProgressBar('evaluating');
  const batches: Sample[][] = [];
  for (let i = 0; i < samples.length; i += batchSize) batches.push(samples.slice(i, i + batchSize));
  const prepare = (batch: Sample[] | undefined) => {
    if (!batch) return undefined;
    const p = prepareImages(batch.map((s) => s.file), c);
    p.catch(() => {}); // awaited below; this only keeps a failure from counting as unhandled meanwhile
    return p;
  };
  try {
    let pending = prepare(batches[0]);
    for (let b = 0; b < batches.length; b++) {
      const prepared: Prepared[] = await pending!;
      pending = prepare(batches[b + 1]); // decode the next batch while this one runs
      const batch = batches[b]!;
      const ok = prepared.flatMap((p, i) => ('pixels' in p ? [{ pixels: p.pixels, target: batch[i]!.target }] : []));
      for (const p of prepared) if ('error' in p) errors.push(p);
      const rows = await logitRows(c.model, ok.map((o) => o.pixels));
      rows.forEach((row, i) => {
        const target = ok[i]!.target;
        const rank = rankOf(row, target);
        perClass[target]!.images++;
        if (rank === 0) {
          correct1++;
          perClass[target]!.top1++;
        }
        if (rank < k) correct5++;
      });
      done += batch.length;
      const evaluated = done - errors.length;
      bar.update(done, samples.length, `${done}/${samples.length} images  top-1 ${evaluated ? ((100 * correct1) / evaluated).toFixed(2) : '-'}%`);
    }
  } catch (err) {
    bar.clear();
    throw err;
  } finally {
    await c.model.release();
  }
  const evaluated = samples.length - errors.length;
  const seconds = bar.elapsed();
  bar.done(`evaluated ${evaluated} image${evaluated === 1 ? '' : 's'} in ${seconds.toFixed(1)} s (${(evaluated / Math.max(seconds, 1e-3)).toFixed(1)} images/s)${errors.length ? `, ${errors.length} failed` : ''}`);

  const scores: ClassScore[] = perClass
    .map((s, index) => ({ index, name: classes[index]!, ...(c.labels ? { label: labelOf(c.labels, index) } : {}), images: s.images, top1: s.images ? s.top1 / s.images : 0 }))
    .filter((s) => s.images > 0);
  const worst = scores.sort((a, b) => a.top1 - b.top1 || b.images - a.images || a.index - b.index).slice(0, 5);
  const top1 = evaluated ? correct1 / evaluated : 0;
  const top5 = evaluated ? correct5 / evaluated : 0;

  if (json) {
    console.log(JSON.stringify({ folder, images: evaluated, failed: errors.length, classes: classes.length, top1, top5, topK: k, worst, errors, seconds }, null, 2));
  } else {
    console.log(`top-1 ${(100 * top1).toFixed(2)}%  top-${k} ${(100 * top5).toFixed(2)}%  (${evaluated} images, ${classes.length} classes)`);
    console.log(`worst classes by top-1:`);
    for (const w of worst) {
      const label = w.label && w.label !== w.name ? `  (model class ${w.index}: ${w.label})` : '';
      console.log(`  ${(100 * w.top1).toFixed(1).padStart(5)}%  ${String(Math.round(w.top1 * w.images)).padStart(4)}/${w.images}  ${w.name}${label}`);
    }
  }
  for (const e of errors) console.error(`swiftformer eval: ${e.error}`);
  if (errors.length > 0) throw new SwiftFormerError('BAD_IMAGE', `${errors.length} of ${samples.length} images could not be read (left out of the accuracy)`);
}

/** The position of `target` when classes are sorted by score (0: top-1); ties go to the lower index, as in classify. */
function rankOf(row: Float32Array, target: number): number {
  const t = row[target]!;
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > t || (row[i] === t && i < target)) rank++;
  return rank;
}
