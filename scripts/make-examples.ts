/**
 * Writes the bundled example images: the first Fashion-MNIST test image of each class, as the
 * 28x28 gray PNGs the dataset holds, named <index>-<class>.png under assets/examples/.
 * Needs Debian's dataset-fashion-mnist.
 *
 *   node --import tsx scripts/make-examples.ts
 */
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES } from '../src/data/dataset.js';
import { FASHION_MNIST_DIR, loadIdxDataset } from '../src/node/datasets.js';
import { makeDirectory } from '../src/node/files.js';

const out = fileURLToPath(new URL('../assets/examples/', import.meta.url));
await makeDirectory(out);
const test = await loadIdxDataset(FASHION_MNIST_DIR, 'test', { classes: FASHION_MNIST_CLASSES });
for (let label = 0; label < FASHION_MNIST_CLASSES.length; label++) {
  let i = 0;
  while (test.label(i) !== label) i++;
  const rgb = test.image(i);
  const gray = Buffer.from(Array.from({ length: rgb.width * rgb.height }, (_, p) => rgb.data[p * 3]!));
  const name = FASHION_MNIST_CLASSES[label]!.toLowerCase().replace(/[^a-z]+/g, '-');
  await sharp(gray, { raw: { width: rgb.width, height: rgb.height, channels: 1 } }).png().toFile(`${out}${label}-${name}.png`);
  console.log(`${out}${label}-${name}.png (test image ${i})`);
}
