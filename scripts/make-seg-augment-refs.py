#!/usr/bin/env python3
"""Reference outputs for the segmentation training pipeline's pixel operations
(src/train/segmentation-augment.ts), from the libraries mmsegmentation runs them with:

  - OpenCV's cvtColor RGB2HSV and HSV2RGB on 8-bit pixels (PhotoMetricDistortion's saturation and
    hue steps via mmcv.bgr2hsv / hsv2bgr) and resize INTER_NEAREST on 8-bit label maps (Resize of
    gt_semantic_seg), through the C API of Debian's libopencv-imgproc with ctypes, as
    scripts/make-cv-resize-refs.py does;
  - numpy's float32 arithmetic of PhotoMetricDistortion.convert
    (np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)).

    /usr/bin/python3 scripts/make-seg-augment-refs.py              # writes test/data/seg-augment/
    /usr/bin/python3 scripts/make-seg-augment-refs.py --cube DIR   # also every RGB triple (and every
                                                                    # H < 180, S, V) through OpenCV, for a
                                                                    # one-off exhaustive check (48 MB each)
"""
import argparse
import json
import os

import numpy as np

from opencv_c import CV_HSV2RGB, CV_INTER_NN, CV_RGB2HSV, cvt_color as cvt, resize


def resize_nearest(label, width, height):
    return resize(label, width, height, CV_INTER_NN)


def convert(x, alpha, beta):
    """mmseg's PhotoMetricDistortion.convert."""
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def rgb_samples(rng):
    """Edge values in every combination, grays, then random pixels; one odd-width image (SIMD tails)."""
    edges = np.array([0, 1, 2, 3, 127, 128, 129, 253, 254, 255], np.uint8)
    grid = np.stack(np.meshgrid(edges, edges, edges, indexing='ij'), -1).reshape(-1, 3)
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    rand = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    pixels = np.concatenate([grid, grays, rand])
    width = 257
    pad = (-len(pixels)) % width
    pixels = np.concatenate([pixels, rng.integers(0, 256, (pad, 3), dtype=np.uint8)])
    return pixels.reshape(-1, width, 3)


def hsv_samples(rng):
    """Every H below 180 with edge S and V, then random triples (H < 180, as the pipeline makes them)."""
    h = np.arange(180, dtype=np.uint8)
    sv = np.array([0, 1, 2, 127, 128, 254, 255], np.uint8)
    grid = np.stack(np.meshgrid(h, sv, sv, indexing='ij'), -1).reshape(-1, 3)
    rand = np.stack([rng.integers(0, 180, 20000), rng.integers(0, 256, 20000), rng.integers(0, 256, 20000)], -1).astype(np.uint8)
    pixels = np.concatenate([grid, rand])
    width = 257
    pad = (-len(pixels)) % width
    extra = np.stack([rng.integers(0, 180, pad), rng.integers(0, 256, pad), rng.integers(0, 256, pad)], -1).astype(np.uint8)
    return np.concatenate([pixels, extra]).reshape(-1, width, 3)


# (source w, h) -> (destination w, h): the random rescale's up and down factors, non-integer
# ratios, one axis only, and a single row / column.
NEAREST_CASES = [((64, 64), (32, 32)), ((64, 64), (128, 128)), ((37, 23), (80, 50)), ((100, 60), (33, 20)),
                 ((128, 128), (179, 179)), ((128, 128), (77, 77)), ((50, 30), (50, 71)), ((9, 1), (20, 3)), ((1, 7), (3, 2))]

# (alpha, beta) of the brightness, contrast and saturation steps, including values that round and clip.
CONVERT_CASES = [(1.0, 31.7), (1.0, -31.99), (1.0, 0.5), (0.5, 0.0), (1.4999, 0.0), (0.7312, 0.0), (1.23456789, 0.0), (1.0, -0.25)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cube', help='also write every RGB / HSV triple and OpenCV\'s conversion of it here')
    args = ap.parse_args()
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'seg-augment')
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rgb_samples(rng)
    hsv = hsv_samples(rng)
    files = {}

    def save(name, array):
        array.tofile(os.path.join(out_dir, name))
        files[name] = list(array.shape)

    save('rgb.bin', rgb)
    save('rgb2hsv.bin', cvt(rgb, CV_RGB2HSV))
    save('hsv.bin', hsv)
    save('hsv2rgb.bin', cvt(hsv, CV_HSV2RGB))
    # Rows of 31 pixels never reach HSV2RGB_b's vector loop (32 pixels at a time with AVX2): all scalar.
    narrow = hsv.reshape(-1, 3)[:(hsv.shape[0] * hsv.shape[1]) // 31 * 31].reshape(-1, 31, 3)
    save('hsv-narrow.bin', narrow)
    save('hsv2rgb-narrow.bin', cvt(narrow, CV_HSV2RGB))
    nearest = []
    for i, ((sw, sh), (dw, dh)) in enumerate(NEAREST_CASES):
        src = rng.integers(0, 256, (sh, sw), dtype=np.uint8)
        save(f'nearest{i}-src.bin', src)
        save(f'nearest{i}-dst.bin', resize_nearest(src, dw, dh))
        nearest.append({'src': f'nearest{i}-src.bin', 'dst': f'nearest{i}-dst.bin', 'from': [sw, sh], 'to': [dw, dh]})
    values = np.arange(256, dtype=np.uint8)
    converts = [{'alpha': a, 'beta': b, 'out': convert(values, a, b).tolist()} for a, b in CONVERT_CASES]
    meta = {'opencv': 'libopencv-imgproc 4.6 (Debian): cvCvtColor CV_RGB2HSV / CV_HSV2RGB on CV_8UC3, cvResize CV_INTER_NN on CV_8UC1',
            'numpy': np.__version__, 'files': files, 'nearest': nearest, 'convert': converts}
    with open(os.path.join(out_dir, 'index.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    if args.cube:
        os.makedirs(args.cube, exist_ok=True)
        cube = np.arange(1 << 24, dtype=np.uint32)
        rgb_all = np.stack([cube >> 16, (cube >> 8) & 255, cube & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
        cvt(rgb_all, CV_RGB2HSV).tofile(os.path.join(args.cube, 'rgb2hsv.bin'))
        hsv_all = rgb_all.copy()
        hsv_all[..., 0] %= 180
        hsv_all.tofile(os.path.join(args.cube, 'hsv.bin'))
        cvt(hsv_all, CV_HSV2RGB).tofile(os.path.join(args.cube, 'hsv2rgb.bin'))
        cvt(hsv_all.reshape(-1, 16, 3), CV_HSV2RGB).tofile(os.path.join(args.cube, 'hsv2rgb-narrow.bin'))
        print(f'wrote the RGB cube (R-major) and its conversions to {args.cube}')


if __name__ == '__main__':
    main()
