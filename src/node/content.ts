/**
 * What a downloaded file holds, from its first bytes: the check that keeps an HTML page (a login
 * wall, a "file moved" page, a GitHub blob view) out of the download cache.
 */
import { looksLikeSafetensors } from '../weights/read.js';
import { looksLikeZip } from '../weights/zip.js';

/** What a download must be: a checkpoint we read, an ONNX model, JSON, text, or anything. */
export type ExpectedContent = 'checkpoint' | 'onnx' | 'json' | 'text' | 'any';

type Kind = 'empty' | 'zip' | 'safetensors' | 'onnx' | 'gzip' | 'legacy-torch' | 'html' | 'xml' | 'json' | 'text' | 'binary';

const KIND_NAMES: Record<Kind, string> = {
  empty: 'an empty file',
  zip: 'a zip file',
  safetensors: 'a safetensors file',
  onnx: 'an ONNX model',
  gzip: 'a gzip file',
  'legacy-torch': 'a legacy (pre-1.6) torch.save file',
  html: 'an HTML page',
  xml: 'an XML document',
  json: 'JSON',
  text: 'text',
  binary: 'binary data of no known format',
};

const EXPECTED: Record<Exclude<ExpectedContent, 'any'>, { name: string; kinds: readonly Kind[] }> = {
  checkpoint: { name: 'a checkpoint (PyTorch zip or safetensors)', kinds: ['zip', 'safetensors'] },
  onnx: { name: 'an ONNX model', kinds: ['onnx'] },
  json: { name: 'JSON', kinds: ['json'] },
  text: { name: 'text', kinds: ['text', 'json', 'xml'] },
};

/** How many leading bytes `kindOf` looks at. */
export const HEAD_BYTES = 512;

function kindOf(head: Uint8Array): Kind {
  if (head.length === 0) return 'empty';
  if (looksLikeZip(head)) return 'zip';
  if (looksLikeSafetensors(head)) return 'safetensors';
  // ModelProto's first field is ir_version (field 1, a varint: tag 0x08), a small number.
  if (head[0] === 0x08 && head[1]! >= 1 && head[1]! <= 32) return 'onnx';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'legacy-torch'; // a pickle protocol opcode
  if (head.some((b) => b < 0x09 || (b > 0x0d && b < 0x20))) return 'binary';
  const text = new TextDecoder('utf-8').decode(head).replace(/^\uFEFF/, '').trimStart().toLowerCase();
  if (/^<(!doctype html|html|head|body)\b/.test(text) || (text.startsWith('<') && text.includes('<html'))) return 'html';
  if (text.startsWith('<?xml')) return 'xml';
  if (text.startsWith('{') || text.startsWith('[')) return 'json';
  return 'text';
}

/** The expected content of a URL, from its file name: .onnx, .json, .txt, else a checkpoint. */
export function expectedFromName(url: string): ExpectedContent {
  const path = new URL(url).pathname.toLowerCase();
  if (path.endsWith('.onnx')) return 'onnx';
  if (path.endsWith('.json')) return 'json';
  if (path.endsWith('.txt')) return 'text';
  return 'checkpoint';
}

/**
 * Undefined when `head` (a file's first HEAD_BYTES bytes) is what `expect` asks for, else the
 * phrase for the mismatch: "did not answer with JSON but an HTML page".
 */
export function contentMismatch(head: Uint8Array, expect: ExpectedContent): string | undefined {
  if (expect === 'any') return undefined;
  const kind = kindOf(head);
  const want = EXPECTED[expect];
  return want.kinds.includes(kind) ? undefined : `did not answer with ${want.name} but ${KIND_NAMES[kind]}`;
}
