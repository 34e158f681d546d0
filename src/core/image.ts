/** An 8-bit RGB image, pixels row-major, channels interleaved (RGBRGB...): the one image type that crosses module boundaries. */
export interface RGBImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export function isRGBImage(x: unknown): x is RGBImage {
  const i = x as Partial<RGBImage> | null;
  return !!i && typeof i === 'object' && typeof i.width === 'number' && typeof i.height === 'number' && i.data instanceof Uint8Array;
}
