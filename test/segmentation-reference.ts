/** mmseg's logits-to-mask steps written out directly, for tests to check the library's composed version against. */
/**
 * mmseg's way to the mask, written out directly: logits (K, h/4, w/4) resized bilinearly to the
 * padded (h, w), cropped to the resized image, resized to the original size, argmax; `margin` is
 * each pixel's gap between the best and the second-best class (a near-tie is float noise's to decide).
 */
export function referenceMask(quarter: Float32Array, k: number, padded: [number, number], resized: [number, number], original: [number, number]): { mask: Uint8Array; margin: Float64Array } {
  const resize = (src: Float64Array, [ih, iw]: [number, number], [oh, ow]: [number, number]): Float64Array => {
    const out = new Float64Array(k * oh * ow);
    const coord = (d: number, i: number, o: number) => Math.max(0, (d + 0.5) * (i / o) - 0.5);
    for (let y = 0; y < oh; y++) {
      const sy = coord(y, ih, oh);
      const y0 = Math.floor(sy);
      const y1 = Math.min(y0 + 1, ih - 1);
      const ly = sy - y0;
      for (let x = 0; x < ow; x++) {
        const sx = coord(x, iw, ow);
        const x0 = Math.floor(sx);
        const x1 = Math.min(x0 + 1, iw - 1);
        const lx = sx - x0;
        for (let c = 0; c < k; c++) {
          const p = (yy: number, xx: number) => src[c * ih * iw + yy * iw + xx]!;
          out[c * oh * ow + y * ow + x] = (1 - ly) * ((1 - lx) * p(y0, x0) + lx * p(y0, x1)) + ly * ((1 - lx) * p(y1, x0) + lx * p(y1, x1));
        }
      }
    }
    return out;
  };
  const [ph, pw] = padded;
  const full = resize(Float64Array.from(quarter), [ph / 4, pw / 4], padded);
  const [rh, rw] = resized;
  const crop = new Float64Array(k * rh * rw);
  for (let c = 0; c < k; c++) for (let y = 0; y < rh; y++) for (let x = 0; x < rw; x++) crop[(c * rh + y) * rw + x] = full[(c * ph + y) * pw + x]!;
  const [oh, ow] = original;
  const final = resize(crop, resized, original);
  const mask = new Uint8Array(oh * ow);
  const margin = new Float64Array(oh * ow);
  for (let i = 0; i < oh * ow; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (final[c * oh * ow + i]! > final[best * oh * ow + i]!) best = c;
    let second = -Infinity;
    for (let c = 0; c < k; c++) if (c !== best) second = Math.max(second, final[c * oh * ow + i]!);
    mask[i] = best;
    margin[i] = final[best * oh * ow + i]! - second;
  }
  return { mask, margin };
}

