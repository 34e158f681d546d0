/**
 * The import rules of src/, checked on every `npm test`: which folder may import which, which
 * folders are Node-only, and which single files may import each engine package. The browser
 * entry and the demo page must reach no Node-only module, however indirectly.
 *
 *   node --import tsx scripts/check-boundaries.ts      (exit 1 and one line per violation)
 *
 * A short script rather than dependency-cruiser: the rules are a table of a dozen lines, and the
 * TypeScript compiler we already depend on lists every import (static, `export ... from`,
 * dynamic `import()`, `import type`) of a file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/**
 * Folder -> the folders it may import (besides itself). The order is the layering: a folder only
 * names folders above it, so the graph of folders has no cycle.
 */
export const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  runtime: ['core'],
  graph: ['core', 'runtime'],
  weights: ['core'],
  preprocess: ['core'],
  data: ['core', 'preprocess'],
  metrics: ['core', 'data'],
  draw: ['core', 'preprocess'],
  models: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw'],
  measure: ['core', 'runtime', 'graph', 'models'],
  node: ['core', 'runtime', 'weights', 'preprocess', 'data', 'draw', 'models'],
  train: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw', 'models', 'measure', 'node'],
  serve: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw', 'models', 'node'],
  cli: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw', 'models', 'measure', 'node', 'train', 'serve'],
};

/** Folders whose modules may use Node's built-ins and Node-only packages; everything else runs in browsers too. */
export const NODE_ONLY = new Set(['node', 'train', 'serve', 'cli']);

/** The entries at the top of src/: what each may import. */
const ENTRIES: Record<string, { folders: readonly string[]; files: readonly string[] }> = {
  'api.ts': { folders: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw', 'models', 'measure'], files: [] },
  'browser.ts': { folders: ['core', 'runtime', 'graph', 'weights', 'preprocess', 'data', 'metrics', 'draw', 'models', 'measure'], files: ['api.ts'] },
  'index.ts': { folders: [...ALLOWED.cli!], files: ['api.ts'] },
};

/** Packages only one file may import: the engine adapters and the image decoder. */
const PACKAGE_OWNERS: Record<string, readonly string[]> = {
  'onnxruntime-common': ['runtime/ort.ts'],
  'onnxruntime-node': ['node/engine.ts'],
  'onnxruntime-web': ['browser.ts'],
  sharp: ['node/decode.ts'],
};

/** Packages a module running in browsers must not reach. */
const NODE_PACKAGES = new Set(['onnxruntime-node', 'sharp']);

interface Module { file: string; imports: string[]; packages: string[] }

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return listTs(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

function parse(file: string): Module {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const imports: string[] = [];
  const packages: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (fileName.startsWith('.')) imports.push(resolve(dirname(file), fileName).replace(/\.js$/, '.ts'));
    // The page imports the package by name; its bundler resolves that to the browser entry.
    else if (fileName === 'swiftformer') imports.push(join(SRC, 'browser.ts'));
    else packages.push(fileName);
  }
  return { file, imports, packages };
}

/** 'models' for src/models/fit.ts; the file name for an entry at the top of src/. */
function folderOf(file: string): string {
  const rel = relative(SRC, file).split(sep);
  return rel.length === 1 ? rel[0]! : rel[0]!;
}

const isBuiltin = (pkg: string) => pkg.startsWith('node:');

function checkModule(m: Module, violations: string[]): void {
  const rel = relative(SRC, m.file).split(sep).join('/');
  const from = folderOf(m.file);
  const entry = ENTRIES[from];
  const rules = entry ?? (ALLOWED[from] ? { folders: ALLOWED[from]!, files: [] } : undefined);
  if (!rules) {
    violations.push(`src/${rel}: folder '${from}' has no rule in scripts/check-boundaries.ts (add it to ALLOWED)`);
    return;
  }
  for (const target of m.imports) {
    if (!target.startsWith(SRC + sep)) {
      violations.push(`src/${rel} imports ${relative(ROOT, target)}, outside src/`);
      continue;
    }
    const to = folderOf(target);
    if (to === from && !entry) continue;
    if (!rules.folders.includes(to) && !rules.files.includes(to)) {
      violations.push(`src/${rel} imports src/${relative(SRC, target).split(sep).join('/')}: '${from}' may not import '${to}'`);
    }
  }
  const nodeOnly = NODE_ONLY.has(from) || from === 'index.ts';
  for (const pkg of m.packages) {
    const owners = PACKAGE_OWNERS[pkg];
    if (owners && !owners.includes(rel)) violations.push(`src/${rel} imports '${pkg}', which only ${owners.join(', ')} may import`);
    if (!nodeOnly && (isBuiltin(pkg) || NODE_PACKAGES.has(pkg)) && !owners?.includes(rel)) {
      violations.push(`src/${rel} imports '${pkg}', but '${from}' runs in browsers too (Node-only folders: ${[...NODE_ONLY].join(', ')})`);
    }
  }
}

/** Every module `start` reaches; reports the chain to any Node-only one. */
function checkBrowserClosure(start: string, modules: Map<string, Module>, violations: string[]): void {
  const parent = new Map<string, string | undefined>([[start, undefined]]);
  const queue = [start];
  const chain = (file: string): string => {
    const path: string[] = [];
    for (let f: string | undefined = file; f; f = parent.get(f)) path.unshift(relative(ROOT, f));
    return path.join(' -> ');
  };
  while (queue.length > 0) {
    const file = queue.shift()!;
    const m = modules.get(file) ?? (file.startsWith(SRC) ? undefined : parse(file));
    if (!m) continue;
    const inSrc = file.startsWith(SRC + sep);
    if (inSrc && NODE_ONLY.has(folderOf(file))) violations.push(`the browser reaches a Node-only module: ${chain(file)}`);
    for (const pkg of m.packages) {
      if (isBuiltin(pkg) || NODE_PACKAGES.has(pkg)) violations.push(`the browser reaches '${pkg}': ${chain(file)}`);
    }
    for (const target of m.imports) {
      if (!parent.has(target)) {
        parent.set(target, file);
        queue.push(target);
      }
    }
  }
}

export function checkBoundaries(): string[] {
  const modules = new Map(listTs(SRC).map((f) => [f, parse(f)]));
  const violations: string[] = [];
  for (const m of modules.values()) checkModule(m, violations);
  checkBrowserClosure(join(SRC, 'browser.ts'), modules, violations);
  checkBrowserClosure(join(ROOT, 'web', 'main.ts'), modules, violations);
  return violations;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const violations = checkBoundaries();
  for (const v of violations) console.error(v);
  if (violations.length > 0) {
    console.error(`${violations.length} import rule violation(s); the rules are in scripts/check-boundaries.ts`);
    process.exit(1);
  }
  console.log('import boundaries: ok');
}
