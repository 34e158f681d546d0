/**
 * What the demo page's dense-prediction tests (segmentation, detection) share: the page built and
 * served with the fixtures and one generated scene image (/images/scene.png), a Chromium with a
 * fake camera, and the page's uncaught errors collected; `shoot` keeps a screenshot in test-artifacts.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { buildPage, launchChromium, REPO_DIR, serveStatic, type Browser, type StaticServer } from '../web/harness.js';
import { FIXTURES } from './fixtures.js';

export interface ScenePage {
  url: string;
  page: Page;
  /** The scene image on disk, for the Node side of a comparison. */
  scenePath: string;
  pageErrors: string[];
  shoot(name: string): Promise<void>;
  close(): Promise<void>;
}

/** `rgb`: width x height x 3 bytes, served as /images/scene.png. */
export async function openScenePage(prefix: string, rgb: Buffer, width: number, height: number): Promise<ScenePage> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  let server: StaticServer | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await mkdir(join(dir, 'images'));
    const scenePath = join(dir, 'images', 'scene.png');
    await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toFile(scenePath);
    const site = await buildPage(join(dir, 'site'));
    server = await serveStatic({ '/': site.outDir, '/fixtures/': FIXTURES, '/images/': join(dir, 'images') });
    browser = await launchChromium({ fakeCamera: true });
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const shoot = async (name: string) => {
      await mkdir(join(REPO_DIR, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(REPO_DIR, 'test-artifacts', `${name}.png`) });
    };
    return { url: server.url, page, scenePath, pageErrors, shoot, close };
  } catch (err) {
    await close();
    throw err;
  }
}
