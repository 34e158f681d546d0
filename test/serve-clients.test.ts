/**
 * Triton's and KServe's Python clients against the server: their own request encoders and
 * response decoders (test/serve_clients.py loads them from source). The clients are not
 * installable here, so this runs when their sources are given:
 *
 *   TRITONCLIENT_SRC=<triton-inference-server/client>/src/python/library \
 *   KSERVE_SRC=<kserve/kserve>/python/kserve node --import tsx --test test/serve-clients.test.ts
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { fixturePath } from './fixtures.js';
import { tinyServer } from './serve-client.js';

const SCRIPT = fileURLToPath(new URL('serve_clients.py', import.meta.url));
const triton = process.env.TRITONCLIENT_SRC;
const kserve = process.env.KSERVE_SRC;

test('tritonclient and kserve encode requests the server reads and read the responses it sends', { skip: !triton && !kserve ? 'set TRITONCLIENT_SRC and/or KSERVE_SRC to their source trees' : false }, async () => {
  const { server, url } = await tinyServer();
  try {
    const args = [SCRIPT, url, 'tiny', fixturePath('tiny/input.bin'), fixturePath('tiny/logits.bin'), ...(triton ? ['--triton', triton] : []), ...(kserve ? ['--kserve', kserve] : [])];
    const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('/usr/bin/python3', args, { timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
    });
    assert.equal(code, 0, out);
    assert.doesNotMatch(out, /FAIL/);
  } finally {
    await server.shutdown(1000);
  }
});
