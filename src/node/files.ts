/**
 * Node file helpers: nothing a user saved is lost, so every write goes through a rename; folders
 * are made one level at a time, so a file system that refuses them (/proc) cannot make us loop;
 * every failure is one IO error that says in words what went wrong.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, basename, join, normalize } from 'node:path';
import { SwiftFormerError, type ErrorCode } from '../core/errors.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EEXIST: 'already exists',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
};

/** Why a file operation failed, in words ('no such file', 'permission denied', ...). */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (code && REASONS[code]) ?? (err as Error)?.message ?? String(err);
}

/**
 * A "path" that is a URL of a scheme nothing here fetches (ftp://, s3://) is an error saying so,
 * rather than "no such file". `supported` says what is read instead.
 */
export function refuseOtherSchemes(source: string, supported: string, code: ErrorCode = 'UNSUPPORTED'): void {
  const scheme = /^([a-z][a-z0-9+.-]+):\/\//i.exec(source)?.[1];
  if (scheme && !/^(https?|file)$/i.test(scheme)) throw new SwiftFormerError(code, `unsupported URL scheme ${scheme.toLowerCase()}: in ${source} (${supported})`);
}

type Kind = 'directory' | 'other' | 'missing';

async function kindOf(path: string): Promise<Kind> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw err;
  }
}

/**
 * The levels of `path` that do not exist, outermost first, and the first ancestor that does
 * (`at`, with its kind). Bounded by the depth of the path: dirname() reaches '/' or '.'.
 */
async function missingLevels(path: string): Promise<{ missing: string[]; at: string; kind: Kind }> {
  const missing: string[] = [];
  let at = normalize(path);
  for (;;) {
    const kind = await kindOf(at);
    if (kind !== 'missing') return { missing: missing.reverse(), at, kind };
    missing.push(at);
    const parent = dirname(at);
    if (parent === at) return { missing: missing.reverse(), at, kind };
    at = parent;
  }
}

/**
 * Creates `path` and its missing parents (as `mkdir -p`), without Node's recursive mkdir, which
 * in Node 20 loops forever where the file system answers ENOENT for a parent that exists (/proc).
 * A failure is one line naming the folder by its role (`what`: 'output directory', ...): a file
 * where it should be, a file among its parents, no permission, a read-only or full file system.
 */
export async function makeDirectory(path: string, what = 'directory'): Promise<void> {
  const fail = (why: string, cause?: unknown) => new SwiftFormerError('IO', `${what} ${path} ${why}`, cause === undefined ? undefined : { cause });
  let levels: Awaited<ReturnType<typeof missingLevels>>;
  try {
    levels = await missingLevels(path);
  } catch (err) {
    throw fail(`cannot be created: ${fsReason(err)}`, err);
  }
  if (levels.kind === 'other') {
    throw fail(levels.missing.length === 0 ? 'exists and is not a directory' : `cannot be created: ${levels.at} is a file, not a directory`);
  }
  for (const level of levels.missing) {
    try {
      await mkdir(level);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await kindOf(level).catch(() => 'other')) === 'directory') continue; // made meanwhile
      // The parent exists (it was just checked or made), so ENOENT means the file system refuses.
      throw fail(`cannot be created: ${code === 'ENOENT' ? `${dirname(level)} does not accept new folders` : fsReason(err)}`, err);
    }
  }
}

/** Why a file cannot be created in `dir`: the first ancestor that is not a folder, or the folder that is missing. */
async function parentProblem(dir: string): Promise<string | undefined> {
  const { missing, at, kind } = await missingLevels(dir).catch(() => ({ missing: [], at: dir, kind: 'directory' as Kind }));
  if (kind === 'other') return `${at} is a file, not a directory`;
  if (missing.length > 0) return `the folder ${dir} does not exist`;
  return undefined;
}

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
    await rm(tmp, { force: true }).catch(() => {}); // under a file (ENOTDIR) there is nothing to remove
    const code = (err as NodeJS.ErrnoException).code;
    const parent = code === 'ENOENT' || code === 'ENOTDIR' ? await parentProblem(dirname(path)) : undefined;
    // ENOENT in a folder that exists: the file system refuses new files there (/proc).
    const why = parent ?? (code === 'ENOENT' ? `${dirname(path)} does not accept new files` : fsReason(err));
    throw new SwiftFormerError('IO', `cannot write ${path}: ${why}`, { cause: err });
  }
}
