/**
 * Where bytes come from: a platform entry registers a reader for string sources (file paths in
 * Node; URLs everywhere). Keeps the model code free of node: imports.
 */
import { SwiftFormerError } from './errors.js';

export type SourceReader = (source: string) => Promise<Uint8Array>;

let reader: SourceReader | undefined;

export function registerSourceReader(read: SourceReader): void {
  reader = read;
}

export function readSource(source: string): Promise<Uint8Array> {
  if (!reader) throw new SwiftFormerError('UNSUPPORTED', `cannot read '${source}': no source reader registered on this platform`);
  return reader(source);
}
