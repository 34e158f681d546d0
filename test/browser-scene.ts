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

/** The scene: colored shapes on a gradient and a checkerboard, something for random-weight dense models to respond to (RGB bytes). */
export function sceneImage(width: number, height: number): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const disc = (x - width / 3) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2;
      const square = x > width * 0.6 && x < width * 0.9 && y > height * 0.2 && y < height * 0.6;
      buf[i] = disc ? 230 : square ? 30 : (x * 255) / width;
      buf[i + 1] = disc ? 50 : square ? 200 : (y * 255) / height;
      buf[i + 2] = square ? 60 : ((x >> 4) + (y >> 4)) % 2 ? 200 : 30;
    }
  }
  return buf;
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
