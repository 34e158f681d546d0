/** Runs the CLI from source in a child process, and checks failures the way a user meets them. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

export interface Result { code: number; stdout: string; stderr: string; timedOut?: boolean }

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this many ms (a hang is then a failure, not a stuck test). */
  timeout?: number;
  /** Redirect stdout to this file (e.g. /dev/full) instead of capturing it. */
  stdoutFile?: string;
}

export function cli(...args: string[]): Promise<Result> {
  return cliWith({}, ...args);
}

export function cliWith(options: RunOptions, ...args: string[]): Promise<Result> {
  const argv = ['--import', 'tsx', MAIN, ...args];
  const [command, commandArgs] = options.stdoutFile
    // A shell redirect, so the CLI meets the file as its real stdout.
    ? ['/bin/sh', ['-c', `exec "$0" "$@" > '${options.stdoutFile}'`, process.execPath, ...argv]]
    : [process.execPath, argv];
  return new Promise((resolve) => {
    execFile(command, commandArgs as string[], { maxBuffer: 1 << 24, env: options.env ?? process.env, timeout: options.timeout ?? 0, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const timedOut = Boolean(err && (err as { killed?: boolean }).killed);
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr, ...(timedOut ? { timedOut } : {}) });
    });
  });
}

/** A failed command prints one line per problem, no stack trace, and exits non-zero. */
export function assertCleanFailure(r: Result, pattern: RegExp): void {
  assert.ok(!r.timedOut, `the command hung (killed after its timeout): ${r.stderr}`);
  assert.notEqual(r.code, 0, `expected a failure, got: ${r.stdout}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** A clean failure whose whole stderr is one line. */
export function assertOneLine(r: Result, pattern: RegExp): void {
  assertCleanFailure(r, /./);
  const text = r.stderr.trimEnd();
  assert.equal(text.split('\n').length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(text, pattern);
}
