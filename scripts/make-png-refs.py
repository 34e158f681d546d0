#!/usr/bin/env python3
"""Generates the PNG label maps of test/png.test.ts with Pillow, and the values Pillow reads back.

Label maps as datasets store them: 8-bit grayscale (ADE20K's annotations), 16-bit grayscale,
palette PNGs at 8, 4, 2 and 1 bits (Pillow's mode P, with `bits=`), 1-bit grayscale (mode 1),
and an RGB PNG (which a label reader must refuse). Pillow filters the scanlines adaptively, so the
files exercise every PNG filter type. expected.json holds each file's size, mode and the raw
sample values (np.array(Image.open(f))) as base64 little-endian, plus the palette. Usage (needs
python3-pil and python3-numpy):

    python3 scripts/make-png-refs.py [out_dir]
"""

import base64
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

W, H = 37, 23  # odd sizes: partial bytes at the end of sub-byte rows


def labels(rng, k):
    """Blocky regions, like a segmentation, with some noise."""
    base = rng.integers(0, k, size=(H // 4 + 1, W // 4 + 1))
    m = np.kron(base, np.ones((4, 4), dtype=np.int64))[:H, :W]
    noise = rng.random((H, W)) < 0.1
    m[noise] = rng.integers(0, k, size=noise.sum())
    return m


def filtered_png(path, values):
    """An 8-bit grayscale PNG whose row y uses filter type y % 5 (None, Sub, Up, Average, Paeth),
    written here by hand because encoders pick filters themselves; Pillow must read it back."""
    h, w = values.shape
    raw = b''
    prev = [0] * w
    for y in range(h):
        row = [int(v) for v in values[y]]
        f = y % 5
        out = []
        for x in range(w):
            a = row[x - 1] if x else 0
            b = prev[x]
            c = prev[x - 1] if x else 0
            if f == 0: pred = 0
            elif f == 1: pred = a
            elif f == 2: pred = b
            elif f == 3: pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out.append((row[x] - pred) & 0xFF)
        raw += bytes([f] + out)
        prev = row

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(png)
    assert (np.array(Image.open(path)) == values).all()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'test/data/png'
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    files = {}

    def save(name, im, **kw):
        path = os.path.join(out, name)
        im.save(path, **kw)
        back = Image.open(path)
        arr = np.array(back)
        if back.mode == '1':
            arr = arr.astype(np.uint8)
        if back.mode in ('I', 'I;16'):  # Pillow widens 16-bit gray to int32
            arr = arr.astype(np.uint16)
        entry = {'mode': back.mode, 'width': back.width, 'height': back.height, 'dtype': str(arr.dtype),
                 'values': base64.b64encode(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder('<')).tobytes()).decode('ascii')}
        if back.mode == 'P':
            entry['palette'] = list(back.getpalette()[:3 * (int(arr.max()) + 1)])
        files[name] = entry

    save('gray8.png', Image.fromarray(labels(rng, 151).astype(np.uint8), 'L'))
    ramp = (np.arange(H * W).reshape(H, W) * 2749 % 65536).astype(np.uint16)
    save('gray16.png', Image.fromarray(ramp, 'I;16'))
    for bits, k in [(8, 150), (4, 16), (2, 4), (1, 2)]:
        im = Image.fromarray(labels(rng, k).astype(np.uint8), 'P')
        im.putpalette([int(v) for v in rng.integers(0, 256, size=3 * k)])
        save(f'palette{bits}.png', im, bits=bits)
    save('gray1.png', Image.fromarray(labels(rng, 2).astype(bool)))
    noisy = (rng.integers(0, 256, size=(H, W)) // 3 + np.arange(W)[None, :] * 5).astype(np.uint8)
    filtered_png(os.path.join(out, 'filters.png'), noisy)
    files['filters.png'] = {'mode': 'L', 'width': W, 'height': H, 'dtype': 'uint8', 'values': base64.b64encode(noisy.tobytes()).decode('ascii')}
    save('rgb.png', Image.fromarray(rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8), 'RGB'))

    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump({'generator': 'scripts/make-png-refs.py', 'files': files}, f, indent=1)
        f.write('\n')
    print(f'wrote {len(files)} PNGs to {out}')


if __name__ == '__main__':
    main()
