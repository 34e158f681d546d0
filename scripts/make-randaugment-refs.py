#!/usr/bin/env python3
"""Generates reference data for test/randaugment.test.ts.

RandAugment's operations (timm 0.5.4, the official SwiftFormer recipe) are Pillow image
operations. This script applies each of them, as timm calls it, at fixed arguments to a few
deterministic synthetic RGB images and records Pillow's output bytes:

  * ImageOps.autocontrast / equalize / invert / posterize(bits) / solarize(threshold), and timm's
    solarize_add (a point() table: values below 128 get `add`, capped at 255);
  * ImageEnhance.Brightness / Contrast / Color / Sharpness at factors inside and outside [0, 1]
    (Image.blend's float32 arithmetic), ImageFilter.SMOOTH itself, and chains of the first three
    in a given order (torchvision's ColorJitter on a PIL image);
  * Image.rotate(degrees, resample, fillcolor) and Image.transform(size, AFFINE, matrix, resample,
    fillcolor) with timm's shear and relative-translate matrices, bilinear and bicubic, filled
    with timm's img_mean for ImageNet, (124, 116, 104);
  * the recipe's random resized crop (torchvision's resized_crop: crop, then Image.resize) at
    fixed boxes;
  * the affine matrices Image.rotate computes (captured from Image.transform) for many angles, with
    libm's cos and sin and the correctly rounded ones (glibc's are off by one ulp for about 1
    argument in 400, and the matrix keeps some of that after round(x, 15)); the rotations at the
    angles whose matrix it changes are recorded as well.

Images and outputs are raw uint8 RGB (row-major, interleaved), concatenated in refs.bin; index.json
gives each one's offset and the arguments. Usage (needs python3-pil and python3-numpy):

    python3 scripts/make-randaugment-refs.py [output_dir]
"""

import decimal
import importlib.util
import math
import os
import sys

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("preprocess_refs", os.path.join(HERE, "make-preprocess-refs.py"))
_preprocess_refs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_preprocess_refs)
synthetic_image = _preprocess_refs.synthetic_image
FILTERS = _preprocess_refs.FILTERS

FILL = (124, 116, 104)  # timm: tuple(min(255, round(255 * x)) for x in IMAGENET_DEFAULT_MEAN)


def levels_image(width, height, seed):
    """Few, unevenly used levels per channel: equalize's clipping (a table value above 255),
    autocontrast on a narrow range, and a constant channel (both leave it as it is)."""
    rng = np.random.RandomState(seed)
    red = np.where(rng.random_sample((height, width)) < 0.9, 10, 200)
    green = 70 + rng.randint(0, 81, (height, width))
    blue = np.full((height, width), 77)
    return Image.fromarray(np.stack([red, green, blue], axis=-1).astype(np.uint8), "RGB")


# (name, make): the images every operation runs on. Small, so that the data stays well under 2 MB.
IMAGES = [
    ("pattern_40x30", lambda: synthetic_image(40, 30, 4321)),
    ("levels_31x23", lambda: levels_image(31, 23, 4322)),
    ("square_17x17", lambda: synthetic_image(17, 17, 4323)),
    ("tiny_2x5", lambda: synthetic_image(2, 5, 4324)),  # smaller than SMOOTH's kernel: copied
    ("few_9x7", lambda: synthetic_image(9, 7, 4325)),  # 63 pixels: equalize's step is 0
]

FACTORS = [0.0, 0.1, 0.19, 0.5, 0.7654321, 1.0, 1.2345678901, 1.37, 1.81, 1.9, 2.0, 3.3]
ROTATIONS = [27.0, -27.0, 13.37, -4.2, 0.0, 90.0, 180.0, 270.0, -90.0, 360.0, 30.0, 45.0, 123.456, -179.99]
SHEARS = [0.27, -0.27, 0.3, 0.0123]
TRANSLATES = [0.405, -0.405, 0.45, 0.0777]
# (order, factors): torchvision ColorJitter's steps on a PIL image.
JITTERS = [
    [("brightness", 1.2345678), ("contrast", 0.6789012), ("saturation", 1.3579)],
    [("saturation", 0.61), ("brightness", 0.83), ("contrast", 1.39)],
    [("contrast", 1.4), ("saturation", 0.6)],
]
# (left, top, width, height, output side, filter): random resized crop boxes, resized down and up.
RESIZED_CROPS = [(3, 2, 31, 25, 24, "bicubic"), (10, 5, 13, 17, 24, "bicubic"), (0, 0, 40, 30, 24, "bilinear"), (7, 9, 9, 8, 24, "bilinear")]
ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "color": ImageEnhance.Color,
    "sharpness": ImageEnhance.Sharpness,
}
JITTER_ENHANCERS = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast, "saturation": ImageEnhance.Color}


def solarize_add(img, add, thresh=128):
    """timm's solarize_add: a point() table, values below thresh increased by add (capped at 255)."""
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def affine(img, matrix, resample):
    return img.transform(img.size, Image.AFFINE, matrix, resample=FILTERS[resample], fillcolor=FILL)


def cases_for(img):
    """(op, args, output image) for every operation and argument on one image."""
    w, h = img.size
    yield "autocontrast", {}, ImageOps.autocontrast(img)
    yield "equalize", {}, ImageOps.equalize(img)
    yield "invert", {}, ImageOps.invert(img)
    for bits in range(0, 9):
        yield "posterize", {"bits": bits}, ImageOps.posterize(img, bits)
    for threshold in (0, 26, 128, 200, 256):
        yield "solarize", {"threshold": threshold}, ImageOps.solarize(img, threshold)
    for add in (0, 40, 99, 110):
        yield "solarize_add", {"add": add}, solarize_add(img, add)
    yield "smooth", {}, img.filter(ImageFilter.SMOOTH)
    for name, enhancer in ENHANCERS.items():
        for factor in FACTORS:
            yield name, {"factor": factor}, enhancer(img).enhance(factor)
    for steps in JITTERS:
        out = img
        for kind, factor in steps:
            out = JITTER_ENHANCERS[kind](out).enhance(factor)
        yield "jitter", {"steps": [[k, f] for k, f in steps]}, out
    for resample in ("bilinear", "bicubic"):
        for degrees in ROTATIONS:
            yield "rotate", {"degrees": degrees, "resample": resample}, img.rotate(degrees, resample=FILTERS[resample], fillcolor=FILL)
        for factor in SHEARS:
            yield "shear_x", {"factor": factor, "resample": resample}, affine(img, (1, factor, 0, 0, 1, 0), resample)
            yield "shear_y", {"factor": factor, "resample": resample}, affine(img, (1, 0, 0, factor, 1, 0), resample)
        for pct in TRANSLATES:
            yield "translate_x_rel", {"pct": pct, "resample": resample}, affine(img, (1, 0, pct * w, 0, 1, 0), resample)
            yield "translate_y_rel", {"pct": pct, "resample": resample}, affine(img, (1, 0, 0, 0, 1, pct * h), resample)


def exact_cos_sin(x):
    """cos(x) and sin(x) correctly rounded to doubles (Taylor series in 60-digit decimals), to tell
    where the platform's libm, which Image.rotate uses, is not."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        x = decimal.Decimal(x)
        x2 = x * x
        cos, sin = decimal.Decimal(0), decimal.Decimal(0)
        c_term, s_term = decimal.Decimal(1), x
        for n in range(1, 80):
            cos, sin = cos + c_term, sin + s_term
            c_term = -c_term * x2 / ((2 * n - 1) * (2 * n))
            s_term = -s_term * x2 / ((2 * n) * (2 * n + 1))
        return float(cos), float(sin)


def rotation_angles(count, seed):
    rng = np.random.RandomState(seed)
    magnitudes = np.clip(rng.normal(9.0, 0.5, count), 0, 10)
    angles = [float(m / 10 * 30 * (1 if s else -1)) for m, s in zip(magnitudes, rng.random_sample(count) > 0.5)]
    return angles + [1e-9, -1e-9, 359.999999, 720.5, -400.25, 60.0, 120.0, -30.0]


def matrix_changing_angles(count, seed):
    """The first `count` timm-like angles (about 1 in 8000) for which libm's rounding of cos or sin
    survives round(x, 15), i.e. changes Image.rotate's matrix."""
    found = []
    for angle in rotation_angles(200000, seed):
        radians = -math.radians(angle % 360.0)
        libm = (round(math.cos(radians), 15), round(math.sin(radians), 15))
        if libm != tuple(round(v, 15) for v in exact_cos_sin(radians)):
            found.append(angle)
            if len(found) == count:
                break
    return found


def rotation_matrices(angles):
    """The matrix Image.rotate passes to Image.transform (captured), with libm's cos and sin of the
    angle it used and the correctly rounded ones."""
    captured = []
    original = Image.Image.transform

    def capture(self, size, method, data=None, *args, **kwargs):
        captured.append(list(data))
        return original(self, size, method, data, *args, **kwargs)

    Image.Image.transform = capture
    try:
        out = []
        for angle, (w, h) in zip(angles, [(224, 224), (40, 30), (17, 17), (300, 199)] * len(angles)):
            captured.clear()
            Image.new("RGB", (w, h)).rotate(angle, resample=Image.BICUBIC, fillcolor=FILL)
            radians = -math.radians(angle % 360.0)
            exact = exact_cos_sin(radians)
            out.append({
                "degrees": angle, "width": w, "height": h, "matrix": captured[0], "radians": radians,
                "libm": [math.cos(radians), math.sin(radians)], "exact": list(exact),
            })
        return out
    finally:
        Image.Image.transform = original


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "test", "data", "randaugment")
    os.makedirs(out_dir, exist_ok=True)
    blob = bytearray()

    def put(img):
        assert img.mode == "RGB"
        offset = len(blob)
        blob.extend(img.tobytes())
        return offset

    matrices = rotation_matrices(rotation_angles(600, 4330) + matrix_changing_angles(3, 4331))
    # Angles where libm is not correctly rounded: their rotations are recorded too.
    off_angles = [m["degrees"] for m in matrices if m["libm"] != m["exact"]]
    images = []
    cases = []
    for name, make in IMAGES:
        img = make()
        images.append({"name": name, "width": img.size[0], "height": img.size[1], "offset": put(img)})
        for op, args, result in cases_for(img):
            assert result.size == img.size and result.mode == "RGB"
            cases.append({"image": name, "op": op, "args": args, "offset": put(result)})
        if name == "pattern_40x30":
            # The recipe's first step, torchvision's resized_crop on a PIL image: crop, then resize.
            for left, top, cw, ch, size, resample in RESIZED_CROPS:
                result = img.crop((left, top, left + cw, top + ch)).resize((size, size), FILTERS[resample])
                args = {"box": [left, top, cw, ch], "size": size, "resample": resample}
                cases.append({"image": name, "op": "resized_crop", "args": args, "offset": put(result)})
            for degrees in off_angles:
                for resample in ("bilinear", "bicubic"):
                    result = img.rotate(degrees, resample=FILTERS[resample], fillcolor=FILL)
                    cases.append({"image": name, "op": "rotate", "args": {"degrees": degrees, "resample": resample, "libmRounding": True}, "offset": put(result)})
    with open(os.path.join(out_dir, "refs.bin"), "wb") as f:
        f.write(bytes(blob))
    _preprocess_refs.write_index(
        out_dir, "scripts/make-randaugment-refs.py", indent=1,
        format="refs.bin: raw uint8 RGB images (row-major, interleaved) at the given byte offsets",
        fill=FILL, images=images, cases=cases, rotationMatrices=matrices,
    )
    size = len(blob) + os.path.getsize(os.path.join(out_dir, "index.json"))
    print(f"wrote {len(cases)} cases on {len(images)} images, {size} bytes, to {out_dir} (Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
