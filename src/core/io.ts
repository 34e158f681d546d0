/**
 * Where bytes and images come from: a platform entry registers a reader for string sources (file
 * paths in Node; URLs everywhere) and a decoder for the image sources it knows (files and bytes
 * in Node; elements, bitmaps, blobs and URLs in browsers). Keeps the model code free of node:
 * imports and of DOM types.
 */
import { SwiftFormerError } from './errors.js';
import { isRGBImage, type RGBImage } from './image.js';

export type SourceReader = (source: string) => Promise<Uint8Array>;

let reader: SourceReader | undefined;

export function registerSourceReader(read: SourceReader): void {
  reader = read;
}

export function readSource(source: string): Promise<Uint8Array> {
  if (!reader) throw new SwiftFormerError('UNSUPPORTED', `cannot read '${source}': no source reader registered on this platform`);
  return reader(source);
}

/** Weights as a source gives them: the bytes, and class names the source keeps beside them (a Hugging Face config's id2label). */
export interface WeightsSource { bytes: Uint8Array; labels?: string[] }

let weightsReader: ((source: string) => Promise<WeightsSource>) | undefined;

/** A platform that knows repositories (hf:) registers how to read their weights with the labels beside them. */
export function registerWeightsReader(read: (source: string) => Promise<WeightsSource>): void {
  weightsReader = read;
}

export async function readWeightsSource(source: string): Promise<WeightsSource> {
  return weightsReader ? weightsReader(source) : { bytes: await readSource(source) };
}

/** An image as a user hands it over: decoded pixels, or whatever the platform can decode (a path, bytes, an <img>, ...). */
export type ImageInput = RGBImage | string | Uint8Array | object;

export type ImageDecoder = (source: Exclude<ImageInput, RGBImage>) => Promise<RGBImage>;

let imageDecoder: ImageDecoder | undefined;

export function registerImageDecoder(decode: ImageDecoder): void {
  imageDecoder = decode;
}

/** The RGB8 pixels of an image input, decoded by the platform when it is not pixels already. */
export async function readImage(input: ImageInput): Promise<RGBImage> {
  if (isRGBImage(input)) return input;
  if (input === null || input === undefined) throw new SwiftFormerError('BAD_ARGUMENT', `expected an image, got ${String(input)}`);
  if (!imageDecoder) throw new SwiftFormerError('UNSUPPORTED', 'no image decoder registered on this platform: pass decoded RGB pixels { width, height, data }');
  return imageDecoder(input);
}
