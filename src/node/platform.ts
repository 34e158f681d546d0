/** Node platform setup: onnxruntime-node (CPU) as the backend; files read from disk, URLs and hf: repositories through the download cache. */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { SwiftFormerError } from '../core/errors.js';
import { fsReason, refuseOtherSchemes } from './files.js';
import { isRemoteSource, readRemoteSource } from './hub.js';
import { registerSourceReader } from '../core/io.js';
import { ortBackend } from '../runtime/ort.js';
import { registerBackend } from '../runtime/runtime.js';

registerBackend(ortBackend(ort, 'onnxruntime-node', ['cpu']), { preferred: true });

registerSourceReader(async (source) => {
  if (isRemoteSource(source)) return readRemoteSource(source);
  refuseOtherSchemes(source, 'weights and labels come from files, http(s):// URLs and hf:ORG/NAME');
  try {
    const buf = await readFile(source.startsWith('file:') ? new URL(source) : source);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new SwiftFormerError('IO', `cannot read ${source}: ${fsReason(err)}`, { cause: err });
  }
});
