/**
 * The C allocator settings a long-running server needs, which glibc reads from the environment
 * once, when the process starts: so `serve` relaunches itself with them (Node 20 cannot exec in
 * place), and the first process only passes signals on and exits as the server did.
 *
 * Why: glibc serves an allocation of at least M_MMAP_THRESHOLD bytes with its own mmap and unmaps
 * it when freed; smaller ones come from the heap, which returns memory only from its top. The
 * threshold starts at 128 KiB but, by default, rises to the size of every mmapped block freed (up
 * to 32 MiB): after the first batch buffer or the first trimmed ONNX Runtime arena, request bodies
 * (600 KiB for a 224x224 FP32 image), decoded images and batch inputs all come from the heap, and
 * a burst of 128 concurrent requests leaves it fragmented, 100 MB over idle for good (bench/serve).
 * A fixed threshold (setting it at all turns the rise off) keeps those in mmapped blocks that go
 * back to the system when freed; ONNX Runtime's arena keeps its runs off malloc meanwhile.
 *
 * Why 32 KiB: Node reads a socket 64 KiB at a time and its HTTP parser copies the body bytes of
 * each read into a buffer of their own (64 KiB, or a little less for the read that also held the
 * headers), about ten for a 224x224 FP32 tensor, which live until the main thread's next
 * collection. Many die between two collections; from the heap, they grew the main thread's heap
 * by about 30 MB under 128 clients, which then stayed, fragmented by the few small blocks
 * allocated above them meanwhile (the same at 64 KiB: the pieces just under 64 KiB were enough).
 * At 32 KiB most of them are mmapped, one mmap / munmap pair each (microseconds, against a run's
 * tens of milliseconds); a read that found less waiting (some 29 KiB) still comes from the heap.
 * The price, fresh pages on every large allocation, is not paid per request for the largest
 * buffers: request bodies and batches are reused from the server's pool (buffers.ts).
 *
 * A variable the user set already is kept, and the server then runs in this process (that is also
 * how to opt out: set MALLOC_MMAP_THRESHOLD_ yourself). Only glibc reads these variables.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** 32 KiB: below the HTTP parser's body pieces (64 KiB reads) and an image's tensor, above the small buffers of HTTP and JSON. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: String(32 * 1024) };

const FORWARDED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

function isGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return typeof header?.glibcVersionRuntime === 'string';
}

/** Whether this process should relaunch itself with ALLOCATOR_ENV (glibc, and none of it set yet). */
export function needsRelaunch(env: NodeJS.ProcessEnv = process.env): boolean {
  return isGlibc() && Object.keys(ALLOCATOR_ENV).every((k) => env[k] === undefined);
}

/**
 * Runs this very command again (same Node flags, script and arguments) with ALLOCATOR_ENV, and
 * resolves with its exit code. The child runs in its own process group, so a terminal's Ctrl-C
 * reaches it once, through here, as every other signal does; an IPC channel tells it when this
 * process is gone (even by SIGKILL), so that it never outlives its launcher.
 */
export function relaunch(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, ...ALLOCATOR_ENV },
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    detached: true,
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const s of FORWARDED) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

/** In a relaunched server: resolves when its launcher has gone (the IPC channel closed). */
export function launcherGone(): Promise<void> | undefined {
  if (!process.connected) return undefined;
  // The channel must not keep the server alive by itself, nor the server read from it.
  process.channel?.unref();
  return new Promise((resolve) => process.once('disconnect', () => resolve()));
}
