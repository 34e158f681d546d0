#!/usr/bin/env python3
"""Generates reference data for the decoding test in test/classify.test.ts.

Encodes small synthetic images with Pillow in the formats the project decodes (JPEG baseline
4:2:0 / 4:4:4 / progressive / grayscale, PNG RGB / RGBA / LA / palette with transparency, GIF
animation, WebP lossy / lossless RGBA, TIFF, and a JPEG with EXIF orientation 6), and records the
sha256 of what the official evaluation's loader sees: `Image.open(f).convert('RGB')` as raw RGB
bytes. For the EXIF file it also records `ImageOps.exif_transpose(im).convert('RGB')`, since the
project applies the orientation. Usage (needs python3-pil):

    python3 scripts/make-decode-refs.py [output_dir]
"""

import hashlib
import io
import json
import os
import sys

import PIL
from PIL import Image, ImageOps

W, H = 61, 47  # odd sizes exercise the chroma upsampling at the edges


def rgb_pattern(w=W, h=H):
    """Gradients, a checkerboard and a little deterministic noise."""
    im = Image.new("RGB", (w, h))
    state = 12345
    px = []
    for y in range(h):
        for x in range(w):
            state = (state * 1103515245 + 12345) & 0xFFFFFFFF
            noise = state >> 28
            checker = 200 if ((x // 6) + (y // 6)) % 2 else 40
            px.append(((x * 255 // w + noise) & 255, (y * 255 // h) & 255, (checker + noise) & 255))
    im.putdata(px)
    return im


def with_alpha(im, mode):
    base = im.convert("L") if mode == "LA" else im
    alpha = Image.new("L", im.size)
    alpha.putdata([(x * 37 + y * 11) % 256 for y in range(im.size[1]) for x in range(im.size[0])])
    out = base.copy()
    out.putalpha(alpha)
    return out


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rgb = rgb_pattern()
    second = ImageOps.invert(rgb)
    palette = rgb.quantize(colors=32)
    palette.info["transparency"] = 3
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    cases = {
        "rgb_q90.jpg": encode(rgb, "JPEG", quality=90),
        "rgb_q95_444.jpg": encode(rgb, "JPEG", quality=95, subsampling=0),
        "rgb_progressive.jpg": encode(rgb, "JPEG", quality=80, progressive=True),
        "gray.jpg": encode(rgb.convert("L"), "JPEG", quality=85),
        "rgb.png": encode(rgb, "PNG"),
        "rgba.png": encode(with_alpha(rgb, "RGBA"), "PNG"),
        "la.png": encode(with_alpha(rgb, "LA"), "PNG"),
        "palette_trns.png": encode(palette, "PNG", transparency=3),
        "anim.gif": encode(rgb.quantize(colors=64), "GIF", save_all=True, append_images=[second.quantize(colors=64)], duration=100, loop=0),
        "rgb_lossy.webp": encode(rgb, "WEBP", quality=80),
        "rgba_lossless.webp": encode(with_alpha(rgb, "RGBA"), "WEBP", lossless=True, exact=True),
        "rgb.tif": encode(rgb, "TIFF"),
        "exif6.jpg": encode(rgb, "JPEG", quality=90, exif=exif.tobytes()),
    }
    index = {"generator": "scripts/make-decode-refs.py", "pillow": PIL.__version__, "cases": []}
    for name, data in cases.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        im = Image.open(io.BytesIO(data))
        rgb_out = im.convert("RGB")
        case = {
            "file": name,
            "width": rgb_out.size[0],
            "height": rgb_out.size[1],
            "sha256": hashlib.sha256(rgb_out.tobytes()).hexdigest(),
        }
        transposed = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        if transposed.size != rgb_out.size or transposed.tobytes() != rgb_out.tobytes():
            case["exifTransposed"] = {
                "width": transposed.size[0],
                "height": transposed.size[1],
                "sha256": hashlib.sha256(transposed.tobytes()).hexdigest(),
            }
        index["cases"].append(case)
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    print(f"wrote {len(cases)} images and index.json to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "data", "decode"))
