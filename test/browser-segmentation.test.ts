/**
 * The demo page's segmentation mode in Chromium (built and served as test/browser.test.ts does):
 * an mmseg checkpoint by URL switches the page to segmentation; the page's mask for an image
 * equals the Node library's for the same weights and image; the webcam (a fake camera) is
 * segmented live. Leaves screenshots in test-artifacts/segmentation*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { decodeImage, SegmentationModel } from '../src/index.js';
import { chromiumAvailable, CHROMIUM } from '../web/harness.js';
import { openScenePage, sceneImage, type ScenePage } from './browser-scene.js';
import { fixturePath } from './fixtures.js';
import { referenceMask } from './segmentation-reference.js';

interface PageSegmentation { seq: number; width: number; height: number; mask: number[]; classes: { index: number; label: string; fraction: number }[]; latencyMs: number; source: string }
type Demo = {
  segmentation?: { name: string; numClasses: number; last?: PageSegmentation };
  segmentUrl(url: string): Promise<PageSegmentation>;
};
const demo = (p: Page) => p.evaluate(() => (window as unknown as { demo: Demo }).demo.segmentation);

if (!chromiumAvailable()) test('browser segmentation (Chromium)', { skip: `${CHROMIUM} is missing: apt-get install -y chromium` }, () => {});
else describe('browser segmentation (Chromium)', () => {
  let scene: ScenePage;
  let page: Page;
  before(async () => {
    scene = await openScenePage('swiftformer-browser-seg-', sceneImage(200, 150), 200, 150);
    page = scene.page;
  });
  after(() => scene?.close());

  test("an mmseg checkpoint by URL: the page's mask equals the Node library's", { timeout: 240_000 }, async (t) => {
    await page.goto(`${scene.url}?nosw&model=/fixtures/semfpn-tiny/checkpoint.pth`);
    await page.waitForFunction(() => document.body.dataset.status === 'error' || (window as unknown as { demo: Demo }).demo.segmentation?.name === 'checkpoint.pth', null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.mode), 'segmentation', await page.textContent('#model-status') ?? '');
    const result = await page.evaluate((u) => (window as unknown as { demo: Demo }).demo.segmentUrl(u), '/images/scene.png');
    const model = await SegmentationModel.load({ weights: fixturePath('semfpn-tiny/checkpoint.pth'), session: { threads: 2 } });
    try {
      const image = await decodeImage(scene.scenePath);
      const expected = await model.segment(image);
      assert.deepEqual([result.width, result.height], [200, 150]);
      // WebAssembly and native kernels round differently in the last bits: pixels may differ only
      // where the best two classes are within float noise of each other.
      const input = await model.preprocess(image);
      const quarter = await model.quarterLogits(input.pixels);
      const [, , ph, pw] = input.pixels.shape as number[];
      const { margin } = referenceMask(quarter.data, 5, [ph!, pw!], [input.resized.height, input.resized.width], [150, 200]);
      const scale = quarter.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const differing = result.mask.flatMap((v, i) => (v !== expected.mask[i] ? [i] : []));
      t.diagnostic(`browser vs Node: ${differing.length} of ${result.mask.length} mask pixels differ (margins ${differing.map((i) => margin[i]!.toExponential(1)).join(', ') || 'none'})`);
      for (const i of differing) assert.ok(margin[i]! <= 1e-5 * scale, `pixel ${i} differs with a margin of ${margin[i]} between its best two classes`);
      assert.ok(differing.length <= result.mask.length * 1e-3);
    } finally {
      await model.release();
    }
    // The legend lists the classes present with the checkpoint's names; latency is shown.
    const legend = await page.$$eval('#legend li .label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(legend, result.classes.map((c) => c.label));
    assert.ok(legend.every((l) => ['background', 'shirt', 'shoe', 'bag', 'trouser'].includes(l!)));
    assert.match((await page.textContent('#latency')) ?? '', /^\d+(\.\d)? ms$/);
    await scene.shoot('segmentation');
  });

  test('the webcam (a fake camera) is segmented live, with FPS', { timeout: 120_000 }, async () => {
    await page.click('#camera');
    await page.waitForFunction(() => /^\d+(\.\d)?$/.test(document.getElementById('fps')?.textContent ?? ''), null, { timeout: 90_000 });
    const last = (await demo(page))!.last!;
    assert.equal(last.source, 'camera');
    assert.ok(last.classes.length > 0);
    assert.equal(await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).hidden), true, 'the mask is drawn over the frame');
    await scene.shoot('segmentation-camera');
    await page.click('#camera');
    assert.deepEqual(scene.pageErrors, [], 'no uncaught errors in the page');
  });
});
