/** Node file helpers: nothing a user saved is lost, so every write goes through a rename. */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { SwiftFormerError } from '../core/errors.js';

/** Writes `data` to a temporary file beside `path`, syncs it, then renames it over `path`. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SwiftFormerError('IO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
