/**
 * The bench scripts' command line (bench/args.ts), through a real one (bench/memory.ts, which
 * parses its options before doing anything): --help prints the usage its header documents, and
 * an unknown option or a non-number where a number is expected is one line and exit code 2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const SCRIPT = fileURLToPath(new URL('../bench/memory.ts', import.meta.url));

function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('bench scripts: --help shows the usage; a wrong option or number is one line and exit 2', async () => {
  const help = await bench('--help');
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Peak memory of `swiftformer classify`/);
  assert.match(help.stdout, /node --import tsx bench\/memory\.ts \[--runs 3\] \[--size 224\] \[--json\]/);
  assert.doesNotMatch(help.stdout, /\/\*\*|^\s*\*/m, 'without the comment markers');
  for (const [args, message] of [
    [['--bogus'], /^bench\/memory\.ts: Unknown option '--bogus' \(--help shows the usage\)\n$/],
    [['--runs'], /^bench\/memory\.ts: Option '--runs <value>' argument missing/],
    [['--runs', 'three'], /^bench\/memory\.ts: --runs takes a number \(default 3\), got 'three'\n$/],
  ] as const) {
    const r = await bench(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});
