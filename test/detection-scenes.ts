/** The tiny detection training set of the CLI tests: generated scenes (COCO layout) the maskrcnn-tiny fixture's detector can fine-tune on. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScenes, SCENE_DEFAULTS } from '../scripts/make-scenes.js';
import { fixturePath } from './fixtures.js';

/** The fixture detector's weights (4 classes). */
export const TINY_DETECTOR = fixturePath('maskrcnn-tiny/weights.safetensors');

/** A temporary directory with 4 training and 2 val scenes of 64 px, categories 1..4 only (the fixture detector's classes). */
export async function tinyDetectionScenes(prefix: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  await makeScenes({ ...SCENE_DEFAULTS, out: root, train: 4, val: 2, size: 64, seed: 1 });
  for (const split of ['train', 'val']) {
    const file = join(root, 'annotations', `instances_${split}.json`);
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.annotations = json.annotations.filter((a: { category_id: number }) => a.category_id <= 4);
    json.categories = json.categories.filter((c: { id: number }) => c.id <= 4);
    await writeFile(file, JSON.stringify(json));
  }
  return root;
}
