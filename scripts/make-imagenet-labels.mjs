#!/usr/bin/env node
/**
 * Writes assets/labels/imagenet-1k.json: the 1000 ImageNet-1k class names in the standard
 * (sorted WordNet id) order, as a JSON array of strings.
 *
 * The names come from the npm package @tensorflow-models/mobilenet (dist/imagenet_classes.js,
 * an object { 0: 'tench, Tinca tinca', ..., 999: 'toilet tissue, toilet paper, bathroom tissue' }).
 * The package is fetched with `npm pack` into a temporary folder; it is not a dependency.
 *
 *   node scripts/make-imagenet-labels.mjs                      # npm pack the pinned version
 *   node scripts/make-imagenet-labels.mjs path/to/imagenet_classes.js
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = '@tensorflow-models/mobilenet@2.1.1';
const OUT = fileURLToPath(new URL('../assets/labels/imagenet-1k.json', import.meta.url));

function fromPackage() {
  const dir = mkdtempSync(join(tmpdir(), 'imagenet-labels-'));
  try {
    execFileSync('npm', ['pack', PACKAGE, '--silent', '--pack-destination', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${PACKAGE} produced no tarball`);
    execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir, 'package/dist/imagenet_classes.js']);
    return load(join(dir, 'package/dist/imagenet_classes.js'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The file is CommonJS data (`exports.IMAGENET_CLASSES = { 0: '...', ... }`). */
function load(file) {
  const classes = createRequire(import.meta.url)(resolve(file)).IMAGENET_CLASSES;
  if (!classes || typeof classes !== 'object') throw new Error(`${file} has no IMAGENET_CLASSES object`);
  const keys = Object.keys(classes);
  if (keys.length !== 1000) throw new Error(`${file}: expected 1000 classes, found ${keys.length}`);
  const labels = [];
  for (let i = 0; i < 1000; i++) {
    const name = classes[i];
    if (typeof name !== 'string' || name.trim() === '') throw new Error(`${file}: class ${i} is missing or empty`);
    labels.push(name);
  }
  return labels;
}

const labels = process.argv[2] ? load(process.argv[2]) : fromPackage();
// One label per line keeps diffs readable.
writeFileSync(OUT, `[\n${labels.map((l) => `  ${JSON.stringify(l)}`).join(',\n')}\n]\n`);
console.log(`wrote ${OUT}: ${labels.length} labels, 0 = ${JSON.stringify(labels[0])}, 999 = ${JSON.stringify(labels[999])}`);
