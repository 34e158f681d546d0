#!/usr/bin/env python3
"""Generates reference data for the decoding test in test/classify.test.ts.

Encodes small synthetic images with Pillow in the formats the project decodes (JPEG baseline
4:2:0 / 4:4:4 / progressive / grayscale, PNG RGB / RGBA / LA / palette with transparency, GIF
animation, WebP lossy / lossless RGBA, TIFF, a JPEG with EXIF orientation 6, CMYK JPEG, 16-bit PNG
gray / gray+alpha / RGB / RGBA, BMP 1/4/8-bit palette, gray, 24-bit, 32-bit, bitfields, top-down
and OS/2, binary PPM / PGM at maxval 255, 65535 and others), and records the sha256 of what the
official evaluation's loader sees: `Image.open(f).convert('RGB')` as raw RGB bytes. Files Pillow
cannot write (16-bit RGB PNG, top-down or bitfield BMP, PNM with other maxvals) are written here
byte by byte from their format specifications. For the EXIF file it also records `ImageOps.exif_transpose(im).convert('RGB')`, since the
project applies the orientation. Usage (needs python3-pil):

    python3 scripts/make-decode-refs.py [output_dir]
"""

import hashlib
import io
import json
import os
import struct
import sys
import zlib

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


def png16(w, h, color_type, samples):
    """A 16-bit PNG (Pillow writes 16 bits only for gray): IHDR, one zlib IDAT, filter 0 rows."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    rows = b"".join(
        b"\0" + struct.pack(f">{w * channels}H", *samples[y * w * channels:(y + 1) * w * channels]) for y in range(h)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def samples16(w, h, channels):
    """16-bit samples over the whole range, with low bytes that differ from the high ones."""
    return [(x * 65535 // w + y * 997 + c * 12345) % 65536 for y in range(h) for x in range(w) for c in range(channels)]


def bmp(w, h, bits, rows, palette=b"", header=40, compression=0, masks=b"", top_down=False):
    """A BMP from already-packed rows (top row first): file header, info header, masks, palette, pixels."""
    stride = ((w * bits + 31) >> 3) & ~3
    data = b"".join(row.ljust(stride, b"\0") for row in (rows if top_down else rows[::-1]))
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", header, w, -h if top_down else h, 1, bits, compression, len(data), 2835, 2835, len(palette) // 4 if palette else 0, 0)
        info = (info + masks).ljust(header, b"\0")
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


def bmp_cases(rgb):
    w, h = rgb.size
    px = list(rgb.getdata())
    row = lambda y, fmt: b"".join(fmt(*px[y * w + x]) for x in range(w))
    quads = lambda colors: b"".join(bytes((b, g, r, 0)) for r, g, b in colors)
    # 4-bit: 6 colours, so indices 6..15 are beyond the palette (Pillow shows them as grey i, i, i).
    pal4 = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (250, 250, 0), (0, 250, 250), (90, 90, 90)]
    rows4 = [bytes((((x + y) % 16) << 4 | ((x + 1 + y) % 16)) for x in range(0, w, 2)) for y in range(h)]
    bgra = lambda r, g, b: bytes((b, g, r, (r + g) % 256))
    return {
        "rgb24.bmp": encode(rgb, "BMP"),
        "rgba32.bmp": encode(with_alpha(rgb, "RGBA"), "BMP"),
        "palette8.bmp": encode(rgb.quantize(colors=40), "BMP"),
        "gray8.bmp": encode(rgb.convert("L"), "BMP"),
        "bw1.bmp": encode(rgb.convert("1"), "BMP"),
        "palette4.bmp": bmp(w, h, 4, rows4, palette=quads(pal4)),
        "topdown24.bmp": bmp(w, h, 24, [row(y, lambda r, g, b: bytes((b, g, r))) for y in range(h)], top_down=True),
        "bitfields32_v5.bmp": bmp(w, h, 32, [row(y, bgra) for y in range(h)], header=124, compression=3,
                                  masks=struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000)),
        "os2_24.bmp": bmp(w, h, 24, [row(y, lambda r, g, b: bytes((b, g, r))) for y in range(h)], header=12),
    }


def pnm(magic, w, h, maxval, samples):
    """Binary PNM with a comment in the header; 2 bytes per sample above maxval 255."""
    fmt = ">%dH" if maxval > 255 else "%dB"
    return b"%s\n# made by make-decode-refs.py\n%d %d\n%d\n" % (magic, w, h, maxval) + struct.pack(fmt % len(samples), *samples)


def pnm_cases(rgb):
    w, h = rgb.size
    gray = list(rgb.convert("L").getdata())
    flat = [v for p in rgb.getdata() for v in p]
    return {
        "rgb.ppm": encode(rgb, "PPM"),
        "gray.pgm": encode(rgb.convert("L"), "PPM"),
        "gray16.pgm": pnm(b"P5", w, h, 65535, [v * 257 + (v % 7) for v in gray]),
        "gray_max100.pgm": pnm(b"P5", w, h, 100, [v * 100 // 255 for v in gray]),
        "gray_max1000.pgm": pnm(b"P5", w, h, 1000, [v * 1000 // 255 for v in gray]),
        "rgb_max1000.ppm": pnm(b"P6", w, h, 1000, [v * 1000 // 255 + 3 for v in flat]),
        "rgb_max31.ppm": pnm(b"P6", w, h, 31, [v // 8 for v in flat]),
    }


def deep_cases(rgb):
    """CMYK JPEG (Pillow's own CMYK to RGB formula, no ICC) and 16-bit PNGs."""
    w, h = rgb.size
    gray16 = Image.new("I", (w, h))
    gray16.putdata([(x * 9 + y * 3) for y in range(h) for x in range(w)])  # small values: Pillow clips at 255
    return {
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=90),
        "cmyk_444.jpg": encode(with_alpha(rgb, "RGBA").convert("CMYK"), "JPEG", quality=95, subsampling=0),
        "gray16.png": encode(gray16, "PNG"),
        "gray16_full.png": png16(w, h, 0, samples16(w, h, 1)),
        "la16.png": png16(w, h, 4, samples16(w, h, 2)),
        "rgb16.png": png16(w, h, 2, samples16(w, h, 3)),
        "rgba16.png": png16(w, h, 6, samples16(w, h, 4)),
    }


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
        **deep_cases(rgb),
        **bmp_cases(rgb),
        **pnm_cases(rgb),
    }
    index = {"generator": "scripts/make-decode-refs.py", "pillow": PIL.__version__, "cases": []}
    for name, data in cases.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        im = Image.open(io.BytesIO(data))
        rgb_out = im.convert("RGB")
        case = {
            "file": name,
            "mode": im.mode,
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
