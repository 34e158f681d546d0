/**
 * Node platform setup: onnxruntime-node (CPU) as the backend, in this thread, and the same in a
 * worker thread as 'onnxruntime-node-worker' (what `serve` runs on; node/ort-worker.ts); files read
 * from disk, URLs and hf: repositories through the download cache.
 */
import { readFile } from 'node:fs/promises';
import { SwiftFormerError } from '../core/errors.js';
import { fsReason, refuseOtherSchemes } from './files.js';
import { isRemoteSource, readRemoteSource, resolveWeights } from './hub.js';
import { readSource, registerImageDecoder, registerSourceReader, registerWeightsReader } from '../core/io.js';
import { decodeImage } from './decode.js';
import { registerBackend } from '../runtime/runtime.js';
import { nodeBackend } from './engine.js';
import { workerBackend } from './ort-worker.js';

registerBackend(nodeBackend, { preferred: true });
registerBackend(workerBackend);

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

// `model.preprocess(image)`, `model.classify(image)`: file paths and encoded bytes, decoded as Pillow does.
registerImageDecoder((input) => {
  if (typeof input === 'string' || input instanceof Uint8Array) return decodeImage(input);
  throw new SwiftFormerError('BAD_ARGUMENT', `expected an image file path, encoded bytes (Uint8Array) or RGB pixels { width, height, data }, got ${input === null ? 'null' : typeof input}`);
});

// Remote weights are downloaded into the cache once; an hf: repository's config.json gives the labels.
registerWeightsReader(async (source) => {
  if (!isRemoteSource(source)) return { bytes: await readSource(source) };
  const { path, labels } = await resolveWeights(source);
  return { bytes: await readSource(path), ...(labels ? { labels } : {}) };
});
