/**
 * What an idle server does to give memory back. V8 frees an unreachable ArrayBuffer (request
 * bodies, input and output tensors) only when it collects garbage, and an idle process allocates
 * nothing that would make it collect: one full collection once traffic stops returns them.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** A full garbage collection (V8's gc(), exposed for this process on first use). */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
