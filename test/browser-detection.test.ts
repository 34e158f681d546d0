/**
 * The demo page's detection mode in Chromium (built and served as test/browser.test.ts does):
 * torchvision Mask R-CNN weights by URL switch the page to detection; the page's detections for
 * an image equal the Node library's for the same weights and image (onnxruntime-web's
 * WebAssembly kernels and the native ones round differently in the last bits, so as sets: labels,
 * scores within 1e-4, boxes within 0.01 px, mask areas within 1%); the webcam (a fake camera) is
 * detected live with FPS. Leaves screenshots in test-artifacts/detection*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { decodeImage, DetectionModel } from '../src/index.js';
import { chromiumAvailable, CHROMIUM } from '../web/harness.js';
import { openScenePage, sceneImage, type ScenePage } from './browser-scene.js';
import { fixturePath } from './fixtures.js';

interface PageDetection { index: number; label: string; score: number; box: { xmin: number; ymin: number; xmax: number; ymax: number }; maskPixels?: number }
interface PageResult { seq: number; width: number; height: number; detections: PageDetection[]; latencyMs: number; source: string }
type Demo = { detection?: { name: string; numClasses: number; last?: PageResult }; detectUrl(url: string): Promise<PageResult> };
const demo = (p: Page) => p.evaluate(() => (window as unknown as { demo: Demo }).demo.detection);

const THRESHOLD = 0.42;
const SETTINGS = { transform: { minSize: 128, maxSize: 256 } };

if (!chromiumAvailable()) test('browser detection (Chromium)', { skip: `${CHROMIUM} is missing: apt-get install -y chromium` }, () => {});
else describe('browser detection (Chromium)', () => {
  let scene: ScenePage;
  let page: Page;
  before(async () => {
    scene = await openScenePage('swiftformer-browser-det-', sceneImage(200, 150), 200, 150);
    page = scene.page;
  });
  after(() => scene?.close());

  test("Mask R-CNN weights by URL: the page's detections equal the Node library's", { timeout: 240_000 }, async (t) => {
    await page.goto(`${scene.url}?nosw&min-size=128&max-size=256&threshold=${THRESHOLD}&model=/fixtures/maskrcnn-tiny/weights.safetensors`);
    await page.waitForFunction(() => document.body.dataset.status === 'error' || (window as unknown as { demo: Demo }).demo.detection?.name === 'weights.safetensors', null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.mode), 'detection', await page.textContent('#model-status') ?? '');
    const result = await page.evaluate((u) => (window as unknown as { demo: Demo }).demo.detectUrl(u), '/images/scene.png');
    const model = await DetectionModel.load({ weights: fixturePath('maskrcnn-tiny/weights.safetensors'), settings: SETTINGS, session: { threads: 2 } });
    try {
      const expected = await model.detect(await decodeImage(scene.scenePath), { threshold: THRESHOLD });
      assert.deepEqual([result.width, result.height], [200, 150]);
      assert.ok(expected.length >= 2, `the scene gives detections (${expected.length})`);
      // A detection within float noise of the threshold may appear on one side only.
      const near = (s: number) => Math.abs(s - THRESHOLD) <= 1e-4;
      const used = new Set<number>();
      let worst = 0;
      for (const e of expected) {
        const j = result.detections.findIndex((d, k) => !used.has(k) && d.index === e.index && Math.abs(d.score - e.score) <= 1e-4
          && Math.max(...(['xmin', 'ymin', 'xmax', 'ymax'] as const).map((c) => Math.abs(d.box[c] - e.box[c]))) <= 0.01);
        if (j < 0) {
          assert.ok(near(e.score), `Node's ${e.label} ${e.score} has no match in the page`);
          continue;
        }
        used.add(j);
        const ours = e.mask!.data.reduce((n, v) => n + (v ? 1 : 0), 0);
        const theirs = result.detections[j]!.maskPixels!;
        worst = Math.max(worst, Math.abs(theirs - ours) / Math.max(ours, 1));
        assert.ok(Math.abs(theirs - ours) <= Math.max(2, 0.01 * ours), `mask of ${e.label} ${e.score}: ${theirs} vs ${ours} pixels`);
      }
      result.detections.forEach((d, k) => assert.ok(used.has(k) || near(d.score), `the page's ${d.label} ${d.score} has no match in Node`));
      t.diagnostic(`browser vs Node: ${expected.length} detections, worst mask-area difference ${(worst * 100).toFixed(2)}%`);
    } finally {
      await model.release();
    }
    const listed = await page.$$eval('#objects li .label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(listed, result.detections.map((d) => d.label).slice(0, 30));
    assert.match((await page.textContent('#latency')) ?? '', /^\d+(\.\d)? ms$/);
    await scene.shoot('detection');
  });

  test('the webcam (a fake camera) is detected live, with FPS', { timeout: 180_000 }, async () => {
    await page.click('#camera');
    await page.waitForFunction(() => /^\d+(\.\d)?$/.test(document.getElementById('fps')?.textContent ?? ''), null, { timeout: 150_000 });
    const last = (await demo(page))!.last!;
    assert.equal(last.source, 'camera');
    assert.equal(await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).hidden), true, 'the detections are drawn over the frame');
    await scene.shoot('detection-camera');
    await page.click('#camera');
    assert.deepEqual(scene.pageErrors, [], 'no uncaught errors in the page');
  });
});
