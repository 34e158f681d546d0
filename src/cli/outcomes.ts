/**
 * The per-image commands (classify, segment, detect) share one contract: an image that cannot be
 * processed does not stop the others; it is reported at the end, on stderr, and the command
 * exits 1 naming how many failed. With --json every outcome, failures included, is printed.
 */
import { SwiftFormerError } from '../core/errors.js';
import { cliMessage } from './args.js';

/** A file whose image could not be processed, and why. */
export interface Failed {
  file: string;
  error: string;
}

export const isFailed = (outcome: object): outcome is Failed => 'error' in outcome;

/** Runs one image's work; its SwiftFormerError becomes that image's outcome (anything else is a bug and propagates). */
export async function perImage<T>(file: string, work: () => Promise<T>): Promise<T | Failed> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof SwiftFormerError)) throw err;
    return { file, error: err.message };
  }
}

/** Prints the outcomes (with --json), one stderr line per failure, then fails with the count if any failed. */
export function finishPerImage(command: string, usage: string, outcomes: readonly object[], json: boolean, verb: string): void {
  if (json) console.log(JSON.stringify(outcomes, null, 2));
  const failed = outcomes.filter(isFailed);
  for (const f of failed) console.error(`swiftformer ${command}: ${cliMessage(f.error, usage)}`);
  if (failed.length > 0) {
    throw new SwiftFormerError('BAD_IMAGE', `${failed.length} of ${outcomes.length} image${outcomes.length === 1 ? '' : 's'} could not be ${verb}`);
  }
}
