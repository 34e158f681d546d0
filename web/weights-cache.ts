/**
 * Converted weights kept in Cache Storage: whatever the user loaded (.pth, safetensors, official,
 * Hugging Face or timm keys) is stored once as safetensors under official key names, with the
 * model config beside it, so the next visit loads it without the network and without re-parsing.
 * Exported .onnx files (INT8 or float) are kept as they are.
 */
import { cardMetadata, writeSafetensors, type SwiftFormerConfig, type SwiftFormerModel } from 'swiftformer';

const CACHE = 'swiftformer-weights-v1';
const META_HEADER = 'x-swiftformer-meta';

export interface CachedWeights {
  /** `url:<address>` or `file:<sha256 of the bytes>`. */
  key: string;
  /** What the user sees: the file name or the URL. */
  name: string;
  /** 'onnx': the entry is an exported ONNX file; else safetensors weights of `config`. */
  kind?: 'onnx';
  config?: SwiftFormerConfig;
  head: 'classifier' | 'features';
  /** The format the weights came in (official, huggingface, timm). */
  format?: string;
  savedAt: number;
}

/** A same-scope URL that names the entry (never fetched: only a Cache Storage key). */
const entryUrl = (key: string): string => new URL(`weights-cache/${encodeURIComponent(key)}`, document.baseURI).href;

const available = (): boolean => typeof caches !== 'undefined';

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function listCached(): Promise<CachedWeights[]> {
  if (!available()) return [];
  const cache = await caches.open(CACHE);
  const out: CachedWeights[] = [];
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    const meta = response?.headers.get(META_HEADER);
    if (meta) out.push(JSON.parse(decodeURIComponent(meta)) as CachedWeights);
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

export async function readCached(key: string): Promise<{ meta: CachedWeights; bytes: Uint8Array } | undefined> {
  if (!available()) return undefined;
  const response = await (await caches.open(CACHE)).match(entryUrl(key));
  const meta = response?.headers.get(META_HEADER);
  if (!response || !meta) return undefined;
  return { meta: JSON.parse(decodeURIComponent(meta)) as CachedWeights, bytes: new Uint8Array(await response.arrayBuffer()) };
}

export async function saveCached(key: string, name: string, model: SwiftFormerModel): Promise<CachedWeights | undefined> {
  if (!available()) return undefined;
  const meta: CachedWeights = { key, name, config: model.config, head: model.head, savedAt: Date.now() };
  if (model.report?.format) meta.format = model.report.format;
  // Keep what the model knows of itself (labels, preprocessing) along with the weights.
  return store(meta, writeSafetensors(model.state, { ...cardMetadata(model.card), source: name }));
}

export async function saveCachedOnnx(key: string, name: string, bytes: Uint8Array): Promise<CachedWeights | undefined> {
  if (!available()) return undefined;
  return store({ key, name, kind: 'onnx', head: 'classifier', savedAt: Date.now() }, bytes);
}

async function store(meta: CachedWeights, bytes: Uint8Array): Promise<CachedWeights | undefined> {
  const response = new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: { 'content-type': 'application/octet-stream', [META_HEADER]: encodeURIComponent(JSON.stringify(meta)) },
  });
  try {
    await (await caches.open(CACHE)).put(entryUrl(meta.key), response);
  } catch {
    return undefined; // storage full or denied: the model still runs, it just is not kept
  }
  return meta;
}

export async function deleteCached(key: string): Promise<void> {
  if (available()) await (await caches.open(CACHE)).delete(entryUrl(key));
}
