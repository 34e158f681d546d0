/** Node file helpers: nothing a user saved is lost, so every write goes through a rename. */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
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

/** The nearest of `path`'s parents that exists and is not a directory. */
async function fileAmongParents(path: string): Promise<string | undefined> {
  for (let p = dirname(path); ; p = dirname(p)) {
    const found = await stat(p).then((s) => !s.isDirectory(), () => false);
    if (found) return p;
    if (dirname(p) === p) return undefined;
  }
}

/**
 * One line for a directory that could not be created (the error of mkdir): a file where the
 * directory should be (EEXIST), a file among its parents (ENOTDIR, named), no permission, a
 * read-only or full file system. `what` names the directory's role ("output directory").
 */
export async function directoryError(path: string, err: unknown, what = 'directory'): Promise<SwiftFormerError> {
  const code = (err as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    EEXIST: 'exists and is not a directory',
    EACCES: 'cannot be created: permission denied',
    EPERM: 'cannot be created: operation not permitted',
    EROFS: 'cannot be created: the file system is read-only',
    ENOSPC: 'cannot be created: no space left on the device',
  };
  let why = (code && reasons[code]) || `cannot be created: ${(err as Error).message}`;
  if (code === 'ENOTDIR') why = `cannot be created: ${(await fileAmongParents(path)) ?? 'one of its parents'} is a file, not a directory`;
  return new SwiftFormerError('IO', `${what} ${path} ${why}`, { cause: err });
}
