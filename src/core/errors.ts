/**
 * Every error this library raises on bad input is a SwiftFormerError with a stable `code`,
 * so that callers (and the CLI) can tell a user's mistake from a bug.
 */
export type ErrorCode =
  | 'BAD_ARGUMENT'
  | 'BAD_CHECKPOINT'
  | 'BAD_DATA'
  | 'BAD_IMAGE'
  | 'BAD_SHAPE'
  | 'DIVERGED'
  | 'ENGINE_EXITED'
  | 'KEY_MISMATCH'
  | 'RELEASED'
  | 'UNKNOWN_MODEL'
  | 'UNSUPPORTED'
  | 'IO';

export class SwiftFormerError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SwiftFormerError';
    this.code = code;
  }
}

/**
 * `err` with the thing it is about (a file, a model) before its message, unless the message
 * starts with it already; anything but a SwiftFormerError comes back as it is.
 */
export function inContext(err: unknown, context: string): unknown {
  if (err instanceof SwiftFormerError && !err.message.startsWith(context)) return new SwiftFormerError(err.code, `${context}: ${err.message}`, { cause: err });
  return err;
}

/** Throws a SwiftFormerError when `condition` is false. */
export function check(condition: unknown, code: ErrorCode, message: () => string): asserts condition {
  if (!condition) throw new SwiftFormerError(code, message());
}
