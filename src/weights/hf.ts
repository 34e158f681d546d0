/**
 * Hugging Face repository sources (`hf:ORG/NAME[@revision]`), platform-neutral: parsed and turned
 * into file URLs here; node/hub.ts (Node: cache, HF_ENDPOINT, HF_TOKEN) and browser.ts fetch them.
 */
import { SwiftFormerError } from '../core/errors.js';

export interface HfSource {
  repo: string;
  revision: string;
}

/** `hf:ORG/NAME` or `hf:ORG/NAME@revision`. */
export function parseHfSource(source: string): HfSource {
  const m = /^hf:([\w.-]+\/[\w.-]+)(?:@(.+))?$/.exec(source);
  if (!m || m[1]!.split('/').some((p) => p === '.' || p === '..')) {
    throw new SwiftFormerError('BAD_ARGUMENT', `'${source}' is not a Hugging Face source: expected hf:ORG/NAME or hf:ORG/NAME@revision`);
  }
  return { repo: m[1]!, revision: m[2] ?? 'main' };
}

/** `${endpoint ?? 'https://huggingface.co'}/${repo}/resolve/${revision}/${file}`. */
export function hfFileUrl(repo: string, file: string, revision = 'main', endpoint?: string): string {
  const base = (endpoint || 'https://huggingface.co').replace(/\/+$/, '');
  return `${base}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** Weight files of a Hugging Face repository, in order of preference. */
export const HF_WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'] as const;
