#!/usr/bin/env python3
"""Generates reference data for test/preprocess.test.ts.

Builds small synthetic RGB images deterministically (gradients, noise, saturated edges and thin
lines, so that both antialiasing and bicubic overshoot/clipping are exercised) and records what
Pillow produces for them:

  * the official SwiftFormer eval geometry: torchvision Resize(256, BICUBIC) -> CenterCrop(224),
    reimplemented here with torchvision's exact rules so torch/torchvision are not needed;
  * plain Image.resize outputs for a few explicit target sizes (bicubic and bilinear);
  * convert('L') of every eval source (the luma a model trained on gray images sees).

Everything is raw uint8 RGB (row-major, interleaved); test/data/preprocess/index.json describes
the files. Usage (needs python3-pil and python3-numpy):

    python3 scripts/make-preprocess-refs.py [output_dir]
"""

import json
import os
import sys

import numpy as np
import PIL
from PIL import Image

RESIZE_SHORTER = 256  # int(256 / 224 * 224), as in the official build_transform
CROP = 224

try:
    FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
except AttributeError:  # Pillow < 9.1
    FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}

# (name, width, height): the full eval pipeline runs on each. Kept small so the data stays ~2 MB.
EVAL_CASES = [
    ("wide_300x200", 300, 200),  # upscale, landscape
    ("tall_200x300", 200, 300),  # upscale, portrait
    ("up_100x150", 100, 150),  # strong upscale (x2.56)
    ("odd_257x256", 257, 256),  # no resize; crop left = round(16.5) = 16 (half to even)
    ("down_400x300", 400, 300),  # downscale 4:3 (antialiased)
    ("long_111x333", 111, 333),  # 1:3 aspect, odd sizes
]

# (name, source width, source height, [(target width, target height, filter), ...])
RESIZE_CASES = [
    ("shrink_160x120", 160, 120, [(40, 30, "bicubic"), (37, 23, "bicubic"), (61, 47, "bilinear"), (160, 45, "bicubic")]),
    ("grow_23x17", 23, 17, [(97, 61, "bicubic"), (50, 40, "bilinear"), (23, 50, "bicubic")]),
]


def synthetic_image(width, height, seed):
    """Deterministic test pattern: smooth gradients + noise + hard 0/255 edges + thin lines."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255.0 * x / max(width - 1, 1)
    g = 255.0 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.sin(0.21 * x + 0.13 * y)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0.0, 14.0, (height, width, 3))
    # A checkerboard of pure black and white in one corner: maximal overshoot for bicubic.
    checker = ((x // 7 + y // 5) % 2) == 0
    corner = (x < width / 3) & (y > height / 2)
    img[corner & checker] = 255.0
    img[corner & ~checker] = 0.0
    # A saturated disk and one-pixel lines: sharp edges in every direction.
    disk = (x - 0.65 * width) ** 2 + (y - 0.35 * height) ** 2 < (0.18 * min(width, height)) ** 2
    img[disk] = [250.0, 20.0, 5.0]
    img[::11, :, :] = [0.0, 255.0, 255.0]
    img[:, ::13, :] = [255.0, 255.0, 0.0]
    # Per-pixel salt and pepper so no neighbourhood is smooth.
    salt = rng.random_sample((height, width)) < 0.02
    img[salt] = rng.randint(0, 256, (int(salt.sum()), 3))
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def shorter_side_size(width, height, target):
    """torchvision Resize(int): shorter side -> target, longer -> int(target * long / short)."""
    if width <= height:
        return target, int(target * height / width)
    return int(target * width / height), target


def center_crop(img, size):
    """torchvision CenterCrop for an image at least `size` on each side (Python round())."""
    width, height = img.size
    assert width >= size and height >= size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size)), left, top


def write_raw(out_dir, file_name, img):
    assert img.mode == "RGB"
    with open(os.path.join(out_dir, file_name), "wb") as f:
        f.write(img.tobytes())


def eval_case(out_dir, seed, name, width, height):
    src = synthetic_image(width, height, seed)
    resized_size = shorter_side_size(width, height, RESIZE_SHORTER)
    resized = src.resize(resized_size, FILTERS["bicubic"])
    cropped, left, top = center_crop(resized, CROP)
    write_raw(out_dir, f"{name}.rgb", src)
    write_raw(out_dir, f"{name}.crop{CROP}.rgb", cropped)
    with open(os.path.join(out_dir, f"{name}.L.gray"), "wb") as f:
        f.write(src.convert("L").tobytes())
    return {
        "name": name,
        "width": width,
        "height": height,
        "source": f"{name}.rgb",
        "resized": {"width": resized_size[0], "height": resized_size[1]},
        "cropLeft": left,
        "cropTop": top,
        "crop": f"{name}.crop{CROP}.rgb",
        "luma": f"{name}.L.gray",
    }


def resize_case(out_dir, seed, name, width, height, targets):
    src = synthetic_image(width, height, seed)
    write_raw(out_dir, f"{name}.rgb", src)
    outputs = []
    for tw, th, filt in targets:
        file_name = f"{name}.{filt}_{tw}x{th}.rgb"
        write_raw(out_dir, file_name, src.resize((tw, th), FILTERS[filt]))
        outputs.append({"width": tw, "height": th, "filter": filt, "file": file_name})
    return {"name": name, "width": width, "height": height, "source": f"{name}.rgb", "outputs": outputs}


def write_index(out_dir, generator, indent=2, **fields):
    """index.json: the generator and the versions of Pillow and numpy, then the script's fields."""
    index = {"generator": generator, "pillow": PIL.__version__, "numpy": np.__version__, **fields}
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=indent)
        f.write("\n")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "test", "data", "preprocess")
    os.makedirs(out_dir, exist_ok=True)
    seed = 1234
    evals = []
    for name, w, h in EVAL_CASES:
        seed += 1
        evals.append(eval_case(out_dir, seed, name, w, h))
    resizes = []
    for name, w, h, targets in RESIZE_CASES:
        seed += 1
        resizes.append(resize_case(out_dir, seed, name, w, h, targets))
    write_index(
        out_dir, "scripts/make-preprocess-refs.py", format="raw uint8 RGB, row-major, channels interleaved",
        resizeShorter=RESIZE_SHORTER, crop=CROP, evalCases=evals, resizeCases=resizes,
    )
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"wrote {len(os.listdir(out_dir))} files, {total} bytes, to {out_dir} (Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
